//! `kind: relay`: another flagrelay as the source (chained relays: a DMZ relay feeding inner
//! ones, a regional relay feeding edge relays).
//!
//! Two channels to the upstream:
//! - its sync API, `GET /v1/flags` (`{"etag", "salt"?, "flags"}`), fetched like an `http`
//!   source: conditional on the upstream's ETag, bounded by `maxBytes`, within `timeout`;
//! - its change stream, `GET /v1/flags/stream`, followed by a background task from the first
//!   fetch on. A `snapshot` event (the same body as `/v1/flags`) is handed to the next fetch as
//!   is; a `change` event makes the next fetch ask `/v1/flags` again. Either wakes the refresher
//!   ([`RelayRetriever::changes`]), so a change upstream serves here well within a second.
//!   When the stream drops, the task reconnects with a backoff (up to [`MAX_BACKOFF`]) and the
//!   poll loop keeps fetching `/v1/flags` meanwhile: polling is the fallback.
//!
//! The upstream's rollout salt comes with the set ([`crate::parse::FlagDoc::salt`]), so this
//! relay buckets every subject as the upstream does; it replaces the local `rolloutSalt`.
//! The document's bytes are the upstream's whole answer (its etag and salt included), so the
//! refresher's "same bytes, no rebuild" check also sees a salt change.
//!
//! The evaluation key goes out as `Authorization: Bearer …`, marked sensitive; errors name the
//! upstream's URL without userinfo or query, never the key.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::Url;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue};
use serde::Deserialize;
use tokio::sync::Notify;

use super::{Fetched, HttpRetriever, RetrieverError, Validators, redact_url};
use crate::config::{RetrieverConfig, RetrieverKind, Secret};
use crate::parse::{self, DocumentError, FlagDoc, FlagError, Format};

/// Longest wait between two attempts to reopen the change stream.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The upstream sends a keep-alive comment every 30 s; a stream silent for this long is dead.
const STREAM_IDLE: Duration = Duration::from_secs(75);

#[derive(Debug)]
pub struct RelayRetriever {
    /// `GET {url}/v1/flags`, with the key.
    sync: HttpRetriever,
    stream_url: Url,
    headers: HeaderMap,
    max_bytes: u64,
    shared: Arc<Shared>,
    started: std::sync::Once,
}

#[derive(Debug, Default)]
struct Shared {
    /// Woken by the stream on every event that may change the set.
    changed: Arc<Notify>,
    /// The newest `snapshot` event's body, for the next fetch to return as is.
    pending: Mutex<Option<Bytes>>,
}

impl RelayRetriever {
    pub(crate) fn new(cfg: &RetrieverConfig) -> Result<Self, RetrieverError> {
        let raw = cfg.url.as_deref().unwrap_or_default();
        let base = Url::parse(raw).map_err(|e| RetrieverError::Setup {
            source_name: "relay retriever".into(),
            message: format!("url is not a valid URL ({e})"),
        })?;
        let join = |path: &str| {
            let mut u = base.clone();
            let prefix = u.path().trim_end_matches('/').to_owned();
            u.set_path(&format!("{prefix}{path}"));
            u
        };
        let (sync_url, stream_url) = (join("/v1/flags"), join("/v1/flags/stream"));
        let mut sync_cfg = cfg.clone();
        sync_cfg.kind = RetrieverKind::Http;
        sync_cfg.url = Some(sync_url.to_string());
        sync_cfg.format = Some(Format::Json);
        sync_cfg.method = None;
        sync_cfg.body = None;
        let mut headers = HeaderMap::new();
        if let Some(key) = &cfg.api_key {
            let bearer = format!("Bearer {}", key.expose());
            sync_cfg
                .headers
                .insert(AUTHORIZATION.to_string(), Secret(bearer.clone()));
            let mut v = HeaderValue::from_str(&bearer).map_err(|_| RetrieverError::Setup {
                source_name: redact_url(&base),
                message: "apiKey holds characters a header cannot carry".into(),
            })?;
            v.set_sensitive(true);
            headers.insert(AUTHORIZATION, v);
        }
        headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        let sync = HttpRetriever::new(&sync_cfg)?;
        Ok(RelayRetriever {
            sync,
            stream_url,
            headers,
            max_bytes: cfg.max_bytes,
            shared: Arc::new(Shared::default()),
            started: std::sync::Once::new(),
        })
    }

    pub(crate) fn source(&self) -> &str {
        self.sync.source()
    }

