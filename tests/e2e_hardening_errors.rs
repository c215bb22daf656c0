//! Hardening (issue 12) end to end: error texts.
//!
//! - item 7: a 2.2 MB one-line document (HTML where flags were expected), or a flag with a
//!   megabyte-long key, gives a bounded error in the log, the admin answer and `/info`, which
//!   still names the source.

mod support;

use support::hardening::{ADMIN, flags_doc, start_admin_refreshed};
use support::relay::{admin_refresh, client, wait_ready, write_atomic};

const LIMIT: usize = 4096;

#[tokio::test]
async fn huge_source_texts_give_bounded_errors() {
    let relay = start_admin_refreshed(&flags_doc(3));
    wait_ready(&relay).await;
    let path = relay.path("flags.yaml");
    let html = format!(
        "<html><body>{}</body></html>",
        "<p>lorem ipsum</p>".repeat(120_000)
    );
    let long_key = format!("{}: {{enabled: tru}}\n", "k".repeat(1_000_000));
    for (what, doc) in [("html", html), ("long key", long_key)] {
        write_atomic(&path, &doc);
        let r = client()
            .post(relay.url("/admin/v1/retriever/refresh"))
            .header("X-API-Key", ADMIN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 502, "{what}");
        let answer = r.text().await.unwrap();
        assert!(
            answer.len() < LIMIT,
            "{what}: admin answer of {} bytes",
            answer.len()
        );
        assert!(answer.contains("flags.yaml"), "{what}: {answer}");
        let info = client().get(relay.url("/info")).send().await.unwrap();
        let info = info.text().await.unwrap();
        assert!(info.len() < LIMIT, "{what}: /info of {} bytes", info.len());
        let longest = relay.logs().iter().map(String::len).max().unwrap_or(0);
        assert!(longest < LIMIT, "{what}: a log line of {longest} bytes");
    }
    // The good set kept serving throughout.
    write_atomic(&path, &flags_doc(3));
    assert_eq!(admin_refresh(&relay, ADMIN, "").await.0, 200);
}
