//! Layering environment variables and command-line flags onto the config tree.
//!
//! `FLAGRELAY_SERVER_PORT=8080` sets `server.port`; `FLAGRELAY_AUTHORIZEDKEYS_ADMIN=k1,k2`
//! sets a list; `FLAGRELAY_RETRIEVERS_0_URL=…` sets a field of a list entry. Variable names are
//! upper case while keys are camelCase, so each segment is matched against the known key names.

use serde_json::{Map, Value};

use super::ConfigError;
use super::duration::parse_millis;

pub const ENV_PREFIX: &str = "FLAGRELAY_";

/// A value set from the command line, at a key path.
#[derive(Debug, Clone)]
pub struct Override {
    pub path: Vec<String>,
    pub value: Value,
}

impl Override {
    pub fn new(path: &str, value: impl Into<Value>) -> Self {
        Override {
            path: path.split('.').map(String::from).collect(),
            value: value.into(),
        }
    }
}

/// Every key name of the schema, in its canonical spelling.
const KEYS: &[&str] = &[
    "server",
    "host",
    "port",
    "monitoringPort",
    "shutdownGracePeriod",
    "logLevel",
    "logFormat",
    "environment",
    "rolloutSalt",
    "pollingInterval",
    "enablePollingJitter",
    "startWithRetrieverError",
    "persistentFlagConfigurationFile",
    "retrievers",
    "kind",
    "timeout",
    "maxBytes",
    "format",
    "path",
    "url",
    "method",
    "headers",
    "body",
    "caCertPath",
    "clientCertPath",
    "clientKeyPath",
    "bucket",
    "item",
    "region",
    "endpoint",
    "forcePathStyle",
    "authorizedKeys",
    "evaluation",
    "admin",
    "key",
    "env",
    "auth",
    "jwtSecret",
    "tokenTtl",
    "cors",
    "allowedOrigins",
    "maxRequestBodyBytes",
    "fips",
    "strict",
];

/// Top-level keys: a `FLAGRELAY_` variable whose first segment is none of these is not ours
/// (tools use names like `FLAGRELAY_BIN`), so it is skipped with a warning rather than fatal.
const TOP: &[&str] = &[
    "server",
    "logLevel",
    "logFormat",
    "environment",
    "rolloutSalt",
    "pollingInterval",
    "enablePollingJitter",
    "startWithRetrieverError",
    "persistentFlagConfigurationFile",
    "retrievers",
    "authorizedKeys",
    "auth",
    "cors",
    "maxRequestBodyBytes",
    "fips",
];

enum Shape {
    Bool,
    Int,
    List,
    Text,
}

fn shape(leaf: &str) -> Shape {
    match leaf {
        "enablePollingJitter" | "startWithRetrieverError" | "forcePathStyle" | "strict" => {
            Shape::Bool
        }
        "port"
        | "monitoringPort"
        | "maxSseClients"
        | "maxBytes"
        | "tokenTtl"
        | "maxRequestBodyBytes" => Shape::Int,
        "evaluation" | "admin" | "allowedOrigins" => Shape::List,
        _ => Shape::Text,
    }
}

fn canonical(segment: &str) -> Option<&'static str> {
    KEYS.iter()
        .copied()
        .find(|k| k.eq_ignore_ascii_case(segment))
}

/// Apply every `FLAGRELAY_…` variable of `env` to `tree`.
pub fn apply_env(
    tree: &mut Value,
    env: impl IntoIterator<Item = (String, String)>,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .collect();
    // Deterministic order, so `…_RETRIEVERS_0_KIND` and `…_RETRIEVERS_0_PATH` build one entry
    // whatever order the process environment lists them in.
    vars.sort();
    for (var, raw) in vars {
        let rest = &var[ENV_PREFIX.len()..];
        let segments: Vec<&str> = rest.split('_').collect();
        let first = segments[0];
        if !TOP.iter().any(|t| t.eq_ignore_ascii_case(first)) {
            warnings.push(format!(
                "ignoring environment variable {var}: `{}` is not a configuration key",
                first.to_ascii_lowercase()
            ));
            continue;
        }
        let mut path = Vec::with_capacity(segments.len());
        let mut under_headers = false;
        for seg in &segments {
            if seg.is_empty() {
                return Err(env_err(&var, "empty segment in the name"));
            }
            if under_headers {
                // Header names are free-form; HTTP treats them case-insensitively anyway.
                path.push(seg.to_ascii_lowercase().replace("__", "-"));
            } else if seg.bytes().all(|b| b.is_ascii_digit()) {
                path.push((*seg).to_owned());
            } else {
                let key = canonical(seg).ok_or_else(|| {
                    env_err(
                        &var,
                        &format!("`{}` is not a configuration key", seg.to_ascii_lowercase()),
                    )
                })?;
                under_headers = key == "headers";
                path.push(key.to_owned());
            }
        }
        let leaf = path.last().map(String::as_str).unwrap_or_default();
        let value = match shape(leaf) {
            Shape::Bool => match raw.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Value::Bool(true),
                "false" | "0" | "no" | "" => Value::Bool(false),
                _ => return Err(env_err(&var, "expected true or false")),
            },
            Shape::Int => raw
                .trim()
                .parse::<u64>()
                .map(Value::from)
                .map_err(|_| env_err(&var, "expected a whole number"))?,
            Shape::List => Value::Array(
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::String(s.to_owned()))
                    .collect(),
            ),
            Shape::Text
                if matches!(
                    leaf,
                    "pollingInterval" | "timeout" | "shutdownGracePeriod" | "readHeaderTimeout"
                ) =>
            {
                parse_millis(&raw).map_err(|m| env_err(&var, &m))?.into()
            }
            Shape::Text => Value::String(raw),
        };
        set(tree, &path, value);
    }
    Ok(())
}

fn env_err(var: &str, message: &str) -> ConfigError {
    ConfigError::Env {
        var: var.to_owned(),
        message: message.to_owned(),
    }
}

/// Set `value` at `path`, creating maps and list entries on the way. A numeric segment indexes a
/// list (growing it with empty maps), so `retrievers.1.url` works on a one-entry list.
pub fn set(tree: &mut Value, path: &[String], value: Value) {
    let Some((head, rest)) = path.split_first() else {
        *tree = value;
        return;
    };
    if let Ok(index) = head.parse::<usize>() {
        if !tree.is_array() {
            *tree = Value::Array(Vec::new());
        }
        let list = tree.as_array_mut().expect("made an array above");
        while list.len() <= index {
            list.push(Value::Object(Map::new()));
        }
        set(&mut list[index], rest, value);
    } else {
        if !tree.is_object() {
            *tree = Value::Object(Map::new());
        }
        let map = tree.as_object_mut().expect("made an object above");
        set(map.entry(head.clone()).or_insert(Value::Null), rest, value);
    }
}
