//! Per-flag evaluation counters: a table built once per flag set and swapped with `arc-swap`
//! (lock-free to read); a flag that stays across a change keeps its counter object.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use fnv::FnvBuildHasher;

use super::Metrics;
use super::labels::{REASONS, reason_index};
use crate::evaluator::Reason;
use crate::snapshot::{Entry, Snapshot};

/// One flag's evaluation counters, one per reason.
#[derive(Debug, Default)]
pub(super) struct FlagCounters(pub(super) [AtomicU64; REASONS.len()]);

/// The per-flag counters for one flag set: aligned with [`Snapshot::entries`] by position,
/// plus an index by key (for requests still holding an older flag set).
#[derive(Debug)]
pub(super) struct FlagTable {
    pub(super) etag: String,
    pub(super) loaded_at: SystemTime,
    pub(super) keys: Vec<Box<str>>,
    pub(super) by_pos: Vec<Arc<FlagCounters>>,
    /// Flags of the previous set that this one removed, shown until the next change.
    pub(super) retired: Vec<(Box<str>, Arc<FlagCounters>)>,
    by_key: HashMap<Box<str>, Arc<FlagCounters>, FnvBuildHasher>,
}

impl FlagTable {
    pub(super) fn empty() -> FlagTable {
        FlagTable {
            etag: String::new(),
            loaded_at: UNIX_EPOCH,
            keys: Vec::new(),
            by_pos: Vec::new(),
            retired: Vec::new(),
            by_key: HashMap::default(),
        }
    }

    /// The table for `snapshot`, carrying over the counters of every flag `prev` knew.
    pub(super) fn build(snapshot: &Snapshot, prev: &FlagTable) -> FlagTable {
        let entries = snapshot.entries();
        let mut keys = Vec::with_capacity(entries.len());
        let mut by_pos = Vec::with_capacity(entries.len());
        let mut by_key =
            HashMap::with_capacity_and_hasher(entries.len(), FnvBuildHasher::default());
        for e in entries {
            let c = prev.by_key.get(&e.key).cloned().unwrap_or_default();
            keys.push(e.key.clone());
            by_pos.push(c.clone());
            by_key.insert(e.key.clone(), c);
        }
        let retired: Vec<_> = prev
            .keys
            .iter()
            .zip(&prev.by_pos)
            .filter(|(k, _)| !by_key.contains_key(&***k))
            .map(|(k, c)| (k.clone(), c.clone()))
            .collect();
        for (k, c) in &retired {
            by_key.insert(k.clone(), c.clone());
        }
        FlagTable {
            etag: snapshot.etag.clone(),
            loaded_at: snapshot.loaded_at,
            keys,
            by_pos,
            retired,
            by_key,
        }
    }

    #[inline]
    pub(super) fn counters(&self, snapshot: &Snapshot, entry: &Entry) -> Option<&FlagCounters> {
        if self.etag == snapshot.etag
            && let Some(i) = position(snapshot, entry)
        {
            return self.by_pos.get(i).map(|c| &**c);
        }
        self.by_key.get(&entry.key).map(|c| &**c)
    }
}

/// Where `entry` sits in `snapshot.entries()`, if it is one of them.
#[inline]
pub(super) fn position(snapshot: &Snapshot, entry: &Entry) -> Option<usize> {
    let entries = snapshot.entries();
    let size = std::mem::size_of::<Entry>();
    let offset = (entry as *const Entry as usize).checked_sub(entries.as_ptr() as usize)?;
    let i = offset / size;
    (offset % size == 0 && i < entries.len()).then_some(i)
}

/// Records the evaluations of one bulk request against the flag set it evaluated.
pub(crate) struct Recorder<'a> {
    pub(super) metrics: &'a Metrics,
    pub(super) table: Option<arc_swap::Guard<Arc<FlagTable>>>,
}

impl Recorder<'_> {
    /// Count the evaluation of the flag at `position` in `snapshot.entries()`.
    #[inline]
    pub(crate) fn record(&self, position: usize, reason: Reason) {
        if let Some(c) = self.table.as_ref().and_then(|t| t.by_pos.get(position)) {
            c.0[reason_index(reason)].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Count one bulk request that evaluated `flags` flags.
    pub(crate) fn finish(self, flags: usize) {
        self.metrics.bulk_evaluation(flags);
    }
}
