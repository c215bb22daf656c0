//! End to end through the real binary on loopback: OFREP, refresh, readiness, startup errors.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::relay::{
    Options, Relay, client, eventually, get_json, start_over, wait_ready, write_atomic,
};

const FLAGS: &str = r#"
on-flag: {enabled: true, rollout: 100}
off-flag: {enabled: true, rollout: 0}
disabled-flag: {enabled: false, rollout: 100, users: [alice]}
allow-list: {enabled: true, users: [alice], tenants: [acme], rollout: 0}
staging-only: {enabled: true, envs: [staging], rollout: 100}
color: {enabled: true, rollout: 100, value: {on: "dark", off: "light"}}
limit: {enabled: true, rollout: 0, value: {on: 1000, off: 100}}
ratio: {enabled: true, rollout: 100, value: {on: 1.0, off: 0.5}, description: a float, metadata: {team: core, tier: 2, beta: true}}
layout: {enabled: true, rollout: 100, value: {on: {cols: 3, dense: true}, off: {cols: 1, dense: false}}}
half: {enabled: true, rollout: 50}
"a/b c": {enabled: true, rollout: 100}
"#;

fn config(poll_ms: u64) -> String {
    format!(
        "pollingInterval: {poll_ms}\nenvironment: production\nmaxRequestBodyBytes: 2048\nserver: {{shutdownDelay: 0}}\nretrievers:\n  - {{kind: file, path: \"{{{{dir}}}}/flags.yaml\"}}\n"
    )
}

fn start(poll_ms: u64) -> Relay {
    start_over(FLAGS, &config(poll_ms))
}

