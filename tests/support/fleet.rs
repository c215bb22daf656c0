//! Helpers for the fleet-mode tests: configs, and what a replica serves.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::redis::RedisServer;
use super::relay::{Relay, client, eventually, write_atomic};

pub const ADMIN: &str = "fleet-admin-key";

/// A flag document whose flag `greeting` answers `value`.
pub fn flags(value: &str) -> String {
    format!(
        "greeting: {{enabled: true, rollout: 100, value: {{on: \"{value}\", off: \"off\"}}}}\n\
         other: {{enabled: true, rollout: 50}}\n"
    )
}

/// A relay config in fleet `name` on `redis` (the `fleet.redis` map's YAML, flow style),
/// reading `retriever` (a retrievers entry, flow style), polling every `poll_ms`.
pub fn config(name: &str, redis: &str, retriever: &str, poll_ms: u64) -> String {
    format!(
        "pollingInterval: {poll_ms}\n\
         startWithRetrieverError: false\n\
         retrievers: [{retriever}]\n\
         authorizedKeys: {{admin: [{ADMIN}]}}\n\
         fleet:\n  name: {name}\n  redis: {redis}\n  leaseTtl: 2s\n  convergenceTimeout: 20s\n"
    )
}

/// A `flags.yaml` holding [`flags`] in its own temp dir, for the relays of a fleet to read.
pub struct FlagFile {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl FlagFile {
    pub fn new(value: &str) -> FlagFile {
        let dir = tempfile::tempdir().unwrap();
        let file = FlagFile {
            path: dir.path().join("flags.yaml"),
            _dir: dir,
        };
        file.set(value);
        file
    }

    /// Rewrite it (atomically) so that `greeting` answers `value`.
    pub fn set(&self, value: &str) {
        write_atomic(&self.path, &flags(value));
    }

    /// The retrievers entry (flow style) that reads it.
    pub fn retriever(&self) -> String {
        format!("{{kind: file, path: {}}}", self.path.display())
    }
}

/// The `fleet.redis` map (flow style) for `redis`.
pub fn redis_map(redis: &RedisServer) -> String {
    format!("{{url: \"{}\"}}", redis.url())
}

/// The fleet version a replica serves, from `/info`.
pub async fn version(relay: &Relay) -> Option<u64> {
    let i = client().get(relay.url("/info")).send().await.ok()?;
    let v: Value = i.json().await.ok()?;
    v["fleet"]["version"].as_u64()
}

/// The bulk OFREP answer: (ETag, body).
pub async fn bulk(relay: &Relay) -> (String, String) {
    let r = client()
        .post(relay.url("/ofrep/v1/evaluate/flags"))
        .json(&serde_json::json!({"context": {"targetingKey": "user-1"}}))
        .send()
        .await
        .unwrap();
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    (etag, r.text().await.unwrap())
}

/// The value `greeting` answers on a replica.
pub async fn greeting(relay: &Relay) -> Option<String> {
    let r = client()
        .post(relay.url("/ofrep/v1/evaluate/flags/greeting"))
        .json(&serde_json::json!({"context": {"targetingKey": "user-1"}}))
        .send()
        .await
        .ok()?;
    let v: Value = r.json().await.ok()?;
    v["value"].as_str().map(String::from)
}

/// An admin refresh with the fleet's admin key.
pub async fn admin_refresh(relay: &Relay) -> (u16, Value) {
    super::relay::admin_refresh(relay, ADMIN, "").await
}

/// Wait until every replica serves `value` for `greeting`.
pub async fn all_serve(relays: &[&Relay], value: &str, timeout: Duration) {
    for r in relays {
        eventually(
            timeout,
            &format!("a replica to serve {value:?}"),
            || async { (greeting(r).await.as_deref() == Some(value)).then_some(()) },
        )
        .await;
    }
}

/// Wait until every replica serves one same fleet version; returns it.
pub async fn same_version(relays: &[&Relay], timeout: Duration) -> u64 {
    eventually(timeout, "the replicas to serve one version", || async {
        let mut seen = Vec::new();
        for r in relays {
            seen.push(version(r).await?);
        }
        seen.windows(2).all(|w| w[0] == w[1]).then(|| seen[0])
    })
    .await
}
