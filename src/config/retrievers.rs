//! `retrievers`: where flag documents come from. One flat entry type for every kind (serde
//! cannot combine an internally tagged enum with `deny_unknown_fields`); [`RetrieverConfig::validate`]
//! checks that each kind has what it needs.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;

use super::{ConfigError, Millis, Secret, invalid};
use crate::parse::Format;

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
    pub(crate) const fn as_str(self) -> &'static str {
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
    /// Accept a body whose end cannot be verified (HTTP/1 without Content-Length or chunked
    /// framing, delimited by the connection closing): a source cut short would be served.
    #[serde(default)]
    pub allow_unverified_length: bool,
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
            allow_unverified_length: false,
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

impl RetrieverConfig {
    /// Checks serde cannot express, with errors naming `retrievers[i].field`.
    pub(super) fn validate(&self, i: usize) -> Result<(), ConfigError> {
        let at = |field: &str| format!("retrievers[{i}].{field}");
        let need = |present: bool, field: &str| {
            if present {
                Ok(())
            } else {
                Err(invalid(
                    at(field),
                    format!("is required for kind {}", self.kind.as_str()),
                ))
            }
        };
        match self.kind {
            RetrieverKind::File => need(self.path.is_some(), "path")?,
            RetrieverKind::Http => {
                need(self.url.is_some(), "url")?;
                if self.client_cert_path.is_some() != self.client_key_path.is_some() {
                    return Err(invalid(
                        at("clientCertPath"),
                        "clientCertPath and clientKeyPath must be given together",
                    ));
                }
            }
            RetrieverKind::S3 => {
                need(self.bucket.is_some(), "bucket")?;
                need(self.item.is_some(), "item")?;
            }
            RetrieverKind::Sql => {
                need(self.url.is_some(), "url")?;
                self.check_sql().map_err(|(key, m)| invalid(at(key), m))?;
            }
            RetrieverKind::Azblob => {
                need(self.container.is_some(), "container")?;
                need(self.item.is_some(), "item")?;
            }
            RetrieverKind::Gcs => {
                need(self.bucket.is_some(), "bucket")?;
                need(self.item.is_some(), "item")?;
            }
            RetrieverKind::Relay => {
                need(self.url.is_some(), "url")?;
                if self.api_key.as_ref().is_some_and(|k| k.expose().is_empty()) {
                    return Err(invalid(at("apiKey"), "empty key"));
                }
            }
        }
        if self.max_bytes == 0 {
            return Err(invalid(at("maxBytes"), "must be greater than 0"));
        }
        if self.timeout.0 <= 0 {
            return Err(invalid(at("timeout"), "must be greater than 0"));
        }
        super::checks::retriever(i, self)?;
        Ok(())
    }
}

impl RetrieverConfig {
    /// Check the settings of a `kind: sql` entry; `Err((key, message))` names the config key.
    pub(crate) fn check_sql(&self) -> Result<(), (&'static str, String)> {
        let cfg = self;
        let url = cfg.url.as_deref().unwrap_or_default();
        let postgres = url.starts_with("postgres://") || url.starts_with("postgresql://");
        if !postgres && !url.starts_with("sqlite://") {
            return Err(("url", "must start with postgres:// or sqlite://".into()));
        }
        if url.starts_with("sqlite://") && url.len() == "sqlite://".len() {
            return Err((
                "url",
                "sqlite:// needs a path (sqlite:///var/lib/app.db)".into(),
            ));
        }
        if let Some(table) = &cfg.table {
            if !is_sql_identifier(table) {
                return Err((
                    "table",
                    format!("{table:?} is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*)"),
                ));
            }
            if cfg.query.is_some() {
                return Err(("query", "give table or query, not both".into()));
            }
        }
        if let Some(q) = &cfg.query
            && q.trim().is_empty()
        {
            return Err(("query", "is empty".into()));
        }
        if let Some(channel) = &cfg.notify_channel {
            if !postgres {
                return Err(("notifyChannel", "needs a postgres:// url".into()));
            }
            if !is_sql_identifier(channel) {
                return Err((
                    "notifyChannel",
                    format!("{channel:?} is not a plain identifier"),
                ));
            }
        }
        Ok(())
    }
}

/// A plain SQL identifier, as GoFastr's `WithSQLTable` accepts one: nothing to quote, nothing
/// to inject.
fn is_sql_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 63
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_checks() {
        let mut c = RetrieverConfig::file("x");
        c.kind = RetrieverKind::Sql;
        c.url = Some("sqlite:///tmp/x.db".into());
        assert!(c.check_sql().is_ok());
        c.table = Some("flags; DROP TABLE x".into());
        assert_eq!(c.check_sql().unwrap_err().0, "table");
        c.table = Some("my_flags".into());
        assert!(c.check_sql().is_ok());
        c.query = Some("SELECT 1".into());
        assert_eq!(c.check_sql().unwrap_err().0, "query");
        c.table = None;
        c.notify_channel = Some("flags".into());
        assert_eq!(c.check_sql().unwrap_err().0, "notifyChannel");
        c.url = Some("mysql://h/db".into());
        assert_eq!(c.check_sql().unwrap_err().0, "url");
    }
}