    /// Notified whenever the upstream's stream says the set may have changed.
    pub(crate) fn changes(&self) -> Arc<Notify> {
        self.shared.changed.clone()
    }

    pub(crate) async fn fetch(&self, since: &Validators) -> Result<Fetched, RetrieverError> {
        self.started.call_once(|| self.follow_stream());
        let pending = self
            .shared
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(body) = pending {
            let etag = serde_json::from_slice::<EtagOnly>(&body)
                .ok()
                .map(|b| format!("\"{}\"", b.etag));
            return super::changed(
                self.source(),
                body,
                Some(Format::Json),
                Validators {
                    etag,
                    last_modified: None,
                },
            );
        }
        self.sync.fetch(since).await
    }

    /// Start the task following the upstream's change stream. It holds only a weak reference
    /// to what it shares with this retriever, and ends when the retriever is gone.
    fn follow_stream(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let stream = Stream {
            client: self.sync.client().clone(),
            url: self.stream_url.clone(),
            headers: self.headers.clone(),
            max_bytes: self.max_bytes,
            source: self.source().to_owned(),
            shared: Arc::downgrade(&self.shared),
        };
        runtime.spawn(stream.run());
    }
}

#[derive(Deserialize)]
struct EtagOnly {
    etag: String,
}

struct Stream {
    client: reqwest::Client,
    url: Url,
    headers: HeaderMap,
    max_bytes: u64,
    source: String,
    shared: Weak<Shared>,
}

