//! Delivery: one queue and one task per notifier, so a slow or failing receiver delays only
//! itself — never a refresh (which only pushes to the queue) and never another notifier.
//!
//! The queue is bounded: when it is full, the two oldest pending changes are merged into one
//! (see [`ChangeSet::merge`]), so memory stays bounded and no change is lost from the record,
//! only folded into its neighbour. A 5xx answer or a network error is retried with exponential
//! backoff; a 4xx is the receiver saying no, and is not.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use tokio::sync::Notify;

use super::change::ChangeSet;
use super::metrics::NotifierMetrics;
use crate::config::{NotifierConfig, NotifierKind};

/// Slack's own limit for a message's text is far above this; a readable message is not.
const SLACK_TEXT_LIMIT: usize = 3_000;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Why a notifier could not be set up. Never carries the URL or a header value.
#[derive(Debug, thiserror::Error)]
#[error("notifiers[{index}]: {message}")]
pub(crate) struct NotifierError {
    index: usize,
    message: String,
}

/// Pending changes of one notifier.
pub(crate) struct Queue {
    pending: Mutex<VecDeque<ChangeSet>>,
    capacity: usize,
    wake: Notify,
    metrics: NotifierMetrics,
}

impl Queue {
    /// Add a change; never waits. Merges the two oldest pending changes when full.
    pub(crate) fn push(&self, change: ChangeSet) {
        let mut q = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() >= self.capacity
            && let (Some(a), Some(b)) = (q.pop_front(), q.pop_front())
        {
            q.push_front(a.merge(b));
            self.metrics.coalesced();
        }
        q.push_back(change);
        drop(q);
        self.wake.notify_one();
    }

    fn pop(&self) -> Option<ChangeSet> {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.pending.lock().unwrap().len()
    }
}

/// Where and how one notifier sends.
enum Target {
    Log,
    Http(Box<HttpTarget>),
}

struct HttpTarget {
    client: reqwest::Client,
    url: reqwest::Url,
    headers: HeaderMap,
    secret: Option<Vec<u8>>,
    slack: bool,
}

pub(crate) struct Worker {
    index: usize,
    kind: NotifierKind,
    target: Target,
    timeout: Duration,
    max_retries: u32,
    queue: Arc<Queue>,
}

impl Worker {
    pub(crate) fn new(
        index: usize,
        cfg: &NotifierConfig,
        metrics: NotifierMetrics,
    ) -> Result<Worker, NotifierError> {
        let err = |message: String| NotifierError { index, message };
        let target = match (cfg.kind, &cfg.url) {
            (NotifierKind::Log, _) => Target::Log,
            (_, None) => return Err(err("url is required".into())),
            (kind, Some(url)) => {
                let url = reqwest::Url::parse(url.expose())
                    .map_err(|_| err("url is not a valid URL".into()))?;
                let headers = crate::retriever::sensitive_headers(&cfg.headers).map_err(err)?;
                let client = crate::retriever::outbound_client(&url, cfg.ca_cert_path.as_deref())
                    .map_err(err)?;
                Target::Http(Box::new(HttpTarget {
                    client,
                    url,
                    headers,
                    secret: cfg.secret.as_ref().map(|s| s.expose().as_bytes().to_vec()),
                    slack: kind == NotifierKind::Slack,
                }))
            }
        };
        Ok(Worker {
            index,
            kind: cfg.kind,
            target,
            timeout: cfg.timeout.duration().unwrap_or(Duration::from_secs(5)),
            max_retries: cfg.max_retries,
            queue: Arc::new(Queue {
                pending: Mutex::new(VecDeque::new()),
                capacity: cfg.queue_size.max(1),
                wake: Notify::new(),
                metrics,
            }),
        })
    }

    pub(crate) fn queue(&self) -> Arc<Queue> {
        self.queue.clone()
    }

    /// Deliver queued changes, oldest first, for the life of the process.
    pub(crate) async fn run(self) {
        loop {
            let Some(change) = self.queue.pop() else {
                self.queue.wake.notified().await;
                continue;
            };
            let started = Instant::now();
            match self.deliver(&change).await {
                Ok(()) => self.queue.metrics.sent(started.elapsed()),
                Err(why) => {
                    self.queue.metrics.failed();
                    tracing::warn!(
                        notifier = self.index,
                        kind = self.kind.as_str(),
                        etag = %change.etag,
                        error = %why,
                        "change notification not delivered"
                    );
                }
            }
        }
    }

    async fn deliver(&self, change: &ChangeSet) -> Result<(), String> {
        let Target::Http(http) = &self.target else {
            let added: Vec<&str> = change.added().map(|(k, _)| k).collect();
            let updated: Vec<&str> = change.updated().map(|(k, _, _)| k).collect();
            let deleted: Vec<&str> = change.deleted().collect();
            tracing::info!(
                etag = %change.etag,
                previous_etag = %change.previous_etag,
                version = change.version,
                added = ?added,
                updated = ?updated,
                deleted = ?deleted,
                "flag set changed"
            );
            return Ok(());
        };
        let HttpTarget {
            client,
            url,
            headers,
            secret,
            slack,
        } = &**http;
        let body = if *slack {
            change.to_slack(SLACK_TEXT_LIMIT).to_string()
        } else {
            change.to_json().to_string()
        };
        let signature = secret.as_ref().map(|s| {
            let mac = crate::crypto::hmac_sha256(s, body.as_bytes());
            format!("sha256={}", crate::shared::hex(&mac))
        });
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 0;
        loop {
            let mut req = client
                .post(url.clone())
                .headers(headers.clone())
                .header("content-type", "application/json")
                .timeout(self.timeout)
                .body(body.clone());
            if let Some(sig) = &signature {
                req = req.header("x-hub-signature-256", sig);
            }
            if !*slack {
                req = req.header("x-flagrelay-event", "flagsChanged");
            }
            let why = match req.send().await {
                Ok(res) if res.status().is_success() => return Ok(()),
                // The receiver refused this body: sending it again will not help.
                Ok(res) if res.status().is_client_error() => {
                    return Err(format!(
                        "the receiver answered HTTP {}",
                        res.status().as_u16()
                    ));
                }
                Ok(res) => format!("the receiver answered HTTP {}", res.status().as_u16()),
                // Says what failed (connect, timeout) without the URL, which may be a secret.
                Err(e) => crate::retriever::request_error(e),
            };
            if attempt >= self.max_retries {
                return Err(format!("{why} (after {} attempts)", attempt + 1));
            }
            attempt += 1;
            self.queue.metrics.retried();
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}
