//! Refresh: run every retriever, parse and validate what changed, merge in configured order,
//! and swap a new snapshot in only when everything succeeded.
//!
//! A refresh is single-flight: a caller that arrives while one runs waits for it to finish and
//! then joins the *next* run, which every caller that arrived meanwhile shares. That way an
//! admin refresh called right after a flag file changed never gets an answer computed from
//! before the change, and concurrent callers never stack runs.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use futures_util::future::join_all;
use serde::Serialize;
use tokio::sync::Notify;

use crate::errtext::MAX_MESSAGE;
use crate::parse::FlagDoc;
use crate::retriever::{Fetched, Retriever, Validators};
use crate::shared::rfc3339;
use crate::snapshot::{Snapshot, SnapshotStore, short_hash};

mod hook;
pub(crate) use hook::{FleetHook, Published};

/// A document this large is read into memory malloc serves with a mapping of its own when it
/// is fresh (`tuning::fix_malloc_thresholds`), but with a free chunk of a heap when there is one.
const LARGE_DOCUMENT: usize = 4 << 20;

/// What one retriever last did, for `/info` and the admin answer.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RetrieverStatus {
    #[schema(value_type = String)]
    pub kind: &'static str,
    pub source: String,
    pub last_success: Option<String>,
    pub last_error: Option<String>,
}

/// The outcome of one refresh.
#[derive(Debug, Clone)]
pub struct RefreshReport {
    /// All retrievers succeeded (and the flag set is what they serve).
    pub ok: bool,
    /// A new flag set was swapped in.
    pub changed: bool,
    /// A snapshot was built: some source's document changed since the last build.
    pub built: bool,
    pub flags: usize,
    pub etag: Option<String>,
    /// Per retriever, in configured order: `None` for success, else why it failed.
    pub retrievers: Vec<(&'static str, String, Option<String>)>,
    /// Every retriever succeeded but no new set was swapped in: it was refused
    /// (`maxFlagRemovalPercent`) or building it failed.
    pub refused: Option<String>,
    pub duration: Duration,
}

impl RefreshReport {
    pub fn errors(&self) -> impl Iterator<Item = &str> {
        self.retrievers
            .iter()
            .filter_map(|(_, _, e)| e.as_deref())
            .chain(self.refused.as_deref())
    }
}

/// A retriever plus what we remember about its last good document.
struct Slot {
    retriever: Retriever,
    state: Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    validators: Validators,
    /// Hash of the bytes last parsed without error, so an unchanged document is not parsed
    /// again.
    bytes_hash: Option<String>,
    /// The document those bytes parsed to, kept only when there are several sources (a change
    /// in one is merged with the others' last documents). With one source the snapshot is all
    /// that is needed: keeping the parsed copy too doubled the memory of a large flag set.
    doc: Option<Arc<FlagDoc>>,
    last_success: Option<SystemTime>,
    last_error: Option<String>,
    /// Unix seconds the source gave for the document last parsed (mtime, `Last-Modified`).
    modified: Option<u64>,
}

/// Settings of the refresh pipeline.
#[derive(Debug, Clone, Default)]
pub struct RefreshOptions {
    pub salt: Option<String>,
    pub persist_to: Option<PathBuf>,
    /// `maxFlagRemovalPercent` (see [`guard`]); `None` turns the guard off.
    pub max_removal_percent: Option<u8>,
    /// Where refreshes and the per-flag tables are recorded (the relay's one registry; by
    /// default one of its own).
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
}

pub struct Refresher {
    slots: Vec<Slot>,
    store: Arc<SnapshotStore>,
    options: RefreshOptions,
    /// Tickets of callers that asked for a refresh; see the module docs.
    requested: AtomicU64,
    /// Held while a refresh runs; remembers the ticket a finished run covered and its report.
    running: tokio::sync::Mutex<Option<(u64, RefreshReport)>>,
    /// Woken by a forced refresh so the poll timer starts over.
    poll_reset: Notify,
    last_refresh: Mutex<Option<SystemTime>>,
    /// At most one save runs at a time; changes meanwhile keep only the newest set to save.
    saves: Arc<Mutex<save::SaveQueue>>,
    /// The byte hashes of the documents the last built snapshot came from, and its etag. When a
    /// refresh finds every source unchanged, building again would give the same set: for
    /// 100,000 flags that is a second of CPU on every poll, so it is skipped.
    built_from: Mutex<Option<(Vec<String>, String)>>,
    removal_guard: guard::RemovalGuard,
    /// Tests make the next build panic with this.
    #[cfg(test)]
    panic_next_build: std::sync::atomic::AtomicBool,
    /// How many unchanged large documents had their pages handed back (tests).
    #[cfg(test)]
    large_rereads_released: AtomicU64,
    /// Fleet mode (set once at start, see [`FleetHook`]); empty for a standalone relay.
    fleet: OnceLock<Arc<dyn FleetHook>>,
}

impl Refresher {
    pub fn new(
        retrievers: Vec<Retriever>,
        store: Arc<SnapshotStore>,
        options: RefreshOptions,
    ) -> Arc<Refresher> {
        Arc::new(Refresher {
            slots: retrievers
                .into_iter()
                .map(|retriever| Slot {
                    retriever,
                    state: Mutex::new(SlotState::default()),
                })
                .collect(),
            store,
            options,
            requested: AtomicU64::new(0),
            running: tokio::sync::Mutex::new(None),
            poll_reset: Notify::new(),
            last_refresh: Mutex::new(None),
            saves: Arc::new(Mutex::new(save::SaveQueue::default())),
            built_from: Mutex::new(None),
            removal_guard: guard::RemovalGuard::default(),
            #[cfg(test)]
            panic_next_build: Default::default(),
            #[cfg(test)]
            large_rereads_released: AtomicU64::new(0),
            fleet: OnceLock::new(),
        })
    }

