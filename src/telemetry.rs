//! OpenTelemetry traces, exported over OTLP/HTTP (protobuf): a server span per request (route
//! template, method, status; never credentials or context values), parented by the request's
//! W3C `traceparent`, and spans for each refresh and each retriever fetch.
//!
//! Off unless an endpoint is configured (`tracing.otlp.endpoint`, or the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`). Off, the request path
//! does not even look at headers: [`enabled`] is one relaxed atomic load. On, spans are batched
//! and exported from a tokio task, never on a request's path; the exporter posts with the
//! relay's own reqwest client, so TLS goes through rustls + aws-lc-rs (the FIPS build covers it).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, Tracer};

use crate::config::OtlpConfig;

static ENABLED: AtomicBool = AtomicBool::new(false);
/// The share of new traces sampled (an `f64`'s bits), decided here before any span exists.
static RATIO: AtomicU64 = AtomicU64::new(0x3FF0_0000_0000_0000); // 1.0
/// Draws for the ratio: a counter scrambled by a multiplicative hash (uniform enough for a
/// sampling share, and one atomic add, where the SDK's sampler needs a span built first).
static DRAWS: AtomicU64 = AtomicU64::new(0);

/// Whether spans are being recorded (checked on every request before doing anything).
#[inline]
pub(crate) fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Why trace export could not be set up. Never carries a header value.
#[derive(Debug, thiserror::Error)]
#[error("tracing.otlp: {0}")]
pub(crate) struct TelemetryError(String);

/// The running exporter; flush it at shutdown.
pub(crate) struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// Export what is still batched (bounded by the exporter's timeout).
    pub(crate) fn shutdown(&self) {
        ENABLED.store(false, Ordering::Relaxed);
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "trace export did not flush at shutdown");
        }
    }
}

fn env_set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.trim().is_empty())
}

/// Whether export is configured at all (and not switched off by `OTEL_SDK_DISABLED` or
/// `OTEL_TRACES_EXPORTER=none`).
pub(crate) fn configured(cfg: &OtlpConfig) -> bool {
    let off = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
        || std::env::var("OTEL_TRACES_EXPORTER").is_ok_and(|v| v.eq_ignore_ascii_case("none"));
    !off && (cfg.endpoint.is_some()
        || env_set("OTEL_EXPORTER_OTLP_ENDPOINT")
        || env_set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

/// Build the exporter and tracer. Must run inside the tokio runtime (the batch task is spawned
/// on it). `None` when export is not configured.
pub(crate) fn start(cfg: &OtlpConfig) -> Result<Option<(Telemetry, Tracer)>, TelemetryError> {
    if !configured(cfg) {
        return Ok(None);
    }
    let endpoint = cfg
        .endpoint
        .as_ref()
        .map(|base| format!("{}/v1/traces", base.trim_end_matches('/')));
    let probe = endpoint.as_deref().unwrap_or("http://localhost");
    let probe =
        reqwest::Url::parse(probe).map_err(|_| TelemetryError("endpoint is not a URL".into()))?;
    let client = crate::retriever::outbound_client(&probe, cfg.ca_cert_path.as_deref())
        .map_err(TelemetryError)?;
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_http_client(client);
    if let Some(ep) = endpoint {
        builder = builder.with_endpoint(ep);
    }
    if !cfg.headers.is_empty() {
        let headers: HashMap<String, String> = cfg
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().to_owned()))
            .collect();
        builder = builder.with_headers(headers);
    }
    let exporter = builder
        .build()
        .map_err(|e| TelemetryError(format!("cannot build the OTLP exporter: {e}")))?;
    let processor =
        opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
            exporter,
            opentelemetry_sdk::runtime::Tokio,
        )
        .build();
    let mut resource = opentelemetry_sdk::Resource::builder();
    if !env_set("OTEL_SERVICE_NAME") {
        resource = resource.with_service_name("flagrelay");
    }
    let resource = resource
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    let mut provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource);
    // Sampling is decided before a span is built (`request_span`, `sample_root`): building a
    // span for every request only for the SDK's sampler to drop 99 % of them cost as much as
    // exporting them all (BENCHMARKS.md). The SDK keeps what it is given, following a remote
    // parent's own decision.
    let ratio = cfg.sample_ratio.unwrap_or_else(env_ratio);
    RATIO.store(ratio.clamp(0.0, 1.0).to_bits(), Ordering::Relaxed);
    provider = provider.with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)));
    let provider = provider.build();
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let tracer = provider.tracer("flagrelay");
    ENABLED.store(true, Ordering::Relaxed);
    Ok(Some((Telemetry { provider }, tracer)))
}

