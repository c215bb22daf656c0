//! Turning the merged tree into a [`Config`], with errors that name the key (and the variable
//! that set it) but never repeat a credential.
//!
//! serde's messages quote the value at fault (`invalid type: integer `123456789012`, expected
//! a string`). Where the key's schema holds a credential (a `Secret` anywhere under it), only
//! the expectation is kept.

use serde_json::Value;
use serde_path_to_error::Segment;

use super::schema;
use super::{AuthorizedKeys, Config, ConfigError, invalid};

/// Deserialize `tree`; `origins` pairs key paths with the variables that set them.
pub(super) fn deserialize(
    tree: Value,
    origins: &[(String, String)],
) -> Result<Config, ConfigError> {
    serde_path_to_error::deserialize(tree).map_err(|e| {
        let key = e.path().to_string();
        let secret = holds_secret(e.path());
        let mut message = e.into_inner().to_string();
        if secret {
            message = scrub(&message);
        }
        if let Some((_, var)) = origins.iter().find(|(path, _)| *path == key) {
            message = format!("(set by {var}) {message}");
        }
        invalid(key, message)
    })
}

/// One line at start saying whether evaluation needs a key: an operator must be able to see
/// from the log that a relay is open, not find out from its traffic.
pub(crate) fn log_access(keys: &AuthorizedKeys) {
    let admin_keys = keys.admin.len();
    if keys.evaluation.is_empty() {
        tracing::warn!(
            evaluation = "open",
            admin_keys,
            "evaluation is open: no authorizedKeys.evaluation configured, so OFREP, the sync API \
             and the streams answer without a key"
        );
    } else {
        tracing::info!(
            evaluation = "key required",
            evaluation_keys = keys.evaluation.len(),
            admin_keys,
            "evaluation requires one of the configured keys"
        );
    }
}

/// Whether the schema at `path` (as far as it resolves) holds a credential.
fn holds_secret(path: &serde_path_to_error::Path) -> bool {
    let mut node = schema::root();
    for segment in path.iter() {
        let next = match segment {
            Segment::Map { key } if schema::secret_name(key) => return true,
            Segment::Map { key } => schema::variants(node).into_iter().find_map(|v| {
                v.get("properties")
                    .and_then(|p| p.get(key.as_str()))
                    .or_else(|| v.get("additionalProperties").filter(|a| a.is_object()))
            }),
            Segment::Seq { .. } => schema::variants(node)
                .into_iter()
                .find_map(|v| v.get("items")),
            Segment::Enum { .. } | Segment::Unknown => None,
        };
        match next {
            Some(n) => node = n,
            None => break,
        }
    }
    schema::holds_secret(node)
}

/// Keep what was expected, drop what was found.
fn scrub(message: &str) -> String {
    // These quote a key name, not a value.
    if message.starts_with("unknown field") || message.starts_with("missing field") {
        return message.to_owned();
    }
    const HIDDEN: &str = "invalid value (not shown: a credential)";
    match message.find("expected ") {
        Some(at) => {
            let expected = &message[at..];
            let expected = expected.split(", found").next().unwrap_or(expected);
            format!("{HIDDEN}; {expected}")
        }
        None => HIDDEN.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_keeps_the_expectation_only() {
        let m = scrub("invalid type: integer `123456789012`, expected a string");
        assert!(!m.contains("123456789012"), "{m}");
        assert!(m.contains("expected a string"), "{m}");
        assert_eq!(
            scrub("unknown field `kye`, expected `key` or `env`"),
            "unknown field `kye`, expected `key` or `env`"
        );
        assert!(!scrub("bad thing 42 happened").contains("42"));
    }
}