    pub(crate) fn store(&self) -> &Arc<SnapshotStore> {
        &self.store
    }

    /// The registry this refresher records into (the relay's).
    pub(crate) fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.options.metrics
    }

    /// Refresh now (or join the refresh that starts next), and restart the poll timer.
    pub(crate) async fn refresh_forced(&self) -> RefreshReport {
        let report = self.refresh().await;
        self.poll_reset.notify_one();
        report
    }

    /// An admin refresh with `?force=true`: like [`Self::refresh_forced`], and the refresh it
    /// joins may remove more than `maxFlagRemovalPercent` of the flags.
    pub(crate) async fn refresh_allowing_removal(&self) -> RefreshReport {
        self.removal_guard.allow_next();
        self.refresh_forced().await
    }

    /// Refresh, sharing a run with concurrent callers.
    pub async fn refresh(&self) -> RefreshReport {
        let ticket = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let mut running = self.running.lock().await;
        if let Some((covered, report)) = running.as_ref()
            && *covered >= ticket
        {
            // A run that started after we asked has finished: its answer is fresh enough.
            return report.clone();
        }
        let covers = self.requested.load(Ordering::SeqCst);
        let report = self.run().await;
        *running = Some((covers, report.clone()));
        report
    }

    async fn run(&self) -> RefreshReport {
        use tracing::Instrument;
        // Spans only for trace export, and only for a sampled trace (a text log would otherwise
        // prefix every line with them).
        let traced = crate::telemetry::sample_root();
        let span = if traced {
            tracing::info_span!("refresh", otel.name = "refresh", sources = self.slots.len())
        } else {
            tracing::Span::none()
        };
        self.run_inner(traced).instrument(span).await
    }