async fn eval(relay: &Relay, key: &str, body: Value) -> (u16, Value) {
    let res = client()
        .post(relay.url(&format!("/ofrep/v1/evaluate/flags/{key}")))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

#[tokio::test]
async fn ofrep_single_answers_for_every_kind_of_flag() {
    let relay = start(60_000);
    wait_ready(&relay).await;
    let ctx = |user: &str| json!({"context": {"targetingKey": user}});

    let (s, v) = eval(&relay, "on-flag", ctx("u1")).await;
    assert_eq!(s, 200);
    assert_eq!(
        v,
        json!({"key": "on-flag", "value": true, "reason": "STATIC", "variant": "on", "metadata": {}})
    );

    let (_, v) = eval(&relay, "off-flag", ctx("u1")).await;
    assert_eq!(
        (
            v["value"].clone(),
            v["variant"].clone(),
            v["reason"].clone()
        ),
        (json!(false), json!("off"), json!("STATIC"))
    );

    let (_, v) = eval(&relay, "disabled-flag", ctx("alice")).await;
    assert_eq!(
        (v["value"].clone(), v["reason"].clone()),
        (json!(false), json!("DISABLED"))
    );

    let (_, v) = eval(&relay, "allow-list", ctx("alice")).await;
    assert_eq!(
        (v["value"].clone(), v["reason"].clone()),
        (json!(true), json!("TARGETING_MATCH"))
    );
    let (_, v) = eval(
        &relay,
        "allow-list",
        json!({"context": {"targetingKey": "bob", "tenantId": "acme"}}),
    )
    .await;
    assert_eq!(v["reason"], "TARGETING_MATCH");
    let (_, v) = eval(&relay, "allow-list", ctx("bob")).await;
    assert_eq!(
        (v["value"].clone(), v["reason"].clone()),
        (json!(false), json!("DEFAULT"))
    );

    // The configured default environment is production; the context may name another.
    let (_, v) = eval(&relay, "staging-only", ctx("u")).await;
    assert_eq!(
        (v["value"].clone(), v["reason"].clone()),
        (json!(false), json!("TARGETING_MATCH"))
    );
    let (_, v) = eval(
        &relay,
        "staging-only",
        json!({"context": {"targetingKey": "u", "env": "staging"}}),
    )
    .await;
    assert_eq!(v["value"], true);

    let (_, v) = eval(&relay, "color", ctx("u")).await;
    assert_eq!(v["value"], "dark");
    let (_, v) = eval(&relay, "limit", ctx("u")).await;
    assert_eq!(v["value"], 100);
    let (_, v) = eval(&relay, "layout", ctx("u")).await;
    assert_eq!(v["value"], json!({"cols": 3, "dense": true}));
    let (_, v) = eval(&relay, "ratio", ctx("u")).await;
    assert_eq!(
        v["metadata"],
        json!({"description": "a float", "team": "core", "tier": 2, "beta": true})
    );

    // Floats keep their decimal point on the wire.
    let raw = client()
        .post(relay.url("/ofrep/v1/evaluate/flags/ratio"))
        .body("{}")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(raw.contains("\"value\":1.0"), "{raw}");

    let (s, v) = eval(&relay, "missing", ctx("u")).await;
    assert_eq!(s, 404);
    assert_eq!(v["key"], "missing");
    assert_eq!(v["errorCode"], "FLAG_NOT_FOUND");
}

#[tokio::test]
async fn request_shapes_keys_and_errors() {
    let relay = start(60_000);
    wait_ready(&relay).await;
    let c = client();
    let post = |path: &str, body: &'static str| c.post(relay.url(path)).body(body).send();
    // Missing body, missing context, missing targetingKey: all accepted.
    for body in ["", "{}", "{\"context\":{}}"] {
        let r = post("/ofrep/v1/evaluate/flags/on-flag", body)
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "body {body:?}");
    }
    // Keys percent-encoded or raw (even with a slash).
    let r = post("/ofrep/v1/evaluate/flags/a%2Fb%20c", "{}")
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["key"], "a/b c");
    let r = post("/ofrep/v1/evaluate/flags/a/b%20c", "{}")
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let r = post("/ofrep/v1/evaluate/flags/on-flag", "{nope")
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["key"].clone(), v["errorCode"].clone()),
        (json!("on-flag"), json!("PARSE_ERROR"))
    );

    let r = post("/ofrep/v1/evaluate/flags/on-flag", "{\"context\": [1]}")
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["errorCode"],
        "INVALID_CONTEXT"
    );

    let r = post(
        "/ofrep/v1/evaluate/flags/on-flag",
        "{\"context\": {\"targetingKey\": 7}}",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["errorCode"],
        "INVALID_CONTEXT"
    );

    // Over maxRequestBodyBytes (2048 here): OFREP's 400, never 413.
    let big = format!(
        "{{\"context\": {{\"targetingKey\": \"{}\"}}}}",
        "x".repeat(4096)
    );
    let r = c
        .post(relay.url("/ofrep/v1/evaluate/flags/on-flag"))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["errorCode"],
        "INVALID_CONTEXT"
    );
    let r = c
        .post(relay.url("/ofrep/v1/evaluate/flags"))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["errorCode"], "INVALID_CONTEXT");
    assert!(v.get("key").is_none());

    let r = c.get(relay.url("/health")).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"status": "ok"}));
    let info = get_json(&relay, "/info").await;
    assert_eq!(info["flags"], 11);
    assert_eq!(info["fips140"], false);
    assert_eq!(info["retrievers"][0]["kind"], "file");
    assert!(info["retrievers"][0]["lastSuccess"].is_string());
}

