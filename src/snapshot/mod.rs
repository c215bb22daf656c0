//! The flag set being served: an immutable [`Snapshot`] behind an `arc-swap` pointer.
//!
//! Readers (every request) call [`SnapshotStore::load`], which takes no lock; a refresh builds
//! a complete new snapshot off to the side and swaps it in with one atomic store, so a request
//! sees either the old set or the new one, never a mix. Everything that does not depend on the
//! caller is done here, once per load: rules compiled, answers pre-serialized, keys sorted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use tokio::sync::watch;

use crate::evaluator::{Outcome, Rules, SetRules, Subject};
use crate::parse::FlagDef;

mod index;
mod text;
pub(crate) use index::KeyIndex;
use text::{SetText, Spans};

/// The most an OFREP answer has after its head and besides its value: reason, variant, the
/// `value` key and the closing brace (the OFREP writer's tests hold its pieces to this).
pub(crate) const ANSWER_TAIL_MAX: usize = 64;

/// One flag, ready to answer.
#[derive(Debug)]
pub struct Entry {
    rules: Rules,
    /// The flag set's text (see [`text`]): this flag's definition, key, values and metadata
    /// are slices of it, so the definition is kept once, as the sync API serves it; and the
    /// set's packed allow lists, which `rules` may point into.
    text: Arc<SetText>,
    spans: Spans,
}

impl Entry {
    /// The flag's key.
    #[inline]
    pub fn key(&self) -> &str {
        self.spans.key(&self.text.json)
    }

    /// Run the flag's rule chain for `s`.
    #[inline]
    pub fn evaluate(&self, s: &Subject<'_>) -> Outcome {
        self.rules.evaluate_in(&self.text.lists, s)
    }

    /// JSON of `value.on` (floats keep their decimal point).
    #[inline]
    pub(crate) fn on_json(&self) -> &str {
        self.spans.on_json(&self.text.json)
    }

    /// JSON of `value.off`.
    #[inline]
    pub(crate) fn off_json(&self) -> &str {
        self.spans.off_json(&self.text.json)
    }

    /// JSON object of the OFREP metadata: `description` plus the flag's `metadata`.
    #[inline]
    pub(crate) fn metadata_json(&self) -> &str {
        self.spans.metadata_json(&self.text.json)
    }

    /// `,{"key":…,"metadata":{…}`: the start of this flag's OFREP answer, kept whole so a
    /// bulk answer writes it with one copy (the leading comma is for the flags after the
    /// first).
    #[inline]
    pub(crate) fn answer_head(&self) -> &str {
        self.spans.answer_head(&self.text.json)
    }

    /// The values are `true` and `false` (most flags): a static piece can carry them.
    #[inline]
    pub(crate) fn plain_bool(&self) -> bool {
        self.spans.plain_bool()
    }

    /// The canonical JSON of the definition, as the sync API serves it.
    pub(crate) fn def_json(&self) -> &str {
        self.spans.def_json(&self.text.json)
    }

    /// The definition (parsed from its canonical JSON: for the rare paths that need fields).
    pub fn def(&self) -> FlagDef {
        serde_json::from_str(self.def_json()).expect("a snapshot's own canonical JSON parses")
    }

    /// Whether two entries hold the same definition (`FlagDef` equality: metadata in another
    /// order is the same definition, as before definitions were kept as text).
    pub(crate) fn same_def(&self, other: &Entry) -> bool {
        self.def_json() == other.def_json() || self.def() == other.def()
    }
}

/// An immutable, fully validated flag set.
#[derive(Debug)]
pub struct Snapshot {
    /// Content hash of the canonical flag set (hex), the flag-set etag.
    pub etag: String,
    /// When this content was first loaded.
    pub loaded_at: SystemTime,
    /// Unix seconds of the newest source document (file mtime, `Last-Modified`), or of the
    /// fleet's published set; the load time only when no source says. Served as the bulk
    /// `lastModified`, so two relays on the same sources answer the same bytes.
    pub last_modified: u64,
    /// The fleet-wide version this set was published under (fleet mode only).
    pub fleet_version: Option<u64>,
    /// Which swap of the refresher brought this set in (1 for the first; 0 for a set swapped
    /// in otherwise): orders flag sets for the per-flag metrics, where the clock cannot.
    pub generation: u64,
    /// Sorted by key (bulk evaluation and the sync API answer in key order).
    entries: Vec<Entry>,
    /// Positions in `entries` by the key's FNV hash; the keys themselves are the entries'.
    index: KeyIndex,
    /// The entries' rules again, compiled for evaluating them all at once.
    set_rules: SetRules,
    /// The rollout salt the rules were compiled with (the sync API hands it to SDKs).
    salt: Option<String>,
    /// The set's text (see [`text`]): the sync API body, then the metadata objects.
    text: Arc<SetText>,
    /// Where the `flags` object starts in the body (it runs to the body's last byte but one).
    flags_at: usize,
    body_end: usize,
    /// Room enough for every flag's part of a bulk answer (see [`Snapshot::bulk_size`]).
    bulk_size: usize,
    /// The change id streams announce (`id:`): set once, when the store swaps this set in;
    /// see [`SnapshotStore::swap`].
    change_id: AtomicU64,
}

