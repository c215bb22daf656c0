//! Configuration: defaults < file (YAML or JSON) < `FLAGRELAY_…` environment < command line.
//!
//! All three layers are merged as JSON values ([`overlay`]) and deserialized once, so a bad
//! value fails the same way wherever it came from, and the error names the key
//! (`server.port: invalid type…`). Keys follow `shared/spec/config.md`.

mod checks;
mod duration;
mod fleet;
mod overlay;
mod report;
pub(crate) use report::log_access;
pub(crate) mod schema;

use std::fmt;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

pub use duration::Millis;
pub use fleet::{FleetConfig, RedisConfig, SentinelConfig, host_port, parse_url};
pub use overlay::{ENV_PREFIX, Override};

use crate::parse::Format;

/// The whole configuration of one relay process.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Config {
    pub server: ServerConfig,
    pub log_level: String,
    pub log_format: LogFormat,
    pub environment: Option<String>,
    pub rollout_salt: Option<String>,
    pub polling_interval: Millis,
    pub enable_polling_jitter: bool,
    pub start_with_retriever_error: bool,
    pub persistent_flag_configuration_file: Option<PathBuf>,
    pub retrievers: Vec<RetrieverConfig>,
    pub authorized_keys: AuthorizedKeys,
    pub auth: AuthConfig,
    pub cors: CorsConfig,
    pub max_request_body_bytes: usize,
    pub fips: FipsConfig,
    /// Fleet mode (Redis); `None` is a standalone relay.
    pub fleet: Option<FleetConfig>,
    /// Where changes of the served flag set are announced (`notify`).
    pub notifiers: Vec<NotifierConfig>,
    /// OpenTelemetry traces (`telemetry`).
    pub tracing: TracingConfig,
    pub streams: StreamsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig::default(),
            log_level: "info".into(),
            log_format: LogFormat::Json,
            environment: None,
            rollout_salt: None,
            polling_interval: Millis(60_000),
            enable_polling_jitter: false,
            start_with_retriever_error: false,
            persistent_flag_configuration_file: None,
            retrievers: vec![RetrieverConfig::file("config/flags.yaml")],
            authorized_keys: AuthorizedKeys::default(),
            auth: AuthConfig::default(),
            cors: CorsConfig::default(),
            max_request_body_bytes: 1024 * 1024,
            fips: FipsConfig::default(),
            fleet: None,
            notifiers: Vec::new(),
            tracing: TracingConfig::default(),
            streams: StreamsConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    pub monitoring_port: Option<u16>,
    /// How long in-flight requests may take to finish after SIGTERM/SIGINT.
    pub shutdown_grace_period: Millis,
    /// Open SSE streams allowed at once; more get 503 on the stream endpoints only.
    pub max_sse_clients: usize,
    /// Time a client has to send a request's headers (a slowloris guard); also how long an
    /// idle keep-alive connection stays open waiting for its next request.
    pub read_header_timeout: Millis,
    /// Largest request head (request line + headers) accepted; larger gets 431.
    pub max_header_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "0.0.0.0".into(),
            port: 1031,
            monitoring_port: None,
            shutdown_grace_period: Millis(10_000),
            max_sse_clients: 10_000,
            read_header_timeout: Millis(10_000),
            max_header_bytes: 64 * 1024,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Text,
}

/// Which kind of source a retriever reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RetrieverKind {
    File,
    Http,
    S3,
    Relay,
    Sql,
    Azblob,
    Gcs,
}

impl RetrieverKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            RetrieverKind::File => "file",
            RetrieverKind::Http => "http",
            RetrieverKind::S3 => "s3",
            RetrieverKind::Relay => "relay",
            RetrieverKind::Sql => "sql",
            RetrieverKind::Azblob => "azblob",
            RetrieverKind::Gcs => "gcs",
        }
    }
}

