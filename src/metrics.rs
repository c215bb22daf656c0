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

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use fnv::FnvBuildHasher;

use crate::evaluator::Reason;
use crate::refresh::RefreshReport;
use crate::snapshot::{Entry, Snapshot};

/// Content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Label of requests that matched no route.
pub const UNMATCHED_ROUTE: &str = "__unmatched__";
/// Label of evaluations of keys that are not in the flag set.
pub const UNKNOWN_FLAG: &str = "__unknown__";

/// The process-wide registry, with the relay's routes registered.
pub fn global() -> &'static Arc<Metrics> {
    static GLOBAL: OnceLock<Arc<Metrics>> = OnceLock::new();
    GLOBAL.get_or_init(|| {
        Arc::new(Metrics::new(
            crate::http::openapi::ROUTES.iter().map(|r| r.template),
        ))
    })
}

// ---------------------------------------------------------------------------------------------
// Fixed label sets

/// Methods with their own label; anything else counts as `other`.
const METHODS: [&str; 8] = [
    "GET", "POST", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH", "other",
];

/// Index of a method in [`METHODS`].
pub fn method_index(m: &axum::http::Method) -> usize {
    use axum::http::Method;
    match *m {
        Method::GET => 0,
        Method::POST => 1,
        Method::HEAD => 2,
        Method::OPTIONS => 3,
        Method::PUT => 4,
        Method::DELETE => 5,
        Method::PATCH => 6,
        _ => 7,
    }
}

/// Status codes with their own label. Any other code counts under its class (`1xx`…`5xx`):
/// this server does not answer them, and a fixed set keeps recording to an index.
const STATUSES: [u16; 30] = [
    100, 101, 200, 201, 202, 204, 206, 301, 302, 304, 307, 308, 400, 401, 403, 404, 405, 406, 408,
    409, 411, 413, 414, 415, 422, 429, 431, 500, 502, 503,
];
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
const STATUS_SLOTS: usize = STATUSES.len() + 1 + STATUS_CLASSES.len(); // + 504

/// Slot of a status code: the known codes, then 504, then the classes.
fn status_slot(code: u16) -> usize {
    if code == 504 {
        return STATUSES.len();
    }
    match STATUSES.binary_search(&code) {
        Ok(i) => i,
        Err(_) => {
            let class = usize::from(code / 100).clamp(1, 5) - 1;
            STATUSES.len() + 1 + class
        }
    }
}

fn status_label(slot: usize) -> std::borrow::Cow<'static, str> {
    if slot < STATUSES.len() {
        STATUSES[slot].to_string().into()
    } else if slot == STATUSES.len() {
        "504".into()
    } else {
        STATUS_CLASSES[slot - STATUSES.len() - 1].into()
    }
}

/// The reasons an evaluation can have, in label order.
const REASONS: [Reason; 5] = [
    Reason::Disabled,
    Reason::TargetingMatch,
    Reason::Static,
    Reason::Default,
    Reason::Split,
];

fn reason_index(r: Reason) -> usize {
    match r {
        Reason::Disabled => 0,
        Reason::TargetingMatch => 1,
        Reason::Static => 2,
        Reason::Default => 3,
        Reason::Split => 4,
    }
}

/// Request latency buckets, in seconds (the relay answers in well under a millisecond).
pub(crate) const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Refresh duration buckets, in seconds.
const REFRESH_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

// ---------------------------------------------------------------------------------------------
// Histogram

/// A histogram of durations with fixed buckets: one non-cumulative slot per bucket plus `+Inf`,
/// and the sum in nanoseconds. Recording is a search over ~16 bounds and two `fetch_add`s; the
/// count is the sum of the slots, made cumulative at scrape time.
#[derive(Debug)]
pub(crate) struct Histogram {
    bounds_ns: Box<[u64]>,
    bounds: &'static [f64],
    slots: Box<[AtomicU64]>,
    sum_ns: AtomicU64,
}

impl Histogram {
    pub(crate) fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds_ns: bounds.iter().map(|b| (b * 1e9).round() as u64).collect(),
            bounds,
            slots: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
        }
    }

    #[inline]
    pub(crate) fn observe(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        // `le` semantics: the first bucket whose bound is >= the value.
        let i = self.bounds_ns.partition_point(|&b| b < ns);
        self.slots[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    pub(crate) fn count(&self) -> u64 {
        self.slots.iter().map(|s| s.load(Ordering::Relaxed)).sum()
    }

    /// `name_bucket{labels,le=…}` lines, `_sum` and `_count`. `labels` is `k="v",` or empty.
    pub(crate) fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0u64;
        for (i, slot) in self.slots.iter().enumerate() {
            cumulative += slot.load(Ordering::Relaxed);
            let le = match self.bounds.get(i) {
                Some(b) => format_float(*b),
                None => "+Inf".into(),
            };
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{le}\"}} {cumulative}");
        }
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", labels.trim_end_matches(','))
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", format_float(sum));
        let _ = writeln!(out, "{name}_count{braces} {cumulative}");
    }
}

