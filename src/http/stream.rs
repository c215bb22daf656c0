//! Server-Sent Events: the OFREP change stream (`GET /ofrep/v1/sse`) and the sync API's
//! stream (`GET /v1/flags/stream`).
//!
//! Both follow the snapshot store's change channel, which keeps only the newest snapshot. A
//! stream holds no snapshot of its own, only the etag it last sent, so a client that stops
//! reading pins no flag set: its memory is the one event hyper has buffered for it. A sync
//! client that fell behind (it missed a change, so no shared diff applies to the etag it has)
//! gets one `resync` event and fetches `/v1/flags` again; OFREP clients re-fetch anyway.
//! Streams end cleanly when shutdown starts, so a drain is not held up by idle clients.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;

use super::auth::Auth;
use super::error::{ApiError, ErrorBody, Unauthorized};
use super::monitoring::Lifecycle;
use super::schema::{RefetchEvaluationEvent, RefetchType, SyncResync};
use crate::parse::FlagDef;
use crate::snapshot::{Snapshot, SnapshotStore};

/// Keep-alive comments keep proxies from closing idle streams.
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub(crate) struct StreamState {
    pub store: Arc<SnapshotStore>,
    pub auth: Arc<Auth>,
    pub lifecycle: Arc<Lifecycle>,
    pub clients: Arc<StreamClients>,
    pub diffs: Arc<DiffCache>,
}

/// Counts open streams against `server.maxSseClients`.
#[derive(Debug)]
pub(crate) struct StreamClients {
    open: AtomicUsize,
    max: usize,
}

impl StreamClients {
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(StreamClients {
            open: AtomicUsize::new(0),
            max,
        })
    }

    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    pub(crate) fn admit(self: &Arc<Self>) -> Option<ClientSlot> {
        let mut n = self.open.load(Ordering::Relaxed);
        loop {
            if n >= self.max {
                return None;
            }
            match self
                .open
                .compare_exchange_weak(n, n + 1, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return Some(ClientSlot(self.clone())),
                Err(now) => n = now,
            }
        }
    }
}

/// Held by a stream for as long as it is open; frees its place when the client goes away.
pub(crate) struct ClientSlot(Arc<StreamClients>);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct StreamQuery {
    #[serde(rename = "apiKey")]
    api_key: Option<String>,
    /// A stream ticket from a bulk answer's `eventStreams` (OFREP stream only).
    ticket: Option<String>,
}

/// How long a client should wait before reconnecting (`retry:`): soon, but not in a tight loop
/// when the relay is restarting.
const RETRY_HINT: Duration = Duration::from_secs(3);

/// The stream's query: a repeated or malformed `?apiKey=` is a JSON 400, like every other error.
type StreamQueryResult = Result<Query<StreamQuery>, axum::extract::rejection::QueryRejection>;

fn admit(
    s: &StreamState,
    headers: &HeaderMap,
    q: StreamQueryResult,
    tickets: bool,
) -> Result<ClientSlot, ApiError> {
    let Query(q) = q.map_err(|_| {
        ApiError::bad_request("the query must hold at most one apiKey and one ticket")
    })?;
    match q.ticket.as_deref() {
        Some(ticket) if tickets && !s.auth.evaluation_open() => s.auth.ticket_caller(ticket),
        _ => s.auth.evaluation_caller(headers, q.api_key.as_deref()),
    }
    .map_err(ApiError::from)?;
    if s.lifecycle.is_draining() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the relay is shutting down",
        ));
    }
    s.clients.admit().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_streams",
            "too many open event streams; retry later",
        )
    })
}

/// `GET /ofrep/v1/sse`: one `refetchEvaluation` message per flag-set change, each with an
/// `id:` that only grows. A reconnecting client (its `Last-Event-ID` is not the id of the set
/// served now) missed something, so it is told to re-fetch at once.
#[utoipa::path(get, path = "/ofrep/v1/sse", tag = "ofrep", operation_id = "ofrepEventStream",
    summary = "Flag-set change stream (Server-Sent Events)",
    description = "First a `retry:` hint; then on every change of the flag set: `event: message`, \
        an `id:` that only grows, and `data:` a `RefetchEvaluationEvent`. A reconnect whose \
        `Last-Event-ID` is not the current id gets one such event at once. A comment line every \
        30 s keeps proxies from closing the stream; it ends when the relay shuts down. Browsers \
        (whose EventSource cannot send headers) use the `ticket` from a bulk answer's \
        `eventStreams` URL; `?apiKey=` also works.",
    params(("Last-Event-ID" = Option<String>, Header, nullable = false)),
    security(("ApiKey" = []), ("Bearer" = []), ("ApiKeyQuery" = []), ("StreamTicket" = [])),
    responses(
        (status = 200, content_type = "text/event-stream", body = String,
            description = "The event stream; each event's data is a `RefetchEvaluationEvent`."),
        (status = 400, description = "The request is malformed.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 503, body = ErrorBody, description = "Too many open streams \
            (`server.maxSseClients`), or the relay is shutting down."),
    ))]
