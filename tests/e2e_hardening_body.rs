//! Hardening (issue 12) end to end: request bodies.
//!
//! - item 2: a body that never arrives whole (`Content-Length: 100000000` then 10 bytes, or one
//!   byte at a time) is answered OFREP 400 after `server.readBodyTimeout`, and a SIGTERM drain
//!   is not held up by it for the whole grace period.

mod support;

use std::time::{Duration, Instant};

use support::hardening::raw_exchange;
use support::relay::{start_over, wait_ready};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const FLAGS: &str = "on-flag: {enabled: true, rollout: 100}\n";
const CONFIG: &str = "server: {readBodyTimeout: 1000, shutdownGracePeriod: 30000}
retrievers: [{kind: file, path: \"{{dir}}/flags.yaml\"}]
";

fn head(len: usize) -> String {
    format!(
        "POST /ofrep/v1/evaluate/flags/on-flag HTTP/1.1\r\nHost: relay\r\n\
         Content-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
    )
}

fn assert_body_timeout_answer(answer: &str) {
    assert!(answer.starts_with("HTTP/1.1 400"), "answer: {answer:?}");
    assert!(answer.contains("INVALID_CONTEXT"), "answer: {answer:?}");
    assert!(answer.contains("readBodyTimeout"), "answer: {answer:?}");
}

#[tokio::test]
async fn a_body_that_never_arrives_whole_is_answered_400() {
    let relay = start_over(FLAGS, CONFIG);
    wait_ready(&relay).await;
    let addr = relay.addr.unwrap();

    // Declared 100 MB, sent 10 bytes.
    let started = Instant::now();
    let req = format!("{}{{\"context\"", head(100_000_000));
    let (answer, _) = raw_exchange(addr, req.as_bytes(), Duration::from_secs(15)).await;
    assert_body_timeout_answer(&answer);
    assert!(started.elapsed() < Duration::from_secs(10));

    // A trickle: one byte every 200 ms of a 1,000-byte body.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head(1000).as_bytes()).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let trickle = tokio::spawn(async move {
        for _ in 0..1000 {
            if wr.write_all(b" ").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let end = tokio::time::Instant::now() + Duration::from_secs(15);
    while !String::from_utf8_lossy(&out).contains("}") {
        match tokio::time::timeout_at(end, rd.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    trickle.abort();
    assert_body_timeout_answer(&String::from_utf8_lossy(&out));
}

#[tokio::test]
async fn a_hung_body_does_not_hold_the_drain() {
    let mut relay = start_over(FLAGS, CONFIG);
    wait_ready(&relay).await;
    let mut s = tokio::net::TcpStream::connect(relay.addr.unwrap())
        .await
        .unwrap();
    s.write_all(format!("{}{{", head(100_000_000)).as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    relay.signal("TERM");
    let status = relay
        .wait_exit(Duration::from_secs(20))
        .expect("the relay exits well within its 30 s grace period");
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "drain took {:?}",
        started.elapsed()
    );
}