#[tokio::test]
async fn bulk_is_sorted_with_a_strong_etag_and_304() {
    let relay = start(60_000);
    wait_ready(&relay).await;
    let c = client();
    let body = json!({"context": {"targetingKey": "alice"}});
    let r = c
        .post(relay.url("/ofrep/v1/evaluate/flags"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && !etag.starts_with("W/"), "{etag}");
    let v: Value = r.json().await.unwrap();
    let keys: Vec<&str> = v["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert_eq!(keys.len(), 11);
    assert!(
        v["flags"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["variant"].is_string())
    );

    let r = c
        .post(relay.url(&format!(
            "/ofrep/v1/evaluate/flags?flagConfigEtag={}&flagConfigLastModified=1",
            v["metadata"]["flagSetEtag"].as_str().unwrap()
        )))
        .header("if-none-match", &etag)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
    assert!(r.bytes().await.unwrap().is_empty());

    // Another subject gets another body, so another etag.
    let r = c
        .post(relay.url("/ofrep/v1/evaluate/flags"))
        .header("if-none-match", &etag)
        .json(&json!({"context": {"targetingKey": "zed"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_ne!(r.headers()["etag"].to_str().unwrap(), etag);
}

#[tokio::test]
async fn polling_picks_up_changes_and_ignores_broken_files() {
    let relay = start(100);
    wait_ready(&relay).await;
    let flags = relay.path("flags.yaml");
    let value = |relay: &Relay| {
        let url = relay.url("/ofrep/v1/evaluate/flags/color");
        async move {
            let v: Value = client()
                .post(url)
                .body("{}")
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["value"].as_str().map(String::from)
        }
    };
    assert_eq!(value(&relay).await.as_deref(), Some("dark"));

    // The other flags stay: dropping most of them would be refused (maxFlagRemovalPercent).
    write_atomic(&flags, &FLAGS.replace("\"dark\"", "\"blue\""));
    eventually(Duration::from_secs(5), "new value", || async {
        (value(&relay).await.as_deref() == Some("blue")).then_some(())
    })
    .await;

    // Broken, truncated and empty files: logged, and the old answers keep serving.
    for bad in [
        "color: {enabled: true, rollout: 100, value: {on: \"red\"",
        "color: {enabld: true}\n",
        "",
    ] {
        let failures = || {
            relay
                .logs()
                .iter()
                .filter(|l| l.contains("refresh failed"))
                .count()
        };
        let before = failures();
        write_atomic(&flags, bad);
        eventually(
            Duration::from_secs(5),
            "a logged refresh failure",
            || async { (failures() > before).then_some(()) },
        )
        .await;
        assert_eq!(
            value(&relay).await.as_deref(),
            Some("blue"),
            "after {bad:?}"
        );
    }
    let failure = relay
        .logs()
        .into_iter()
        .find(|l| l.contains("refresh failed"))
        .unwrap();
    assert!(failure.contains("flags.yaml"), "{failure}");
    let info = get_json(&relay, "/info").await;
    assert!(
        info["retrievers"][0]["lastError"]
            .as_str()
            .unwrap()
            .contains("flags.yaml")
    );
}

#[tokio::test]
async fn not_ready_until_the_first_load() {
    // A source that holds the first fetch until the test lets it answer: the relay listens,
    // /health is fine, /ready is 503 and OFREP answers FLAG_NOT_FOUND (never 503).
    let source = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/flags.yaml", source.local_addr().unwrap());
    let (answer, answer_now) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut conn, _) = source.accept().unwrap();
        let mut head = [0u8; 4096];
        let _ = conn.read(&mut head);
        let _ = answer_now.recv();
        let reply = format!(
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{FLAGS}",
            FLAGS.len()
        );
        let _ = conn.write_all(reply.as_bytes());
    });
    let cfg = format!(
        "pollingInterval: 0\nenvironment: production\nretrievers:\n  - {{kind: http, url: \"{url}\", timeout: 60000}}\n"
    );
    let relay = Relay::start_with(Options {
        config: &cfg,
        ..Options::default()
    });
    let c = client();
    let r = c.get(relay.url("/ready")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "not ready");
    assert_eq!(
        c.get(relay.url("/health")).send().await.unwrap().status(),
        200
    );
    let (s, v) = eval(&relay, "on-flag", json!({})).await;
    assert_eq!((s, v["errorCode"].clone()), (404, json!("FLAG_NOT_FOUND")));

    answer.send(()).unwrap();
    wait_ready(&relay).await;
    let (s, _) = eval(&relay, "on-flag", json!({})).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn failing_first_fetch_exits_non_zero_unless_allowed() {
    let cfg = "retrievers:\n  - {kind: file, path: /nonexistent/flags.yaml}\n";
    let mut relay = Relay::start_with(Options {
        config: cfg,
        wait_listening: false,
        ..Options::default()
    });
    let status = relay
        .wait_exit(Duration::from_secs(10))
        .expect("relay exits");
    assert!(!status.success());
    let err = relay.stderr_text();
    assert!(
        err.contains("/nonexistent/flags.yaml") && err.contains("first refresh failed"),
        "{err}"
    );

    let relay = Relay::start_with(Options {
        config: cfg,
        args: &["--start-with-retriever-error"],
        ..Options::default()
    });
    wait_ready(&relay).await;
    let (s, _) = eval(&relay, "anything", json!({})).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn bad_config_fails_at_start_naming_the_key() {
    let mut relay = Relay::start_with(Options {
        config: "server:\n  monitoringPort: high\n",
        wait_listening: false,
        ..Options::default()
    });
    let status = relay
        .wait_exit(Duration::from_secs(10))
        .expect("relay exits");
    assert_eq!(status.code(), Some(2));
    assert!(
        relay.stderr_text().contains("server.monitoringPort"),
        "{}",
        relay.stderr_text()
    );
}

#[tokio::test]
async fn sigterm_drains_and_exits_zero() {
    let mut relay = start(60_000);
    wait_ready(&relay).await;
    relay.signal("TERM");
    let status = relay
        .wait_exit(Duration::from_secs(10))
        .expect("relay exits after SIGTERM");
    assert!(status.success(), "{status:?}\n{}", relay.all_output());
    assert!(relay.logs().iter().any(|l| l.contains("SIGTERM")));
}

#[tokio::test]
async fn first_log_line_is_the_crypto_mode() {
    let relay = start(60_000);
    let first = relay.logs().first().cloned().unwrap();
    let v: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(
        (v["level"].clone(), v["msg"].clone(), v["fips140"].clone()),
        (json!("info"), json!("crypto mode"), json!(false))
    );
    assert!(
        first.starts_with(r#"{"level":"info","msg":"crypto mode","fips140":false"#),
        "{first}"
    );
}

#[test]
fn validate_command_reports_every_error_with_location() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&good, "a: {enabled: true}\n").unwrap();
    std::fs::write(
        &bad,
        "a: {rollout: x}\nb: {}\nc:\n  value: {on: 1, off: \"x\"}\n",
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_flagrelay");
    let out = std::process::Command::new(bin)
        .arg("validate")
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = std::process::Command::new(bin)
        .args(["validate"])
        .arg(&good)
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml:1:1: flag \"a\""), "{err}");
    assert!(err.contains("bad.yaml:3:1: flag \"c\""), "{err}");
    let v = std::process::Command::new(bin)
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&v.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[tokio::test]
async fn slow_or_huge_request_heads_are_refused() {
    use std::io::{Read, Write};
    let cfg = config(60_000).replace(
        "server: {shutdownDelay: 0}",
        "server: {shutdownDelay: 0, readHeaderTimeout: 300, maxHeaderBytes: 16384}",
    );
    let relay = start_over(FLAGS, &cfg);
    wait_ready(&relay).await;
    let addr = relay.addr.unwrap();
    tokio::task::spawn_blocking(move || {
        // Slowloris: half a request head, then nothing. The relay hangs up after the deadline.
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"POST /ofrep/v1/evaluate/flags/on-flag HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        let started = std::time::Instant::now();
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).unwrap_or(0);
        let answer = String::from_utf8_lossy(&buf[..n]).to_string();
        assert!(
            n == 0 || answer.starts_with("HTTP/1.1 408"),
            "unexpected answer {answer:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "connection held {:?}",
            started.elapsed()
        );

        // A head larger than maxHeaderBytes: refused with 431, not read forever.
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let big = format!(
            "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "a".repeat(64 * 1024)
        );
        let _ = s.write_all(big.as_bytes());
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
            "{answer}"
        );

        // A well-behaved client on a fresh connection is served as usual.
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut ok = String::new();
        s.read_to_string(&mut ok).unwrap();
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    })
    .await
    .unwrap();
}
