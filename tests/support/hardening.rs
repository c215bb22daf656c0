//! Helpers for the hardening tests (issue 12): relays over a flag file, raw sockets.

use std::time::Duration;

use super::relay::{Options, Relay};

/// Start a relay whose config is `config` (`{{dir}}` is its temp dir) over a `flags.yaml`
/// holding `flags`.
pub fn start_over(flags: &str, config: &str) -> Relay {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("flags.yaml"), flags).unwrap();
    Relay::start_in(
        dir,
        Options {
            config,
            ..Options::default()
        },
    )
}

/// Send raw bytes on a fresh connection and read until the peer closes or `wait` passes;
/// what came back, and whether the peer closed.
pub async fn raw_exchange(
    addr: std::net::SocketAddr,
    request: &[u8],
    wait: Duration,
) -> (String, bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let end = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(end, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
        }
    }
}

/// A flag document with `n` flags `f0`..`f{n-1}`.
pub fn flags_doc(n: usize) -> String {
    (0..n)
        .map(|i| format!("f{i}: {{enabled: true, rollout: 100}}\n"))
        .collect()
}