impl Stream {
    async fn run(self) {
        let mut backoff = Duration::from_millis(250);
        // Warn once per outage, not on every retry.
        let mut failing = false;
        loop {
            if self.shared.strong_count() == 0 {
                return;
            }
            match self.follow().await {
                Ok(true) => {
                    backoff = Duration::from_millis(250);
                    failing = false;
                }
                Ok(false) => return,
                Err(e) if failing => {
                    tracing::debug!(source = %self.source, error = %e, "upstream change stream still unavailable")
                }
                Err(e) => {
                    failing = true;
                    tracing::warn!(
                        source = %self.source,
                        error = %e,
                        "upstream change stream unavailable; polling until it is back"
                    );
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Follow one connection. `Ok(true)`: it was open and ended; `Ok(false)`: the retriever is
    /// gone.
    async fn follow(&self) -> Result<bool, String> {
        let mut resp = self
            .client
            .get(self.url.clone())
            .headers(self.headers.clone())
            .send()
            .await
            .map_err(|e| super::error_chain(&e.without_url()))?;
        if !resp.status().is_success() {
            return Err(format!("answered HTTP {}", resp.status().as_u16()));
        }
        tracing::info!(source = %self.source, "following the upstream's change stream");
        let mut parser = SseParser::new(self.max_bytes);
        loop {
            let chunk = match tokio::time::timeout(STREAM_IDLE, resp.chunk()).await {
                Err(_) => return Err(format!("silent for {}s", STREAM_IDLE.as_secs())),
                Ok(Err(e)) => return Err(super::error_chain(&e.without_url())),
                Ok(Ok(None)) => return Ok(true),
                Ok(Ok(Some(chunk))) => chunk,
            };
            // Keep-alives arrive even when nothing changes: stop here once the retriever is gone.
            if self.shared.strong_count() == 0 {
                return Ok(false);
            }
            for (event, data) in parser.push(&chunk)? {
                let Some(shared) = self.shared.upgrade() else {
                    return Ok(false);
                };
                match event.as_str() {
                    "snapshot" => {
                        *shared.pending.lock().unwrap_or_else(|p| p.into_inner()) = Some(data);
                    }
                    "change" => {
                        // A newer set than any snapshot event held: ask /v1/flags.
                        shared
                            .pending
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .take();
                    }
                    _ => continue,
                }
                shared.changed.notify_one();
            }
        }
    }
}

/// Server-Sent Events, just enough of them: `event` and `data` fields, dispatched on a blank
/// line; comments, `id` and `retry` ignored. One event may not exceed `maxBytes`.
struct SseParser {
    buf: BytesMut,
    event: String,
    data: BytesMut,
    max_bytes: u64,
}

impl SseParser {
    fn new(max_bytes: u64) -> Self {
        SseParser {
            buf: BytesMut::new(),
            event: String::new(),
            data: BytesMut::new(),
            max_bytes,
        }
    }

    fn push(&mut self, chunk: &[u8]) -> Result<Vec<(String, Bytes)>, String> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
            let line = self.buf.split_to(nl + 1);
            let line = line.strip_suffix(b"\n").unwrap_or(&line);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                let event = std::mem::take(&mut self.event);
                let data = std::mem::take(&mut self.data).freeze();
                if !data.is_empty() {
                    out.push((
                        if event.is_empty() {
                            "message".into()
                        } else {
                            event
                        },
                        data,
                    ));
                }
                continue;
            }
            let (field, value) = match line.iter().position(|&b| b == b':') {
                Some(0) => continue,
                Some(i) => {
                    let v = &line[i + 1..];
                    (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
                }
                None => (line, &b""[..]),
            };
            match field {
                b"event" => self.event = String::from_utf8_lossy(value).into_owned(),
                b"data" => {
                    if !self.data.is_empty() {
                        self.data.extend_from_slice(b"\n");
                    }
                    self.data.extend_from_slice(value);
                }
                _ => {}
            }
        }
        if (self.buf.len() + self.data.len()) as u64 > self.max_bytes {
            return Err(format!(
                "an event is larger than maxBytes ({} bytes)",
                self.max_bytes
            ));
        }
        Ok(out)
    }
}

/// Parse the upstream's sync answer: its `flags` as a JSON flag document, its `salt` as the
/// salt of the set.
pub(crate) fn parse_sync_body(source: &str, bytes: &[u8]) -> Result<FlagDoc, DocumentError> {
    #[derive(Deserialize)]
    struct SyncBody<'a> {
        #[serde(default)]
        salt: Option<String>,
        #[serde(borrow)]
        flags: &'a serde_json::value::RawValue,
    }
    let body: SyncBody<'_> = serde_json::from_slice(bytes).map_err(|e| DocumentError {
        errors: vec![FlagError {
            source: source.to_owned(),
            key: None,
            position: None,
            message: format!(
                "not a flagrelay sync API answer ({{\"etag\", \"salt\"?, \"flags\"}}): {e}"
            ),
        }],
    })?;
    let mut doc = parse::parse_document(source, body.flags.get().as_bytes(), Some(Format::Json))?;
    doc.salt = Some(body.salt.filter(|s| !s.is_empty()));
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_split_across_chunks() {
        let mut p = SseParser::new(1 << 20);
        assert!(p.push(b": keep-alive\n\nevent: snap").unwrap().is_empty());
        let got = p
            .push(b"shot\r\nid: 1\ndata: {\"a\":\ndata: 1}\n\nevent: change\ndata: x\n\n")
            .unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, "snapshot");
        assert_eq!(&got[0].1[..], b"{\"a\":\n1}");
        assert_eq!(got[1], ("change".to_owned(), Bytes::from_static(b"x")));
        let mut small = SseParser::new(8);
        assert!(small.push(b"data: 0123456789\n").is_err());
    }

    #[test]
    fn sync_body_carries_flags_and_salt() {
        let body = br#"{"etag":"e1","salt":"pepper","flags":{"a":{"enabled":true,"rollout":50}}}"#;
        let parsed = parse_sync_body("up", body).unwrap();
        assert_eq!(parsed.flags.len(), 1);
        assert_eq!(parsed.salt, Some(Some("pepper".into())));
        let parsed = parse_sync_body("up", br#"{"etag":"e","flags":{}}"#).unwrap();
        assert_eq!(parsed.salt, Some(None));
        let e = parse_sync_body("up", br#"{"a":{"enabled":true}}"#).unwrap_err();
        assert!(
            e.to_string()
                .contains("up: not a flagrelay sync API answer"),
            "{e}"
        );
        let e = parse_sync_body("up", br#"{"etag":"e","flags":{"b":{"enabled":3}}}"#).unwrap_err();
        assert!(e.to_string().contains("flag \"b\""), "{e}");
    }

    #[test]
    fn key_never_in_debug_or_source() {
        let mut c = RetrieverConfig::file("unused");
        c.kind = RetrieverKind::Relay;
        c.path = None;
        c.url = Some("http://up.example:1031/base/".into());
        c.api_key = Some(Secret("k3y-s3cr3t".into()));
        let r = RelayRetriever::new(&c).unwrap();
        assert_eq!(r.source(), "http://up.example:1031/base/v1/flags");
        assert_eq!(
            r.stream_url.as_str(),
            "http://up.example:1031/base/v1/flags/stream"
        );
        assert!(!format!("{r:?}").contains("k3y-s3cr3t"));
    }
}
