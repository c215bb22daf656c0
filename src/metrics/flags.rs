//! Per-flag evaluation counters: one table per flag set, swapped with `arc-swap` (lock-free to
//! read), its counters in per-thread arrays ([`Counts`]) indexed by the flag's position in
//! the snapshot, so a bulk answer counts with plain stores next to each other.
//!
//! # Counts survive a change
//!
//! A new table starts from the totals of the one it replaces (`carried`, per flag key), and
//! keeps a link to the old table's counters (not to the table): what requests still holding
//! the old table count after that (a bulk answer in flight during the swap) is added at scrape
//! time as those counters' growth since the fold. The next change folds that in and drops the
//! link. The old table itself, with its keys, goes as soon as no request holds it: keeping it
//! kept the replaced snapshot's 100,000 keys alive, scattered over the pages the old set had
//! used, until the next change (RSS after refreshes, BENCHMARKS.md, issue 18).
//! Flags the change removed stay in the table (`retired`, after the current ones) until the
//! next change, so their last counts are shown and not lost.
//!
//! # Which table a snapshot uses
//!
//! The table of a flag set is keyed by its etag (equal etags: the same keys, so the same
//! positions) and ordered by the snapshot's `generation` (the refresher's swap count), never by
//! the clock: a snapshot older than the table counts by key; a newer one (a store swapped
//! without [`super::Metrics::flag_set_loaded`]: tests, the persisted set at start) rebuilds
//! the table, off the common path.

use std::sync::Arc;

use super::labels::{REASONS, reason_index};
use super::shards::{Counts, Writer};
use crate::evaluator::Reason;
use crate::snapshot::{Entry, KeyIndex, Snapshot};

const R: usize = REASONS.len();

/// The per-flag counters for one flag set.
#[derive(Debug)]
pub(super) struct FlagTable {
    pub(super) generation: u64,
    pub(super) etag: String,
    /// The snapshot's keys (same positions), then the retired ones.
    keys: KeyList,
    /// How many of `keys` are the snapshot's.
    current: usize,
    /// Positions in `keys` by the key's hash: the keys are not copied a second time (100,000
    /// flags: 5.5 MB less than a map from key to position).
    index: KeyIndex,
    /// `keys.len() × REASONS` counters (shared with the next table's link, see `Late`).
    counts: Arc<Counts>,
    /// Totals carried over from the tables before, per counter.
    carried: Box<[u64]>,
    /// Set when the table is built and never changed after.
    prev: Option<Late>,
}

/// The counters of the table this one replaced, for counts made in it after the fold.
#[derive(Debug)]
struct Late {
    counts: Arc<Counts>,
    /// Its non-zero counters (not carried) when this table was built from it, by counter
    /// index, ascending: nearly all of 100,000 flags × 5 reasons are zero.
    at_fold: Box<[(u32, u64)]>,
    /// Its slot → this table's slot (`u32::MAX`: not kept).
    to: Box<[u32]>,
}

impl FlagTable {
    pub(super) fn empty() -> FlagTable {
        FlagTable {
            generation: 0,
            etag: String::new(),
            keys: KeyList::default(),
            current: 0,
            index: KeyIndex::default(),
            counts: Arc::new(Counts::new(0)),
            carried: Box::new([]),
            prev: None,
        }
    }

    /// The table for `snapshot`, carrying over every count `prev` shows. `prev` is not
    /// changed: a table built and never installed costs nothing else.
    pub(super) fn build(snapshot: &Snapshot, prev: &Arc<FlagTable>) -> FlagTable {
        let entries = snapshot.entries();
        let mut keys = KeyList {
            text: String::with_capacity(entries.iter().map(|e| e.key().len()).sum()),
            ends: Vec::with_capacity(entries.len()),
        };
        for e in entries {
            keys.push(e.key());
        }
        let current = keys.len();
        // Flags the change removed (keys are unique within a set).
        for k in prev.keys.iter().take(prev.current) {
            if snapshot.get(k).is_none() {
                keys.push(k);
            }
        }
        let index = KeyIndex::new(keys.len(), |i| keys.get(i));
        let totals = prev.totals();
        // Zeroed, so untouched (not resident) where nothing was counted.
        let mut carried = vec![0u64; keys.len() * R];
        let to: Box<[u32]> = prev
            .keys
            .iter()
            .enumerate()
            .map(|(p, k)| match index.find(k, |i| keys.get(i)) {
                Some(s) => {
                    let from = &totals[p * R..(p + 1) * R];
                    if from.iter().any(|&n| n != 0) {
                        carried[s * R..(s + 1) * R].copy_from_slice(from);
                    }
                    u32::try_from(s).expect("KeyIndex positions are u32")
                }
                None => u32::MAX,
            })
            .collect();
        let at_fold = (0..prev.counts.len())
            .filter_map(|i| {
                let n = prev.counts.sum(i);
                (n != 0).then(|| (u32::try_from(i).expect("counter index fits u32"), n))
            })
            .collect();
        FlagTable {
            generation: snapshot.generation,
            etag: snapshot.etag.clone(),
            counts: Arc::new(Counts::new(keys.len() * R)),
            keys,
            current,
            index,
            carried: carried.into(),
            prev: Some(Late {
                counts: prev.counts.clone(),
                at_fold,
                to,
            }),
        }
    }

