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
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, Tracer};

use crate::config::OtlpConfig;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether spans are being recorded (checked on every request before doing anything).
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Why trace export could not be set up. Never carries a header value.
#[derive(Debug, thiserror::Error)]
#[error("tracing.otlp: {0}")]
pub struct TelemetryError(String);

/// The running exporter; flush it at shutdown.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// Export what is still batched (bounded by the exporter's timeout).
    pub fn shutdown(&self) {
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
pub fn configured(cfg: &OtlpConfig) -> bool {
    let off = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
        || std::env::var("OTEL_TRACES_EXPORTER").is_ok_and(|v| v.eq_ignore_ascii_case("none"));
    !off && (cfg.endpoint.is_some()
        || env_set("OTEL_EXPORTER_OTLP_ENDPOINT")
        || env_set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

/// Build the exporter and tracer. Must run inside the tokio runtime (the batch task is spawned
/// on it). `None` when export is not configured.
pub fn start(cfg: &OtlpConfig) -> Result<Option<(Telemetry, Tracer)>, TelemetryError> {
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
    // Without a ratio here, the SDK's default follows OTEL_TRACES_SAMPLER / _ARG.
    if let Some(ratio) = cfg.sample_ratio {
        provider = provider.with_sampler(Sampler::ParentBased(Box::new(
            Sampler::TraceIdRatioBased(ratio),
        )));
    }
    let provider = provider.build();
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let tracer = provider.tracer("flagrelay");
    ENABLED.store(true, Ordering::Relaxed);
    Ok(Some((Telemetry { provider }, tracer)))
}

/// A server span for a request, parented by its `traceparent` (when tracing is on).
pub(crate) fn request_span(
    method: &str,
    route: &str,
    headers: &axum::http::HeaderMap,
) -> tracing::Span {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
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
    span
}