impl Snapshot {
    /// Build from merged definitions. `salt` is the relay's `rolloutSalt`.
    ///
    /// The definitions are freed only once the set is built (see `build_in_order`).
    pub fn build(flags: BTreeMap<String, FlagDef>, salt: Option<&str>) -> Snapshot {
        let set = Snapshot::build_in_order(flags.iter().map(|(k, d)| (k.as_str(), d)), salt);
        drop(flags);
        set
    }

    /// [`Snapshot::build`] from definitions already sorted by key, each key once (a refresh of
    /// one source sorts its document instead of building a map of it).
    pub(crate) fn build_sorted(flags: Vec<(String, FlagDef)>, salt: Option<&str>) -> Snapshot {
        assert!(
            flags.windows(2).all(|w| w[0].0 < w[1].0),
            "build_sorted takes keys in strictly increasing order"
        );
        let set = Snapshot::build_in_order(flags.iter().map(|(k, d)| (k.as_str(), d)), salt);
        drop(flags);
        set
    }

    /// Why the definitions are borrowed, not consumed: a set's small allocations (keys, allow
    /// lists) live as long as it does. Made while each definition is being freed, they land in
    /// the definitions' freed chunks, scattered over every page the parse used, and those pages
    /// can never go back to the OS. Made while the definitions are all still alive, they come
    /// from fresh memory, and the parse's pages are free as a whole when the definitions go.
    fn build_in_order<'a>(
        flags: impl ExactSizeIterator<Item = (&'a str, &'a FlagDef)>,
        salt: Option<&str>,
    ) -> Snapshot {
        let salt = salt.filter(|s| !s.is_empty()).map(String::from);
        let mut writer = text::Writer::new(salt.as_deref(), flags.len());
        let mut spans = Vec::with_capacity(flags.len());
        let mut rules = Vec::with_capacity(flags.len());
        let mut lists = Vec::new();
        for (key, def) in flags {
            spans.push(writer.push(key, def));
            rules.push(Rules::compile_into(
                key,
                def,
                salt.as_deref(),
                Some(&mut lists),
            ));
        }
        let done = writer.finish(&mut spans, lists);
        let mut entries = Vec::with_capacity(rules.len());
        for (rules, spans) in rules.into_iter().zip(spans) {
            entries.push(Entry {
                rules,
                text: done.text.clone(),
                spans,
            });
        }
        let index = KeyIndex::new(entries.len(), |i| entries[i].key());
        let set_rules = SetRules::compile(entries.iter().map(|e| &e.rules), &done.text.lists);
        let bulk_size = entries
            .iter()
            .map(|e| {
                e.answer_head().len() + ANSWER_TAIL_MAX + e.on_json().len().max(e.off_json().len())
            })
            .sum();
        let loaded_at = SystemTime::now();
        Snapshot {
            etag: done.etag,
            last_modified: unix(loaded_at),
            fleet_version: None,
            generation: 0,
            loaded_at,
            entries,
            index,
            set_rules,
            salt,
            text: done.text,
            flags_at: done.flags_at,
            body_end: done.body_end,
            bulk_size,
            change_id: AtomicU64::new(0),
        }
    }

    /// Bytes enough for every flag's part of a bulk answer (its head, the reason and variant,
    /// and the longer value): the answer's buffer is sized once, from a sum made at load
    /// instead of on every request.
    pub(crate) fn bulk_size(&self) -> usize {
        self.bulk_size
    }

    /// The id of the change that brought this set in: it only grows from one served set to the
    /// next, also across restarts (it is at least the swap's Unix time in milliseconds), so a
    /// stream client's `Last-Event-ID` tells whether it missed a change. 0 before the swap.
    pub(crate) fn change_id(&self) -> u64 {
        self.change_id.load(Ordering::Acquire)
    }

    pub(crate) fn empty() -> Snapshot {
        Snapshot::build(BTreeMap::new(), None)
    }

    #[inline]
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.index
            .find(key, |i| self.entries[i].key())
            .map(|i| &self.entries[i])
    }

    /// All flags, sorted by key.
    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Every flag's outcome for `s`, in key order (see [`SetRules`]).
    pub(crate) fn evaluate_all(&self, s: &Subject<'_>) -> Vec<Outcome> {
        self.set_rules.evaluate_all(s)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Seconds since the Unix epoch of [`Snapshot::loaded_at`].
    pub(crate) fn loaded_at_unix(&self) -> u64 {
        unix(self.loaded_at)
    }

    /// The OFREP stream's `id:` for this set: the fleet version in fleet mode (the same on every
    /// replica), else [`Snapshot::change_id`].
    pub(crate) fn event_id(&self) -> String {
        match self.fleet_version {
            Some(v) => v.to_string(),
            None => self.change_id().to_string(),
        }
    }

    /// The rollout salt the rules were compiled with.
    pub(crate) fn salt(&self) -> Option<&str> {
        self.salt.as_deref()
    }

    /// `{"etag", "salt"?, "flags": {key: flag}}`: what `GET /v1/flags` answers.
    pub(crate) fn sync_json(&self) -> &str {
        &self.text.json[..self.body_end]
    }

    /// The canonical JSON of the whole flag set, `{key: flag}` in key order: what the etag is
    /// the hash of, and what the persisted snapshot and the fleet carry.
    pub(crate) fn flags_json(&self) -> &str {
        &self.text.json[self.flags_at..self.body_end - 1]
    }

    /// The definitions, parsed from their canonical JSON.
    pub fn defs(&self) -> BTreeMap<&str, FlagDef> {
        self.entries.iter().map(|e| (e.key(), e.def())).collect()
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// One key that differs between two flag sets: its entry before and after (`None` where the
/// set does not have it). Equal entries are skipped.
pub(crate) type Difference<'a> = (&'a str, Option<&'a Entry>, Option<&'a Entry>);

/// The keys added, changed or removed from `prev` to `next`, in key order: both entry lists are
/// sorted, so one walk over the two finds them.
pub(crate) fn differences<'a>(prev: &'a Snapshot, next: &'a Snapshot) -> Vec<Difference<'a>> {
    let (a, b) = (prev.entries(), next.entries());
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    loop {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x.key() == y.key() => {
                if !x.same_def(y) {
                    out.push((y.key(), Some(x), Some(y)));
                }
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x.key() < y.key() => {
                out.push((x.key(), Some(x), None));
                i += 1;
            }
            (Some(x), None) => {
                out.push((x.key(), Some(x), None));
                i += 1;
            }
            (_, Some(y)) => {
                out.push((y.key(), None, Some(y)));
                j += 1;
            }
            (None, None) => return out,
        }
    }
}

/// Hex SHA-256 (first 128 bits) of the canonical JSON of a flag set.
pub fn content_hash(flags: &BTreeMap<String, FlagDef>) -> String {
    let canonical = serde_json::to_vec(flags).unwrap_or_default();
    short_hash(&canonical)
}

/// Hex of the first 128 bits of SHA-256 (through aws-lc-rs, so FIPS builds cover it).
pub fn short_hash(bytes: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    crate::shared::hex(&digest.as_ref()[..16])
}

/// Where the current snapshot lives. Cloned as `Arc<SnapshotStore>` into every handler.
#[derive(Debug)]
pub struct SnapshotStore {
    current: ArcSwapOption<Snapshot>,
    /// Change notifications for streams (SSE); the hot path never touches this.
    changes: watch::Sender<Option<Arc<Snapshot>>>,
}

impl Default for SnapshotStore {
    fn default() -> Self {
        SnapshotStore {
            current: ArcSwapOption::empty(),
            changes: watch::Sender::new(None),
        }
    }
}

impl SnapshotStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// The snapshot being served, or `None` before the first load. Lock-free.
    #[inline]
    pub fn load(&self) -> Option<Arc<Snapshot>> {
        self.current.load_full()
    }

    /// The served set without taking a reference count: for a request that reads it and
    /// answers without awaiting (a single evaluation). `load` increments and decrements the
    /// set's count, one cache line every worker thread writes.
    #[inline]
    pub(crate) fn peek(&self) -> arc_swap::Guard<Option<Arc<Snapshot>>> {
        self.current.load()
    }

    /// Serve `next` from now on, and tell the streams. Returns the set it replaced.
    pub(crate) fn swap(&self, next: Arc<Snapshot>) -> Option<Arc<Snapshot>> {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let after = self.current.load().as_ref().map_or(0, |c| c.change_id());
        // Before publishing, so every reader of `next` sees its id.
        next.change_id
            .store(now_ms.max(after.saturating_add(1)), Ordering::Release);
        let old = self.current.swap(Some(next.clone()));
        self.changes.send_replace(Some(next));
        old
    }

    /// A receiver that wakes on every swap.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Option<Arc<Snapshot>>> {
        self.changes.subscribe()
    }
}

