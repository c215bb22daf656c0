//! Layering environment variables and command-line flags onto the config tree.
//!
//! `FLAGRELAY_SERVER_PORT=8080` sets `server.port`; `FLAGRELAY_AUTHORIZEDKEYS_ADMIN=k1,k2`
//! sets a list; `FLAGRELAY_RETRIEVERS_0_URL=…` sets a field of a list entry;
//! `FLAGRELAY_RETRIEVERS_0_HEADERS_X_API_KEY=…` sets header `x-api-key`. Variable names are
//! upper case while keys are camelCase, so each segment is resolved case-insensitively against
//! the schema of the serde model ([`super::schema`]); the schema's type of the key decides how
//! the text becomes a value. `--set key.path=value` goes through the same two steps.

use serde_json::{Map, Value};

use super::ConfigError;
use super::schema::{self, MapKeys, ResolveError, Step};

pub(super) const ENV_PREFIX: &str = "FLAGRELAY_";

/// `FLAGRELAY_` variables that belong to the command line rather than to the config tree.
const COMMAND_LINE_VARS: &[&str] = &["FLAGRELAY_CONFIG"];

/// A value set from the command line, at a key path.
#[derive(Debug, Clone)]
pub(crate) struct Override {
    pub(crate) path: Vec<Step>,
    pub value: Value,
}

impl Override {
    /// A named flag's value at its canonical dotted path (`server.port`); a test checks that
    /// every path the command line uses is a key of the schema.
    pub(crate) fn new(path: &str, value: impl Into<Value>) -> Self {
        Override {
            path: Step::parse_path(path),
            value: value.into(),
        }
    }

    /// `--set KEY=VALUE`: the key case-insensitive (`server.port`, `retrievers[0].url`,
    /// `retrievers.0.headers.X-Api-Key`), the value read the way its variable's would be.
    pub(crate) fn from_assignment(text: &str) -> Result<Self, ConfigError> {
        let (key, raw) = text.split_once('=').ok_or_else(|| ConfigError::Flag {
            key: text.split('=').next().unwrap_or_default().to_owned(),
            message: "expected KEY=VALUE (e.g. --set server.port=8080)".into(),
        })?;
        let flag_err = |message: String| ConfigError::Flag {
            key: key.to_owned(),
            message,
        };
        let dotted = key.replace('[', ".").replace(']', "");
        let segments: Vec<&str> = dotted.split('.').collect();
        let (path, node) = schema::resolve(&segments, MapKeys::Flag).map_err(|e| match e {
            ResolveError::NotOurs(first) => {
                flag_err(format!("`{first}` is not a configuration key"))
            }
            ResolveError::Invalid(m) => flag_err(m),
        })?;
        let value = convert(node, raw).map_err(flag_err)?;
        Ok(Override { path, value })
    }

    /// The key path as errors name it.
    #[cfg(test)]
    pub(crate) fn key(&self) -> String {
        schema::display(&self.path)
    }
}

/// Apply every `FLAGRELAY_…` variable of `env` to `tree`. Returns which key each variable
/// set, so an error about the value can name the variable too.
pub(super) fn apply_env(
    tree: &mut Value,
    env: impl IntoIterator<Item = (String, String)>,
    warnings: &mut Vec<String>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX) && !COMMAND_LINE_VARS.contains(&k.as_str()))
        .collect();
    // Deterministic order, so `…_RETRIEVERS_0_KIND` and `…_RETRIEVERS_0_PATH` build one entry
    // whatever order the process environment lists them in.
    vars.sort();
    let mut origins = Vec::new();
    for (var, raw) in vars {
        let segments: Vec<&str> = var[ENV_PREFIX.len()..].split('_').collect();
        let (path, node) = match schema::resolve(&segments, MapKeys::Env) {
            Ok(found) => found,
            // Not ours: tools use names like `FLAGRELAY_BIN`; a warning, not fatal.
            Err(ResolveError::NotOurs(first)) => {
                warnings.push(format!(
                    "ignoring environment variable {var}: `{first}` is not a configuration key"
                ));
                continue;
            }
            Err(ResolveError::Invalid(message)) => return Err(env_err(&var, message)),
        };
        let value = convert(node, &raw).map_err(|m| env_err(&var, m))?;
        set(tree, &path, value);
        origins.push((schema::display(&path), var));
    }
    Ok(origins)
}

fn env_err(var: &str, message: String) -> ConfigError {
    ConfigError::Env {
        var: var.to_owned(),
        message,
    }
}

/// Text from a variable or `--set` as the value the schema node takes. Durations stay text
/// (their type takes `"30s"`); lists are comma-separated.
pub(crate) fn convert(node: &Value, raw: &str) -> Result<Value, String> {
    if let Some(items) = schema::variants(node).iter().find_map(|v| v.get("items")) {
        if !schema::settable_whole(items) {
            return Err(
                "is a list of maps: set its entries by index (e.g. FLAGRELAY_RETRIEVERS_0_URL \
                 or --set retrievers.0.url=…)"
                    .into(),
            );
        }
        let list = raw
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| scalar(items, s))
            .collect::<Result<Vec<_>, _>>()?;
        if list.is_empty() && schema::holds_secret(items) {
            // An empty value would silently remove every credential the file configures
            // (and so open what they protect).
            return Err(
                "is empty, which would remove every credential of this list; \
                 leave it unset to keep the configured ones, or give at least one"
                    .into(),
            );
        }
        return Ok(Value::Array(list));
    }
    if !schema::settable_whole(node) {
        return Err("is a map: set each key under it with its own variable or --set".into());
    }
    scalar(node, raw)
}

fn scalar(node: &Value, raw: &str) -> Result<Value, String> {
    let alternatives = schema::variants(node);
    let has = |t: &str| alternatives.iter().any(|v| schema::is_type(v, t));
    if has("string") {
        Ok(Value::String(raw.to_owned()))
    } else if has("boolean") {
        match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(Value::Bool(true)),
            "false" | "0" | "no" | "" => Ok(Value::Bool(false)),
            _ => Err("expected true or false".into()),
        }
    } else if has("integer") {
        let t = raw.trim();
        t.parse::<u64>()
            .map(Value::from)
            .or_else(|_| t.parse::<i64>().map(Value::from))
            .map_err(|_| "expected a whole number".into())
    } else if has("number") {
        raw.trim()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| "expected a number".into())
    } else {
        Err("cannot be set from text".into())
    }
}

/// Set `value` at `path`, creating maps and list entries on the way. An index grows a list
/// with empty maps, so `retrievers.1.url` works on a one-entry list; [`schema::resolve`]
/// bounds the indexes that come from outside.
pub(crate) fn set(tree: &mut Value, path: &[Step], value: Value) {
    match path.split_first() {
        None => *tree = value,
        Some((Step::Index(index), rest)) => {
            if !tree.is_array() {
                *tree = Value::Array(Vec::new());
            }
            let list = tree.as_array_mut().expect("made an array above");
            while list.len() <= *index {
                list.push(Value::Object(Map::new()));
            }
            set(&mut list[*index], rest, value);
        }
        Some((Step::Key(key), rest)) => {
            if !tree.is_object() {
                *tree = Value::Object(Map::new());
            }
            let map = tree.as_object_mut().expect("made an object above");
            set(map.entry(key.clone()).or_insert(Value::Null), rest, value);
        }
    }
}
