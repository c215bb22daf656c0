//! Where the relay reports to: change notifiers (`notifiers`) and trace export (`tracing`).

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;

use super::{ConfigError, Millis, Secret, invalid};

/// `tracing:`: trace export. The standard `OTEL_*` variables apply too.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub(crate) struct TracingConfig {
    pub otlp: OtlpConfig,
}

/// `tracing.otlp`: OTLP/HTTP (protobuf) export of spans.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub(crate) struct OtlpConfig {
    /// The collector's base URL (`/v1/traces` is added), as `OTEL_EXPORTER_OTLP_ENDPOINT`.
    /// Export is on when this or that variable (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set.
    pub endpoint: Option<String>,
    /// Sent with every export (e.g. an API key of the collector); as `OTEL_EXPORTER_OTLP_HEADERS`.
    pub headers: std::collections::BTreeMap<String, Secret>,
    /// Share of new traces sampled, 0..1, under a parent-based sampler (a request's
    /// `traceparent` decides for its own trace). Unset: `OTEL_TRACES_SAMPLER`/`_ARG`, else all.
    pub sample_ratio: Option<f64>,
    pub ca_cert_path: Option<PathBuf>,
}

/// What a notifier does with a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum NotifierKind {
    /// POST the change as JSON, signed with `secret` when set.
    Webhook,
    /// POST a readable message to a Slack incoming webhook.
    Slack,
    /// One structured log line.
    Log,
}

impl NotifierKind {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            NotifierKind::Webhook => "webhook",
            NotifierKind::Slack => "slack",
            NotifierKind::Log => "log",
        }
    }
}

/// One entry of `notifiers`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct NotifierConfig {
    pub kind: NotifierKind,
    /// Where to POST (webhook, slack). A Slack URL is itself a credential, so it is a secret.
    #[serde(default)]
    pub url: Option<Secret>,
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, Secret>,
    /// Signs each webhook body: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256>`.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// One delivery attempt's deadline.
    #[serde(default = "default_notifier_timeout")]
    pub timeout: Millis,
    /// Changes waiting to be delivered; when full, the two oldest are merged into one.
    #[serde(default = "default_notifier_queue")]
    pub queue_size: usize,
    /// Attempts after the first for a 5xx answer or a network error (never for a 4xx).
    #[serde(default = "default_notifier_retries")]
    pub max_retries: u32,
    #[serde(default)]
    pub ca_cert_path: Option<PathBuf>,
}

fn default_notifier_timeout() -> Millis {
    Millis(5_000)
}

fn default_notifier_queue() -> usize {
    64
}

fn default_notifier_retries() -> u32 {
    5
}

impl TracingConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(ep) = &self.otlp.endpoint {
            let ok = reqwest::Url::parse(ep)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
            if !ok {
                return Err(invalid(
                    "tracing.otlp.endpoint",
                    "must be an http:// or https:// URL",
                ));
            }
        }
        if let Some(r) = self.otlp.sample_ratio
            && !(0.0..=1.0).contains(&r)
        {
            return Err(invalid(
                "tracing.otlp.sampleRatio",
                "must be between 0 and 1",
            ));
        }
        Ok(())
    }
}

impl NotifierConfig {
    /// Checks serde cannot express, with errors naming `notifiers[i].field`.
    pub(super) fn validate(&self, i: usize) -> Result<(), ConfigError> {
        let at = |field: &str| format!("notifiers[{i}].{field}");
        let needs_url = self.kind != NotifierKind::Log;
        match (&self.url, needs_url) {
            (None, true) => {
                return Err(invalid(
                    at("url"),
                    format!("is required for kind {}", self.kind.as_str()),
                ));
            }
            (Some(_), false) => return Err(invalid(at("url"), "is not used by kind log")),
            (Some(url), true) => {
                // Never echo the URL: a Slack webhook URL is a credential.
                let ok = reqwest::Url::parse(url.expose())
                    .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
                if !ok {
                    return Err(invalid(at("url"), "must be an http:// or https:// URL"));
                }
            }
            (None, false) => {}
        }
        if self.secret.is_some() && self.kind != NotifierKind::Webhook {
            return Err(invalid(
                at("secret"),
                "signs webhook bodies only (kind webhook)",
            ));
        }
        if self.queue_size == 0 || self.queue_size > 100_000 {
            return Err(invalid(at("queueSize"), "must be between 1 and 100000"));
        }
        if self.timeout.0 <= 0 {
            return Err(invalid(at("timeout"), "must be greater than 0"));
        }
        if self.max_retries > 20 {
            return Err(invalid(at("maxRetries"), "must be at most 20"));
        }
        Ok(())
    }
}
