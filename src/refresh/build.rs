//! Building a flag set from the merged documents, and freeing a replaced one away from
//! requests.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::errtext::MAX_MESSAGE;
use crate::parse::{FlagDef, FlagDoc};
use crate::snapshot::Snapshot;

/// Frees a replaced flag set away from requests. Freeing 100,000 flags takes tens of
/// milliseconds, and whichever holder lets go last pays for it: a request in flight at the swap
/// would. So a task waits (up to 2 s, without holding a thread) until its reference is the only
/// one left, then frees the set on a blocking thread and hands the pages back to the OS.
pub(super) fn retire(old: Option<Arc<Snapshot>>) {
    let Some(old) = old else { return };
    tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(2);
        while Arc::strong_count(&old) > 1 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::task::spawn_blocking(move || {
            drop(old);
            crate::tuning::release_free_pages();
        });
    });
}

/// Merge in configured order (later sources win) and build. A document nobody else holds (the
/// one source's fresh parse) is moved in rather than copied.
pub(super) fn merge_and_build(docs: Vec<Arc<FlagDoc>>, salt: Option<&str>) -> Snapshot {
    let mut merged: BTreeMap<String, FlagDef> = BTreeMap::new();
    let configured = salt;
    let mut salt = salt.map(str::to_owned);
    for doc in docs {
        // An upstream relay's salt replaces the local one (later sources win, as for flags).
        if let Some(upstream) = &doc.salt {
            if configured.is_some() && configured != upstream.as_deref() {
                // Values not logged: a salt keeps cohorts unguessable.
                tracing::warn!(
                    "rolloutSalt differs from the upstream relay's; the upstream's is used"
                );
            }
            salt.clone_from(upstream);
        }
        match Arc::try_unwrap(doc) {
            Ok(owned) => merged.extend(owned.flags),
            Err(shared) => merged.extend(shared.flags.iter().cloned()),
        }
    }
    Snapshot::build(merged, salt.as_deref())
}

/// The error of a build that panicked (a defect; the served set stays).
pub(super) fn build_failed(e: tokio::task::JoinError) -> String {
    let what = match e.try_into_panic() {
        Ok(p) => p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into()),
        Err(e) => e.to_string(),
    };
    let what = crate::errtext::bounded(&what, MAX_MESSAGE);
    format!("building the flag set failed ({what}); the last good set keeps serving")
}