/// The ratio `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` ask for (1 for `always_on`,
/// the default, and for anything not understood).
fn env_ratio() -> f64 {
    let sampler = std::env::var("OTEL_TRACES_SAMPLER").unwrap_or_default();
    let arg = || {
        std::env::var("OTEL_TRACES_SAMPLER_ARG")
            .ok()
            .and_then(|a| a.trim().parse::<f64>().ok())
            .unwrap_or(1.0)
    };
    match sampler.trim() {
        "always_off" | "parentbased_always_off" => 0.0,
        "traceidratio" | "parentbased_traceidratio" => arg(),
        _ => 1.0,
    }
}

/// Whether a new trace (no parent) is sampled.
pub(crate) fn sample_root() -> bool {
    if !enabled() {
        return false;
    }
    let ratio = f64::from_bits(RATIO.load(Ordering::Relaxed));
    if ratio >= 1.0 {
        return true;
    }
    let draw = DRAWS
        .fetch_add(1, Ordering::Relaxed)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((draw >> 11) as f64 / (1u64 << 53) as f64) < ratio
}

/// Whether a W3C `traceparent` says its trace is sampled (`None` when it is absent or not
/// well formed: then the request starts a trace of its own).
fn parent_sampled(headers: &axum::http::HeaderMap) -> Option<bool> {
    let v = headers.get("traceparent")?.to_str().ok()?.trim();
    let flags = v.rsplit('-').next()?;
    if v.len() != 55 || flags.len() != 2 {
        return None;
    }
    u8::from_str_radix(flags, 16).ok().map(|f| f & 1 == 1)
}

/// A server span for a request, parented by its `traceparent`, when its trace is sampled: a
/// sampled parent's trace always, a new trace at the configured ratio; `None` otherwise.
pub(crate) fn request_span(
    method: &str,
    route: &str,
    headers: &axum::http::HeaderMap,
) -> Option<tracing::Span> {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let sampled = match parent_sampled(headers) {
        Some(parent) => parent,
        None => sample_root(),
    };
    if !sampled {
        return None;
    }
    let span = tracing::info_span!(
        "request",
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        http.request.method = method,
        http.route = route,
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    let parent = opentelemetry::global::get_text_map_propagator(|p| {
        p.extract(&opentelemetry_http::HeaderExtractor(headers))
    });
    let _ = span.set_parent(parent);
    Some(span)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_decides_for_its_trace() {
        let h = |v: &'static str| {
            let mut h = axum::http::HeaderMap::new();
            h.insert("traceparent", axum::http::HeaderValue::from_static(v));
            h
        };
        let id = "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7";
        assert_eq!(
            parent_sampled(&h(Box::leak(format!("00-{id}-01").into_boxed_str()))),
            Some(true)
        );
        assert_eq!(
            parent_sampled(&h(Box::leak(format!("00-{id}-00").into_boxed_str()))),
            Some(false)
        );
        assert_eq!(parent_sampled(&h("garbage")), None);
        assert_eq!(parent_sampled(&axum::http::HeaderMap::new()), None);
    }

    #[test]
    fn the_draws_are_uniform_enough_for_a_ratio() {
        ENABLED.store(true, Ordering::Relaxed);
        RATIO.store(0.1f64.to_bits(), Ordering::Relaxed);
        let hits = (0..100_000).filter(|_| sample_root()).count();
        RATIO.store(1.0f64.to_bits(), Ordering::Relaxed);
        ENABLED.store(false, Ordering::Relaxed);
        assert!((9_000..11_000).contains(&hits), "{hits}");
    }
}
