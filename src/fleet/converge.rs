//! Waiting until every live replica serves a version (the admin refresh's answer).

use std::time::{Duration, Instant};

use serde::Serialize;

use super::publish::Keys;
use super::redis::Redis;
use super::replicas;

/// How often the live list is read while waiting: small next to a typical convergence (one
/// pub/sub message, a build, a heartbeat), cheap for Redis.
const POLL: Duration = Duration::from_millis(10);

/// The `fleet` part of an admin refresh's answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Convergence {
    pub version: u64,
    /// Live replicas when the wait ended.
    pub replicas: usize,
    pub converged: bool,
    /// Live replicas that did not report serving `version` (or a later one) in time.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub laggards: Vec<String>,
    /// Why the fleet could not be asked (Redis unreachable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// From this replica serving the version to the last live replica confirming it.
    #[serde(rename = "tookMs", serialize_with = "millis")]
    #[schema(value_type = f64, minimum = 0)]
    pub took: Duration,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e3)
}

/// Wait up to `timeout` for every live replica to serve `version` or later.
pub(crate) async fn wait(
    redis: &Redis,
    keys: &Keys,
    version: u64,
    timeout: Duration,
) -> Convergence {
    let started = Instant::now();
    let deadline = started + timeout;
    let mut last: Result<Vec<(String, u64)>, String> = Ok(Vec::new());
    loop {
        last = match replicas::live(redis, keys).await {
            Ok(live) => Ok(live),
            // A blip: keep what we saw, try again until the deadline.
            Err(e) if last.as_ref().is_ok_and(|l| !l.is_empty()) && Instant::now() < deadline => {
                tracing::debug!(error = %e, "reading the live replicas failed; retrying");
                last
            }
            Err(e) => Err(e),
        };
        let laggards: Vec<String> = match &last {
            Ok(live) => live
                .iter()
                .filter(|(_, v)| *v < version)
                .map(|(id, _)| id.clone())
                .collect(),
            Err(_) => Vec::new(),
        };
        let done = match &last {
            Ok(_) => laggards.is_empty(),
            Err(_) => true,
        };
        if done || Instant::now() >= deadline {
            let replicas = last.as_ref().map_or(0, Vec::len);
            return Convergence {
                version,
                replicas,
                // No live replica at all (not even the one asking): nothing was confirmed.
                converged: last.is_ok() && laggards.is_empty() && replicas > 0,
                laggards,
                error: last.err(),
                took: started.elapsed(),
            };
        }
        tokio::time::sleep(POLL).await;
    }
}
