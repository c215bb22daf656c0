//! Prometheus metrics: a small registry of atomics and its text exposition (format 0.0.4).
//!
//! # Why our own registry
//!
//! The `prometheus` crate (default features pull no `ring`) and the `metrics` facade would both
//! work, but neither makes the hot path cheaper than plain atomics, and both key series by label
//! values in maps: a request would hash its labels and, for a new combination, insert under a
//! lock. Everything this relay counts has a label set known up front (routes, methods, status
//! codes, evaluation reasons) or changing only when the flag set does, so each series is a fixed
//! slot and recording is an index plus one `fetch_add` (per-flag evaluations: a plain store
//! into the recording thread's own array, see `shards`).
//!
//! One value is built at start (`app`, with the router's route templates) and passed to
//! whatever records: the refresher carries it ([`crate::refresh::Refresher::metrics`]), the
//! HTTP and flagd states hold it, notifiers register into it. There is no process-wide
//! registry, so every test has its own.
//!
//! # What is recorded where
//!
//! - HTTP requests by route template, method and status, and a latency histogram by route
//!   template: [`Metrics::record_request`], from the `http::observe` layer. Routes are
//!   registered at construction ([`Metrics::new`]); a request resolves its path to a route slot
//!   ([`Metrics::route_for_path`]: a few comparisons against immutable tables, no lock, no
//!   allocation). Paths no route matches count under `route="__unmatched__"`, so scanners
//!   cannot create series.
//! - Evaluations by flag and reason: [`Metrics::evaluation`] (single), [`Metrics::bulk`]
//!   (bulk, per flag) and [`Metrics::evaluation_unknown`] (`flag="__unknown__"`,
//!   `reason="ERROR"`). Per-flag counters live in a table built once per flag set (by the
//!   refresher, before the swap: [`Metrics::prepare_flags`], [`Metrics::install_flags`]) and
//!   swapped with `arc-swap` (lock-free to read), in per-thread arrays summed at scrape time;
//!   a flag that stays across a change keeps its count, which never goes backwards. A flag
//!   removed by a change is still exposed until the next change (so its last increments are
//!   not lost), then dropped: cardinality stays bounded by the current plus the previous set.
//!   Which table a snapshot uses is ordered by its swap generation, never by the clock.
//! - Bulk evaluations (requests and flags evaluated): [`Metrics::bulk_evaluation`].
//! - Refreshes (overall and per retriever, by outcome), refresh duration, flag-set changes,
//!   per retriever last success: [`Metrics::refresh_finished`], once per refresh (a mutex is
//!   fine there).
//! - Read at scrape time from the relay's own state rather than tracked twice ([`Scrape`]):
//!   flags loaded, SSE clients connected, last successful refresh, build info.
//! - Families of the layers above: in the shared `prometheus-client` registry
//!   ([`Metrics::with_registry`], the notifiers) or as text collectors
//!   ([`Metrics::add_collector`], flagd's fixed-slot counters), so this module names neither.
//!
//! # Layout
//!
//! `labels` (the fixed label sets), `histogram`, `routes` (route slots and path matching),
//! `flags` (the per-flag table and the bulk [`Recorder`]), `shards` (per-thread counter
//! arrays), `text` (the exposition); the
//! registry itself is here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use fnv::FnvBuildHasher;

use crate::evaluator::Reason;
use crate::snapshot::{Entry, Snapshot};

mod flags;
mod histogram;
mod labels;
mod routes;
mod shards;
mod text;

use flags::FlagTable;
pub(crate) use flags::Recorder;
pub(crate) use histogram::Histogram;
pub(crate) use labels::LATENCY_BUCKETS;
pub(crate) use labels::method_index;
use labels::{METHODS, REASONS, REFRESH_BUCKETS, STATUS_SLOTS, reason_index, status_slot};
pub(crate) use routes::RouteId;
use routes::{LATENCY_SLOTS, Pattern, REQUEST_SLOTS, ROUTE_STRIDE, RouteStats};
pub(crate) use text::{family, gauge};

/// Content type of the text exposition format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Label of requests that matched no route.
pub(crate) const UNMATCHED_ROUTE: &str = "__unmatched__";
/// Label of evaluations of keys that are not in the flag set.
pub(crate) const UNKNOWN_FLAG: &str = "__unknown__";

// ---------------------------------------------------------------------------------------------
// Refreshes

