//! Configuration: defaults < file (YAML or JSON) < `FLAGRELAY_…` environment < command line.
//!
//! All three layers are merged as JSON values ([`overlay`]) and deserialized once, so a bad
//! value fails the same way wherever it came from, and the error names the key
//! (`server.port: invalid type…`). Keys follow `shared/spec/config.md`.

mod checks;
mod duration;
mod flagd;
mod fleet;
mod outbound;
mod overlay;
mod report;
mod retrievers;
pub(crate) use report::log_access;
pub(crate) mod schema;

use std::fmt;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

pub use duration::Millis;
pub(crate) use flagd::FlagdConfig;
pub(crate) use fleet::{FleetConfig, RedisConfig, host_port, parse_url};
pub(crate) use outbound::{NotifierConfig, NotifierKind, OtlpConfig, TracingConfig};
pub(crate) use overlay::Override;
pub use retrievers::{RetrieverConfig, RetrieverKind};

use crate::parse::Format;

/// The whole configuration of one relay process.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Config {
    pub server: ServerConfig,
    pub(crate) log_level: String,
    pub(crate) log_format: LogFormat,
    pub(crate) environment: Option<String>,
    pub(crate) rollout_salt: Option<String>,
    pub polling_interval: Millis,
    pub(crate) enable_polling_jitter: bool,
    pub(crate) start_with_retriever_error: bool,
    pub(crate) persistent_flag_configuration_file: Option<PathBuf>,
    pub retrievers: Vec<RetrieverConfig>,
    pub authorized_keys: AuthorizedKeys,
    pub auth: AuthConfig,
    pub(crate) cors: CorsConfig,
    pub(crate) max_request_body_bytes: usize,
    pub(crate) fips: FipsConfig,
    /// Fleet mode (Redis); `None` is a standalone relay.
    pub(crate) fleet: Option<FleetConfig>,
    /// Where changes of the served flag set are announced (`notify`).
    pub(crate) notifiers: Vec<NotifierConfig>,
    /// OpenTelemetry traces (`telemetry`).
    pub(crate) tracing: TracingConfig,
    pub(crate) streams: StreamsConfig,
    pub(crate) flagd: FlagdConfig,
    /// A refresh that would remove more than this share of the flags (in percent) fails,
    /// unless forced by an admin refresh with `?force=true`; 100 turns the guard off.
    pub(crate) max_flag_removal_percent: u8,
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
            flagd: FlagdConfig::default(),
            max_flag_removal_percent: 50,
        }
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct ServerConfig {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) monitoring_port: Option<u16>,
    /// How long in-flight requests may take to finish after SIGTERM/SIGINT.
    pub shutdown_grace_period: Millis,
    /// After SIGTERM/SIGINT, how long the relay keeps accepting and serving while `/ready`
    /// answers 503, so load balancers stop routing to it before its listener closes.
    pub(crate) shutdown_delay: Millis,
    /// Open SSE streams allowed at once; more get 503 on the stream endpoints only.
    pub(crate) max_sse_clients: usize,
    /// Time a client has to send a request's headers (a slowloris guard); also how long an
    /// idle keep-alive connection stays open waiting for its next request.
    pub(crate) read_header_timeout: Millis,
    /// Largest request head (request line + headers) accepted; larger gets 431.
    pub(crate) max_header_bytes: usize,
    /// Open connections on the API port beyond which a new one is closed at once; unset means
    /// derived from the descriptor limit (see `http::conn::default_max_connections`).
    pub(crate) max_connections: Option<usize>,
    /// Time a client has to send a request's whole body, from when the handler starts reading.
    pub(crate) read_body_timeout: Millis,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "0.0.0.0".into(),
            port: 1031,
            monitoring_port: None,
            shutdown_grace_period: Millis(10_000),
            shutdown_delay: Millis(5_000),
            max_sse_clients: 10_000,
            read_header_timeout: Millis(10_000),
            max_header_bytes: 64 * 1024,
            max_connections: None,
            read_body_timeout: Millis(10_000),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    Json,
    Text,
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
pub(crate) struct CorsConfig {
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
pub(crate) struct FipsConfig {
    pub strict: bool,
}

/// Change streams for browsers (`http-api.md`, stream tickets).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub(crate) struct StreamsConfig {
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
pub(crate) const TOKEN_TTL_MAX: u64 = 366 * 24 * 3600;

/// A loaded configuration plus the notes about it that should be logged once logging is up.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

impl Config {
    /// Load the layers: `file` (if any), then `env` (pairs of name and value, usually
    /// `std::env::vars()`), then `overrides` from the command line.
    pub(crate) fn load(
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
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
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
        if self.server.read_body_timeout.0 <= 0 {
            return Err(invalid("server.readBodyTimeout", "must be greater than 0"));
        }
        if self.server.max_connections == Some(0) {
            return Err(invalid("server.maxConnections", "must be greater than 0"));
        }
        if self.server.max_header_bytes < 8192 {
            return Err(invalid("server.maxHeaderBytes", "must be at least 8192"));
        }
        if !(2_000..=86_400_000).contains(&self.streams.ticket_ttl.0) {
            return Err(invalid("streams.ticketTtl", "must be between 2s and 24h"));
        }
        if self.max_flag_removal_percent > 100 {
            return Err(invalid(
                "maxFlagRemovalPercent",
                "must be between 0 and 100",
            ));
        }
        if self.max_request_body_bytes == 0 {
            return Err(invalid("maxRequestBodyBytes", "must be greater than 0"));
        }
        self.flagd.validate(self.server.port)?;
        if self.retrievers.is_empty() {
            return Err(invalid("retrievers", "at least one retriever is required"));
        }
        for (i, r) in self.retrievers.iter().enumerate() {
            r.validate(i)?;
        }
        self.tracing.validate()?;
        for (i, n) in self.notifiers.iter().enumerate() {
            n.validate(i)?;
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
