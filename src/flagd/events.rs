//! `EventStream`: what flagd sends, independent of the wire (gRPC or Connect).
//!
//! `provider_ready` when the stream opens, `configuration_change` with `data.flags` a map from
//! each changed flag key to `{"type": "write"|"update"|"delete"}` on every change of the served
//! set (the providers drop their cache of `STATIC` answers on it; the Python provider reads the
//! map's keys, so a list would silently stop it), and `keep_alive` after 20 s without an event,
//! as flagd does. Streams count against `server.maxSseClients` with the SSE streams, and end
//! cleanly when shutdown starts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::http::stream::ClientSlot;
use crate::snapshot::{Snapshot, SnapshotStore};

/// flagd sends a keep-alive when a stream has been idle this long.
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(20);

pub(crate) const PROVIDER_READY: &str = "provider_ready";
pub(crate) const CONFIGURATION_CHANGE: &str = "configuration_change";
pub(crate) const KEEP_ALIVE_EVENT: &str = "keep_alive";

/// One `EventStreamResponse`: its `type` and its `data` (`None` for keep-alives, as flagd).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Event {
    pub kind: &'static str,
    pub data: Option<serde_json::Map<String, Value>>,
}

/// The events of one stream, until the client leaves (dropping the stream frees `slot`) or
/// shutdown starts.
pub(crate) fn follow(
    store: &SnapshotStore,
    stop: watch::Receiver<bool>,
    slot: ClientSlot,
    keep_alive: Duration,
) -> impl Stream<Item = Event> + Send + 'static {
    struct State {
        changes: watch::Receiver<Option<Arc<Snapshot>>>,
        stop: watch::Receiver<bool>,
        prev: Option<Arc<Snapshot>>,
        ready_sent: bool,
        keep_alive: Duration,
        _slot: ClientSlot,
    }
    let mut changes = store.subscribe();
    // Only changes after the client connected count.
    let prev = changes.borrow_and_update().clone();
    let state = State {
        changes,
        stop,
        prev,
        ready_sent: false,
        keep_alive,
        _slot: slot,
    };
    futures_util::stream::unfold(state, |mut st| async move {
        if !st.ready_sent {
            st.ready_sent = true;
            let ready = Event {
                kind: PROVIDER_READY,
                data: Some(Default::default()),
            };
            return Some((ready, st));
        }
        loop {
            enum Woke {
                Changed,
                Stop,
                Idle,
            }
            let woke = tokio::select! {
                changed = st.changes.changed() => if changed.is_ok() { Woke::Changed } else { Woke::Stop },
                _ = st.stop.wait_for(|s| *s) => Woke::Stop,
                () = tokio::time::sleep(st.keep_alive) => Woke::Idle,
            };
            match woke {
                Woke::Stop => return None,
                Woke::Idle => {
                    let ka = Event {
                        kind: KEEP_ALIVE_EVENT,
                        data: None,
                    };
                    return Some((ka, st));
                }
                Woke::Changed => {
                    let Some(next) = st.changes.borrow_and_update().clone() else {
                        continue;
                    };
                    let flags = changed_flags(st.prev.as_deref(), &next);
                    st.prev = Some(next);
                    if flags.is_empty() {
                        continue;
                    }
                    let mut data = serde_json::Map::new();
                    data.insert("flags".into(), Value::Object(flags));
                    let ev = Event {
                        kind: CONFIGURATION_CHANGE,
                        data: Some(data),
                    };
                    return Some((ev, st));
                }
            }
        }
    })
}

/// `{key: {"type": "write"|"update"|"delete"}}` between two flag sets, as flagd's
/// `notifications.NewFromFlags` (created flags are `write`).
pub(crate) fn changed_flags(
    prev: Option<&Snapshot>,
    next: &Snapshot,
) -> serde_json::Map<String, Value> {
    let mut out: BTreeMap<&str, &str> = BTreeMap::new();
    let before = prev.map_or(&[][..], |p| p.entries());
    for e in before {
        if next.get(e.key()).is_none() {
            out.insert(e.key(), "delete");
        }
    }
    for e in next.entries() {
        match prev.and_then(|p| p.get(e.key())) {
            None => {
                out.insert(e.key(), "write");
            }
            Some(old) if !old.same_def(e) => {
                out.insert(e.key(), "update");
            }
            Some(_) => {}
        }
    }
    out.into_iter()
        .map(|(k, t)| (k.to_owned(), json!({ "type": t })))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn snap(text: &str) -> Arc<Snapshot> {
        let flags = crate::parse::parse_document("t", text.as_bytes(), None)
            .unwrap()
            .flags;
        Arc::new(Snapshot::build(flags.into_iter().collect(), None))
    }

    #[test]
    fn changes_are_a_map_keyed_by_flag() {
        let a = snap("a: {rollout: 1}\nb: {rollout: 1}\nc: {rollout: 1}\n");
        let b = snap("b: {rollout: 2}\nc: {rollout: 1}\nd: {enabled: true}\n");
        let m = Value::Object(changed_flags(Some(&a), &b));
        assert_eq!(
            m,
            json!({"a": {"type": "delete"}, "b": {"type": "update"}, "d": {"type": "write"}})
        );
        assert!(changed_flags(Some(&b), &b).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn ready_then_changes_then_keep_alive_then_end_on_stop() {
        let store = SnapshotStore::new();
        store.swap(snap("a: {rollout: 1}\n"));
        let clients = crate::http::StreamClients::new(1);
        let slot = clients.admit().unwrap();
        let (stop_tx, stop) = watch::channel(false);
        let mut events = Box::pin(follow(&store, stop, slot, KEEP_ALIVE));
        assert_eq!(events.next().await.unwrap().kind, PROVIDER_READY);
        assert!(clients.admit().is_none(), "the stream holds its slot");
        // The same content again is no change; a different one is.
        store.swap(snap("a: {rollout: 1}\n"));
        store.swap(snap("a: {rollout: 2}\n"));
        let ev = events.next().await.unwrap();
        assert_eq!(ev.kind, CONFIGURATION_CHANGE);
        assert_eq!(
            Value::Object(ev.data.unwrap()),
            json!({"flags": {"a": {"type": "update"}}})
        );
        let ev = events.next().await.unwrap();
        assert_eq!(ev.kind, KEEP_ALIVE_EVENT);
        stop_tx.send_replace(true);
        assert!(events.next().await.is_none());
        drop(events);
        assert!(clients.admit().is_some(), "the slot is freed");
    }
}
