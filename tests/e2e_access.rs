//! SDK access end to end: credentials on every endpoint kind, environment binding, tokens,
//! OFREP change streams, the sync API, CORS and stream limits.

mod support;

use std::time::{Duration, Instant};

use flagrelay::evaluator::{Rules, Subject};
use serde_json::{Value, json};
use support::relay::{Relay, client, eventually, get_json, start_over, wait_ready, write_atomic};
use support::sse::SseReader;
use support::tokens::issue_token;

const FLAGS: &str = "
on-flag: {enabled: true, rollout: 100}
staging-only: {enabled: true, envs: [staging], rollout: 100}
half: {enabled: true, rollout: 50, value: {on: \"b\", off: \"a\"}}
";

const SECRET: &str = "an-hs256-secret-of-at-least-32-bytes!!";

fn keyed_config(poll_ms: u64, extra: &str) -> String {
    format!(
        "pollingInterval: {poll_ms}
rolloutSalt: pepper
retrievers:
  - {{kind: file, path: \"{{{{dir}}}}/flags.yaml\"}}
authorizedKeys:
  evaluation:
    - eval-plain
    - {{key: eval-staging, env: staging}}
    - {{key: eval-prod, env: production}}
  admin: [admin-key]
auth:
  jwtSecret: \"{SECRET}\"
{extra}"
    )
}

fn start(config: &str) -> Relay {
    start_over(FLAGS, config)
}

/// Status of one call to one endpoint kind with one credential header.
async fn status(relay: &Relay, endpoint: &str, header: Option<(&str, String)>) -> u16 {
    let c = client();
    let mut req = match endpoint {
        "ofrep" => c
            .post(relay.url("/ofrep/v1/evaluate/flags/on-flag"))
            .body("{}"),
        "bulk" => c.post(relay.url("/ofrep/v1/evaluate/flags")).body("{}"),
        "sync" => c.get(relay.url("/v1/flags")),
        "sse" => c.get(relay.url("/ofrep/v1/sse")),
        "stream" => c.get(relay.url("/v1/flags/stream")),
        "admin" => c.post(relay.url("/admin/v1/retriever/refresh")),
        other => panic!("unknown endpoint {other}"),
    };
    if let Some((name, value)) = header {
        req = req.header(name, value);
    }
    // Streams answer headers at once and then stay open: only the status is read.
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn auth_matrix_across_endpoint_kinds() {
    let relay = start(&keyed_config(60_000, ""));
    wait_ready(&relay).await;
    let tok = issue_token(&relay, "eval-plain").await;
    let mut tampered = tok.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'x' { 'y' } else { 'x' });
    let key = |k: &str| Some(("x-api-key", k.to_string()));
    let bearer = |t: &str| Some(("authorization", format!("Bearer {t}")));

    let evaluation = ["ofrep", "bulk", "sync", "sse", "stream"];
    for ep in evaluation {
        assert_eq!(
            status(&relay, ep, None).await,
            401,
            "{ep} without credential"
        );
        assert_eq!(
            status(&relay, ep, key("wrong")).await,
            401,
            "{ep} unknown key"
        );
        assert_eq!(
            status(&relay, ep, key("eval-plain")).await,
            200,
            "{ep} evaluation key"
        );
        assert_eq!(
            status(&relay, ep, bearer("eval-plain")).await,
            200,
            "{ep} key as bearer"
        );
        assert_eq!(
            status(&relay, ep, key("eval-staging")).await,
            200,
            "{ep} bound key"
        );
        assert_eq!(
            status(&relay, ep, key("admin-key")).await,
            200,
            "{ep} admin key"
        );
        assert_eq!(status(&relay, ep, bearer(&tok)).await, 200, "{ep} token");
        assert_eq!(
            status(&relay, ep, bearer(&tampered)).await,
            401,
            "{ep} tampered token"
        );
    }
    assert_eq!(status(&relay, "admin", None).await, 401);
    assert_eq!(status(&relay, "admin", key("wrong")).await, 401);
    assert_eq!(
        status(&relay, "admin", key("eval-plain")).await,
        403,
        "wrong kind"
    );
    assert_eq!(
        status(&relay, "admin", bearer(&tok)).await,
        403,
        "a token is not an admin key"
    );
    assert_eq!(status(&relay, "admin", key("admin-key")).await, 200);
    assert_eq!(status(&relay, "admin", bearer("admin-key")).await, 200);

    // SSE endpoints also take ?apiKey= (EventSource cannot send headers); others do not.
    let c = client();
    let r = c
        .get(relay.url("/ofrep/v1/sse?apiKey=eval-plain"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .get(relay.url("/v1/flags/stream?apiKey=eval-plain"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .post(relay.url("/ofrep/v1/evaluate/flags?apiKey=eval-plain"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Token exchange: unknown key 401, admin key 403 (wrong kind).
    let r = c
        .post(relay.url("/client/auth"))
        .json(&json!({"apiKey": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .post(relay.url("/client/auth"))
        .json(&json!({"apiKey": "admin-key"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // 401 bodies never repeat the credential.
    let r = c
        .post(relay.url("/ofrep/v1/evaluate/flags"))
        .header("x-api-key", "wrong-secret-value")
        .send()
        .await
        .unwrap();
    assert!(!r.text().await.unwrap().contains("wrong-secret-value"));
}

#[tokio::test]
async fn tokens_expire() {
    let relay = start(&keyed_config(60_000, "").replace("auth:\n", "auth:\n  tokenTtl: 1\n"));
    wait_ready(&relay).await;
    let tok = issue_token(&relay, "eval-plain").await;
    let bearer = Some(("authorization", format!("Bearer {tok}")));
    assert_eq!(status(&relay, "ofrep", bearer.clone()).await, 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(status(&relay, "ofrep", bearer).await, 401, "expired token");
}

#[tokio::test]
async fn no_keys_configured_means_open_evaluation_and_closed_admin() {
    let relay = start("retrievers:\n  - {kind: file, path: \"{{dir}}/flags.yaml\"}\n");
    wait_ready(&relay).await;
    for ep in ["ofrep", "bulk", "sync", "sse", "stream"] {
        assert_eq!(status(&relay, ep, None).await, 200, "{ep}");
    }
    assert_eq!(status(&relay, "admin", None).await, 401);
    assert_eq!(
        status(&relay, "admin", Some(("x-api-key", "anything".into()))).await,
        401
    );
    let r = client()
        .post(relay.url("/client/auth"))
        .json(&json!({"apiKey": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn a_bound_key_fixes_the_environment() {
    let relay = start(&keyed_config(60_000, ""));
    wait_ready(&relay).await;
    let c = client();
    let eval = |cred: (&'static str, String), env: &'static str| {
        let req = c
            .post(relay.url("/ofrep/v1/evaluate/flags/staging-only"))
            .header(cred.0, cred.1)
            .json(&json!({"context": {"targetingKey": "u", "env": env}}));
        async move { req.send().await.unwrap().json::<Value>().await.unwrap()["value"].clone() }
    };
    // The context cannot override a bound environment, either way.
    assert_eq!(
        eval(("x-api-key", "eval-staging".into()), "production").await,
        true
    );
    assert_eq!(
        eval(("x-api-key", "eval-prod".into()), "staging").await,
        false
    );
    // An unbound key lets the context decide.
    assert_eq!(
        eval(("x-api-key", "eval-plain".into()), "staging").await,
        true
    );
    // A token carries its key's environment.
    let tok = issue_token(&relay, "eval-staging").await;
    assert_eq!(
        eval(("authorization", format!("Bearer {tok}")), "production").await,
        true
    );
}

#[tokio::test]
async fn sse_announces_changes_within_a_poll_plus_100ms() {
    let poll = 200;
    let relay = start(&keyed_config(poll, ""));
    wait_ready(&relay).await;
    let c = client();
    let bulk = c
        .post(relay.url("/ofrep/v1/evaluate/flags"))
        .header("x-api-key", "eval-plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    let v: Value = bulk.json().await.unwrap();
    // A keyed request gets the stream as a URL with a ticket (e2e_streams tests tickets).
    let url = v["eventStreams"][0]["url"].as_str().unwrap();
    assert!(
        url.starts_with(&relay.url("/ofrep/v1/sse?ticket=")),
        "{url}"
    );
    assert_eq!(v["eventStreams"][0]["inactivityDelaySec"], 120);
    let res = c
        .get(relay.url("/ofrep/v1/sse?apiKey=eval-plain"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut sse = SseReader::new(res);

    let mut latencies = Vec::new();
    for round in 0..3 {
        // Let the connection settle, then change the source.
        tokio::time::sleep(Duration::from_millis(150)).await;
        let changed_at = Instant::now();
        write_atomic(
            &relay.path("flags.yaml"),
            &format!("{FLAGS}round-{round}: {{enabled: true}}\n"),
        );
        let ev = sse
            .next(Duration::from_secs(5))
            .await
            .expect("a change event");
        latencies.push(changed_at.elapsed());
        assert_eq!(ev.event, "message");
        let data: Value = serde_json::from_str(&ev.data).unwrap();
        assert_eq!(data["type"], "refetchEvaluation");
        let info = get_json(&relay, "/info").await;
        assert_eq!(data["etag"], info["etag"]);
        assert!(
            ev.id.unwrap().parse::<u64>().unwrap() > 1_700_000_000_000,
            "a growing id"
        );
        assert!(data["lastModified"].as_u64().unwrap() > 1_700_000_000);
    }
    println!("change → SSE event latencies: {latencies:?} (poll {poll} ms)");
    // One poll plus 100 ms, with slack for a loaded 2-core CI machine.
    let bound = Duration::from_millis(poll + 100 + 400);
    assert!(
        latencies.iter().all(|l| *l <= bound),
        "{latencies:?} exceed {bound:?}"
    );
}

#[tokio::test]
async fn sync_api_payload_evaluates_locally_like_the_relay() {
    let relay = start(&keyed_config(100, ""));
    wait_ready(&relay).await;
    let c = client();
    let r = c
        .get(relay.url("/v1/flags"))
        .header("x-api-key", "eval-plain")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let payload: Value = r.json().await.unwrap();
    assert_eq!(payload["salt"], "pepper");
    assert_eq!(format!("\"{}\"", payload["etag"].as_str().unwrap()), etag);
    assert_eq!(
        payload["flags"]["half"],
        json!({"enabled": true, "rollout": 50, "users": [], "tenants": [], "envs": [], "value": {"on": "b", "off": "a"}})
    );

    let r = c
        .get(relay.url("/v1/flags"))
        .header("x-api-key", "eval-plain")
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);

    // An SDK evaluating the payload locally gets the relay's answers.
    let doc = payload["flags"].to_string();
    let defs = flagrelay::parse::parse_document("sync", doc.as_bytes(), None).unwrap();
    for user in (0..40).map(|i| format!("user-{i}")) {
        let bulk: Value = c
            .post(relay.url("/ofrep/v1/evaluate/flags"))
            .header("x-api-key", "eval-plain")
            .json(&json!({"context": {"targetingKey": user}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for (key, def) in &defs.flags {
            let local = Rules::compile(key, def, payload["salt"].as_str()).evaluate(&Subject {
                user: &user,
                tenant: "",
                env: "",
            });
            let remote = bulk["flags"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["key"] == key.as_str())
                .unwrap();
            assert_eq!(
                remote["variant"],
                if local.on { "on" } else { "off" },
                "{key} for {user}"
            );
            assert_eq!(remote["reason"], local.reason.as_str());
        }
    }
}

#[tokio::test]
async fn sync_stream_sends_snapshot_then_changes() {
    let relay = start(&keyed_config(100, ""));
    wait_ready(&relay).await;
    let res = client()
        .get(relay.url("/v1/flags/stream"))
        .header("x-api-key", "eval-plain")
        .send()
        .await
        .unwrap();
    let mut sse = SseReader::new(res);
    let first = sse.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(first.event, "snapshot");
    let snap: Value = serde_json::from_str(&first.data).unwrap();
    assert_eq!(snap["flags"].as_object().unwrap().len(), 3);

    write_atomic(
        &relay.path("flags.yaml"),
        "on-flag: {enabled: false}\nhalf: {enabled: true, rollout: 50, value: {on: \"b\", off: \"a\"}}\nnew-flag: {enabled: true}\n",
    );
    let ev = sse.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(ev.event, "change");
    let change: Value = serde_json::from_str(&ev.data).unwrap();
    assert_eq!(change["previousEtag"], snap["etag"]);
    assert_eq!(change["deleted"], json!(["staging-only"]));
    assert_eq!(change["updated"]["on-flag"]["enabled"], false);
    assert!(change["updated"].get("half").is_none());
    assert_eq!(change["added"]["new-flag"]["enabled"], true);
}

#[tokio::test]
async fn cors_preflight_and_exposed_etag() {
    let relay = start(&keyed_config(
        60_000,
        "cors:\n  allowedOrigins: [\"https://app.example\"]\n",
    ));
    wait_ready(&relay).await;
    let c = client();
    let pre = c
        .request(
            reqwest::Method::OPTIONS,
            relay.url("/ofrep/v1/evaluate/flags"),
        )
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,x-api-key,if-none-match,authorization",
        )
        .send()
        .await
        .unwrap();
    assert!(pre.status().is_success());
    assert_eq!(
        pre.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let allowed = pre.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for h in [
        "content-type",
        "authorization",
        "x-api-key",
        "if-none-match",
    ] {
        assert!(allowed.contains(h), "{allowed}");
    }
    let r = c
        .post(relay.url("/ofrep/v1/evaluate/flags"))
        .header("origin", "https://app.example")
        .header("x-api-key", "eval-plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .to_ascii_lowercase(),
        "etag"
    );
    let other = c
        .request(
            reqwest::Method::OPTIONS,
            relay.url("/ofrep/v1/evaluate/flags"),
        )
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn stream_limit_and_clean_close_on_shutdown() {
    let mut relay = start(&keyed_config(
        60_000,
        "server:\n  maxSseClients: 1\n  shutdownDelay: 0\n",
    ));
    wait_ready(&relay).await;
    let c = client();
    let first = c
        .get(relay.url("/ofrep/v1/sse?apiKey=eval-plain"))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let over = c
        .get(relay.url("/v1/flags/stream?apiKey=eval-plain"))
        .send()
        .await
        .unwrap();
    assert_eq!(over.status(), 503, "over the stream limit");
    // Only the stream endpoints are limited.
    assert_eq!(
        status(&relay, "ofrep", Some(("x-api-key", "eval-plain".into()))).await,
        200
    );
    // A client that leaves frees its place.
    drop(first);
    eventually(Duration::from_secs(5), "a freed stream slot", || {
        let req = c.get(relay.url("/ofrep/v1/sse?apiKey=eval-plain"));
        async move { (req.send().await.ok()?.status() == 200).then_some(()) }
    })
    .await;

    // On SIGTERM open streams end cleanly and the process exits 0.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let open = c
        .get(relay.url("/ofrep/v1/sse?apiKey=eval-plain"))
        .send()
        .await;
    let mut sse = match open {
        Ok(r) if r.status() == 200 => SseReader::new(r),
        // The slot of the probe above may still be held for a moment.
        _ => panic!("could not open a stream"),
    };
    relay.signal("TERM");
    assert!(
        sse.ended(Duration::from_secs(5)).await,
        "stream not closed on shutdown"
    );
    let status = relay
        .wait_exit(Duration::from_secs(10))
        .expect("exit after SIGTERM");
    assert!(status.success());
}