/// One entry of `retrievers`. Flat, because serde cannot combine an internally tagged enum with
/// `deny_unknown_fields`; [`Config::validate`] checks that each kind has what it needs.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RetrieverConfig {
    pub kind: RetrieverKind,
    #[serde(default = "default_timeout")]
    pub timeout: Millis,
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    #[serde(default)]
    pub format: Option<Format>,
    // file
    #[serde(default)]
    pub path: Option<PathBuf>,
    // http
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, Secret>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub ca_cert_path: Option<PathBuf>,
    #[serde(default)]
    pub client_cert_path: Option<PathBuf>,
    #[serde(default)]
    pub client_key_path: Option<PathBuf>,
    // s3
    #[serde(default)]
    pub bucket: Option<String>,
    #[serde(default)]
    pub item: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub force_path_style: bool,
    // relay
    /// The evaluation key this relay presents to its upstream relay.
    #[serde(default)]
    pub api_key: Option<Secret>,
    // sql
    /// The table in GoFastr's schema (default `feature_flags`).
    #[serde(default)]
    pub table: Option<String>,
    /// A `SELECT` returning GoFastr's columns, for other schemas (instead of `table`).
    #[serde(default)]
    pub query: Option<String>,
    /// The database password, when not in `url` (else `PGPASSWORD`).
    #[serde(default)]
    pub password: Option<Secret>,
    /// PostgreSQL: `LISTEN` on this channel and refresh on every notification.
    #[serde(default)]
    pub notify_channel: Option<String>,
    // azblob
    #[serde(default)]
    pub account: Option<String>,
    #[serde(default)]
    pub container: Option<String>,
}

fn default_timeout() -> Millis {
    Millis(10_000)
}

fn default_max_bytes() -> u64 {
    64 * 1024 * 1024
}

impl RetrieverConfig {
    pub fn file(path: impl Into<PathBuf>) -> Self {
        RetrieverConfig {
            kind: RetrieverKind::File,
            timeout: default_timeout(),
            max_bytes: default_max_bytes(),
            format: None,
            path: Some(path.into()),
            url: None,
            method: None,
            headers: Default::default(),
            body: None,
            ca_cert_path: None,
            client_cert_path: None,
            client_key_path: None,
            bucket: None,
            item: None,
            region: None,
            endpoint: None,
            force_path_style: false,
            api_key: None,
            table: None,
            query: None,
            password: None,
            notify_channel: None,
            account: None,
            container: None,
        }
    }
}

/// A configured value that must never reach a log line or an error message.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AuthorizedKeys {
    pub evaluation: Vec<EvaluationKey>,
    pub admin: Vec<Secret>,
}

/// An evaluation key, optionally bound to one environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvaluationKey {
    pub key: Secret,
    pub env: Option<String>,
}

impl<'de> Deserialize<'de> for EvaluationKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Bound {
            key: Secret,
            #[serde(default)]
            env: Option<String>,
        }
        // A plain string, or `{key, env}`; untagged enums give poor messages, so dispatch here.
        match Value::deserialize(d)? {
            Value::String(s) => Ok(EvaluationKey {
                key: Secret(s),
                env: None,
            }),
            v @ Value::Object(_) => {
                let b = Bound::deserialize(v).map_err(serde::de::Error::custom)?;
                Ok(EvaluationKey {
                    key: b.key,
                    env: b.env.filter(|e| !e.is_empty()),
                })
            }
            _ => Err(serde::de::Error::custom(
                "expected a key string or a {key, env} map",
            )),
        }
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct AuthConfig {
    pub jwt_secret: Option<Secret>,
    /// Seconds a token from `POST /client/auth` stays valid.
    pub token_ttl: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            jwt_secret: None,
            token_ttl: 3600,
        }
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct CorsConfig {
    pub allowed_origins: Vec<String>,
}

