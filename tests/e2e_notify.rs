//! Change notifications through the binary, against webhook receivers on loopback: one signed
//! delivery per change with the right diff, none for the first load or an unchanged refresh,
//! retries after a 503 and none after a 400, a hung receiver that delays neither refreshes nor
//! other notifiers, a full queue that merges, Slack's message, the log line, and no secret in
//! any log line.

use support::http_source;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http_source::{Reply, Request, Server};
use serde_json::Value;
use support::relay::{
    Options, Relay, admin_refresh, client, eventually, get_json, get_text, wait_ready, write_atomic,
};
use support::tokens::hmac_sha256_hex;

const SECRET: &str = "whsec-0123456789-do-not-log";

fn start(notifiers: &str) -> Relay {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("flags.yaml"),
        "a: {enabled: true, rollout: 10}\nb: {enabled: true}\n",
    )
    .unwrap();
    let config = format!(
        "pollingInterval: 100
retrievers:
  - {{kind: file, path: \"{{{{dir}}}}/flags.yaml\"}}
authorizedKeys: {{admin: [admin-key]}}
notifiers:
{notifiers}"
    );
    Relay::start_in(
        dir,
        Options {
            config: &config,
            ..Options::default()
        },
    )
}

fn body(r: &Request) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

async fn deliveries(server: &Server, n: usize, what: &str) -> Vec<Request> {
    eventually(Duration::from_secs(15), what, || async {
        let r = server.requests();
        (r.len() >= n).then_some(r)
    })
    .await
}

#[tokio::test]
async fn one_signed_delivery_per_change_with_the_diff() {
    let hook = Server::start(|_| Reply::ok("", &[])).await;
    let relay = start(&format!(
        "  - {{kind: webhook, url: \"{}\", secret: \"{SECRET}\", headers: {{X-Team: flags}}}}\n  - {{kind: log}}\n",
        hook.url("http", "/hooks/flags")
    ));
    wait_ready(&relay).await;
    // The first load is not a change; an unchanged refresh is none either.
    assert_eq!(admin_refresh(&relay, "admin-key", "").await.0, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(hook.requests().is_empty(), "no delivery without a change");

    write_atomic(
        &relay.path("flags.yaml"),
        "a: {enabled: true, rollout: 20}\nc: {enabled: false}\n",
    );
    let got = deliveries(&hook, 1, "the first delivery").await;
    let r = &got[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path(), "/hooks/flags");
    assert_eq!(r.header("x-team"), Some("flags"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let sig = r.header("x-hub-signature-256").expect("signed");
    assert_eq!(sig, format!("sha256={}", hmac_sha256_hex(SECRET, &r.body)));
    let v = body(r);
    assert_eq!(v["event"], "flagsChanged");
    assert_eq!(v["added"]["c"]["enabled"], false);
    assert_eq!(v["updated"]["a"]["before"]["rollout"], 10);
    assert_eq!(v["updated"]["a"]["after"]["rollout"], 20);
    assert_eq!(v["deleted"], serde_json::json!(["b"]));
    let info = get_json(&relay, "/info").await;
    assert_eq!(v["etag"], info["etag"]);
    assert!(v["time"].as_str().unwrap().ends_with('Z'));

    write_atomic(&relay.path("flags.yaml"), "a: {enabled: false}\n");
    let got = deliveries(&hook, 2, "the second delivery").await;
    assert_eq!(body(&got[1])["previousEtag"], v["etag"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(hook.requests().len(), 2, "exactly one delivery per change");

    // The log notifier wrote a line per change; no line anywhere holds the secret.
    let logs = relay.logs();
    assert_eq!(
        logs.iter()
            .filter(|l| l.contains("\"msg\":\"flag set changed\""))
            .count(),
        2
    );
    assert!(!relay.all_output().contains(SECRET));
    let metrics = get_text(&relay, "/metrics").await;
    assert!(
        metrics.contains("flagrelay_notifier_deliveries_total{notifier=\"0\",kind=\"webhook\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn retries_a_503_but_not_a_400() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    // Fails twice with 503, then accepts.
    let flaky = Server::start(move |_| {
        if c.fetch_add(1, Ordering::SeqCst) < 2 {
            Reply::status(503, "busy", &[])
        } else {
            Reply::ok("", &[])
        }
    })
    .await;
    let refusing = Server::start(|_| Reply::status(400, "no", &[])).await;
    let relay = start(&format!(
        "  - {{kind: webhook, url: \"{}\"}}\n  - {{kind: webhook, url: \"{}\"}}\n",
        flaky.url("http", "/"),
        refusing.url("http", "/")
    ));
    wait_ready(&relay).await;
    write_atomic(&relay.path("flags.yaml"), "a: {enabled: false}\n");
    let got = deliveries(&flaky, 3, "two retries and a success").await;
    assert!(
        got.iter().all(|r| r.body == got[0].body),
        "the same body each time"
    );
    deliveries(&refusing, 1, "the refused delivery").await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(refusing.requests().len(), 1, "a 4xx is not retried");
    assert_eq!(flaky.requests().len(), 3);
    assert!(
        relay
            .logs()
            .iter()
            .any(|l| l.contains("change notification not delivered") && l.contains("400")),
        "the refusal is logged"
    );
}

#[tokio::test]
async fn a_hung_receiver_delays_nothing_and_a_full_queue_merges() {
    let hung = Server::start(|_| Reply::Silent).await;
    let fine = Server::start(|_| Reply::ok("", &[])).await;
    let relay = start(&format!(
        "  - {{kind: webhook, url: \"{}\", timeout: 60s, queueSize: 2, maxRetries: 0}}\n  - {{kind: webhook, url: \"{}\"}}\n",
        hung.url("http", "/"),
        fine.url("http", "/")
    ));
    wait_ready(&relay).await;
    let c = client();
    for i in 0..6 {
        write_atomic(
            &relay.path("flags.yaml"),
            &format!(
                "a: {{enabled: true, rollout: {}}}\nk{i}: {{enabled: true}}\n",
                30 + i
            ),
        );
        // Each change serves within a poll or two although one receiver never answers.
        let want = 30 + i;
        eventually(Duration::from_secs(5), "the change to serve", || {
            let (c, url) = (c.clone(), relay.url("/v1/flags"));
            async move {
                let v: Value = c.get(url).send().await.ok()?.json().await.ok()?;
                (v["flags"]["a"]["rollout"] == want).then_some(())
            }
        })
        .await;
        deliveries(&fine, i + 1, "the healthy receiver's delivery").await;
    }
    // The hung receiver holds the first change; of the five after it, the queue of two kept
    // merging the oldest: three merges.
    let metrics = get_text(&relay, "/metrics").await;
    assert!(
        metrics.contains("flagrelay_notifier_coalesced_total{notifier=\"0\",kind=\"webhook\"} 3"),
        "{metrics}"
    );
    assert_eq!(
        hung.requests().len(),
        1,
        "the first delivery is still hanging"
    );
}

#[tokio::test]
async fn slack_gets_a_readable_message() {
    let slack = Server::start(|_| Reply::ok("ok", &[])).await;
    let url = slack.url("http", "/services/T000/B000/XXXXsecretpart");
    let relay = start(&format!("  - {{kind: slack, url: \"{url}\"}}\n"));
    wait_ready(&relay).await;
    write_atomic(
        &relay.path("flags.yaml"),
        "a: {enabled: true, rollout: 10}\nnew-flag: {enabled: true}\n",
    );
    let got = deliveries(&slack, 1, "the Slack message").await;
    let v = body(&got[0]);
    let text = v["text"].as_str().unwrap();
    assert!(text.contains("added `new-flag`"), "{text}");
    assert!(text.contains("removed `b`"), "{text}");
    assert!(got[0].header("x-hub-signature-256").is_none());
    assert!(
        !relay.all_output().contains("XXXXsecretpart"),
        "the Slack URL is a secret"
    );
}

#[test]
fn bad_notifier_settings_stop_the_start_naming_the_key() {
    for (notifiers, key, secret) in [
        ("  - {kind: webhook}\n", "notifiers[0].url", None),
        (
            "  - {kind: slack, url: \"ftp://hooks.slack.com/services/SECRET-PATH\"}\n",
            "notifiers[0].url",
            Some("SECRET-PATH"),
        ),
        (
            "  - {kind: log, url: \"http://x\"}\n",
            "notifiers[0].url",
            None,
        ),
        (
            "  - {kind: slack, url: \"http://x\", secret: abc}\n",
            "notifiers[0].secret",
            None,
        ),
        (
            "  - {kind: webhook, url: \"http://x\", queueSize: 0}\n",
            "notifiers[0].queueSize",
            None,
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = format!("notifiers:\n{notifiers}");
        let mut relay = Relay::start_in(
            dir,
            Options {
                config: &config,
                wait_listening: false,
                ..Options::default()
            },
        );
        let status = relay.wait_exit(Duration::from_secs(10)).expect("exits");
        assert_eq!(status.code(), Some(2), "{notifiers}");
        let out = relay.all_output();
        assert!(out.contains(key), "{key} in {out}");
        if let Some(s) = secret {
            assert!(!out.contains(s), "{out}");
        }
    }
}