    async fn run_inner(&self, traced: bool) -> RefreshReport {
        use tracing::Instrument;
        let started = Instant::now();
        let fetched = join_all(self.slots.iter().map(|s| {
            let span = if traced {
                tracing::info_span!(
                    "fetch",
                    otel.name = format!("fetch {}", s.retriever.kind().as_str()),
                    retriever.kind = s.retriever.kind().as_str(),
                    retriever.source = s.retriever.source(),
                )
            } else {
                tracing::Span::none()
            };
            self.fetch_slot(s).instrument(span)
        }))
        .await;
        let now = SystemTime::now();
        let mut statuses = Vec::with_capacity(self.slots.len());
        let mut docs = Vec::with_capacity(self.slots.len());
        let mut hashes = Vec::with_capacity(self.slots.len());
        let mut modified: Option<u64> = None;
        for (slot, result) in self.slots.iter().zip(fetched) {
            let mut st = lock(&slot.state);
            let error = match result {
                Ok(SlotDoc { hash, doc }) => {
                    modified = modified.max(st.modified);
                    st.last_success = Some(now);
                    st.last_error = None;
                    hashes.push(hash);
                    docs.push(doc);
                    None
                }
                Err(e) => {
                    st.last_error = Some(e.clone());
                    Some(e)
                }
            };
            statuses.push((
                slot.retriever.kind().as_str(),
                slot.retriever.source().to_owned(),
                error,
            ));
        }
        let mut ok = statuses.iter().all(|(_, _, e)| e.is_none());
        let mut refused = None;
        let current = self.store.load();
        let mut changed = false;
        let mut built = false;
        if ok {
            *lock(&self.last_refresh) = Some(now);
            let unchanged = current.as_ref().is_some_and(|c| {
                lock(&self.built_from)
                    .as_ref()
                    .is_some_and(|(from, etag)| *etag == c.etag && *from == hashes)
            });
            // Every document, or None when one unchanged source kept no parsed copy and the set
            // being served did not come from it (it cannot happen after a build, since a single
            // source's unchanged bytes are what the served set was built from).
            let inputs: Option<Vec<Arc<FlagDoc>>> = docs.into_iter().collect();
            if !unchanged && inputs.is_none() {
                self.forget_documents();
            }
            if let (false, Some(inputs)) = (unchanged, inputs) {
                built = true;
                let salt = self.options.salt.clone();
                let metrics = self.options.metrics.clone();
                let generation = next_generation(current.as_deref());
                #[cfg(test)]
                let inject_panic = self.panic_next_build.swap(false, Ordering::SeqCst);
                #[cfg(not(test))]
                let inject_panic = false;
                let built_set = tokio::task::spawn_blocking(move || {
                    assert!(!inject_panic, "injected build panic");
                    crate::tuning::background_priority();
                    let mut next = merge_and_build(inputs, salt.as_deref());
                    if let Some(m) = modified {
                        next.last_modified = m;
                    }
                    next.generation = generation;
                    // Here, so no request builds the per-flag metrics table; installed at the
                    // swap, if there is one.
                    let table = metrics.prepare_flags(&next);
                    // Parsing and building freed far more than they kept; give it back.
                    crate::tuning::release_free_pages();
                    (next, table)
                })
                .await;
                // A panic while building is this refresh's failure, not the poller's end.
                let (next, table) = match built_set {
                    Ok((next, table)) => (Some(next), Some(table)),
                    Err(e) => {
                        refused = Some(build_failed(e));
                        (None, None)
                    }
                };
                if let Some(next) = &next {
                    refused = self.removal_guard.check(
                        self.options.max_removal_percent,
                        current.as_deref(),
                        next,
                    );
                }
                if refused.is_some() {
                    // Parse and build again next time (the guard sees the source again).
                    ok = false;
                    self.forget_documents();
                }
                if let Some(mut next) = next.filter(|_| refused.is_none()) {
                    *lock(&self.built_from) = Some((hashes, next.etag.clone()));
                    // The etag hashes the flags only; an upstream relay's new salt alone changes
                    // answers too.
                    if current
                        .as_ref()
                        .is_none_or(|c| c.etag != next.etag || c.salt() != next.salt())
                    {
                        if let Some(fleet) = self.fleet.get() {
                            // Published (or found already published) under a version: serve
                            // it as the fleet does. Unreachable: serve it alone under the
                            // version already served, so no replica ever goes back.
                            match fleet.publish(&next).await {
                                Some(p) => {
                                    next.fleet_version = Some(p.version);
                                    next.last_modified = p.last_modified;
                                }
                                None => {
                                    next.fleet_version =
                                        current.as_ref().and_then(|c| c.fleet_version)
                                }
                            }
                        }
                        if let Some(table) = table {
                            self.options.metrics.install_flags(table, &next);
                        }
                        let next = Arc::new(next);
                        retire(self.store.swap(next.clone()));
                        changed = true;
                        self.persist(next);
                    }
                }
            }
        }
        let served = self.store.load();
        let report = RefreshReport {
            ok,
            changed,
            built,
            flags: served.as_ref().map_or(0, |s| s.len()),
            etag: served.as_ref().map(|s| s.etag.clone()),
            retrievers: statuses,
            refused,
            duration: started.elapsed(),
        };
        self.removal_guard.reset();
        log_outcome(&report);
        self.options
            .metrics
            .refresh_finished(&crate::metrics::RefreshOutcome {
                ok: report.ok,
                changed: report.changed,
                duration: report.duration,
                retrievers: &report.retrievers,
            });
        report
    }

