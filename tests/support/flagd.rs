//! Talking to the relay's flagd listener: a relay with flagd on, its address, a gRPC channel,
//! raw gRPC frames.

use std::net::SocketAddr;
use std::time::Duration;

use super::relay::Relay;

/// The flagd listener's address, from its "listening" log line.
pub fn addr(relay: &Relay) -> SocketAddr {
    let line = relay
        .wait_for_log(
            |l| l.contains("\"msg\":\"listening\"") && l.contains("\"server\":\"flagd\""),
            Duration::from_secs(20),
        )
        .unwrap_or_else(|| panic!("no flagd listener; logs:\n{}", relay.all_output()));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    v["addr"].as_str().unwrap().parse().unwrap()
}

/// A plain-text HTTP/2 gRPC channel to the flagd listener.
pub async fn channel(relay: &Relay) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{}", addr(relay)))
        .unwrap()
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .expect("connects to the flagd listener")
}

/// A request carrying `x-api-key: key`.
pub fn with_key<T>(msg: T, key: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert("x-api-key", key.parse().unwrap());
    r
}

/// One gRPC length-prefixed frame (uncompressed).
pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8];
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// POST raw bytes as a gRPC call over HTTP/2 without TLS; the `grpc-status` the relay
/// answered with (trailers-only answers carry it in the headers), or `None` when it is in
/// trailers (a success) or the call failed at the HTTP level.
pub async fn raw_grpc_status(
    relay: &Relay,
    path: &str,
    body: Vec<u8>,
    key: &str,
) -> Option<String> {
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let res = client
        .post(format!("http://{}{path}", addr(relay)))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("x-api-key", key)
        .body(body)
        .send()
        .await
        .ok()?;
    res.headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_owned())
}

/// The flag set the flagd tests serve.
pub const FLAGS: &str = "
bool-on: {enabled: true, rollout: 100, description: a switch, metadata: {team: web, tier: 2}}
str-flag: {enabled: true, rollout: 100, value: {on: blue, off: red}}
int-flag: {enabled: true, rollout: 100, value: {on: 42, off: 0}}
float-flag: {enabled: true, rollout: 100, value: {on: 1.5, off: 0.5}}
obj-flag: {enabled: true, rollout: 100, value: {on: {a: 1, b: [x]}, off: {}}}
staging-only: {enabled: true, envs: [staging], rollout: 100}
half: {enabled: true, rollout: 50}
off-flag: {enabled: false}
";

pub fn start(extra: &str) -> Relay {
    start_with(extra, "")
}

pub fn start_with(extra: &str, top: &str) -> Relay {
    let config = format!(
        "pollingInterval: 100
rolloutSalt: pepper
retrievers:
  - {{kind: file, path: \"{{{{dir}}}}/flags.yaml\"}}
authorizedKeys:
  evaluation:
    - eval-plain
    - {{key: eval-staging, env: staging}}
flagd: {{host: 127.0.0.1, port: 0{extra}}}
{top}
"
    );
    super::relay::start_over(FLAGS, &config)
}

/// Protobuf bytes of a `ResolveBooleanRequest` whose context is a Struct nested `depth` deep
/// (`{"k": {"k": ...}}`), written outer to inner without recursion.
pub fn nested_request(depth: usize) -> Vec<u8> {
    fn varint(mut n: usize, out: &mut Vec<u8>) {
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }
    fn vlen(n: usize) -> usize {
        let mut v = Vec::new();
        varint(n, &mut v);
        v.len()
    }
    // Sizes of each level's Struct, from the innermost (empty) out.
    let mut sizes = vec![0usize];
    let mut levels = Vec::new();
    for _ in 0..depth {
        let inner = *sizes.last().unwrap();
        let value = 1 + vlen(inner) + inner;
        let entry = 4 + vlen(value) + value;
        levels.push((entry, value, inner));
        sizes.push(1 + vlen(entry) + entry);
    }
    let mut out = vec![0x0a, 7];
    out.extend_from_slice(b"bool-on");
    out.push(0x12);
    varint(*sizes.last().unwrap(), &mut out);
    for &(entry, value, inner) in levels.iter().rev() {
        out.push(0x0a);
        varint(entry, &mut out);
        out.extend_from_slice(&[0x0a, 1, b'k', 0x12]);
        varint(value, &mut out);
        out.push(0x2a);
        varint(inner, &mut out);
    }
    out
}
