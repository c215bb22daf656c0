//! Talking to the relay's flagd listener: its address, a gRPC channel, raw gRPC frames.

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
