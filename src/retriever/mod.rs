//! Retrievers fetch raw flag documents from their sources. They do not parse: the refresh
//! step ([`crate::refresh`]) parses, validates and merges what they return.
//!
//! The interface is small on purpose: a retriever is built from its config entry, describes its
//! source without credentials, and fetches. [`Validators`] carry what a source said about the
//! last document it served (ETag, Last-Modified), so sources that support conditional requests
//! can answer [`Fetched::NotModified`] and cost neither a transfer nor a parse.

mod azblob;
pub(crate) mod check;
mod file;
mod gcs;
mod http;
mod object;
mod relay;

pub(crate) use http::{outbound_client, sensitive_headers};
mod s3;
mod sql;

use std::time::Duration;

use crate::config::{RetrieverConfig, RetrieverKind};
use crate::parse::{DocumentError, FlagDoc, Format};

pub use azblob::AzblobRetriever;
pub(crate) use file::FileRetriever;
pub use gcs::GcsRetriever;
pub(crate) use http::HttpRetriever;
pub(crate) use relay::RelayRetriever;
pub use s3::S3Retriever;
pub(crate) use sql::SqlRetriever;

/// A document as a source served it.
#[derive(Debug, Clone)]
pub struct Document {
    pub bytes: bytes::Bytes,
    /// The declared format, or the one the source's name implies; `None` means "sniff".
    pub format: Option<Format>,
    pub validators: Validators,
}

/// What a source told us about a document, for conditional requests next time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// The result of a successful fetch.
#[derive(Debug, Clone)]
pub enum Fetched {
    Changed(Document),
    /// The source confirmed the document behind `since` is still current.
    NotModified,
}

/// Why a fetch failed. Messages name the source (a path, a URL without credentials, an S3
/// location) and never a header value, key or token.
#[derive(Debug, thiserror::Error)]
pub enum RetrieverError {
    #[error("{source_name}: {message}")]
    Io {
        source_name: String,
        message: String,
    },
    #[error("{source_name}: timed out after {}ms", .after.as_millis())]
    Timeout {
        source_name: String,
        after: Duration,
    },
    #[error("{source_name}: document is larger than maxBytes ({limit} bytes)")]
    TooLarge { source_name: String, limit: u64 },
    #[error("{source_name}: answered HTTP {status}{}", reason_suffix(.reason))]
    Status {
        source_name: String,
        status: u16,
        reason: String,
    },
    #[error("{source_name}: document is empty (a source with no flags must say {{}})")]
    Empty { source_name: String },
    #[error("{source_name}: {message}")]
    Setup {
        source_name: String,
        message: String,
    },
}

impl RetrieverError {
    pub(crate) fn timeout(source: &str, after: Duration) -> RetrieverError {
        RetrieverError::Timeout {
            source_name: source.to_owned(),
            after,
        }
    }
}

/// `fetch`, given at most `after` in all: past it, [`RetrieverError::Timeout`] naming `source`.
pub(crate) async fn within(
    source: &str,
    after: Duration,
    fetch: impl Future<Output = Result<Fetched, RetrieverError>>,
) -> Result<Fetched, RetrieverError> {
    tokio::time::timeout(after, fetch)
        .await
        .unwrap_or_else(|_| Err(RetrieverError::timeout(source, after)))
}

fn reason_suffix(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(" ({reason})")
    }
}

/// One configured source.
#[derive(Debug)]
pub enum Retriever {
    File(FileRetriever),
    Http(Box<HttpRetriever>),
    S3(S3Retriever),
    Relay(Box<RelayRetriever>),
    Sql(Box<SqlRetriever>),
    Azblob(Box<AzblobRetriever>),
    Gcs(Box<GcsRetriever>),
}

impl Retriever {
    /// Build a retriever for one config entry (already validated by [`crate::config`]).
    pub fn from_config(cfg: &RetrieverConfig) -> Result<Retriever, RetrieverError> {
        match cfg.kind {
            RetrieverKind::File => Ok(Retriever::File(FileRetriever::new(cfg))),
            RetrieverKind::Http => Ok(Retriever::Http(Box::new(HttpRetriever::new(cfg)?))),
            RetrieverKind::S3 => Ok(Retriever::S3(S3Retriever::new(cfg)?)),
            RetrieverKind::Relay => Ok(Retriever::Relay(Box::new(RelayRetriever::new(cfg)?))),
            RetrieverKind::Sql => Ok(Retriever::Sql(Box::new(SqlRetriever::new(cfg)?))),
            RetrieverKind::Azblob => Ok(Retriever::Azblob(Box::new(AzblobRetriever::new(cfg)?))),
            RetrieverKind::Gcs => Ok(Retriever::Gcs(Box::new(GcsRetriever::new(cfg)?))),
        }
    }

    pub fn kind(&self) -> RetrieverKind {
        match self {
            Retriever::File(_) => RetrieverKind::File,
            Retriever::Http(_) => RetrieverKind::Http,
            Retriever::S3(_) => RetrieverKind::S3,
            Retriever::Relay(_) => RetrieverKind::Relay,
            Retriever::Sql(_) => RetrieverKind::Sql,
            Retriever::Azblob(_) => RetrieverKind::Azblob,
            Retriever::Gcs(_) => RetrieverKind::Gcs,
        }
    }

