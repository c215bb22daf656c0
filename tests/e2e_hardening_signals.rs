//! Hardening (issue 12) end to end: signals.
//!
//! - item 14: SIGHUP refreshes now; SIGUSR1 and SIGUSR2 are logged and ignored (the relay keeps
//!   serving); on SIGTERM the relay keeps accepting and serving for `server.shutdownDelay` with
//!   `/ready` at 503, then closes its listener and exits 0.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::relay::{client, eventually, start_over, wait_ready, write_atomic};

const FLAGS: &str = "color: {enabled: true, rollout: 100, value: {on: red, off: grey}}\n";

async fn color(relay: &support::relay::Relay) -> Option<String> {
    let r = client()
        .post(relay.url("/ofrep/v1/evaluate/flags/color"))
        .json(&json!({"context": {"targetingKey": "u"}}))
        .send()
        .await
        .ok()?;
    let v: serde_json::Value = r.json().await.ok()?;
    v["value"].as_str().map(String::from)
}

#[tokio::test]
async fn sighup_refreshes_and_sigusr_is_ignored() {
    let relay = start_over(
        FLAGS,
        "pollingInterval: 0\nretrievers: [{kind: file, path: \"{{dir}}/flags.yaml\"}]\n",
    );
    wait_ready(&relay).await;
    for sig in ["USR1", "USR2"] {
        relay.signal(sig);
    }
    write_atomic(&relay.path("flags.yaml"), &FLAGS.replace("red", "blue"));
    relay.signal("HUP");
    eventually(Duration::from_secs(10), "the SIGHUP refresh", || async {
        (color(&relay).await.as_deref() == Some("blue")).then_some(())
    })
    .await;
    let logs = relay.logs().join("\n");
    assert!(logs.contains("\"signal\":\"SIGUSR1\""), "{logs}");
    assert!(logs.contains("\"signal\":\"SIGUSR2\""), "{logs}");
    wait_ready(&relay).await;
}

#[tokio::test]
async fn sigterm_fails_readiness_and_keeps_serving_for_the_delay() {
    let mut relay = start_over(
        FLAGS,
        "server: {shutdownDelay: 2000}\nretrievers: [{kind: file, path: \"{{dir}}/flags.yaml\"}]\n",
    );
    wait_ready(&relay).await;
    relay.signal("TERM");
    let started = Instant::now();
    // Within the delay: /ready is 503 on a new connection, evaluation still answers.
    eventually(
        Duration::from_secs(2),
        "/ready 503 after SIGTERM",
        || async {
            let fresh = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap();
            let r = fresh.get(relay.url("/ready")).send().await.ok()?;
            (r.status() == 503).then_some(())
        },
    )
    .await;
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let r = fresh
        .post(relay.url("/ofrep/v1/evaluate/flags/color"))
        .json(&json!({}))
        .send()
        .await
        .expect("a new connection is accepted during the shutdown delay");
    assert_eq!(r.status(), 200);
    assert!(
        started.elapsed() < Duration::from_millis(2000),
        "checked within the delay"
    );
    let status = relay
        .wait_exit(Duration::from_secs(20))
        .expect("exits after the delay");
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "exited after {:?}, before the delay was over",
        started.elapsed()
    );
}