    /// Whether this table serves requests on `snapshot` as it is (same flag set, or an older
    /// one: counted by key).
    #[inline]
    pub(super) fn serves(&self, snapshot: &Snapshot) -> bool {
        self.etag == snapshot.etag || snapshot.generation < self.generation
    }

    /// The slot of `entry` (of `snapshot`) in this table.
    #[inline]
    pub(super) fn slot(&self, snapshot: &Snapshot, entry: &Entry) -> Option<usize> {
        if self.etag == snapshot.etag
            && let Some(i) = position(snapshot, entry)
        {
            return Some(i);
        }
        self.slot_of_key(entry.key())
    }

    /// The slot of the flag `key`, current or retired.
    #[inline]
    fn slot_of_key(&self, key: &str) -> Option<usize> {
        self.index.find(key, |i| self.keys.get(i))
    }

    #[inline]
    pub(super) fn writer(&self) -> Writer<'_> {
        self.counts.writer()
    }

    /// Everything counted per counter: carried, own, and counted late in the table before.
    pub(super) fn totals(&self) -> Vec<u64> {
        let mut t: Vec<u64> = self.carried.to_vec();
        for (i, v) in t.iter_mut().enumerate() {
            *v += self.counts.sum(i);
        }
        if let Some(late) = &self.prev {
            let mut folded = late.at_fold.iter().peekable();
            for (p, &s) in late.to.iter().enumerate() {
                for r in 0..R {
                    let i = p * R + r;
                    let at_fold = match folded.next_if(|&&(at, _)| at as usize == i) {
                        Some(&(_, n)) => n,
                        None => 0,
                    };
                    if s != u32::MAX {
                        let now = late.counts.sum(i);
                        t[s as usize * R + r] += now.saturating_sub(at_fold);
                    }
                }
            }
        }
        t
    }

    /// `(key, per-reason totals)` of every flag shown: the current ones, then the retired.
    pub(super) fn for_each(&self, mut f: impl FnMut(&str, &[u64])) {
        let totals = self.totals();
        for (i, k) in self.keys.iter().enumerate() {
            f(k, &totals[i * R..(i + 1) * R]);
        }
    }
}

/// A table's keys, copied into one buffer: one allocation for 100,000 keys (the set's own are
/// spans of its text, which the table must not keep alive once replaced).
#[derive(Debug, Default)]
struct KeyList {
    text: String,
    /// Where each key ends in `text`.
    ends: Vec<u32>,
}

impl KeyList {
    fn push(&mut self, key: &str) {
        self.text.push_str(key);
        self.ends
            .push(u32::try_from(self.text.len()).expect("a flag set's keys fit in 4 GiB"));
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn get(&self, i: usize) -> &str {
        let start = i.checked_sub(1).map_or(0, |p| self.ends[p] as usize);
        &self.text[start..self.ends[i] as usize]
    }

    fn iter(&self) -> impl Iterator<Item = &str> {
        (0..self.len()).map(|i| self.get(i))
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

/// Records the evaluations of one bulk answer against the flag set it evaluated; see
/// [`super::Metrics::bulk`].
pub struct Recorder<'a> {
    mode: Mode<'a>,
}

enum Mode<'a> {
    Off,
    /// The table is the snapshot's: positions are slots.
    Direct(Writer<'a>),
    /// An older snapshot: by key.
    ByKey(&'a FlagTable, Writer<'a>, &'a Snapshot),
}

impl<'a> Recorder<'a> {
    pub(super) fn new(table: Option<&'a FlagTable>, snapshot: Option<&'a Snapshot>) -> Self {
        let mode = match (table, snapshot) {
            (Some(t), Some(s)) if t.etag == s.etag => Mode::Direct(t.writer()),
            (Some(t), Some(s)) => Mode::ByKey(t, t.writer(), s),
            _ => Mode::Off,
        };
        Recorder { mode }
    }

    /// Count the evaluation of the flag at `position` in `snapshot.entries()`.
    #[inline(always)]
    pub fn record(&self, position: usize, reason: Reason) {
        match &self.mode {
            // A bulk answer records a thousand flags: this case is inlined into its loop, the
            // rare one (a table from another set, during a swap) is called.
            Mode::Direct(w) => w.add(position * R + reason_index(reason)),
            Mode::ByKey(t, w, s) => Self::record_by_key(t, w, s, position, reason),
            Mode::Off => {}
        }
    }

    #[inline(never)]
    fn record_by_key(t: &FlagTable, w: &Writer<'_>, s: &Snapshot, position: usize, reason: Reason) {
        if let Some(slot) = s
            .entries()
            .get(position)
            .and_then(|e| t.slot_of_key(e.key()))
        {
            w.add(slot * R + reason_index(reason));
        }
    }
}
