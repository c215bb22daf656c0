//! Hardening (issue 12) end to end: the http retriever.
//!
//! - item 5: a body delimited only by the connection closing (no Content-Length, not chunked)
//!   cut short is refused, the flag set kept; a retriever with `allowUnverifiedLength: true`
//!   accepts such a body.

mod support;
use support::http_source;

use std::sync::{Arc, Mutex};

use http_source::{Reply, Request, Server};
use support::hardening::{ADMIN, failed_refresh, flags_doc};
use support::relay::{admin_refresh, start_over, wait_ready};

fn config(url: &str, allow: bool) -> String {
    format!(
        "pollingInterval: 0
retrievers: [{{kind: http, url: \"{url}\", allowUnverifiedLength: {allow}}}]
authorizedKeys: {{admin: [{ADMIN}]}}
"
    )
}

/// A source serving `flags_doc(7)` whole, then whatever `next` holds.
async fn source(next: Arc<Mutex<Option<Vec<u8>>>>) -> Server {
    Server::start(move |_: &Request| match next.lock().unwrap().clone() {
        None => Reply::ok(flags_doc(7), &[]),
        Some(body) => Reply::CloseDelimited { body },
    })
    .await
}

#[tokio::test]
async fn a_close_delimited_body_is_refused_unless_allowed() {
    let next = Arc::new(Mutex::new(None));
    let server = source(next.clone()).await;
    let url = server.url("http", "/flags.yaml");
    let relay = start_over("", &config(&url, false));
    wait_ready(&relay).await;

    // Cut after 3 of 7 flags, delimited by the close: indistinguishable from whole, so refused.
    let doc = flags_doc(7);
    let cut: String = doc.lines().take(3).map(|l| format!("{l}\n")).collect();
    *next.lock().unwrap() = Some(cut.into_bytes());
    let (error, answer) = failed_refresh(&relay).await;
    assert_eq!(answer["flags"], 7, "the whole set keeps serving: {answer}");
    assert!(error.contains("allowUnverifiedLength"), "{answer}");

    // Opted in: the same kind of body is accepted.
    let relay = start_over("", &config(&url, true));
    wait_ready(&relay).await;
    let (status, answer) = admin_refresh(&relay, ADMIN, "").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["flags"], 3, "{answer}");
}
