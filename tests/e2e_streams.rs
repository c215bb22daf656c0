//! OFREP change streams for browsers, end to end: stream tickets in the bulk answer's
//! `eventStreams` (issued for a key, accepted only by the stream, stable within a window,
//! refused when tampered, expired or revoked), `id:`s that only grow with `Last-Event-ID`
//! resume and a `retry:` hint, `flagConfigEtag` that blocks a stale 304, and `If-None-Match`
//! parsed per RFC 9110.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::relay::{Relay, client, start_over, wait_ready, write_atomic};
use support::sse::SseReader;

const FLAGS: &str = "a: {enabled: true, rollout: 100}\nb: {enabled: false}\n";

fn config(keys: &str, ticket_ttl: &str) -> String {
    format!(
        "pollingInterval: 100
retrievers:
  - {{kind: file, path: \"{{{{dir}}}}/flags.yaml\"}}
authorizedKeys:
  evaluation: [{keys}]
  admin: [admin-key]
streams: {{ticketTtl: {ticket_ttl}, inactivityDelaySec: 45}}
"
    )
}

fn start(config: &str) -> Relay {
    start_over(FLAGS, config)
}

/// A bulk evaluation with `key`: (status, ETag, body).
async fn bulk(relay: &Relay, key: Option<&str>, extra: &[(&str, &str)]) -> (u16, String, Value) {
    let mut req = client()
        .post(relay.url("/ofrep/v1/evaluate/flags"))
        .header("content-type", "application/json")
        .body(r#"{"context":{"targetingKey":"u1"}}"#);
    if let Some(k) = key {
        req = req.header("x-api-key", k);
    }
    for (h, v) in extra {
        req = req.header(*h, *v);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let etag = res
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = res.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, etag, body)
}

fn stream_url(body: &Value) -> String {
    body["eventStreams"][0]["url"]
        .as_str()
        .unwrap_or_else(|| panic!("no stream url in {body}"))
        .to_owned()
}

async fn open(url: &str, last_event_id: Option<&str>) -> reqwest::Response {
    let mut req = client().get(url).timeout(Duration::from_secs(30));
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn a_keyed_bulk_answer_names_a_ticketed_stream_that_delivers_changes() {
    let relay = start(&config("eval-key-1, {key: eval-bound, env: prod}", "10m"));
    wait_ready(&relay).await;
    let (status, etag, body) = bulk(&relay, Some("eval-key-1"), &[]).await;
    assert_eq!(status, 200);
    let url = stream_url(&body);
    assert!(
        url.starts_with(&relay.url("/ofrep/v1/sse?ticket=")),
        "{url}"
    );
    assert!(
        !url.contains("eval-key-1"),
        "the key is never in the URL: {url}"
    );
    assert_eq!(body["eventStreams"][0]["inactivityDelaySec"], 45);
    // Stable within the window: same body, same ETag, so a 304 still works.
    let (again, etag2, body2) = bulk(&relay, Some("eval-key-1"), &[]).await;
    assert_eq!((again, &etag2, &body2), (200, &etag, &body));
    let (cached, _, _) = bulk(&relay, Some("eval-key-1"), &[("if-none-match", &etag)]).await;
    assert_eq!(cached, 304);
    // Another key gets another ticket.
    let (_, _, bound) = bulk(&relay, Some("eval-bound"), &[]).await;
    assert_ne!(stream_url(&bound), url);

    let res = open(&url, None).await;
    assert_eq!(res.status(), 200);
    let mut events = SseReader::new(res);
    write_atomic(&relay.path("flags.yaml"), "a: {enabled: false}\n");
    let ev = events
        .next(Duration::from_secs(10))
        .await
        .expect("a change event");
    let data: Value = serde_json::from_str(&ev.data).unwrap();
    assert_eq!(data["type"], "refetchEvaluation");
    let id: u64 = ev.id.expect("an id").parse().expect("a numeric id");
    write_atomic(&relay.path("flags.yaml"), "a: {enabled: true}\n");
    let next = events.next(Duration::from_secs(10)).await.expect("another");
    assert!(
        next.id.unwrap().parse::<u64>().unwrap() > id,
        "ids only grow"
    );

    // A ticket opens the stream only: it is no credential anywhere else.
    let ticket = url.split("ticket=").nth(1).unwrap();
    let (denied, _, _) = bulk(&relay, Some(ticket), &[]).await;
    assert_eq!(denied, 401);
    let sync = client()
        .get(relay.url(&format!("/v1/flags/stream?ticket={ticket}")))
        .send()
        .await
        .unwrap();
    assert_eq!(sync.status(), 401);
    // Open relays keep the endpoint form (no ticket to issue).
    let logs = relay.logs().join("\n");
    assert!(!logs.contains(ticket), "tickets never logged");
}

#[tokio::test]
async fn tampered_expired_and_revoked_tickets_get_401() {
    let relay = start(&config("eval-key-1, eval-key-2", "2s"));
    wait_ready(&relay).await;
    let (_, _, body) = bulk(&relay, Some("eval-key-1"), &[]).await;
    let url = stream_url(&body);
    assert_eq!(open(&url, None).await.status(), 200);

    let mut tampered = url.clone().into_bytes();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let res = open(&String::from_utf8(tampered).unwrap(), None).await;
    assert_eq!(res.status(), 401);
    assert!(!res.text().await.unwrap().contains("ticket="), "no detail");
    assert_eq!(open(&format!("{url}x"), None).await.status(), 401);
    assert_eq!(
        open(&relay.url("/ofrep/v1/sse?ticket=1.2.3.4"), None)
            .await
            .status(),
        401
    );

    // 2 s tickets live 1-2 s (plus one window of clock slack): after 3.2 s it is refused.
    tokio::time::sleep(Duration::from_millis(3_200)).await;
    assert_eq!(open(&url, None).await.status(), 401, "expired");

    // Revoked: a relay whose config no longer has the key refuses the key's fresh ticket,
    // while one with the same config accepts it (tickets need no shared state).
    let (_, _, body) = bulk(&relay, Some("eval-key-1"), &[]).await;
    let fresh = stream_url(&body);
    assert_eq!(open(&fresh, None).await.status(), 200);
    let same = start(&config("eval-key-1, eval-key-2", "2s"));
    let without = start(&config("eval-key-2", "2s"));
    wait_ready(&same).await;
    wait_ready(&without).await;
    let on = |other: &Relay| fresh.replace(&relay.url(""), &other.url(""));
    assert_eq!(
        open(&on(&same), None).await.status(),
        200,
        "another replica"
    );
    assert_eq!(
        open(&on(&without), None).await.status(),
        401,
        "revoked with its key"
    );
}

#[tokio::test]
async fn a_reconnect_that_missed_a_change_is_told_to_refetch_at_once() {
    let relay = start(&config("eval-key-1", "10m"));
    wait_ready(&relay).await;
    let url = relay.url("/ofrep/v1/sse");
    let keyed = || client().get(&url).header("x-api-key", "eval-key-1");

    let res = keyed().send().await.unwrap();
    let raw = first_bytes(res).await;
    assert!(raw.contains("retry: 3000"), "a retry hint first: {raw:?}");

    let mut events = SseReader::new(keyed().send().await.unwrap());
    write_atomic(&relay.path("flags.yaml"), "a: {enabled: false}\n");
    let seen = events
        .next(Duration::from_secs(10))
        .await
        .unwrap()
        .id
        .unwrap();
    drop(events);

    // Up to date: nothing at once.
    let res = keyed().header("last-event-id", &seen).send().await.unwrap();
    let mut current = SseReader::new(res);
    assert!(current.next(Duration::from_millis(700)).await.is_none());

    // The set changed while this client was away: a refetch at once, with the new id.
    write_atomic(
        &relay.path("flags.yaml"),
        "a: {enabled: true}\nc: {enabled: true}\n",
    );
    let moved = current
        .next(Duration::from_secs(10))
        .await
        .unwrap()
        .id
        .unwrap();
    let res = keyed().header("last-event-id", &seen).send().await.unwrap();
    let mut behind = SseReader::new(res);
    let ev = behind
        .next(Duration::from_secs(2))
        .await
        .expect("an immediate refetch");
    assert_eq!(ev.id.as_deref(), Some(moved.as_str()));
    let data: Value = serde_json::from_str(&ev.data).unwrap();
    assert_eq!(data["type"], "refetchEvaluation");
}

async fn first_bytes(res: reqwest::Response) -> String {
    use futures_util::StreamExt;
    let mut s = res.bytes_stream();
    let chunk = tokio::time::timeout(Duration::from_secs(5), s.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&chunk).into_owned()
}

#[tokio::test]
async fn a_flag_config_etag_ahead_of_the_served_set_never_gets_304() {
    let relay = start(&config("eval-key-1", "10m"));
    wait_ready(&relay).await;
    let (_, etag, body) = bulk(&relay, Some("eval-key-1"), &[]).await;
    let served = body["metadata"]["flagSetEtag"].as_str().unwrap().to_owned();
    let inm = [("if-none-match", etag.as_str())];
    let with_query = |q: String| {
        let relay = &relay;
        let etag = etag.clone();
        async move {
            let res = client()
                .post(relay.url(&format!("/ofrep/v1/evaluate/flags?{q}")))
                .header("x-api-key", "eval-key-1")
                .header("if-none-match", etag)
                .body("{\"context\":{\"targetingKey\":\"u1\"}}")
                .send()
                .await
                .unwrap();
            res.status().as_u16()
        }
    };
    assert_eq!(bulk(&relay, Some("eval-key-1"), &inm).await.0, 304);
    assert_eq!(with_query(format!("flagConfigEtag={served}")).await, 304);
    assert_eq!(
        with_query(
            "flagConfigEtag=ffffffffffffffffffffffffffffffff&flagConfigLastModified=99".into()
        )
        .await,
        200,
        "the client heard of a set this relay does not serve"
    );
    assert_eq!(
        with_query("flagConfigEtag=a&flagConfigEtag=b".into()).await,
        200
    );

    // RFC 9110: lists, weak comparison; `*` on this POST is a failed precondition.
    let listed = format!("\"nope\", W/{etag}");
    assert_eq!(
        bulk(&relay, Some("eval-key-1"), &[("if-none-match", &listed)])
            .await
            .0,
        304
    );
    assert_eq!(
        bulk(&relay, Some("eval-key-1"), &[("if-none-match", "\"nope\"")])
            .await
            .0,
        200
    );
    let (star, _, body) = bulk(&relay, Some("eval-key-1"), &[("if-none-match", "*")]).await;
    assert_eq!(star, 412);
    assert_eq!(body["errorCode"], "GENERAL");
    // GET /v1/flags keeps `*` meaning "any current representation".
    let res = client()
        .get(relay.url("/v1/flags"))
        .header("x-api-key", "eval-key-1")
        .header("if-none-match", "*")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 304);
}