pub(crate) async fn ofrep_sse(
    State(s): State<StreamState>,
    headers: HeaderMap,
    q: StreamQueryResult,
) -> Response {
    let slot = match admit(&s, &headers, q, true) {
        Ok(slot) => slot,
        Err(e) => return e.into_response(),
    };
    let changes = s.store.subscribe();
    let stop = s.lifecycle.stopping();
    let mut opening = vec![Event::default().retry(RETRY_HINT)];
    let last_seen = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    if let (Some(seen), Some(now)) = (last_seen, s.store.load())
        && seen != now.event_id()
    {
        opening.push(refetch_event(&now));
    }
    let events = follow(changes, stop, slot, |next| Some(refetch_event(next)));
    let opening = futures_util::stream::iter(opening.into_iter().map(Ok::<_, Infallible>));
    sse(futures_util::StreamExt::chain(opening, events))
}

fn refetch_event(snapshot: &Snapshot) -> Event {
    let data = RefetchEvaluationEvent {
        r#type: RefetchType::RefetchEvaluation,
        etag: snapshot.etag.clone(),
        last_modified: snapshot.last_modified,
    };
    Event::default()
        .event("message")
        .id(snapshot.event_id())
        .data(serde_json::to_string(&data).unwrap_or_default())
}

/// `GET /v1/flags/stream`: a `snapshot` event, then one `change` event per change.
#[utoipa::path(get, path = "/v1/flags/stream", tag = "sync", operation_id = "syncStream",
    summary = "Flag definitions and their changes (Server-Sent Events)",
    description = "First an event `snapshot` whose data is a `SyncFlags`, then one event `change` \
        per change whose data is a `SyncChange`. A client whose last etag is not `previousEtag` \
        fetches `/v1/flags` again. A client that fell behind (it missed a change while not \
        reading) gets an event `resync` (a `SyncResync`) instead, \
        and fetches `/v1/flags` again. The credential may also come as `?apiKey=`.",
    security(("ApiKey" = []), ("Bearer" = []), ("ApiKeyQuery" = [])),
    responses(
        (status = 200, content_type = "text/event-stream", body = String,
            description = "The event stream."),
        (status = 400, description = "The request is malformed.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 503, body = ErrorBody, description = "Too many open streams \
            (`server.maxSseClients`), or the relay is shutting down."),
    ))]
pub(crate) async fn sync_stream(
    State(s): State<StreamState>,
    headers: HeaderMap,
    q: StreamQueryResult,
) -> Response {
    let slot = match admit(&s, &headers, q, false) {
        Ok(slot) => slot,
        Err(e) => return e.into_response(),
    };
    let mut changes = s.store.subscribe();
    let stop = s.lifecycle.stopping();
    let first = changes.borrow_and_update().clone();
    let opening = first.as_ref().map(|snap| {
        Event::default()
            .event("snapshot")
            .id(snap.etag.clone())
            .data(snap.sync_json())
    });
    let diffs = s.diffs.clone();
    if let Some(first) = &first {
        diffs.observe(first);
    }
    let mut last: Option<String> = first.map(|f| f.etag.clone());
    let events = follow(changes, stop, slot, move |next| {
        let event = match last.as_deref() {
            Some(prev) if prev == next.etag => None,
            Some(prev) => Some(match diffs.diff_from(prev, next) {
                Some(diff) => Event::default()
                    .event("change")
                    .id(next.etag.clone())
                    .data(&*diff),
                None => resync_event(prev, next),
            }),
            None => Some(
                Event::default()
                    .event("snapshot")
                    .id(next.etag.clone())
                    .data(next.sync_json()),
            ),
        };
        last = Some(next.etag.clone());
        event
    });
    let opening = futures_util::stream::iter(opening.map(Ok::<_, Infallible>));
    sse(futures_util::StreamExt::chain(opening, events))
}

/// For a client that missed a change: fetch `GET /v1/flags` again.
fn resync_event(client_etag: &str, next: &Snapshot) -> Event {
    let data = SyncResync {
        etag: next.etag.clone(),
        previous_etag: client_etag.to_owned(),
        reason: "missed a change; fetch GET /v1/flags again".into(),
    };
    Event::default()
        .event("resync")
        .id(next.etag.clone())
        .data(serde_json::to_string(&data).unwrap_or_default())
}

fn sse(events: impl Stream<Item = Result<Event, Infallible>> + Send + 'static) -> Response {
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
        .into_response()
}