impl Default for CorsConfig {
    fn default() -> Self {
        CorsConfig {
            allowed_origins: vec!["*".into()],
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct FipsConfig {
    pub strict: bool,
}

/// Change streams for browsers (`http-api.md`, stream tickets).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct StreamsConfig {
    /// How long a stream ticket in a bulk answer's `eventStreams` URL stays valid (at most;
    /// at least half of it).
    pub ticket_ttl: Millis,
    /// The `inactivityDelaySec` hint announced in `eventStreams`.
    pub inactivity_delay_sec: u64,
}

impl Default for StreamsConfig {
    fn default() -> Self {
        StreamsConfig {
            ticket_ttl: Millis(600_000),
            inactivity_delay_sec: 120,
        }
    }
}

/// `tracing:`: trace export. The standard `OTEL_*` variables apply too.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct TracingConfig {
    pub otlp: OtlpConfig,
}

/// `tracing.otlp`: OTLP/HTTP (protobuf) export of spans.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct OtlpConfig {
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
pub enum NotifierKind {
    /// POST the change as JSON, signed with `secret` when set.
    Webhook,
    /// POST a readable message to a Slack incoming webhook.
    Slack,
    /// One structured log line.
    Log,
}

impl NotifierKind {
    pub const fn as_str(self) -> &'static str {
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
pub struct NotifierConfig {
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

/// What went wrong with the configuration. Messages name the key or variable at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("command-line flag --set {key}: {message}")]
    Flag { key: String, message: String },
    #[error("config key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// The longest token lifetime accepted: one year.
pub const TOKEN_TTL_MAX: u64 = 366 * 24 * 3600;

/// A loaded configuration plus the notes about it that should be logged once logging is up.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

impl Config {
    /// Load the layers: `file` (if any), then `env` (pairs of name and value, usually
    /// `std::env::vars()`), then `overrides` from the command line.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &[Override],
    ) -> Result<Loaded, ConfigError> {
        let mut tree = match file {
            Some(path) => read_file(path)?,
            None => Value::Object(Default::default()),
        };
        let mut warnings = Vec::new();
        let origins = overlay::apply_env(&mut tree, env, &mut warnings)?;
        for o in overrides {
            overlay::set(&mut tree, &o.path, o.value.clone());
        }
        let config = report::deserialize(tree, &origins)?;
        config.validate()?;
        Ok(Loaded { config, warnings })
    }

