//! `flagd.*`: the optional listener that speaks flagd's evaluation protocol (src/flagd/).

use schemars::JsonSchema;
use serde::Deserialize;

use super::{ConfigError, invalid};

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub(crate) struct FlagdConfig {
    /// Interface of the flagd listener; `server.host` when absent.
    pub host: Option<String>,
    /// The listener is off unless a port is set (flagd's own default is 8013).
    pub port: Option<u16>,
    /// Serve callers without a credential even when evaluation keys are configured (the Node
    /// flagd provider cannot send metadata). Logged at start.
    pub allow_unauthenticated: bool,
    /// The environment of unauthenticated callers, which their context cannot override.
    pub environment: Option<String>,
}

impl FlagdConfig {
    pub(crate) fn validate(&self, server_port: u16) -> Result<(), ConfigError> {
        if self.host.as_deref().is_some_and(|h| h.trim().is_empty()) {
            return Err(invalid("flagd.host", "must not be empty"));
        }
        if let Some(port) = self.port
            && port != 0
            && port == server_port
        {
            return Err(invalid(
                "flagd.port",
                format!("{port} is already server.port; the flagd listener needs its own port"),
            ));
        }
        if let Some(env) = &self.environment {
            if env.is_empty() {
                return Err(invalid("flagd.environment", "must not be empty"));
            }
            if !self.allow_unauthenticated {
                return Err(invalid(
                    "flagd.environment",
                    "only applies to unauthenticated callers: set flagd.allowUnauthenticated: true, or bind the environment to an evaluation key",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, parse_text};

    fn err(text: &str) -> String {
        parse_text("c.yaml", text).unwrap_err().to_string()
    }

    #[test]
    fn off_by_default_and_validated_with_the_key_named() {
        assert!(Config::default().flagd.port.is_none());
        let c = parse_text(
            "c.yaml",
            "flagd: {port: 8013, allowUnauthenticated: true, environment: prod}",
        )
        .unwrap();
        assert_eq!(c.flagd.port, Some(8013));
        assert!(err("flagd: {port: 8013, environment: prod}").contains("flagd.environment"));
        assert!(err("flagd: {port: 1031}").contains("flagd.port"));
        assert!(err("flagd: {port: 8013, host: ''}").contains("flagd.host"));
        assert!(err("flagd: {port: 8013, bogus: 1}").contains("flagd"));
        assert!(err("flagd: {port: 70000}").contains("flagd.port"));
    }
}