    /// Where documents come from, safe to log and show in `/info`.
    pub fn source(&self) -> &str {
        match self {
            Retriever::File(r) => r.source(),
            Retriever::Http(r) => r.source(),
            Retriever::S3(r) => r.source(),
            Retriever::Relay(r) => r.source(),
            Retriever::Sql(r) => r.source(),
            Retriever::Azblob(r) => r.source(),
            Retriever::Gcs(r) => r.source(),
        }
    }

    /// Fetch the current document. `since` holds the validators of the last document that
    /// parsed; a source may answer [`Fetched::NotModified`] when it is still current.
    pub async fn fetch(&self, since: &Validators) -> Result<Fetched, RetrieverError> {
        match self {
            Retriever::File(r) => r.fetch(since).await,
            Retriever::Http(r) => r.fetch(since).await,
            Retriever::S3(r) => r.fetch(since).await,
            Retriever::Relay(r) => r.fetch(since).await,
            Retriever::Sql(r) => r.fetch(since).await,
            Retriever::Azblob(r) => r.fetch(since).await,
            Retriever::Gcs(r) => r.fetch(since).await,
        }
    }

    /// For sources that push: notified when the source says its document may have changed,
    /// so the poll loop refreshes at once instead of at its next tick.
    pub(crate) fn changes(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        match self {
            Retriever::Relay(r) => Some(r.changes()),
            Retriever::Sql(r) => r.changes(),
            _ => None,
        }
    }
}

/// Parse a fetched document as its source's kind needs: another relay's sync answer carries
/// its flags and its salt; every other source serves a flag document.
pub(crate) fn parse_document(
    kind: RetrieverKind,
    source: &str,
    bytes: &[u8],
    format: Option<Format>,
) -> Result<FlagDoc, DocumentError> {
    match kind {
        RetrieverKind::Relay => relay::parse_sync_body(source, bytes),
        _ => crate::parse::parse_document(source, bytes, format),
    }
}

/// Resolves when any of `notifies` is notified; never when there are none.
pub(crate) async fn any_changed(notifies: &[std::sync::Arc<tokio::sync::Notify>]) {
    if notifies.is_empty() {
        return std::future::pending().await;
    }
    let waits = notifies.iter().map(|n| Box::pin(n.notified()));
    futures_util::future::select_all(waits).await;
}

/// A fetched body as a [`Fetched::Changed`] document; an empty body is an error, because a
/// truncated upload must not switch every flag off (a source with no flags says `{}`).
pub(crate) fn changed(
    source_name: &str,
    bytes: bytes::Bytes,
    format: Option<Format>,
    validators: Validators,
) -> Result<Fetched, RetrieverError> {
    if bytes.is_empty() {
        return Err(RetrieverError::Empty {
            source_name: source_name.to_owned(),
        });
    }
    Ok(Fetched::Changed(Document {
        bytes,
        format,
        validators,
    }))
}

/// The format for a document: declared, else implied by the source's name, else sniffed later.
pub(crate) fn format_for(cfg: &RetrieverConfig, name: &str) -> Option<Format> {
    cfg.format.or_else(|| Format::from_name(name))
}

/// A URL fit for logs and error messages: no userinfo, query or fragment (where tokens live).
pub(crate) fn redact_url(url: &reqwest::Url) -> String {
    let mut url = url.clone();
    // Both fail only for URLs that cannot have credentials in the first place.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
    url.to_string()
}

/// What went wrong with an outbound request, without its URL (which may hold a secret).
pub(crate) fn request_error(e: reqwest::Error) -> String {
    let e = e.without_url();
    if e.is_timeout() {
        format!("timed out: {}", error_chain(&e))
    } else if e.is_connect() {
        format!("cannot connect: {}", error_chain(&e))
    } else {
        format!("request failed: {}", error_chain(&e))
    }
}

/// An error and its causes, `a: b: c`, skipping a cause whose text the message already holds
/// (many errors repeat their source in their own message).
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_strips_userinfo_query_and_fragment() {
        let url = |s: &str| reqwest::Url::parse(s).unwrap();
        assert_eq!(
            redact_url(&url(
                "https://alice:pw@example.com:8443/a/flags.yaml?sig=x&t=y#f"
            )),
            "https://example.com:8443/a/flags.yaml"
        );
        assert_eq!(
            redact_url(&url("http://token@10.0.0.1/flags.json")),
            "http://10.0.0.1/flags.json"
        );
        assert_eq!(redact_url(&url("http://h")), "http://h/");
    }

    #[test]
    fn error_chain_skips_repeats() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer: {0}")]
        struct Outer(#[source] std::io::Error);
        #[derive(Debug, thiserror::Error)]
        #[error("top")]
        struct Top(#[source] Outer);
        let e = Top(Outer(std::io::Error::other("refused")));
        assert_eq!(error_chain(&e), "top: outer: refused");
    }
}