/// Turn snapshot changes into events until shutdown starts or the client leaves (dropping the
/// stream drops the slot). `on_change` gets the new snapshot; no snapshot is kept between
/// changes, so a client that stops reading pins none.
fn follow<F>(
    mut changes: watch::Receiver<Option<Arc<Snapshot>>>,
    stop: watch::Receiver<bool>,
    slot: ClientSlot,
    on_change: F,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static
where
    F: FnMut(&Arc<Snapshot>) -> Option<Event> + Send + 'static,
{
    struct Follow<F> {
        changes: watch::Receiver<Option<Arc<Snapshot>>>,
        stop: watch::Receiver<bool>,
        on_change: F,
        _slot: ClientSlot,
    }
    // Only changes after the client connected count.
    changes.borrow_and_update();
    let state = Follow {
        changes,
        stop,
        on_change,
        _slot: slot,
    };
    futures_util::stream::unfold(state, |mut st| async move {
        loop {
            let changed = tokio::select! {
                changed = st.changes.changed() => changed.is_ok(),
                _ = st.stop.wait_for(|s| *s) => false,
            };
            if !changed {
                return None;
            }
            let Some(next) = st.changes.borrow_and_update().clone() else {
                continue;
            };
            let event = (st.on_change)(&next);
            drop(next);
            if let Some(e) = event {
                return Some((Ok(e), st));
            }
        }
    })
}

/// The sync API's `change` payloads, computed once per change however many clients follow the
/// stream. It keeps the newest snapshot a stream has seen (the one being served, normally) and
/// the diff that led to it, never one snapshot per client: a client whose last etag is that
/// diff's `previousEtag` gets it; any other client fell behind.
#[derive(Debug, Default)]
pub(crate) struct DiffCache {
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    latest: Option<Arc<Snapshot>>,
    /// `(previousEtag, etag, payload)` of the change to `latest`.
    diff: Option<(String, String, Arc<str>)>,
}

impl DiffCache {
    /// Note `snap` as seen by a stream; when it is newer than the last one seen, compute the
    /// change to it (once, for every client).
    fn observe(&self, snap: &Arc<Snapshot>) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        match &seen.latest {
            Some(l) if l.etag == snap.etag || l.loaded_at > snap.loaded_at => {}
            Some(l) => {
                let body: Arc<str> = change_json(l, snap).into();
                seen.diff = Some((l.etag.clone(), snap.etag.clone(), body));
                seen.latest = Some(snap.clone());
            }
            None => seen.latest = Some(snap.clone()),
        }
    }

    /// The `change` payload from the snapshot with etag `from` to `next`, or `None` when the
    /// client with `from` missed a change (no shared diff applies to it).
    fn diff_from(&self, from: &str, next: &Arc<Snapshot>) -> Option<Arc<str>> {
        self.observe(next);
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        match &seen.diff {
            Some((p, n, body)) if p == from && *n == next.etag => Some(body.clone()),
            _ => None,
        }
    }
}

/// `{"etag", "previousEtag", "added", "updated", "deleted"}` between two snapshots.
pub(crate) fn change_json(prev: &Snapshot, next: &Snapshot) -> String {
    let mut added: BTreeMap<&str, FlagDef> = BTreeMap::new();
    let mut updated: BTreeMap<&str, FlagDef> = BTreeMap::new();
    let mut deleted: Vec<&str> = Vec::new();
    for (key, before, after) in crate::snapshot::differences(prev, next) {
        match (before, after) {
            (None, Some(y)) => {
                added.insert(key, y.def());
            }
            (Some(_), Some(y)) => {
                updated.insert(key, y.def());
            }
            _ => deleted.push(key),
        }
    }
    json!({
        "etag": next.etag,
        "previousEtag": prev.etag,
        "added": added,
        "updated": updated,
        "deleted": deleted,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_lists_added_updated_deleted() {
        let a = crate::snapshot::of_yaml("a: {rollout: 1}\nb: {rollout: 1}\nc: {rollout: 1}\n");
        let b = crate::snapshot::of_yaml("b: {rollout: 2}\nc: {rollout: 1}\nd: {enabled: true}\n");
        let v: serde_json::Value = serde_json::from_str(&change_json(&a, &b)).unwrap();
        assert_eq!(v["previousEtag"], a.etag.as_str());
        assert_eq!(v["etag"], b.etag.as_str());
        assert_eq!(v["deleted"], json!(["a"]));
        assert_eq!(v["updated"]["b"]["rollout"], 2);
        assert!(v["updated"].get("c").is_none());
        assert_eq!(v["added"]["d"]["enabled"], true);
    }

    #[test]
    fn stream_slots_are_bounded_and_freed() {
        let clients = StreamClients::new(2);
        let a = clients.admit().unwrap();
        let _b = clients.admit().unwrap();
        assert!(clients.admit().is_none());
        drop(a);
        assert_eq!(clients.open(), 1);
        assert!(clients.admit().is_some());
    }
}