// ---------------------------------------------------------------------------------------------
// Routes

/// Counters of one route template.
#[derive(Debug)]
struct RouteStats {
    template: Box<str>,
    /// `METHODS.len() × STATUS_SLOTS` counters.
    requests: Box<[AtomicU64]>,
    latency: Histogram,
}

impl RouteStats {
    fn new(template: &str) -> RouteStats {
        RouteStats {
            template: template.into(),
            requests: (0..METHODS.len() * STATUS_SLOTS)
                .map(|_| AtomicU64::new(0))
                .collect(),
            latency: Histogram::new(&LATENCY_BUCKETS),
        }
    }
}

/// A route template with parameters, for matching request paths.
#[derive(Debug)]
struct Pattern {
    /// The literal text before the first parameter (ends with `/`).
    prefix: Box<str>,
    /// `/prefix/{*rest}`: matches when the path extends the prefix.
    catch_all_only: bool,
    /// The segments after the first one, for the general case.
    segments: Vec<Segment>,
}

#[derive(Debug)]
enum Segment {
    Literal(Box<str>),
    /// `{name}`: one non-empty segment.
    Param,
    /// `{*name}`: the non-empty rest of the path, slashes included.
    CatchAll,
}

impl Pattern {
    fn parse(template: &str) -> Pattern {
        let brace = template.find('{').unwrap_or(template.len());
        let prefix = &template[..brace];
        let rest = &template[brace..];
        let catch_all_only = prefix.ends_with('/')
            && rest.starts_with("{*")
            && rest.ends_with('}')
            && rest.matches('{').count() == 1;
        let segments = template
            .split('/')
            .map(|s| {
                if s.starts_with("{*") && s.ends_with('}') {
                    Segment::CatchAll
                } else if s.starts_with('{') && s.ends_with('}') {
                    Segment::Param
                } else {
                    Segment::Literal(s.into())
                }
            })
            .collect();
        Pattern {
            prefix: prefix.into(),
            catch_all_only,
            segments,
        }
    }

    #[inline]
    fn matches(&self, path: &str) -> bool {
        if !path.starts_with(&*self.prefix) {
            return false;
        }
        if self.catch_all_only {
            return path.len() > self.prefix.len();
        }
        let mut rest = Some(path);
        for seg in &self.segments {
            let Some(r) = rest else { return false };
            if let Segment::CatchAll = seg {
                return !r.is_empty();
            }
            let (head, tail) = match r.split_once('/') {
                Some((h, t)) => (h, Some(t)),
                None => (r, None),
            };
            let ok = match seg {
                Segment::Literal(l) => head == &**l,
                Segment::Param => !head.is_empty(),
                Segment::CatchAll => unreachable!(),
            };
            if !ok {
                return false;
            }
            rest = tail;
        }
        rest.is_none()
    }
}

/// A route resolved once per request, so recording is an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteId(usize);

// ---------------------------------------------------------------------------------------------
// Flags

/// One flag's evaluation counters, one per reason.
#[derive(Debug, Default)]
struct FlagCounters([AtomicU64; REASONS.len()]);

/// The per-flag counters for one flag set: aligned with [`Snapshot::entries`] by position,
/// plus an index by key (for requests still holding an older flag set).
#[derive(Debug)]
struct FlagTable {
    etag: String,
    loaded_at: SystemTime,
    keys: Vec<Box<str>>,
    by_pos: Vec<Arc<FlagCounters>>,
    /// Flags of the previous set that this one removed, shown until the next change.
    retired: Vec<(Box<str>, Arc<FlagCounters>)>,
    by_key: HashMap<Box<str>, Arc<FlagCounters>, FnvBuildHasher>,
}