    /// Make every source parse again on the next refresh (so a build has all documents).
    fn forget_documents(&self) {
        for slot in &self.slots {
            let mut st = lock(&slot.state);
            st.bytes_hash = None;
            st.validators = Validators::default();
        }
    }

    /// Fetch one source and parse it if its bytes changed. On success the slot remembers the
    /// bytes' hash (and, with several sources, the parsed document); on failure it keeps what
    /// it had (for the next merge).
    async fn fetch_slot(&self, slot: &Slot) -> Result<SlotDoc, String> {
        let (since, cached, last_hash) = {
            let st = lock(&slot.state);
            (st.validators.clone(), st.doc.clone(), st.bytes_hash.clone())
        };
        // Without a good document parsed there is nothing a 304 could refer to.
        let since = if last_hash.is_some() {
            since
        } else {
            Validators::default()
        };
        // Error texts may quote the source (a server's message): bounded, see `errtext`.
        let bound = |e: String| crate::errtext::bounded(&e, 2 * MAX_MESSAGE).into_owned();
        let fetched = slot
            .retriever
            .fetch(&since)
            .await
            .map_err(|e| bound(e.to_string()))?;
        match fetched {
            Fetched::NotModified => {
                let hash = last_hash.ok_or_else(|| {
                    format!(
                        "{}: answered \"not modified\" to an unconditional request",
                        slot.retriever.source()
                    )
                })?;
                Ok(SlotDoc { hash, doc: cached })
            }
            Fetched::Changed(doc) => {
                let hash = short_hash(&doc.bytes);
                let modified = doc
                    .validators
                    .last_modified
                    .as_deref()
                    .and_then(|t| httpdate::parse_http_date(t).ok())
                    .map(|t| {
                        t.duration_since(SystemTime::UNIX_EPOCH)
                            .map_or(0, |d| d.as_secs())
                    });
                if modified.is_some() {
                    lock(&slot.state).modified = modified;
                }
                if last_hash.as_deref() == Some(hash.as_str()) {
                    let large = doc.bytes.len() >= LARGE_DOCUMENT;
                    lock(&slot.state).validators = doc.validators;
                    if large {
                        drop(doc.bytes);
                        // Read again only to find it unchanged (a file is read on every poll):
                        // the buffer took a free chunk of malloc's heap whose pages the last
                        // refresh had handed back, and made them resident again. Hand them back
                        // now, or every poll between two changes keeps a document's worth per
                        // arena (BENCHMARKS.md, "RSS after refreshes").
                        tokio::task::spawn_blocking(crate::tuning::release_free_pages);
                        #[cfg(test)]
                        self.large_rereads_released.fetch_add(1, Ordering::SeqCst);
                    }
                    return Ok(SlotDoc { hash, doc: cached });
                }
                let source = slot.retriever.source().to_owned();
                let (bytes, format) = (doc.bytes.clone(), doc.format);
                let kind = slot.retriever.kind();
                // Large documents take a while to parse: keep it off the reactor.
                let parsed = tokio::task::spawn_blocking(move || {
                    crate::tuning::background_priority();
                    crate::retriever::parse_document(kind, &source, &bytes, format)
                })
                .await
                .map_err(|e| format!("parser failed: {e}"))?
                .map_err(|e| bound(e.to_string()))?;
                let parsed = Arc::new(parsed);
                let mut st = lock(&slot.state);
                st.validators = doc.validators;
                st.bytes_hash = Some(hash.clone());
                st.doc = (self.slots.len() > 1).then(|| parsed.clone());
                Ok(SlotDoc {
                    hash,
                    doc: Some(parsed),
                })
            }
        }
    }