#[derive(Debug)]
struct RetrieverStats {
    kind: &'static str,
    source: String,
    ok: u64,
    failed: u64,
    last_success: Option<SystemTime>,
}

#[derive(Debug)]
struct RefreshStats {
    ok: u64,
    failed: u64,
    retrievers: Vec<RetrieverStats>,
}

// ---------------------------------------------------------------------------------------------
// The registry

/// Everything the relay counts. Cheap to share (`Arc`); every recording method takes `&self`.
#[derive(Debug)]
pub struct Metrics {
    enabled: AtomicBool,
    /// Registered templates, then [`UNMATCHED_ROUTE`] last.
    routes: Box<[RouteStats]>,
    /// Every route's counters (`ROUTE_STRIDE` each), per recording thread: a request counts
    /// with plain stores instead of locked adds on lines every worker writes.
    route_counts: shards::Counts,
    /// [`LATENCY_BUCKETS`] in nanoseconds.
    latency_ns: Box<[u64]>,
    /// The templates without parameters, and those with, tried in that order (as axum prefers
    /// a static route to a parameter).
    exact: Vec<(Box<str>, usize)>,
    patterns: Vec<(usize, Pattern)>,
    flags: ArcSwap<FlagTable>,
    /// Serializes rebuilding `flags` (once per flag-set change; never taken to record).
    flags_rebuild: Mutex<()>,
    unknown_flag: AtomicU64,
    bulk_requests: AtomicU64,
    bulk_flags: AtomicU64,
    flag_set_changes: AtomicU64,
    refresh_duration: Histogram,
    refreshes: Mutex<RefreshStats>,
    /// Metrics of the parts around the hot path (notifiers, ...), kept in a maintained
    /// registry and encoded by it after the relay's own lock-free families.
    registry: Mutex<prometheus_client::registry::Registry>,
    /// Text families of layers above, see [`Metrics::add_collector`].
    collectors: Mutex<Vec<Collector>>,
}

impl Default for Metrics {
    /// A registry of its own with no routes (tests, embedding).
    fn default() -> Self {
        Metrics::new(&[])
    }
}

/// A per-flag table built ahead of its swap ([`Metrics::prepare_flags`]).
#[derive(Debug)]
pub(crate) struct PreparedFlags(Option<(Arc<FlagTable>, FlagTable)>);

/// A family renderer registered by [`Metrics::add_collector`].
struct Collector(Box<dyn Fn(&mut String) + Send + Sync>);

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Collector")
    }
}

/// What [`Metrics::refresh_finished`] reads of a finished refresh (the refresh layer fills it
/// in from its report, so this module does not depend on it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RefreshOutcome<'a> {
    /// Every retriever succeeded.
    pub ok: bool,
    /// A new flag set was swapped in.
    pub changed: bool,
    pub duration: Duration,
    /// Per retriever, in configured order: kind, source, and `None` for success or why not.
    pub retrievers: &'a [(&'static str, String, Option<String>)],
}

/// What a scrape reads from the relay's state at that moment.
#[derive(Debug, Clone, Default)]
pub(crate) struct Scrape<'a> {
    pub version: &'a str,
    pub fips140: bool,
    /// The flag set served, `None` before the first load.
    pub snapshot: Option<&'a Snapshot>,
    pub sse_clients: usize,
    /// When the last fully successful refresh finished.
    pub last_refresh: Option<SystemTime>,
}
impl Metrics {
    /// A registry that knows these route templates (as axum's router writes them, e.g.
    /// `/ofrep/v1/evaluate/flags/{*key}`); duplicates are merged. Built once at start and
    /// handed to every part that records (no process-wide registry: each test has its own).
    pub(crate) fn new(routes: &[&str]) -> Metrics {
        let mut stats: Vec<RouteStats> = Vec::new();
        let mut ids: HashMap<Box<str>, usize, FnvBuildHasher> = HashMap::default();
        let mut patterns = Vec::new();
        let mut exact = Vec::new();
        for &r in routes {
            if r == UNMATCHED_ROUTE || ids.contains_key(r) {
                continue;
            }
            ids.insert(Box::from(r), stats.len());
            if r.contains('{') {
                patterns.push((stats.len(), Pattern::parse(r)));
            } else {
                exact.push((Box::from(r), stats.len()));
            }
            stats.push(RouteStats::new(r));
        }
        stats.push(RouteStats::new(UNMATCHED_ROUTE));
        Metrics {
            enabled: AtomicBool::new(true),
            route_counts: shards::Counts::new(stats.len() * ROUTE_STRIDE),
            latency_ns: LATENCY_BUCKETS
                .iter()
                .map(|b| (b * 1e9).round() as u64)
                .collect(),
            routes: stats.into(),
            exact,
            patterns,
            flags: ArcSwap::from_pointee(FlagTable::empty()),
            flags_rebuild: Mutex::new(()),
            unknown_flag: AtomicU64::new(0),
            bulk_requests: AtomicU64::new(0),
            bulk_flags: AtomicU64::new(0),
            flag_set_changes: AtomicU64::new(0),
            refresh_duration: Histogram::new(&REFRESH_BUCKETS),
            refreshes: Mutex::new(RefreshStats {
                ok: 0,
                failed: 0,
                retrievers: Vec::new(),
            }),
            registry: Mutex::new(prometheus_client::registry::Registry::default()),
            collectors: Mutex::new(Vec::new()),
        }
    }

