//! Prometheus metrics: a small registry of atomics and its text exposition (format 0.0.4).
//!
//! # Why our own registry
//!
//! The `prometheus` crate (default features pull no `ring`) and the `metrics` facade would both
//! work, but neither makes the hot path cheaper than plain atomics, and both key series by label
//! values in maps: a request would hash its labels and, for a new combination, insert under a
//! lock. Everything this relay counts has a label set known up front (routes, methods, status
//! codes, evaluation reasons) or changing only when the flag set does, so each series is a fixed
//! slot and recording is an index plus one `fetch_add`. That, the exposition writer and a
//! histogram are ~500 lines with no new dependency.
//!
//! # What is recorded where
//!
//! - HTTP requests by route template, method and status, and a latency histogram by route
//!   template: [`Metrics::record_request`], from the `http::observe` layer. Routes are
//!   registered at construction ([`Metrics::new`]); a request resolves its path to a route slot
//!   ([`Metrics::route_for_path`]: a few comparisons against immutable tables, no lock, no
//!   allocation). Paths no route matches count under `route="__unmatched__"`, so scanners
//!   cannot create series.
//! - Evaluations by flag and reason: [`Metrics::evaluation`] (single), [`Metrics::recorder`]
//!   (bulk, per flag) and [`Metrics::evaluation_unknown`] (`flag="__unknown__"`,
//!   `reason="ERROR"`). Per-flag counters live in a table built once per flag set and
//!   swapped with `arc-swap` (lock-free to read); a flag that stays across a change keeps its
//!   counter object, so its count never goes backwards. A flag removed by a change is still
//!   exposed until the next change (so its last increments are not lost), then dropped:
//!   cardinality stays bounded by the current plus the previous flag set.
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
//! `flags` (the per-flag table and the bulk [`Recorder`]), `text` (the exposition); the
//! registry itself is here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use fnv::FnvBuildHasher;

use crate::evaluator::Reason;
use crate::snapshot::{Entry, Snapshot};

mod flags;
mod histogram;
mod labels;
mod routes;
mod text;

use flags::FlagTable;
pub(crate) use flags::Recorder;
pub(crate) use histogram::Histogram;
pub(crate) use labels::LATENCY_BUCKETS;
pub(crate) use labels::method_index;
use labels::{METHODS, REFRESH_BUCKETS, STATUS_SLOTS, reason_index, status_slot};
pub(crate) use routes::RouteId;
use routes::{Pattern, RouteStats};
pub(crate) use text::{family, gauge};

/// Content type of the text exposition format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Label of requests that matched no route.
pub(crate) const UNMATCHED_ROUTE: &str = "__unmatched__";
/// Label of evaluations of keys that are not in the flag set.
pub(crate) const UNKNOWN_FLAG: &str = "__unknown__";

/// The process-wide registry, with the relay's routes registered.
pub(crate) fn global() -> &'static Arc<Metrics> {
    static GLOBAL: OnceLock<Arc<Metrics>> = OnceLock::new();
    GLOBAL.get_or_init(|| {
        Arc::new(Metrics::new(
            crate::http::route_templates().iter().map(String::as_str),
        ))
    })
}
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
pub(crate) struct Metrics {
    enabled: AtomicBool,
    /// Registered templates, then [`UNMATCHED_ROUTE`] last.
    routes: Box<[RouteStats]>,
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
    /// `/ofrep/v1/evaluate/flags/{*key}`); duplicates are merged.
    pub(crate) fn new<'a>(routes: impl IntoIterator<Item = &'a str>) -> Metrics {
        let mut stats: Vec<RouteStats> = Vec::new();
        let mut ids: HashMap<Box<str>, usize, FnvBuildHasher> = HashMap::default();
        let mut patterns = Vec::new();
        let mut exact = Vec::new();
        for r in routes {
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
        let r = &self.routes[route.0];
        let slot = method.min(METHODS.len() - 1) * STATUS_SLOTS + status_slot(status);
        r.requests[slot].fetch_add(1, Ordering::Relaxed);
        r.latency.observe(took);
    }

    // --- evaluations ------------------------------------------------------------------------

    /// Count a single-flag evaluation of `entry`, which belongs to `snapshot`.
    #[inline]
    pub(crate) fn evaluation(&self, snapshot: &Snapshot, entry: &Entry, reason: Reason) {
        if !self.enabled() {
            return;
        }
        let table = self.table_for(snapshot);
        if let Some(c) = table.counters(snapshot, entry) {
            c.0[reason_index(reason)].fetch_add(1, Ordering::Relaxed);
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
    /// [`Metrics::recorder`] for those).
    #[inline]
    pub(crate) fn bulk_evaluation(&self, flags: usize) {
        if self.enabled() {
            self.bulk_requests.fetch_add(1, Ordering::Relaxed);
            self.bulk_flags.fetch_add(flags as u64, Ordering::Relaxed);
        }
    }

    /// A recorder for the per-flag evaluations of a bulk request over `snapshot`; call
    /// [`Recorder::record`] with each flag's position and [`Recorder::finish`] at the end.
    pub(crate) fn recorder(&self, snapshot: Option<&Snapshot>) -> Recorder<'_> {
        let table = match snapshot {
            Some(s) if self.enabled() => {
                let t = self.table_for(s);
                (t.etag == s.etag).then_some(t)
            }
            _ => None,
        };
        Recorder {
            metrics: self,
            table,
        }
    }

    /// Build the per-flag table for `snapshot` now instead of on its first evaluation. Optional:
    /// the table follows the flag set by itself.
    pub(crate) fn flag_set_loaded(&self, snapshot: &Snapshot) {
        if !self.enabled() {
            return;
        }
        drop(self.table_for(snapshot));
    }

    /// The flag table for `snapshot`, rebuilding it when the flag set changed. A snapshot older
    /// than the table (a request that started before a swap) uses the table as it is: the
    /// flags it removed are still in it, under `retired`.
    #[inline]
    fn table_for(&self, snapshot: &Snapshot) -> arc_swap::Guard<Arc<FlagTable>> {
        let t = self.flags.load();
        if t.etag == snapshot.etag || t.loaded_at > snapshot.loaded_at {
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
        if cur.etag == snapshot.etag || cur.loaded_at > snapshot.loaded_at {
            return; // someone else got there first
        }
        self.flags.store(Arc::new(FlagTable::build(snapshot, &cur)));
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
