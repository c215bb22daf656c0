//! Metrics of the flagd listener, in the registry style of `crate::metrics`: every series a
//! fixed slot (service × method × protocol × gRPC code), recording an index and a `fetch_add`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::metrics::{Histogram, LATENCY_BUCKETS, Metrics, family};

/// The RPCs, in label order. `ResolveAll` exists in v1 only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rpc {
    ResolveAll,
    ResolveBoolean,
    ResolveString,
    ResolveFloat,
    ResolveInt,
    ResolveObject,
    EventStream,
}

const RPCS: [&str; 7] = [
    "ResolveAll",
    "ResolveBoolean",
    "ResolveString",
    "ResolveFloat",
    "ResolveInt",
    "ResolveObject",
    "EventStream",
];

impl Rpc {
    pub(crate) fn from_name(name: &str) -> Option<Rpc> {
        Some(match name {
            "ResolveAll" => Rpc::ResolveAll,
            "ResolveBoolean" => Rpc::ResolveBoolean,
            "ResolveString" => Rpc::ResolveString,
            "ResolveFloat" => Rpc::ResolveFloat,
            "ResolveInt" => Rpc::ResolveInt,
            "ResolveObject" => Rpc::ResolveObject,
            "EventStream" => Rpc::EventStream,
            _ => return None,
        })
    }
}

/// `flagd.evaluation.v1.Service` or `v2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    V1,
    V2,
}

const SERVICES: [&str; 2] = ["flagd.evaluation.v1.Service", "flagd.evaluation.v2.Service"];

impl Version {
    pub(crate) fn from_service(name: &str) -> Option<Version> {
        match name {
            "flagd.evaluation.v1.Service" => Some(Version::V1),
            "flagd.evaluation.v2.Service" => Some(Version::V2),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    Grpc,
    Connect,
}

const PROTOCOLS: [&str; 2] = ["grpc", "connect"];

/// gRPC status codes 0..=16 by number.
const CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

const CALLS: usize = SERVICES.len() * RPCS.len() * PROTOCOLS.len();

pub(crate) struct FlagdMetrics {
    /// `CALLS × CODES.len()` counters.
    requests: Box<[AtomicU64]>,
    /// One per call; unary RPCs only (a stream's lifetime is not a latency).
    latency: Box<[Histogram]>,
}

impl std::fmt::Debug for FlagdMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FlagdMetrics")
    }
}

fn call(v: Version, rpc: Rpc, p: Protocol) -> usize {
    ((v as usize) * RPCS.len() + rpc as usize) * PROTOCOLS.len() + p as usize
}

impl FlagdMetrics {
    pub(crate) fn new() -> Arc<FlagdMetrics> {
        Arc::new(FlagdMetrics {
            requests: (0..CALLS * CODES.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            latency: (0..CALLS)
                .map(|_| Histogram::new(&LATENCY_BUCKETS))
                .collect(),
        })
    }

    /// Count one answered call; `took` for unary calls.
    pub(crate) fn record(
        &self,
        v: Version,
        rpc: Rpc,
        p: Protocol,
        code: tonic::Code,
        took: Option<Duration>,
    ) {
        let c = call(v, rpc, p);
        let code = (code as usize).min(CODES.len() - 1);
        self.requests[c * CODES.len() + code].fetch_add(1, Ordering::Relaxed);
        if let Some(t) = took {
            self.latency[c].observe(t);
        }
    }

    /// Add the flagd families to the relay's exposition (once, when the flagd listener
    /// starts).
    pub(crate) fn register(self: &Arc<Self>, metrics: &Metrics) {
        let me = self.clone();
        metrics.add_collector(move |out| render(&me, out));
    }
}

fn labels(c: usize) -> String {
    let p = c % PROTOCOLS.len();
    let rest = c / PROTOCOLS.len();
    let (v, rpc) = (rest / RPCS.len(), rest % RPCS.len());
    format!(
        "service=\"{}\",method=\"{}\",protocol=\"{}\",",
        SERVICES[v], RPCS[rpc], PROTOCOLS[p]
    )
}

/// The flagd families, appended to the relay's exposition.
fn render(m: &FlagdMetrics, out: &mut String) {
    use std::fmt::Write as _;
    family(
        out,
        "flagrelay_flagd_requests_total",
        "counter",
        "flagd protocol calls answered, by service, method, protocol (grpc or connect) and gRPC status code.",
    );
    for (slot, n) in m.requests.iter().enumerate() {
        let n = n.load(Ordering::Relaxed);
        if n == 0 {
            continue;
        }
        let (c, code) = (slot / CODES.len(), slot % CODES.len());
        let _ = writeln!(
            out,
            "flagrelay_flagd_requests_total{{{}code=\"{}\"}} {n}",
            labels(c),
            CODES[code]
        );
    }
    family(
        out,
        "flagrelay_flagd_request_duration_seconds",
        "histogram",
        "Time to answer a unary flagd protocol call, by service, method and protocol.",
    );
    for (c, h) in m.latency.iter().enumerate() {
        if h.count() > 0 {
            h.render(out, "flagrelay_flagd_request_duration_seconds", &labels(c));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_distinct_and_labelled() {
        let mut seen = std::collections::HashSet::new();
        for v in [Version::V1, Version::V2] {
            for r in RPCS {
                for p in [Protocol::Grpc, Protocol::Connect] {
                    let c = call(v, Rpc::from_name(r).unwrap(), p);
                    assert!(c < CALLS && seen.insert(c));
                    let l = labels(c);
                    assert!(l.contains(&format!("method=\"{r}\"")), "{l}");
                }
            }
        }
        let m = FlagdMetrics::new();
        m.record(
            Version::V2,
            Rpc::ResolveFloat,
            Protocol::Grpc,
            tonic::Code::NotFound,
            Some(Duration::from_micros(50)),
        );
        let mut out = String::new();
        render(&m, &mut out);
        assert!(out.contains("flagrelay_flagd_requests_total{service=\"flagd.evaluation.v2.Service\",method=\"ResolveFloat\",protocol=\"grpc\",code=\"NOT_FOUND\"} "), "{out}");
        assert!(out.contains("flagrelay_flagd_request_duration_seconds_count{service=\"flagd.evaluation.v2.Service\",method=\"ResolveFloat\",protocol=\"grpc\"} "), "{out}");
    }
}