    /// Add families a layer above keeps itself (flagd's fixed-slot counters), written after
    /// the relay's own at every scrape: that layer registers here, so this one names none.
    pub(crate) fn add_collector(&self, render: impl Fn(&mut String) + Send + Sync + 'static) {
        self.collectors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Collector(Box::new(render)));
    }

    /// Register metrics in the shared registry (at start; scrapes encode them).
    pub(crate) fn with_registry<T>(
        &self,
        f: impl FnOnce(&mut prometheus_client::registry::Registry) -> T,
    ) -> T {
        f(&mut self.registry.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Turn recording on or off (benchmarks compare the two; scrapes still answer).
    pub(crate) fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    // --- requests ---------------------------------------------------------------------------

    /// The slot of the route a request path matches, the way axum's router matches it: a
    /// template without parameters equal to the path, else the first template with parameters
    /// that matches (`{name}`: one non-empty segment; `{*name}`: a non-empty rest). Else
    /// [`UNMATCHED_ROUTE`]. A test checks that this agrees with axum's `MatchedPath`.
    #[inline]
    pub(crate) fn route_for_path(&self, path: &str) -> RouteId {
        // A dozen templates: comparing lengths first beats hashing the path.
        for (t, i) in &self.exact {
            if t.len() == path.len() && **t == *path {
                return RouteId(*i);
            }
        }
        for (i, p) in &self.patterns {
            if p.matches(path) {
                return RouteId(*i);
            }
        }
        RouteId(self.routes.len() - 1)
    }

    /// The label of a route slot.
    pub(crate) fn route_label(&self, id: RouteId) -> &str {
        &self.routes[id.0].template
    }

    /// Count one answered request.
    #[inline]
    pub(crate) fn record_request(
        &self,
        route: RouteId,
        method: usize,
        status: u16,
        took: Duration,
    ) {
        if !self.enabled() {
            return;
        }
        let base = route.0 * ROUTE_STRIDE;
        let slot = method.min(METHODS.len() - 1) * STATUS_SLOTS + status_slot(status);
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        // `le` semantics: the first bucket whose bound is >= the value.
        let bucket = self.latency_ns.partition_point(|&b| b < ns);
        let w = self.route_counts.writer();
        w.add(base + slot);
        w.add(base + REQUEST_SLOTS + bucket);
        w.add_n(base + REQUEST_SLOTS + LATENCY_SLOTS, ns);
    }

    // --- evaluations ------------------------------------------------------------------------

    /// Count a single-flag evaluation of `entry`, which belongs to `snapshot`.
    #[inline]
    pub(crate) fn evaluation(&self, snapshot: &Snapshot, entry: &Entry, reason: Reason) {
        if !self.enabled() {
            return;
        }
        let table = self.table_for(snapshot);
        if let Some(slot) = table.slot(snapshot, entry) {
            table
                .writer()
                .add(slot * REASONS.len() + reason_index(reason));
        }
    }

    /// Count an evaluation of a key that is not in the flag set (or before any is loaded).
    #[inline]
    pub(crate) fn evaluation_unknown(&self) {
        if self.enabled() {
            self.unknown_flag.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Count one bulk request that evaluated `flags` flags (without per-flag counts; see
    /// [`Metrics::bulk`] for those).
    #[inline]
    pub(crate) fn bulk_evaluation(&self, flags: usize) {
        if self.enabled() {
            self.bulk_requests.fetch_add(1, Ordering::Relaxed);
            self.bulk_flags.fetch_add(flags as u64, Ordering::Relaxed);
        }
    }

    /// Count a bulk answer over `snapshot`: `answer` gets a [`Recorder`] to call with each
    /// flag's position and reason; then the request and its `len()` flags are counted.
    #[inline]
    pub fn bulk<T>(
        &self,
        snapshot: Option<&Snapshot>,
        answer: impl FnOnce(&Recorder<'_>) -> T,
    ) -> T {
        let table = match snapshot {
            Some(s) if self.enabled() => Some(self.table_for(s)),
            _ => None,
        };
        let out = answer(&Recorder::new(table.as_deref().map(|t| &**t), snapshot));
        self.bulk_evaluation(snapshot.map_or(0, Snapshot::len));
        out
    }

    /// Build and install the per-flag table for `snapshot` now instead of on its first
    /// evaluation.
    pub fn flag_set_loaded(&self, snapshot: &Snapshot) {
        if self.enabled() {
            drop(self.table_for(snapshot));
        }
    }

    /// The per-flag table for `snapshot`, built but not installed (the refresher builds it
    /// off the request path and installs it with [`Metrics::install_flags`] at the swap, so
    /// a set refused after its build never replaces the served set's table).
    pub(crate) fn prepare_flags(&self, snapshot: &Snapshot) -> PreparedFlags {
        if !self.enabled() {
            return PreparedFlags(None);
        }
        let cur = self.flags.load_full();
        let table = FlagTable::build(snapshot, &cur);
        PreparedFlags(Some((cur, table)))
    }

    /// Install a table from [`Metrics::prepare_flags`], right before `snapshot` is swapped
    /// in. One built over a table since replaced is built again.
    pub(crate) fn install_flags(&self, prepared: PreparedFlags, snapshot: &Snapshot) {
        let Some((over, table)) = prepared.0 else {
            return;
        };
        let _one_at_a_time = self.flags_rebuild.lock().unwrap_or_else(|p| p.into_inner());
        let cur = self.flags.load_full();
        let table = if Arc::ptr_eq(&cur, &over)
            && table.generation == snapshot.generation
            && table.etag == snapshot.etag
        {
            table
        } else {
            FlagTable::build(snapshot, &cur)
        };
        self.install(table);
    }

    fn install(&self, table: FlagTable) {
        self.flags.store(Arc::new(table));
    }

    /// The flag table for `snapshot`, rebuilding it when the flag set is newer than the
    /// table (ordered by generation, see `flags`).
    #[inline]
    fn table_for(&self, snapshot: &Snapshot) -> arc_swap::Guard<Arc<FlagTable>> {
        let t = self.flags.load();
        if t.serves(snapshot) {
            return t;
        }
        drop(t);
        self.rebuild(snapshot);
        self.flags.load()
    }

    #[cold]
    fn rebuild(&self, snapshot: &Snapshot) {
        let _one_at_a_time = self.flags_rebuild.lock().unwrap_or_else(|p| p.into_inner());
        let cur = self.flags.load_full();
        if cur.serves(snapshot) {
            return; // someone else got there first
        }
        self.install(FlagTable::build(snapshot, &cur));
    }

    // --- refreshes --------------------------------------------------------------------------

    /// Count a finished refresh: overall and per retriever outcome, duration, flag-set change.
    pub(crate) fn refresh_finished(&self, r: &RefreshOutcome<'_>) {
        self.refresh_duration.observe(r.duration);
        if r.changed {
            self.flag_set_changes.fetch_add(1, Ordering::Relaxed);
        }
        let now = SystemTime::now();
        let mut st = self.refreshes.lock().unwrap_or_else(|p| p.into_inner());
        if r.ok {
            st.ok += 1;
        } else {
            st.failed += 1;
        }
        for (i, (kind, source, error)) in r.retrievers.iter().enumerate() {
            let (kind, source) = (*kind, source.as_str());
            // Retrievers are fixed at start and reported in configured order.
            let stats = match st
                .retrievers
                .iter()
                .position(|s| s.kind == kind && s.source == source)
            {
                Some(j) => &mut st.retrievers[j],
                None => {
                    let at = i.min(st.retrievers.len());
                    st.retrievers.insert(
                        at,
                        RetrieverStats {
                            kind,
                            source: source.to_owned(),
                            ok: 0,
                            failed: 0,
                            last_success: None,
                        },
                    );
                    &mut st.retrievers[at]
                }
            };
            if error.is_none() {
                stats.ok += 1;
                stats.last_success = Some(now);
            } else {
                stats.failed += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests;
