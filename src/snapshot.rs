//! The flag set being served: an immutable [`Snapshot`] behind an `arc-swap` pointer.
//!
//! Readers (every request) call [`SnapshotStore::load`], which takes no lock; a refresh builds
//! a complete new snapshot off to the side and swaps it in with one atomic store, so a request
//! sees either the old set or the new one, never a mix. Everything that does not depend on the
//! caller is done here, once per load: rules compiled, answers pre-serialized, keys sorted.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use fnv::FnvBuildHasher;
use serde_json::Value;
use tokio::sync::watch;

use crate::evaluator::Rules;
use crate::parse::FlagDef;

/// One flag, ready to answer.
#[derive(Debug)]
pub struct Entry {
    pub key: Box<str>,
    pub def: FlagDef,
    pub rules: Rules,
    /// JSON of the key, quoted and escaped.
    pub key_json: Box<str>,
    /// JSON of `value.on` / `value.off` (floats keep their decimal point).
    pub on_json: Box<str>,
    pub off_json: Box<str>,
    /// JSON object of the OFREP metadata: `description` plus the flag's `metadata`.
    pub metadata_json: Box<str>,
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
    index: HashMap<Box<str>, usize, FnvBuildHasher>,
    /// The rollout salt the rules were compiled with (the sync API hands it to SDKs).
    salt: Option<String>,
    /// The sync API body, rendered on first use.
    sync_json: OnceLock<Arc<str>>,
    /// The change id streams announce (`id:`): set once, when the store swaps this set in;
    /// see [`SnapshotStore::swap`].
    change_id: AtomicU64,
}

impl Snapshot {
    /// Build from merged definitions. `salt` is the relay's `rolloutSalt`.
    pub fn build(flags: BTreeMap<String, FlagDef>, salt: Option<&str>) -> Snapshot {
        let etag = content_hash(&flags);
        let mut entries = Vec::with_capacity(flags.len());
        let mut index = HashMap::with_capacity_and_hasher(flags.len(), FnvBuildHasher::default());
        for (i, (key, def)) in flags.into_iter().enumerate() {
            let rules = Rules::compile(&key, &def, salt);
            let json = |v: &Value| serde_json::to_string(v).unwrap_or_else(|_| "null".into());
            let entry = Entry {
                key_json: json(&Value::String(key.clone())).into(),
                on_json: json(&def.value.on).into(),
                off_json: json(&def.value.off).into(),
                metadata_json: metadata_json(&def).into(),
                key: key.into(),
                rules,
                def,
            };
            index.insert(entry.key.clone(), i);
            entries.push(entry);
        }
        let loaded_at = SystemTime::now();
        Snapshot {
            etag,
            last_modified: unix(loaded_at),
            fleet_version: None,
            generation: 0,
            loaded_at,
            entries,
            index,
            salt: salt.filter(|s| !s.is_empty()).map(String::from),
            sync_json: OnceLock::new(),
            change_id: AtomicU64::new(0),
        }
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
        self.index.get(key).map(|&i| &self.entries[i])
    }

    /// All flags, sorted by key.
    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
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
    pub(crate) fn sync_json(&self) -> Arc<str> {
        self.sync_json
            .get_or_init(|| {
                let mut body = serde_json::Map::new();
                body.insert("etag".into(), Value::String(self.etag.clone()));
                if let Some(salt) = &self.salt {
                    body.insert("salt".into(), Value::String(salt.clone()));
                }
                let flags = serde_json::to_value(self.defs()).unwrap_or_default();
                body.insert("flags".into(), flags);
                Value::Object(body).to_string().into()
            })
            .clone()
    }

    /// The definitions, as the sync API and the persisted snapshot carry them.
    pub fn defs(&self) -> BTreeMap<&str, &FlagDef> {
        self.entries.iter().map(|e| (&*e.key, &e.def)).collect()
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
            (Some(x), Some(y)) if x.key == y.key => {
                if x.def != y.def {
                    out.push((&*y.key, Some(x), Some(y)));
                }
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x.key < y.key => {
                out.push((&*x.key, Some(x), None));
                i += 1;
            }
            (Some(x), None) => {
                out.push((&*x.key, Some(x), None));
                i += 1;
            }
            (_, Some(y)) => {
                out.push((&*y.key, None, Some(y)));
                j += 1;
            }
            (None, None) => return out,
        }
    }
}

fn metadata_json(def: &FlagDef) -> String {
    let mut meta = serde_json::Map::new();
    if let Some(d) = &def.description {
        meta.insert("description".into(), Value::String(d.clone()));
    }
    if let Some(m) = &def.metadata {
        for (k, v) in m {
            meta.insert(k.clone(), v.clone());
        }
    }
    serde_json::to_string(&meta).unwrap_or_else(|_| "{}".into())
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
        let keys: Vec<&str> = s.entries().iter().map(|e| &*e.key).collect();
        assert_eq!(keys, vec!["a", "z"]);
        let a = s.get("a").unwrap();
        assert_eq!(&*a.on_json, "1.0");
        assert_eq!(&*a.metadata_json, r#"{"description":"d","team":"x"}"#);
        assert_eq!(&*s.get("z").unwrap().on_json, "true");
        assert!(s.get("missing").is_none());
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
