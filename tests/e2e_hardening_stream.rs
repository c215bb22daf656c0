//! Hardening (issue 12) end to end: the sync stream.
//!
//! - item 6: 30 `/v1/flags/stream` clients that stop reading, across 30 changes of a 0.8 MB
//!   document, do not pin a flag set each (the relay's memory stays within a few documents per
//!   client: one buffered event each, plus allocator slack); while a live client follows
//!   every change, a stalled client that reads again is told to `resync` (no shared diff
//!   applies to the etag it has).

mod support;

use std::time::Duration;

use support::hardening::{ADMIN, rss_bytes, start_admin_refreshed};
use support::relay::{admin_refresh, wait_ready, write_atomic};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CLIENTS: usize = 30;
const CHANGES: usize = 30;

/// About 0.8 MB: 4,000 flags whose values all change with `n`.
fn doc(n: usize) -> String {
    let pad = "p".repeat(150);
    (0..4000)
        .map(|i| {
            format!("f{i}: {{enabled: true, rollout: 100, value: {{on: \"{n}-{pad}\", off: x}}}}\n")
        })
        .collect()
}

#[tokio::test]
async fn stalled_stream_clients_do_not_pin_flag_sets() {
    let relay = start_admin_refreshed(&doc(0));
    wait_ready(&relay).await;
    let addr = relay.addr.unwrap();
    let mut stalled = Vec::new();
    for _ in 0..CLIENTS {
        // A small receive buffer (no autotuning up to tcp_rmem's maximum, which could hold
        // every change): the client really stops taking data.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(64 * 1024).unwrap();
        let mut s = socket.connect(addr).await.unwrap();
        s.write_all(b"GET /v1/flags/stream HTTP/1.1\r\nHost: relay\r\n\r\n")
            .await
            .unwrap();
        // Read the head, then stop reading.
        let mut head = [0u8; 512];
        let _ = s.read(&mut head).await.unwrap();
        stalled.push(s);
    }
    // One client that keeps up, so each change's shared diff is from the change before.
    let mut live = tokio::net::TcpStream::connect(addr).await.unwrap();
    live.write_all(b"GET /v1/flags/stream HTTP/1.1\r\nHost: relay\r\n\r\n")
        .await
        .unwrap();
    let live = tokio::spawn(async move {
        let mut buf = vec![0u8; 1 << 16];
        while live.read(&mut buf).await.is_ok_and(|n| n > 0) {}
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_bytes(relay.pid());
    let path = relay.path("flags.yaml");
    for n in 1..=CHANGES {
        write_atomic(&path, &doc(n));
        let (status, answer) = admin_refresh(&relay, ADMIN, "").await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["changed"], true, "{answer}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let grown = rss_bytes(relay.pid()).saturating_sub(before);
    let doc_len = doc(0).len() as u64;
    println!(
        "RSS grew {} MB over {CHANGES} changes with {CLIENTS} stalled clients (document {} KB)",
        grown >> 20,
        doc_len >> 10
    );
    assert!(
        grown < CLIENTS as u64 * doc_len * 5,
        "RSS grew {} MB: more than a few documents per stalled client",
        grown >> 20
    );

    // A stalled client that reads again is told it missed changes.
    let mut s = stalled.pop().unwrap();
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "stream closed");
            seen.extend_from_slice(&buf[..n]);
            if seen.windows(13).any(|w| w == b"event: resync") {
                return;
            }
            // Keep only a tail, enough to match across reads.
            if seen.len() > 64 {
                seen.drain(..seen.len() - 64);
            }
        }
    })
    .await;
    live.abort();
    assert!(
        found.is_ok(),
        "no resync event for a client that fell behind"
    );
}
