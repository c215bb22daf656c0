//! Hardening (issue 12) end to end: connections.
//!
//! - item 1: with a descriptor limit of 256, 400 connections that never send a byte neither
//!   make `/health` unreachable on the monitoring port nor disturb an open connection; they
//!   are closed after `readHeaderTimeout` (or at once, past `server.maxConnections`), accept
//!   errors are not logged in a flood, and the API port answers again afterwards.

mod support;

use std::time::{Duration, Instant};

use support::hardening::{get_on, limit_descriptors, listener_addr};
use support::relay::start_over;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const FLAGS: &str = "on-flag: {enabled: true, rollout: 100}\n";

#[tokio::test]
async fn silent_connections_are_closed_and_capped() {
    let relay = start_over(
        FLAGS,
        "server: {monitoringPort: 0, readHeaderTimeout: 1500, maxConnections: 100}
retrievers: [{kind: file, path: \"{{dir}}/flags.yaml\"}]
",
    );
    let monitoring = listener_addr(&relay, "monitoring");
    let api = relay.addr.unwrap();
    limit_descriptors(relay.pid(), 256);
    // Ready (on the monitoring port) before the flood.
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let mut s = TcpStream::connect(monitoring).await.unwrap();
        if get_on(&mut s, "/ready", Duration::from_secs(5)).await == Some(200) {
            break;
        }
        assert!(
            Instant::now() < end,
            "not ready; logs:\n{}",
            relay.all_output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // An active keep-alive connection, opened before the flood.
    let mut active = TcpStream::connect(api).await.unwrap();
    assert_eq!(
        get_on(&mut active, "/v1/flags", Duration::from_secs(5)).await,
        Some(200)
    );

    let started = Instant::now();
    let mut silent = Vec::new();
    for _ in 0..400 {
        silent.push(TcpStream::connect(api).await.unwrap());
    }
    // Under the flood: /health on the monitoring port, and the open connection, still answer.
    let mut health = TcpStream::connect(monitoring).await.unwrap();
    assert_eq!(
        get_on(&mut health, "/health", Duration::from_secs(5)).await,
        Some(200),
        "/health on the monitoring port under a flood; logs:\n{}",
        relay.all_output()
    );
    assert_eq!(
        get_on(&mut active, "/v1/flags", Duration::from_secs(5)).await,
        Some(200),
        "an open connection is not harmed by the flood"
    );

    // Every silent connection is closed: past the cap at once, the rest after the deadline.
    let mut closed = 0;
    for mut s in silent {
        let mut b = [0u8; 16];
        let end = started + Duration::from_secs(30);
        if let Ok(Ok(0) | Err(_)) = tokio::time::timeout_at(end.into(), s.read(&mut b)).await {
            closed += 1;
        }
    }
    assert_eq!(closed, 400, "silent connections closed by the relay");
    let mut after = TcpStream::connect(api).await.unwrap();
    assert_eq!(
        get_on(&mut after, "/v1/flags", Duration::from_secs(5)).await,
        Some(200)
    );
    let accept_failed = relay
        .logs()
        .iter()
        .filter(|l| l.contains("accept failed"))
        .count();
    let secs = started.elapsed().as_secs() as usize + 1;
    assert!(
        accept_failed <= secs,
        "{accept_failed} 'accept failed' lines in {secs} s"
    );
}
