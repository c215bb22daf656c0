//! `fleet:`: fleet mode (shared/spec/fleet.md). Absent means a standalone relay.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;

use super::{ConfigError, Millis, Secret, invalid};

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct FleetConfig {
    /// Namespace of every Redis key and channel: `flagrelay:{name}:…`.
    pub name: String,
    pub redis: RedisConfig,
    /// How long an admin refresh waits for every live replica to serve the new version.
    #[serde(default = "default_convergence_timeout")]
    pub convergence_timeout: Millis,
    /// The leader's lease: renewed every third of it; a dead leader is replaced within two.
    #[serde(default = "default_lease_ttl")]
    pub lease_ttl: Millis,
}

#[derive(Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub(crate) struct RedisConfig {
    /// `redis://[user@]host:port[/db]` or `rediss://…` (TLS). With `sentinel`, the host part
    /// may be left out (`redis://user@/0`): the scheme, user and database still apply.
    pub url: Option<String>,
    pub password: Option<Secret>,
    pub sentinel: Option<SentinelConfig>,
    pub ca_cert_path: Option<PathBuf>,
    pub client_cert_path: Option<PathBuf>,
    pub client_key_path: Option<PathBuf>,
}

/// Debug without the credentials: a password in the URL is redacted like `password` itself.
impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = self.url.as_deref().map(|u| match url::Url::parse(u) {
            Ok(mut parsed) if parsed.password().is_some() => {
                let _ = parsed.set_password(Some("<redacted>"));
                parsed.to_string()
            }
            Ok(_) => u.to_owned(),
            Err(_) => "<unparsed>".to_owned(),
        });
        f.debug_struct("RedisConfig")
            .field("url", &url)
            .field("password", &self.password)
            .field("sentinel", &self.sentinel)
            .field("ca_cert_path", &self.ca_cert_path)
            .field("client_cert_path", &self.client_cert_path)
            .field("client_key_path", &self.client_key_path)
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct SentinelConfig {
    pub master_name: String,
    pub nodes: Vec<String>,
}

fn default_convergence_timeout() -> Millis {
    Millis(10_000)
}

fn default_lease_ttl() -> Millis {
    Millis(5_000)
}

impl FleetConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if !name_ok {
            return Err(invalid(
                "fleet.name",
                "must be 1-64 characters of letters, digits, '-', '_' or '.'",
            ));
        }
        let r = &self.redis;
        match (&r.url, &r.sentinel) {
            (None, None) => {
                return Err(invalid(
                    "fleet.redis.url",
                    "is required (or fleet.redis.sentinel)",
                ));
            }
            (Some(url), _) => {
                let scheme_ok = url.starts_with("redis://") || url.starts_with("rediss://");
                if !scheme_ok {
                    return Err(invalid(
                        "fleet.redis.url",
                        "must start with redis:// or rediss://",
                    ));
                }
                // Parsed here so a typo stops the start; the message never repeats the URL
                // (it may hold a password).
                let parsed = parse_url(url, r.sentinel.is_some())
                    .map_err(|e| invalid("fleet.redis.url", format!("is not a valid URL ({e})")))?;
                if r.sentinel.is_none() && parsed.host_str().is_none_or(str::is_empty) {
                    return Err(invalid("fleet.redis.url", "names no host"));
                }
                let db = parsed.path().trim_start_matches('/');
                if !db.is_empty() && db.parse::<u32>().is_err() {
                    return Err(invalid(
                        "fleet.redis.url",
                        "the path must be a database number (/0)",
                    ));
                }
            }
            (None, Some(_)) => {}
        }
        if let Some(s) = &r.sentinel {
            if s.master_name.is_empty() {
                return Err(invalid("fleet.redis.sentinel.masterName", "is empty"));
            }
            if s.nodes.is_empty() {
                return Err(invalid(
                    "fleet.redis.sentinel.nodes",
                    "at least one host:port is required",
                ));
            }
            for (i, n) in s.nodes.iter().enumerate() {
                if host_port(n).is_none() {
                    return Err(invalid(
                        format!("fleet.redis.sentinel.nodes[{i}]"),
                        format!("{n:?} is not host:port"),
                    ));
                }
            }
        }
        if r.client_cert_path.is_some() != r.client_key_path.is_some() {
            return Err(invalid(
                "fleet.redis.clientCertPath",
                "clientCertPath and clientKeyPath must be given together",
            ));
        }
        if self.convergence_timeout.0 <= 0 {
            return Err(invalid(
                "fleet.convergenceTimeout",
                "must be greater than 0",
            ));
        }
        if self.lease_ttl.0 < 300 {
            return Err(invalid("fleet.leaseTtl", "must be at least 300ms"));
        }
        Ok(())
    }
}

