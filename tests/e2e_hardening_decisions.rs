//! Hardening (issue 12) end to end: the three "decide and note" points.
//!
//! - JSON flag documents with a repeated key (at any depth) are refused, as YAML's are;
//! - YAML booleans are YAML 1.2's: `enabled: yes` is an error naming the flag, and `yes`/`on`
//!   as a flag value are strings;
//! - `If-None-Match: *` on the bulk OFREP POST is a failed precondition (412, RFC 9110
//!   §13.1.2: never a 304 on a POST), while the bulk ETag itself still gives 304.

mod support;

use serde_json::json;
use support::hardening::{ADMIN, failed_refresh, start_admin_refreshed};
use support::relay::{client, start_over, wait_ready, write_atomic};

fn config(file: &str) -> String {
    format!(
        "pollingInterval: 0
retrievers: [{{kind: file, path: \"{{{{dir}}}}/{file}\"}}]
authorizedKeys: {{admin: [{ADMIN}]}}
"
    )
}

#[tokio::test]
async fn repeated_json_keys_and_yaml_1_1_booleans_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("flags.json"),
        r#"{"a": {"enabled": true, "rollout": 100}, "b": {"enabled": true}}"#,
    )
    .unwrap();
    let relay = support::relay::Relay::start_in(
        dir,
        support::relay::Options {
            config: &config("flags.json"),
            ..Default::default()
        },
    );
    wait_ready(&relay).await;
    let path = relay.path("flags.json");
    write_atomic(
        &path,
        r#"{"a": {"enabled": true, "rollout": 100, "rollout": 1}, "b": {"enabled": true}}"#,
    );
    let (error, answer) = failed_refresh(&relay).await;
    assert!(error.contains("\"rollout\" appears twice"), "{answer}");

    let relay =
        start_admin_refreshed("a: {enabled: true, rollout: 100, value: {on: yes, off: no}}\n");
    wait_ready(&relay).await;
    let v: serde_json::Value = client()
        .post(relay.url("/ofrep/v1/evaluate/flags/a"))
        .json(&json!({"context": {"targetingKey": "u"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["value"], "yes", "{v}");
    write_atomic(
        &relay.path("flags.yaml"),
        "a: {enabled: yes, rollout: 100}\n",
    );
    let (error, answer) = failed_refresh(&relay).await;
    assert!(error.contains("flag \"a\""), "{answer}");
}

#[tokio::test]
async fn if_none_match_star_is_not_honoured_on_the_bulk_post() {
    let relay = start_over("a: {enabled: true, rollout: 100}\n", &config("flags.yaml"));
    wait_ready(&relay).await;
    let bulk = |inm: Option<String>| {
        let mut req = client()
            .post(relay.url("/ofrep/v1/evaluate/flags"))
            .json(&json!({"context": {"targetingKey": "u"}}));
        if let Some(v) = inm {
            req = req.header("If-None-Match", v);
        }
        req.send()
    };
    let r = bulk(None).await.unwrap();
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let r = bulk(Some("*".into())).await.unwrap();
    assert_eq!(
        r.status(),
        412,
        "If-None-Match: * is a failed precondition on this POST"
    );
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["errorCode"],
        "GENERAL"
    );
    assert_eq!(bulk(Some(etag)).await.unwrap().status(), 304);
}
