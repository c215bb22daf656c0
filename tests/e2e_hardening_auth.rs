//! Hardening (issue 12) end to end: credentials and error bodies.
//!
//! - item 3: a configured key with two dots (shaped like a JWT) authenticates as that key when
//!   tokens are enabled;
//! - item 11: unknown path 404, wrong method 405 (with `Allow`), a `/client/auth` body over
//!   `maxRequestBodyBytes` (413) and a repeated `?apiKey=` on the streams (400) all answer the
//!   JSON error body `{"error", "message"}`.

mod support;

use serde_json::json;
use support::relay::{client, start_over, wait_ready};

const FLAGS: &str = "on-flag: {enabled: true, rollout: 100}\n";
const SECRET: &str = "an-hs256-secret-of-at-least-32-bytes!!";

#[tokio::test]
async fn keys_shaped_like_tokens_authenticate_as_keys() {
    let config = format!(
        "retrievers: [{{kind: file, path: \"{{{{dir}}}}/flags.yaml\"}}]
authorizedKeys:
  evaluation: [eval.key.with-two-dots-0001]
  admin: [admin.key.with-two-dots-0001]
auth: {{jwtSecret: \"{SECRET}\"}}
"
    );
    let relay = start_over(FLAGS, &config);
    wait_ready(&relay).await;
    let c = client();
    let admin = c
        .post(relay.url("/admin/v1/retriever/refresh"))
        .header("X-API-Key", "admin.key.with-two-dots-0001")
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), 200, "the admin key is accepted as a key");
    let eval = c
        .post(relay.url("/ofrep/v1/evaluate/flags/on-flag"))
        .header("Authorization", "Bearer eval.key.with-two-dots-0001")
        .json(&json!({"context": {"targetingKey": "u"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        eval.status(),
        200,
        "the evaluation key is accepted as a key"
    );
    // A token issued for it still works, and an unknown two-dot credential is still refused.
    let token: serde_json::Value = c
        .post(relay.url("/client/auth"))
        .json(&json!({"apiKey": "eval.key.with-two-dots-0001"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["authToken"].as_str().unwrap();
    for (cred, want) in [(token, 200), ("not.a.configured-key-nor-token", 401)] {
        let r = c
            .post(relay.url("/ofrep/v1/evaluate/flags/on-flag"))
            .header("X-API-Key", cred)
            .json(&json!({"context": {"targetingKey": "u"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), want);
    }
}

#[tokio::test]
async fn every_error_has_a_json_body() {
    let config = format!(
        "retrievers: [{{kind: file, path: \"{{{{dir}}}}/flags.yaml\"}}]
maxRequestBodyBytes: 2048
authorizedKeys: {{evaluation: [eval-key-0001]}}
auth: {{jwtSecret: \"{SECRET}\"}}
"
    );
    let relay = start_over(FLAGS, &config);
    wait_ready(&relay).await;
    let c = client();
    let big = json!({"apiKey": "x".repeat(4096)}).to_string();
    let cases = [
        ("unknown path", c.get(relay.url("/no/such/path")), 404),
        (
            "wrong method",
            c.get(relay.url("/ofrep/v1/evaluate/flags")),
            405,
        ),
        (
            "wrong method, admin",
            c.get(relay.url("/admin/v1/retriever/refresh")),
            405,
        ),
        (
            "auth body too large",
            c.post(relay.url("/client/auth")).body(big),
            413,
        ),
        (
            "repeated apiKey, sse",
            c.get(relay.url("/ofrep/v1/sse?apiKey=eval-key-0001&apiKey=eval-key-0001")),
            400,
        ),
        (
            "repeated apiKey, sync stream",
            c.get(relay.url("/v1/flags/stream?apiKey=a&apiKey=b")),
            400,
        ),
    ];
    for (what, req, want) in cases {
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), want, "{what}");
        if want == 405 {
            assert!(r.headers().contains_key("allow"), "{what}: no Allow header");
        }
        let ct = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(ct.as_deref(), Some("application/json"), "{what}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert!(
            v["error"].is_string() && v["message"].is_string(),
            "{what}: {v}"
        );
    }
}