/// Parse `fleet.redis.url`. With Sentinel the host may be left out (`redis://user@/0`), which
/// a URL parser refuses: a placeholder host stands in (Sentinel names the real one).
pub(crate) fn parse_url(url: &str, sentinel: bool) -> Result<url::Url, url::ParseError> {
    match url::Url::parse(url) {
        Err(url::ParseError::EmptyHost) if sentinel => {
            let (scheme, rest) = url.split_once("://").unwrap_or((url, ""));
            let (auth, path) = rest.split_once('/').unwrap_or((rest, ""));
            let auth = auth.trim_end_matches(':');
            url::Url::parse(&format!("{scheme}://{auth}sentinel/{path}"))
        }
        other => other,
    }
}

/// `host:port` (IPv6 in brackets) split, or `None`.
pub(crate) fn host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return None;
    }
    Some((host.to_owned(), port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};

    fn load(yaml: &str) -> Result<Config, ConfigError> {
        crate::config::parse_text("c.yaml", yaml)
    }

    #[test]
    fn fleet_settings_parse_with_defaults() {
        let c = load(
            "fleet: {name: relays, redis: {url: \"rediss://relay@h:6380/2\", password: pw}}\n",
        )
        .unwrap();
        let f = c.fleet.unwrap();
        assert_eq!(f.convergence_timeout.0, 10_000);
        assert_eq!(f.lease_ttl.0, 5_000);
        assert_eq!(f.redis.password.unwrap().expose(), "pw");
        assert!(load("{}\n").unwrap().fleet.is_none());
    }

    #[test]
    fn debug_output_never_shows_the_password() {
        let c = load(
            "fleet: {name: r, redis: {url: \"redis://u:inurl-pw@h:6379/0\", password: field-pw}}\n",
        )
        .unwrap();
        let text = format!("{c:?}");
        assert!(
            !text.contains("inurl-pw") && !text.contains("field-pw"),
            "{text}"
        );
        assert!(
            text.contains("redis://u:%3Credacted%3E@h:6379/0") || text.contains("<redacted>"),
            "{text}"
        );
    }

    #[test]
    fn bad_fleet_settings_name_the_key_and_never_the_password() {
        for (yaml, key) in [
            (
                "fleet: {name: \"a b\", redis: {url: \"redis://h\"}}",
                "fleet.name",
            ),
            ("fleet: {name: a, redis: {}}", "fleet.redis.url"),
            (
                "fleet: {name: a, redis: {url: \"http://h\"}}",
                "fleet.redis.url",
            ),
            (
                "fleet: {name: a, redis: {url: \"redis://:s3cret@h/x\"}}",
                "fleet.redis.url",
            ),
            (
                "fleet: {name: a, redis: {url: \"redis://:s3cret@/0\"}}",
                "fleet.redis.url",
            ),
            (
                "fleet: {name: a, redis: {sentinel: {masterName: m, nodes: []}}}",
                "fleet.redis.sentinel.nodes",
            ),
            (
                "fleet: {name: a, redis: {sentinel: {masterName: \"\", nodes: [\"h:1\"]}}}",
                "fleet.redis.sentinel.masterName",
            ),
            (
                "fleet: {name: a, redis: {url: \"redis://h\", clientCertPath: /c}}",
                "fleet.redis.clientCertPath",
            ),
            (
                "fleet: {name: a, redis: {url: \"redis://h\"}, convergenceTimeout: 0}",
                "fleet.convergenceTimeout",
            ),
            (
                "fleet: {name: a, redis: {url: \"redis://h\"}, leaseTtl: 10}",
                "fleet.leaseTtl",
            ),
            (
                "fleet: {name: a, redis: {url: \"redis://h\", pasword: x}}",
                "fleet.redis",
            ),
        ] {
            let e = load(yaml)
                .err()
                .unwrap_or_else(|| panic!("{yaml} accepted"));
            let text = e.to_string();
            assert!(text.contains(key), "{yaml}: {text}");
            assert!(!text.contains("s3cret"), "{text}");
        }
        // Sentinel without a host in the URL is fine.
        load("fleet: {name: a, redis: {url: \"redis://u@/0\", sentinel: {masterName: m, nodes: [\"h:26379\"]}}}")
            .unwrap();
    }
}