impl FlagTable {
    fn empty() -> FlagTable {
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
    fn build(snapshot: &Snapshot, prev: &FlagTable) -> FlagTable {
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
    fn counters(&self, snapshot: &Snapshot, entry: &Entry) -> Option<&FlagCounters> {
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
fn position(snapshot: &Snapshot, entry: &Entry) -> Option<usize> {
    let entries = snapshot.entries();
    let size = std::mem::size_of::<Entry>();
    let offset = (entry as *const Entry as usize).checked_sub(entries.as_ptr() as usize)?;
    let i = offset / size;
    (offset % size == 0 && i < entries.len()).then_some(i)
}

/// Records the evaluations of one bulk request against the flag set it evaluated.
pub struct Recorder<'a> {
    metrics: &'a Metrics,
    table: Option<arc_swap::Guard<Arc<FlagTable>>>,
}

impl Recorder<'_> {
    /// Count the evaluation of the flag at `position` in `snapshot.entries()`.
    #[inline]
    pub fn record(&self, position: usize, reason: Reason) {
        if let Some(c) = self.table.as_ref().and_then(|t| t.by_pos.get(position)) {
            c.0[reason_index(reason)].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Count one bulk request that evaluated `flags` flags.
    pub fn finish(self, flags: usize) {
        self.metrics.bulk_evaluation(flags);
    }
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
pub struct Metrics {
    enabled: AtomicBool,
    /// Registered templates, then [`UNMATCHED_ROUTE`] last.
    routes: Box<[RouteStats]>,
    route_ids: HashMap<Box<str>, usize, FnvBuildHasher>,
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
}

/// What a scrape reads from the relay's state at that moment.
#[derive(Debug, Clone, Default)]
pub struct Scrape<'a> {
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
    pub fn new<'a>(routes: impl IntoIterator<Item = &'a str>) -> Metrics {
        let mut stats: Vec<RouteStats> = Vec::new();
        let mut ids = HashMap::default();
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
            route_ids: ids,
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
        }
    }

    /// Register metrics in the shared registry (at start; scrapes encode them).
    pub fn with_registry<T>(
        &self,
        f: impl FnOnce(&mut prometheus_client::registry::Registry) -> T,
    ) -> T {
        f(&mut self.registry.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Turn recording on or off (benchmarks compare the two; scrapes still answer).
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
    }

    #[inline]
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    // --- requests ---------------------------------------------------------------------------

    /// The slot of a matched route template; `None` (no match) is [`UNMATCHED_ROUTE`]. A
    /// template that was not registered also counts there (a test keeps the lists in step).
    #[inline]
    pub fn route(&self, template: Option<&str>) -> RouteId {
        let unmatched = self.routes.len() - 1;
        RouteId(
            template
                .and_then(|t| self.route_ids.get(t).copied())
                .unwrap_or(unmatched),
        )
    }

    /// The slot of the route a request path matches, the way axum's router matches it: a
    /// template without parameters equal to the path, else the first template with parameters
    /// that matches (`{name}`: one non-empty segment; `{*name}`: a non-empty rest). Else
    /// [`UNMATCHED_ROUTE`]. A test checks that this agrees with axum's `MatchedPath`.
    #[inline]
    pub fn route_for_path(&self, path: &str) -> RouteId {
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
    pub fn route_label(&self, id: RouteId) -> &str {
        &self.routes[id.0].template
    }

    /// Count one answered request.
    #[inline]
    pub fn record_request(&self, route: RouteId, method: usize, status: u16, took: Duration) {
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
    pub fn evaluation(&self, snapshot: &Snapshot, entry: &Entry, reason: Reason) {
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
    pub fn evaluation_unknown(&self) {
        if self.enabled() {
            self.unknown_flag.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Count one bulk request that evaluated `flags` flags (without per-flag counts; see
    /// [`Metrics::recorder`] for those).
    #[inline]
    pub fn bulk_evaluation(&self, flags: usize) {
        if self.enabled() {
            self.bulk_requests.fetch_add(1, Ordering::Relaxed);
            self.bulk_flags.fetch_add(flags as u64, Ordering::Relaxed);
        }
    }

    /// A recorder for the per-flag evaluations of a bulk request over `snapshot`; call
    /// [`Recorder::record`] with each flag's position and [`Recorder::finish`] at the end.
    pub fn recorder(&self, snapshot: Option<&Snapshot>) -> Recorder<'_> {
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
    pub fn flag_set_loaded(&self, snapshot: &Snapshot) {
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
    pub fn refresh_finished(&self, r: &RefreshReport) {
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
            // Retrievers are fixed at start and reported in configured order.
            let stats = match st
                .retrievers
                .iter()
                .position(|s| s.kind == *kind && s.source == *source)
            {
                Some(j) => &mut st.retrievers[j],
                None => {
                    let at = i.min(st.retrievers.len());
                    st.retrievers.insert(
                        at,
                        RetrieverStats {
                            kind,
                            source: source.clone(),
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

    // --- exposition -------------------------------------------------------------------------

    /// The text exposition of every metric.
    pub fn render(&self, s: &Scrape<'_>) -> String {
        if let Some(snap) = s.snapshot {
            // Show the current flag set's flags even before their first evaluation.
            drop(self.table_for(snap));
        }
        let mut out = String::with_capacity(8 * 1024);
        let o = &mut out;

        family(
            o,
            "flagrelay_build_info",
            "gauge",
            "Version and FIPS 140-3 mode of this relay (always 1).",
        );
        let _ = writeln!(
            o,
            "flagrelay_build_info{{version=\"{}\",fips140=\"{}\"}} 1",
            escape(s.version),
            s.fips140
        );

        family(
            o,
            "flagrelay_http_requests_total",
            "counter",
            "HTTP requests answered, by route template, method and status.",
        );
        for r in self.routes.iter() {
            for (slot, c) in r.requests.iter().enumerate() {
                let n = c.load(Ordering::Relaxed);
                if n == 0 {
                    continue;
                }
                let (m, st) = (slot / STATUS_SLOTS, slot % STATUS_SLOTS);
                let _ = writeln!(
                    o,
                    "flagrelay_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{}\"}} {n}",
                    escape(&r.template),
                    METHODS[m],
                    status_label(st)
                );
            }
        }

        family(
            o,
            "flagrelay_http_request_duration_seconds",
            "histogram",
            "Time to answer (until the response head), by route template.",
        );
        for r in self.routes.iter() {
            if r.latency.count() == 0 {
                continue;
            }
            let labels = format!("route=\"{}\",", escape(&r.template));
            r.latency
                .render(o, "flagrelay_http_request_duration_seconds", &labels);
        }

        family(
            o,
            "flagrelay_evaluations_total",
            "counter",
            "Flag evaluations by flag key and OFREP reason; keys not in the flag set count as __unknown__.",
        );
        let table = self.flags.load();
        let current = table.keys.iter().zip(table.by_pos.iter());
        let retired = table.retired.iter().map(|(k, c)| (k, c));
        for (key, c) in current.chain(retired) {
            for (i, reason) in REASONS.iter().enumerate() {
                let n = c.0[i].load(Ordering::Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        o,
                        "flagrelay_evaluations_total{{flag=\"{}\",reason=\"{}\"}} {n}",
                        escape(key),
                        reason.as_str()
                    );
                }
            }
        }
        let _ = writeln!(
            o,
            "flagrelay_evaluations_total{{flag=\"{UNKNOWN_FLAG}\",reason=\"ERROR\"}} {}",
            self.unknown_flag.load(Ordering::Relaxed)
        );

        counter(
            o,
            "flagrelay_bulk_evaluations_total",
            "Bulk evaluation requests answered with flags.",
            self.bulk_requests.load(Ordering::Relaxed),
        );
        counter(
            o,
            "flagrelay_bulk_evaluated_flags_total",
            "Flags evaluated by bulk evaluation requests.",
            self.bulk_flags.load(Ordering::Relaxed),
        );

        {
            let st = self.refreshes.lock().unwrap_or_else(|p| p.into_inner());
            family(
                o,
                "flagrelay_refreshes_total",
                "counter",
                "Refreshes of the flag set, by outcome (success when every retriever succeeded).",
            );
            let _ = writeln!(
                o,
                "flagrelay_refreshes_total{{outcome=\"success\"}} {}",
                st.ok
            );
            let _ = writeln!(
                o,
                "flagrelay_refreshes_total{{outcome=\"failure\"}} {}",
                st.failed
            );
            family(
                o,
                "flagrelay_retriever_refreshes_total",
                "counter",
                "Fetches by retriever and outcome.",
            );
            for r in &st.retrievers {
                for (outcome, n) in [("success", r.ok), ("failure", r.failed)] {
                    let _ = writeln!(
                        o,
                        "flagrelay_retriever_refreshes_total{{kind=\"{}\",source=\"{}\",outcome=\"{outcome}\"}} {n}",
                        r.kind,
                        escape(&r.source)
                    );
                }
            }
            family(
                o,
                "flagrelay_retriever_last_success_timestamp_seconds",
                "gauge",
                "When each retriever last fetched successfully (Unix time, 0 for never).",
            );
            for r in &st.retrievers {
                let _ = writeln!(
                    o,
                    "flagrelay_retriever_last_success_timestamp_seconds{{kind=\"{}\",source=\"{}\"}} {}",
                    r.kind,
                    escape(&r.source),
                    unix_secs(r.last_success)
                );
            }
        }

        family(
            o,
            "flagrelay_refresh_duration_seconds",
            "histogram",
            "Time a refresh took (all retrievers, parse, merge).",
        );
        self.refresh_duration
            .render(o, "flagrelay_refresh_duration_seconds", "");

        gauge(
            o,
            "flagrelay_last_successful_refresh_timestamp_seconds",
            "When the last refresh in which every retriever succeeded finished (Unix time, 0 for never).",
            &unix_secs(s.last_refresh),
        );
        gauge(
            o,
            "flagrelay_flags_loaded",
            "Flags in the flag set served.",
            &s.snapshot.map_or(0, Snapshot::len).to_string(),
        );
        counter(
            o,
            "flagrelay_flag_set_changes_total",
            "Times a refresh swapped in a different flag set (the first load included).",
            self.flag_set_changes.load(Ordering::Relaxed),
        );
        gauge(
            o,
            "flagrelay_sse_clients",
            "Open event streams (/ofrep/v1/sse and /v1/flags/stream).",
            &s.sse_clients.to_string(),
        );
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let mut more = String::new();
        // Nothing registered (no notifiers): add nothing, not even the encoder's `# EOF`.
        if prometheus_client::encoding::text::encode_registry(&mut more, &registry).is_ok()
            && !more.trim().is_empty()
        {
            o.push_str(&more);
        }
        crate::flagd::metrics::render(o);
        out
    }
}

pub(crate) fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn counter(out: &mut String, name: &str, help: &str, v: u64) {
    family(out, name, "counter", help);
    let _ = writeln!(out, "{name} {v}");
}

pub(crate) fn gauge(out: &mut String, name: &str, help: &str, v: &str) {
    family(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {v}");
}

fn unix_secs(t: Option<SystemTime>) -> String {
    let secs = t
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0.0, |d| d.as_secs_f64());
    format_float(secs)
}

/// A float as Prometheus reads it (Rust's shortest round-trip form; integers without `.0`).
fn format_float(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Escape a label value: backslash, double quote and line feed.
fn escape(v: &str) -> std::borrow::Cow<'_, str> {
    if !v.contains(['\\', '"', '\n']) {
        return v.into();
    }
    let mut s = String::with_capacity(v.len() + 8);
    for ch in v.chars() {
        match ch {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn snap(text: &str) -> Snapshot {
        let flags = crate::parse::parse_document("t", text.as_bytes(), None)
            .unwrap()
            .flags;
        Snapshot::build(flags.into_iter().collect(), None)
    }

    fn metrics() -> Metrics {
        Metrics::new(["/health", "/ofrep/v1/evaluate/flags/{*key}", "/health"])
    }

    fn scrape<'a>(snapshot: Option<&'a Snapshot>) -> Scrape<'a> {
        Scrape {
            version: "1.2.3",
            fips140: false,
            snapshot,
            sse_clients: 2,
            last_refresh: None,
        }
    }

    /// Every sample line, as `name{labels}` → value.
    fn samples(text: &str) -> BTreeMap<String, f64> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (k, v) = l.rsplit_once(' ').unwrap();
                (k.to_owned(), v.parse::<f64>().unwrap())
            })
            .collect()
    }

    /// The exposition format's rules this renderer must keep: each family announced once by
    /// HELP then TYPE before its samples, sample names belonging to the family (histogram
    /// suffixes), well-formed labels and values, no duplicate series.
    pub(crate) fn check_exposition(text: &str) {
        let mut families: Vec<(String, String)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut lines = text.lines().peekable();
        while let Some(l) = lines.next() {
            if let Some(rest) = l.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap();
                let ty = lines.next().expect("TYPE after HELP");
                let ty = ty
                    .strip_prefix(&format!("# TYPE {name} "))
                    .unwrap_or_else(|| panic!("TYPE for {name} after its HELP: {ty}"));
                assert!(["counter", "gauge", "histogram"].contains(&ty), "{ty}");
                assert!(
                    !families.iter().any(|(n, _)| n == name),
                    "family {name} announced twice"
                );
                assert!(name.starts_with("flagrelay_"), "{name}");
                families.push((name.to_owned(), ty.to_owned()));
                continue;
            }
            assert!(!l.starts_with('#'), "stray comment {l}");
            let (series, value) = l.rsplit_once(' ').unwrap();
            assert!(
                value == "+Inf" || value.parse::<f64>().is_ok(),
                "value of {l}"
            );
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, Some(rest.strip_suffix('}').expect("closing brace"))),
                None => (series, None),
            };
            let (fam, ty) = families.last().expect("sample before any family");
            let ok = match ty.as_str() {
                "histogram" => [
                    format!("{fam}_bucket"),
                    format!("{fam}_sum"),
                    format!("{fam}_count"),
                ]
                .contains(&name.to_owned()),
                _ => name == fam,
            };
            assert!(ok, "{name} under family {fam}");
            if let Some(labels) = labels {
                // name="value" pairs, values escaped.
                let mut rest = labels;
                while !rest.is_empty() {
                    let (k, v) = rest.split_once("=\"").expect("label =\"");
                    assert!(
                        k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                        "label name {k}"
                    );
                    let mut end = None;
                    let mut esc = false;
                    for (i, c) in v.char_indices() {
                        match (esc, c) {
                            (true, _) => esc = false,
                            (false, '\\') => esc = true,
                            (false, '"') => {
                                end = Some(i);
                                break;
                            }
                            _ => {}
                        }
                    }
                    let end = end.expect("closing quote");
                    rest = v[end + 1..].strip_prefix(',').unwrap_or(&v[end + 1..]);
                }
            }
            assert!(seen.insert(series.to_owned()), "duplicate series {series}");
        }
    }

    #[test]
    fn requests_by_route_method_status() {
        let m = metrics();
        let ofrep = m.route_for_path("/ofrep/v1/evaluate/flags/a/b");
        let unmatched = m.route_for_path("/nope");
        assert_eq!(m.route_label(ofrep), "/ofrep/v1/evaluate/flags/{*key}");
        assert_eq!(m.route_for_path("/ofrep/v1/evaluate/flags/"), unmatched);
        assert_eq!(m.route_for_path("/health/"), unmatched);
        assert_ne!(m.route_for_path("/health"), unmatched);
        assert_eq!(m.route_label(unmatched), UNMATCHED_ROUTE);
        let post = method_index(&axum::http::Method::POST);
        m.record_request(ofrep, post, 200, Duration::from_micros(50));
        m.record_request(ofrep, post, 200, Duration::from_millis(3));
        m.record_request(ofrep, post, 404, Duration::from_micros(10));
        m.record_request(
            unmatched,
            method_index(&"BREW".parse().unwrap()),
            404,
            Duration::ZERO,
        );
        m.record_request(unmatched, 0, 599, Duration::ZERO);
        m.record_request(unmatched, 0, 504, Duration::ZERO);
        let text = m.render(&scrape(None));
        check_exposition(&text);
        let s = samples(&text);
        let k = |r: &str, m: &str, st: &str| {
            format!("flagrelay_http_requests_total{{route=\"{r}\",method=\"{m}\",status=\"{st}\"}}")
        };
        let route = "/ofrep/v1/evaluate/flags/{*key}";
        assert_eq!(s[&k(route, "POST", "200")], 2.0);
        assert_eq!(s[&k(route, "POST", "404")], 1.0);
        assert_eq!(s[&k(UNMATCHED_ROUTE, "other", "404")], 1.0);
        assert_eq!(s[&k(UNMATCHED_ROUTE, "GET", "5xx")], 1.0);
        assert_eq!(s[&k(UNMATCHED_ROUTE, "GET", "504")], 1.0);
        assert!(!s.keys().any(|k| k.contains("/health")), "no zero series");
        // Latency: 10 µs and 50 µs are ≤ 100 µs; 3 ms is in (2.5 ms, 5 ms].
        let b = |le: &str| {
            s[&format!(
                "flagrelay_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{le}\"}}"
            )]
        };
        assert_eq!(b("0.0001"), 2.0);
        assert_eq!(b("0.0025"), 2.0);
        assert_eq!(b("0.005"), 3.0);
        assert_eq!(b("+Inf"), 3.0);
        let count =
            s[&format!("flagrelay_http_request_duration_seconds_count{{route=\"{route}\"}}")];
        assert_eq!(count, 3.0);
        let sum = s[&format!("flagrelay_http_request_duration_seconds_sum{{route=\"{route}\"}}")];
        assert!((sum - 0.00306).abs() < 1e-9, "{sum}");
    }

    #[test]
    fn status_slots_are_distinct_and_labelled() {
        let mut labels = std::collections::HashSet::new();
        for code in 100..600 {
            let slot = status_slot(code);
            assert!(slot < STATUS_SLOTS);
            let l = status_label(slot);
            if STATUSES.contains(&code) || code == 504 {
                assert_eq!(l, code.to_string());
            } else {
                assert_eq!(l, format!("{}xx", code / 100));
            }
            labels.insert(l);
        }
        assert_eq!(labels.len(), STATUS_SLOTS);
        assert!(
            STATUSES.windows(2).all(|w| w[0] < w[1]),
            "sorted for binary search"
        );
    }

    #[test]
    fn evaluations_by_flag_survive_flag_set_changes() {
        let m = metrics();
        let a = snap("keep: {enabled: true, rollout: 100}\ngone: {enabled: false}\n");
        m.evaluation(&a, a.get("keep").unwrap(), Reason::Static);
        m.evaluation(&a, a.get("keep").unwrap(), Reason::Static);
        m.evaluation(&a, a.get("gone").unwrap(), Reason::Disabled);
        m.evaluation_unknown();
        let flag = |f: &str, r: &str| {
            format!("flagrelay_evaluations_total{{flag=\"{f}\",reason=\"{r}\"}}")
        };
        let s = samples(&m.render(&scrape(Some(&a))));
        assert_eq!(s[&flag("keep", "STATIC")], 2.0);
        assert_eq!(s[&flag("gone", "DISABLED")], 1.0);
        assert_eq!(s[&flag(UNKNOWN_FLAG, "ERROR")], 1.0);

        // A new flag set: `keep` stays (and keeps counting up), `gone` goes, `new` arrives.
        std::thread::sleep(Duration::from_millis(2));
        let b = snap("keep: {enabled: true, rollout: 50}\nnew: {enabled: true, rollout: 100}\n");
        assert!(b.loaded_at > a.loaded_at);
        m.evaluation(&b, b.get("keep").unwrap(), Reason::Split);
        m.evaluation(&b, b.get("keep").unwrap(), Reason::Static);
        // A request that loaded the old set before the swap still counts.
        m.evaluation(&a, a.get("gone").unwrap(), Reason::Disabled);
        m.evaluation(&a, a.get("keep").unwrap(), Reason::Static);
        let text = m.render(&scrape(Some(&b)));
        check_exposition(&text);
        let s = samples(&text);
        assert_eq!(s[&flag("keep", "STATIC")], 4.0);
        assert_eq!(s[&flag("keep", "SPLIT")], 1.0);
        assert_eq!(
            s[&flag("gone", "DISABLED")],
            2.0,
            "retired flag still shown"
        );
        assert!(
            !s.contains_key(&flag("new", "STATIC")),
            "only non-zero series"
        );

        // The next change drops the retired flag.
        std::thread::sleep(Duration::from_millis(2));
        let c = snap("keep: {enabled: true, rollout: 100}\n");
        let s = samples(&m.render(&scrape(Some(&c))));
        assert!(!s.keys().any(|k| k.contains("\"gone\"")));
        assert_eq!(s[&flag("keep", "STATIC")], 4.0);
    }

    #[test]
    fn bulk_recorder_counts_per_flag_and_requests() {
        let m = metrics();
        let a = snap("a: {enabled: true, rollout: 100}\nb: {enabled: false}\n");
        let rec = m.recorder(Some(&a));
        for (i, e) in a.entries().iter().enumerate() {
            rec.record(
                i,
                e.rules
                    .evaluate(&crate::evaluator::Subject::default())
                    .reason,
            );
        }
        rec.finish(a.len());
        m.recorder(None).finish(0);
        let s = samples(&m.render(&scrape(Some(&a))));
        assert_eq!(
            s["flagrelay_evaluations_total{flag=\"a\",reason=\"STATIC\"}"],
            1.0
        );
        assert_eq!(
            s["flagrelay_evaluations_total{flag=\"b\",reason=\"DISABLED\"}"],
            1.0
        );
        assert_eq!(s["flagrelay_bulk_evaluations_total"], 2.0);
        assert_eq!(s["flagrelay_bulk_evaluated_flags_total"], 2.0);
    }

    #[test]
    fn label_values_are_escaped() {
        let m = metrics();
        let a = snap("\"we\\\\ird \\\"key\\\"\\n\": {enabled: true, rollout: 100}\n");
        let e = &a.entries()[0];
        assert_eq!(&*e.key, "we\\ird \"key\"\n");
        m.evaluation(&a, e, Reason::Static);
        let text = m.render(&scrape(Some(&a)));
        check_exposition(&text);
        assert!(
            text.contains(
                r#"flagrelay_evaluations_total{flag="we\\ird \"key\"\n",reason="STATIC"} 1"#
            ),
            "{text}"
        );
    }

    #[test]
    fn refreshes_by_retriever_and_outcome() {
        let m = metrics();
        let report = |ok: bool, changed: bool| RefreshReport {
            ok,
            changed,
            built: changed,
            flags: 3,
            etag: Some("e".into()),
            retrievers: vec![
                ("file", "a.yaml".into(), None),
                (
                    "http",
                    "https://h/f".into(),
                    (!ok).then(|| "boom".to_owned()),
                ),
            ],
            refused: None,
            duration: Duration::from_millis(30),
        };
        m.refresh_finished(&report(true, true));
        m.refresh_finished(&report(false, false));
        m.refresh_finished(&report(true, false));
        let last = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let text = m.render(&Scrape {
            last_refresh: Some(last),
            ..scrape(None)
        });
        check_exposition(&text);
        let s = samples(&text);
        assert_eq!(s["flagrelay_refreshes_total{outcome=\"success\"}"], 2.0);
        assert_eq!(s["flagrelay_refreshes_total{outcome=\"failure\"}"], 1.0);
        let r = |k: &str, src: &str, o: &str| {
            s[&format!(
                "flagrelay_retriever_refreshes_total{{kind=\"{k}\",source=\"{src}\",outcome=\"{o}\"}}"
            )]
        };
        assert_eq!(r("file", "a.yaml", "success"), 3.0);
        assert_eq!(r("http", "https://h/f", "success"), 2.0);
        assert_eq!(r("http", "https://h/f", "failure"), 1.0);
        assert_eq!(s["flagrelay_flag_set_changes_total"], 1.0);
        assert_eq!(s["flagrelay_refresh_duration_seconds_count"], 3.0);
        assert_eq!(
            s["flagrelay_refresh_duration_seconds_bucket{le=\"0.05\"}"],
            3.0
        );
        assert_eq!(
            s["flagrelay_refresh_duration_seconds_bucket{le=\"0.025\"}"],
            0.0
        );
        assert_eq!(
            s["flagrelay_last_successful_refresh_timestamp_seconds"],
            1.7e9
        );
        assert!(
            s["flagrelay_retriever_last_success_timestamp_seconds{kind=\"file\",source=\"a.yaml\"}"]
                > 1.7e9
        );
    }

    #[test]
    fn gauges_and_build_info() {
        let m = metrics();
        let a = snap("x: {enabled: true}\ny: {enabled: true}\n");
        let s = samples(&m.render(&Scrape {
            fips140: true,
            ..scrape(Some(&a))
        }));
        assert_eq!(
            s["flagrelay_build_info{version=\"1.2.3\",fips140=\"true\"}"],
            1.0
        );
        assert_eq!(s["flagrelay_flags_loaded"], 2.0);
        assert_eq!(s["flagrelay_sse_clients"], 2.0);
        assert_eq!(
            s["flagrelay_last_successful_refresh_timestamp_seconds"],
            0.0
        );
        assert_eq!(
            s["flagrelay_evaluations_total{flag=\"__unknown__\",reason=\"ERROR\"}"],
            0.0
        );
    }

    #[test]
    fn disabled_records_nothing() {
        let m = metrics();
        m.set_enabled(false);
        let a = snap("x: {enabled: true}\n");
        m.evaluation(&a, a.get("x").unwrap(), Reason::Static);
        m.evaluation_unknown();
        m.record_request(m.route_for_path("/"), 0, 200, Duration::ZERO);
        let s = samples(&m.render(&scrape(Some(&a))));
        assert!(
            !s.keys()
                .any(|k| k.starts_with("flagrelay_http_requests_total"))
        );
        assert_eq!(
            s["flagrelay_evaluations_total{flag=\"__unknown__\",reason=\"ERROR\"}"],
            0.0
        );
    }

    #[test]
    fn position_of_entries() {
        let a = snap("a: {enabled: true}\nb: {enabled: true}\nc: {enabled: true}\n");
        for (i, e) in a.entries().iter().enumerate() {
            assert_eq!(position(&a, e), Some(i));
        }
        let other = snap("a: {enabled: true}\n");
        assert_eq!(position(&a, &other.entries()[0]), None);
    }

    #[test]
    fn reasons_round_trip() {
        for (i, r) in REASONS.iter().enumerate() {
            assert_eq!(reason_index(*r), i);
        }
    }

    #[test]
    fn concurrent_recording_loses_nothing() {
        let m = Arc::new(metrics());
        let a = Arc::new(snap("a: {enabled: true, rollout: 100}\n"));
        let route = m.route_for_path("/health");
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (m, a) = (m.clone(), a.clone());
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        m.record_request(route, 0, 200, Duration::from_micros(5));
                        m.evaluation(&a, &a.entries()[0], Reason::Static);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let s = samples(&m.render(&scrape(Some(&a))));
        assert_eq!(
            s["flagrelay_http_requests_total{route=\"/health\",method=\"GET\",status=\"200\"}"],
            40_000.0
        );
        assert_eq!(
            s["flagrelay_evaluations_total{flag=\"a\",reason=\"STATIC\"}"],
            40_000.0
        );
    }
}