    fn persist(&self, snapshot: Arc<Snapshot>) {
        if let Some(path) = &self.options.persist_to {
            save::persist(&self.saves, path, snapshot);
        }
    }

    /// Per-retriever status for `/info`.
    pub(crate) fn statuses(&self) -> Vec<RetrieverStatus> {
        self.slots
            .iter()
            .map(|s| {
                let st = lock(&s.state);
                RetrieverStatus {
                    kind: s.retriever.kind().as_str(),
                    source: s.retriever.source().to_owned(),
                    last_success: st.last_success.map(rfc3339),
                    last_error: st.last_error.clone(),
                }
            })
            .collect()
    }

    /// When the last fully successful refresh finished.
    pub(crate) fn last_refresh(&self) -> Option<SystemTime> {
        *lock(&self.last_refresh)
    }

    /// Poll forever: wait `interval` (±10 % when `jitter`), refresh, repeat. A forced refresh
    /// restarts the wait.
    pub(crate) async fn poll(self: Arc<Self>, interval: Duration, jitter: bool) {
        // Sources that push (another relay's stream) refresh at once.
        let pushed: Vec<_> = self
            .slots
            .iter()
            .filter_map(|s| s.retriever.changes())
            .collect();
        loop {
            let wait = if jitter { jittered(interval) } else { interval };
            tokio::select! {
                () = tokio::time::sleep(wait) => {
                    // In a fleet only the leader polls (or everyone, while Redis is away).
                    if self.fleet.get().is_none_or(|f| f.polls()) {
                        self.refresh().await;
                    }
                }
                () = self.poll_reset.notified() => {}
                () = crate::retriever::any_changed(&pushed) => {
                    self.refresh().await;
                }
            }
        }
    }
}

/// What a source gave this refresh: the hash of its bytes, and its parsed document unless it
/// was unchanged and not kept (see `SlotState::doc`).
struct SlotDoc {
    hash: String,
    doc: Option<Arc<FlagDoc>>,
}

fn log_outcome(r: &RefreshReport) {
    let ms = r.duration.as_secs_f64() * 1000.0;
    let etag = r.etag.as_deref().unwrap_or("");
    if r.ok {
        tracing::info!(
            flags = r.flags,
            etag,
            changed = r.changed,
            built = r.built,
            duration_ms = ms,
            "refresh succeeded"
        );
    } else {
        let errors: Vec<&str> = r.errors().collect();
        tracing::error!(
            errors = %errors.join("; "),
            serving_flags = r.flags,
            serving_etag = etag,
            duration_ms = ms,
            "refresh failed; the last good flag set keeps serving"
        );
    }
}

/// `interval` ± up to 10 %, drawn fresh each time.
/// The generation of the set a swap over `current` brings in (refreshes and fleet installs
/// swap one at a time, under the refresher's lock).
fn next_generation(current: Option<&Snapshot>) -> u64 {
    current.map_or(0, |c| c.generation) + 1
}

fn jittered(interval: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded randomly per process and per instance: enough to desynchronise
    // replicas without a dependency on a random number crate.
    let r = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let unit = (r % 20_001) as f64 / 10_000.0 - 1.0; // in [-1, 1]
    interval.mul_f64(1.0 + unit * 0.1)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these cannot leave the data half-written in a way that
    // matters (plain assignments), so recover instead of poisoning every later refresh.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

mod build;
mod guard;
mod save;

use build::{build_failed, merge_and_build, retire};

#[cfg(test)]
mod tests;
