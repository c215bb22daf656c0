//! Helpers for the hardening and reliability tests: relays over a flag file, raw sockets,
//! process limits.

use std::time::Duration;

use super::relay::Relay;

/// Three flags; `color` is `red` for everyone (see [`color_flags`]).
pub const COLOR_FLAGS: &str = "
color: {enabled: true, rollout: 100, value: {on: red, off: grey}}
on-flag: {enabled: true, rollout: 100}
half: {enabled: true, rollout: 50, value: {on: b, off: a}}
";

/// [`COLOR_FLAGS`] with `color` at `color` for everyone.
pub fn color_flags(color: &str) -> String {
    COLOR_FLAGS.replace("on: red", &format!("on: {color}"))
}

/// The admin key of [`start_admin_refreshed`].
pub const ADMIN: &str = "admin-key-0001";

/// A relay over `flags` that never polls: only an admin refresh (key [`ADMIN`]) reloads its
/// `flags.yaml`.
pub fn start_admin_refreshed(flags: &str) -> Relay {
    super::relay::start_over(
        flags,
        &format!(
            "pollingInterval: 0
retrievers: [{{kind: file, path: \"{{{{dir}}}}/flags.yaml\"}}]
authorizedKeys: {{admin: [{ADMIN}]}}
"
        ),
    )
}

/// An admin refresh (key [`ADMIN`]) that must fail with 502: the first source's error, and the
/// whole answer.
pub async fn failed_refresh(relay: &Relay) -> (String, serde_json::Value) {
    let (status, answer) = super::relay::admin_refresh(relay, ADMIN, "").await;
    assert_eq!(status, 502, "{answer}");
    let error = answer["retrievers"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (error, answer)
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

/// The address a listener other than the API one (e.g. "monitoring") logged.
pub fn listener_addr(relay: &Relay, server: &str) -> std::net::SocketAddr {
    let needle = format!("\"server\":\"{server}\"");
    let line = relay
        .wait_for_log(
            |l| l.contains("\"msg\":\"listening\"") && l.contains(&needle),
            Duration::from_secs(20),
        )
        .unwrap_or_else(|| panic!("no {server} listener; logs:\n{}", relay.all_output()));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    v["addr"].as_str().unwrap().parse().unwrap()
}

/// Lower a running process's descriptor limit.
pub fn limit_descriptors(pid: u32, n: u64) {
    let ok = std::process::Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &format!("--nofile={n}:{n}")])
        .status()
        .expect("prlimit runs (util-linux)")
        .success();
    assert!(ok, "prlimit --pid {pid} --nofile={n}");
}

/// One HTTP/1.1 GET on an open connection, its answer read whole (Content-Length bodies);
/// the status code, if the answer came within `wait`.
pub async fn get_on(s: &mut tokio::net::TcpStream, path: &str, wait: Duration) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let req = format!("GET {path} HTTP/1.1\r\nHost: relay\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let end = tokio::time::Instant::now() + wait;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 8192];
    loop {
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some(head_end) = text.find("\r\n\r\n") {
            let head = &text[..head_end];
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= head_end + 4 + len {
                return head.split(' ').nth(1)?.parse().ok();
            }
        }
        let n = tokio::time::timeout_at(end, s.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Threads of a running process (Linux `/proc`).
pub fn thread_count(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap()
}

/// Resident memory of a running process in bytes (Linux `/proc`).
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}