/// A snapshot of a YAML flag document, for unit tests across the crate.
#[cfg(test)]
pub(crate) fn of_yaml(text: &str) -> Snapshot {
    let flags = crate::parse::parse_document("t", text.as_bytes(), None)
        .unwrap()
        .flags;
    Snapshot::build(flags.into_iter().collect(), None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn defs(text: &str) -> BTreeMap<String, FlagDef> {
        crate::parse::parse_document("t", text.as_bytes(), None)
            .unwrap()
            .flags
            .into_iter()
            .collect()
    }

    #[test]
    fn etag_depends_on_content_only() {
        let a = Snapshot::build(defs("b: {enabled: true}\na: {rollout: 5}\n"), None);
        let b = Snapshot::build(defs("a: {rollout: 5}\nb: {enabled: true}\n"), None);
        assert_eq!(a.etag, b.etag, "order in the document does not matter");
        let c = Snapshot::build(defs("a: {rollout: 6}\nb: {enabled: true}\n"), None);
        assert_ne!(a.etag, c.etag);
        assert_eq!(a.etag.len(), 32);
    }

    #[test]
    fn entries_sorted_and_prerendered() {
        let s = Snapshot::build(
            defs(
                "z: {enabled: true}\na:\n  value: {on: 1.0, off: 0.5}\n  description: d\n  metadata: {team: x}\n",
            ),
            None,
        );
        let keys: Vec<&str> = s.entries().iter().map(|e| e.key()).collect();
        assert_eq!(keys, vec!["a", "z"]);
        let a = s.get("a").unwrap();
        assert_eq!(a.on_json(), "1.0");
        assert_eq!(a.metadata_json(), r#"{"description":"d","team":"x"}"#);
        assert_eq!(s.get("z").unwrap().on_json(), "true");
        assert!(s.get("missing").is_none());
    }

    /// The sync body written entry by entry is byte for byte what serializing the definitions
    /// gives, and the etag is still the content hash of the canonical set.
    #[test]
    fn sync_body_and_etag_as_serialized_definitions() {
        let text = "b: {enabled: true, users: [\"q\\\"x\"], value: {on: 1.0, off: 2}}\n\"k\\u00e9\": {metadata: {z: 1, a: \"\u{e9}\"}, description: d}\na: {rollout: 5, value: {on: {x: [1, 2.5]}, off: {}}}\n";
        let flags = defs(text);
        for salt in [None, Some("s\"alt")] {
            let s = Snapshot::build(flags.clone(), salt);
            assert_eq!(s.etag, content_hash(&flags));
            let canonical = serde_json::to_string(&flags).unwrap();
            assert_eq!(s.flags_json(), canonical);
            let mut body = serde_json::Map::new();
            body.insert("etag".into(), Value::String(s.etag.clone()));
            if let Some(salt) = salt {
                body.insert("salt".into(), Value::String(salt.into()));
            }
            let by_ref: BTreeMap<&String, &FlagDef> = flags.iter().collect();
            body.insert("flags".into(), serde_json::to_value(by_ref).unwrap());
            assert_eq!(s.sync_json(), Value::Object(body).to_string());
            for e in s.entries() {
                assert_eq!(e.def(), flags[e.key()]);
                assert_eq!(
                    e.def_json(),
                    serde_json::to_string(&flags[e.key()]).unwrap()
                );
            }
        }
    }

    #[test]
    fn metadata_order_is_not_a_difference() {
        let a = Snapshot::build(defs("a: {metadata: {x: 1, y: 2}}\n"), None);
        let b = Snapshot::build(defs("a: {metadata: {y: 2, x: 1}}\n"), None);
        let c = Snapshot::build(defs("a: {metadata: {y: 2, x: 3}}\n"), None);
        assert!(differences(&a, &b).is_empty());
        assert_eq!(differences(&a, &c).len(), 1);
    }

    #[test]
    fn store_swaps_and_notifies() {
        let store = SnapshotStore::new();
        assert!(store.load().is_none());
        let mut rx = store.subscribe();
        store.swap(Arc::new(Snapshot::empty()));
        assert!(store.load().is_some());
        assert!(rx.has_changed().unwrap());
        assert!(rx.borrow_and_update().is_some());
    }
}