    /// Checks serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(secret) = &self.auth.jwt_secret
            && secret.expose().len() < 32
        {
            return Err(invalid(
                "auth.jwtSecret",
                "must be at least 32 bytes long for HS256",
            ));
        }
        // A token must expire, and within a span that cannot overflow a timestamp.
        if !(1..=TOKEN_TTL_MAX).contains(&self.auth.token_ttl) {
            return Err(invalid(
                "auth.tokenTtl",
                format!("must be between 1 and {TOKEN_TTL_MAX} seconds (one year)"),
            ));
        }
        if self.server.read_header_timeout.0 <= 0 {
            return Err(invalid(
                "server.readHeaderTimeout",
                "must be greater than 0",
            ));
        }
        if self.server.max_header_bytes < 8192 {
            return Err(invalid("server.maxHeaderBytes", "must be at least 8192"));
        }
        if !(2_000..=86_400_000).contains(&self.streams.ticket_ttl.0) {
            return Err(invalid("streams.ticketTtl", "must be between 2s and 24h"));
        }
        if self.max_request_body_bytes == 0 {
            return Err(invalid("maxRequestBodyBytes", "must be greater than 0"));
        }
        if self.retrievers.is_empty() {
            return Err(invalid("retrievers", "at least one retriever is required"));
        }
        for (i, r) in self.retrievers.iter().enumerate() {
            let at = |field: &str| format!("retrievers[{i}].{field}");
            let need = |present: bool, field: &str| {
                if present {
                    Ok(())
                } else {
                    Err(invalid(
                        at(field),
                        format!("is required for kind {}", r.kind.as_str()),
                    ))
                }
            };
            match r.kind {
                RetrieverKind::File => need(r.path.is_some(), "path")?,
                RetrieverKind::Http => {
                    need(r.url.is_some(), "url")?;
                    if r.client_cert_path.is_some() != r.client_key_path.is_some() {
                        return Err(invalid(
                            at("clientCertPath"),
                            "clientCertPath and clientKeyPath must be given together",
                        ));
                    }
                }
                RetrieverKind::S3 => {
                    need(r.bucket.is_some(), "bucket")?;
                    need(r.item.is_some(), "item")?;
                }
                RetrieverKind::Sql => {
                    need(r.url.is_some(), "url")?;
                    crate::retriever::check_sql_config(r)
                        .map_err(|(key, m)| invalid(at(key), m))?;
                }
                RetrieverKind::Azblob => {
                    need(r.container.is_some(), "container")?;
                    need(r.item.is_some(), "item")?;
                }
                RetrieverKind::Gcs => {
                    need(r.bucket.is_some(), "bucket")?;
                    need(r.item.is_some(), "item")?;
                }
                RetrieverKind::Relay => {
                    need(r.url.is_some(), "url")?;
                    if r.api_key.as_ref().is_some_and(|k| k.expose().is_empty()) {
                        return Err(invalid(at("apiKey"), "empty key"));
                    }
                }
            }
            if r.max_bytes == 0 {
                return Err(invalid(at("maxBytes"), "must be greater than 0"));
            }
            if r.timeout.0 <= 0 {
                return Err(invalid(at("timeout"), "must be greater than 0"));
            }
            checks::retriever(i, r)?;
        }
        if let Some(ep) = &self.tracing.otlp.endpoint {
            let ok = reqwest::Url::parse(ep)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
            if !ok {
                return Err(invalid(
                    "tracing.otlp.endpoint",
                    "must be an http:// or https:// URL",
                ));
            }
        }
        if let Some(r) = self.tracing.otlp.sample_ratio
            && !(0.0..=1.0).contains(&r)
        {
            return Err(invalid(
                "tracing.otlp.sampleRatio",
                "must be between 0 and 1",
            ));
        }
        for (i, n) in self.notifiers.iter().enumerate() {
            let at = |field: &str| format!("notifiers[{i}].{field}");
            let needs_url = n.kind != NotifierKind::Log;
            match (&n.url, needs_url) {
                (None, true) => {
                    return Err(invalid(
                        at("url"),
                        format!("is required for kind {}", n.kind.as_str()),
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
            if n.secret.is_some() && n.kind != NotifierKind::Webhook {
                return Err(invalid(
                    at("secret"),
                    "signs webhook bodies only (kind webhook)",
                ));
            }
            if n.queue_size == 0 || n.queue_size > 100_000 {
                return Err(invalid(at("queueSize"), "must be between 1 and 100000"));
            }
            if n.timeout.0 <= 0 {
                return Err(invalid(at("timeout"), "must be greater than 0"));
            }
            if n.max_retries > 20 {
                return Err(invalid(at("maxRetries"), "must be at most 20"));
            }
        }
        for (i, k) in self.authorized_keys.evaluation.iter().enumerate() {
            if k.key.expose().is_empty() {
                return Err(invalid(
                    format!("authorizedKeys.evaluation[{i}]"),
                    "empty key",
                ));
            }
        }
        for (i, k) in self.authorized_keys.admin.iter().enumerate() {
            if k.expose().is_empty() {
                return Err(invalid(format!("authorizedKeys.admin[{i}]"), "empty key"));
            }
        }
        if let Some(fleet) = &self.fleet {
            fleet.validate()?;
        }
        if !matches!(
            self.log_level.as_str(),
            "trace" | "debug" | "info" | "warn" | "error"
        ) {
            return Err(invalid(
                "logLevel",
                format!(
                    "unknown level {:?} (trace, debug, info, warn, error)",
                    self.log_level
                ),
            ));
        }
        Ok(())
    }
}

/// Read a config file as a JSON tree. YAML errors keep their line and column.
fn read_file(path: &Path) -> Result<Value, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_tree(path, &text)
}

/// Parse config text (no environment, no overrides): what the config fuzz target drives.
/// `name` decides the format the same way a file name does (`.json` is JSON, else YAML).
pub fn parse_text(name: &str, text: &str) -> Result<Config, ConfigError> {
    let tree = parse_tree(Path::new(name), text)?;
    let config = report::deserialize(tree, &[])?;
    config.validate()?;
    Ok(config)
}

fn parse_tree(path: &Path, text: &str) -> Result<Value, ConfigError> {
    let syntax = |message: String| ConfigError::Syntax {
        path: path.to_owned(),
        message,
    };
    let is_json = Format::from_name(&path.to_string_lossy()) == Some(Format::Json);
    let tree: Option<Value> = if is_json {
        serde_json::from_str(text).map_err(|e| syntax(e.to_string()))?
    } else if text.trim().is_empty() {
        None
    } else {
        serde_saphyr::from_str(text)
            .map_err(|e| syntax(e.to_string().lines().next().unwrap_or_default().to_owned()))?
    };
    match tree {
        None => Ok(Value::Object(Default::default())),
        Some(v @ Value::Object(_)) => Ok(v),
        Some(_) => Err(syntax("the top level must be a map of settings".into())),
    }
}

#[cfg(test)]
mod tests;
