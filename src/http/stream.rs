//! Server-Sent Events: the OFREP change stream (`GET /ofrep/v1/sse`) and the sync API's
//! stream (`GET /v1/flags/stream`).
//!
//! Both follow the snapshot store's change channel. A client that falls behind simply gets
//! the latest state (the channel keeps only the newest snapshot), which is what both protocols
//! want: OFREP clients re-fetch anyway, and sync clients get a diff from the etag they have.
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
use super::error::ApiError;
use super::monitoring::Lifecycle;
use crate::parse::FlagDef;
use crate::snapshot::{Snapshot, SnapshotStore};

/// Keep-alive comments keep proxies from closing idle streams.
pub const KEEP_ALIVE: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct StreamState {
    pub store: Arc<SnapshotStore>,
    pub auth: Arc<Auth>,
    pub lifecycle: Arc<Lifecycle>,
    pub clients: Arc<StreamClients>,
    pub diffs: Arc<DiffCache>,
}

/// Counts open streams against `server.maxSseClients`.
#[derive(Debug)]
pub struct StreamClients {
    open: AtomicUsize,
    max: usize,
}

impl StreamClients {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(StreamClients {
            open: AtomicUsize::new(0),
            max,
        })
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    fn admit(self: &Arc<Self>) -> Option<ClientSlot> {
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
struct ClientSlot(Arc<StreamClients>);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Debug, Deserialize)]
pub struct StreamQuery {
    #[serde(rename = "apiKey")]
    api_key: Option<String>,
    /// A stream ticket from a bulk answer's `eventStreams` (OFREP stream only).
    ticket: Option<String>,
}

/// How long a client should wait before reconnecting (`retry:`): soon, but not in a tight loop
/// when the relay is restarting.
const RETRY_HINT: Duration = Duration::from_secs(3);

fn admit(
    s: &StreamState,
    headers: &HeaderMap,
    q: &StreamQuery,
    tickets: bool,
) -> Result<ClientSlot, ApiError> {
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
pub async fn ofrep_sse(
    State(s): State<StreamState>,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Response {
    let slot = match admit(&s, &headers, &q, true) {
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
    let events = follow(changes, stop, slot, |_, next| Some(refetch_event(next)));
    let opening = futures_util::stream::iter(opening.into_iter().map(Ok::<_, Infallible>));
    sse(futures_util::StreamExt::chain(opening, events))
}

fn refetch_event(snapshot: &Snapshot) -> Event {
    let data = json!({
        "type": "refetchEvaluation",
        "etag": snapshot.etag,
        "lastModified": snapshot.last_modified,
    });
    Event::default()
        .event("message")
        .id(snapshot.event_id())
        .data(data.to_string())
}

/// `GET /v1/flags/stream`: a `snapshot` event, then one `change` event per change.
pub async fn sync_stream(
    State(s): State<StreamState>,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Response {
    let slot = match admit(&s, &headers, &q, false) {
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
            .data(&*snap.sync_json())
    });
    let diffs = s.diffs.clone();
    let mut last = first;
    let events = follow(changes, stop, slot, move |_, next| {
        let event = match &last {
            Some(prev) if prev.etag == next.etag => None,
            Some(prev) => Some(
                Event::default()
                    .event("change")
                    .id(next.etag.clone())
                    .data(&*diffs.diff(prev, next)),
            ),
            None => Some(
                Event::default()
                    .event("snapshot")
                    .id(next.etag.clone())
                    .data(&*next.sync_json()),
            ),
        };
        last = Some(next.clone());
        event
    });
    let opening = futures_util::stream::iter(opening.map(Ok::<_, Infallible>));
    sse(futures_util::StreamExt::chain(opening, events))
}

fn sse(events: impl Stream<Item = Result<Event, Infallible>> + Send + 'static) -> Response {
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
        .into_response()
}

/// Turn snapshot changes into events until shutdown starts or the client leaves (dropping the
/// stream drops the slot). `on_change` gets the previous and the new snapshot.
fn follow<F>(
    mut changes: watch::Receiver<Option<Arc<Snapshot>>>,
    stop: watch::Receiver<bool>,
    slot: ClientSlot,
    on_change: F,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static
where
    F: FnMut(Option<&Arc<Snapshot>>, &Arc<Snapshot>) -> Option<Event> + Send + 'static,
{
    struct Follow<F> {
        changes: watch::Receiver<Option<Arc<Snapshot>>>,
        stop: watch::Receiver<bool>,
        prev: Option<Arc<Snapshot>>,
        on_change: F,
        _slot: ClientSlot,
    }
    // Only changes after the client connected count.
    let prev = changes.borrow_and_update().clone();
    let state = Follow {
        changes,
        stop,
        prev,
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
            let event = (st.on_change)(st.prev.as_ref(), &next);
            st.prev = Some(next);
            if let Some(e) = event {
                return Some((Ok(e), st));
            }
        }
    })
}

/// The sync API's `change` payloads, computed once per pair of snapshots however many clients
/// follow the stream.
#[derive(Debug, Default)]
pub struct DiffCache {
    last: Mutex<Option<(String, String, Arc<str>)>>,
}

impl DiffCache {
    pub fn diff(&self, prev: &Snapshot, next: &Snapshot) -> Arc<str> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((p, n, body)) = last.as_ref()
            && *p == prev.etag
            && *n == next.etag
        {
            return body.clone();
        }
        let body: Arc<str> = change_json(prev, next).into();
        *last = Some((prev.etag.clone(), next.etag.clone(), body.clone()));
        body
    }
}

/// `{"etag", "previousEtag", "added", "updated", "deleted"}` between two snapshots.
pub fn change_json(prev: &Snapshot, next: &Snapshot) -> String {
    let mut added: BTreeMap<&str, &FlagDef> = BTreeMap::new();
    let mut updated: BTreeMap<&str, &FlagDef> = BTreeMap::new();
    let mut deleted: Vec<&str> = Vec::new();
    for (key, before, after) in crate::snapshot::differences(prev, next) {
        match (before, after) {
            (None, Some(y)) => {
                added.insert(key, &y.def);
            }
            (Some(_), Some(y)) => {
                updated.insert(key, &y.def);
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
