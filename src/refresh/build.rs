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
        let held = Arc::strong_count(&old) - 1;
        tokio::task::spawn_blocking(move || {
            drop(old);
            crate::tuning::release_free_pages();
            tracing::debug!(still_held_by = held, "replaced flag set released");
        });
    });
}

/// Merge in configured order (later sources win) and build. A document nobody else holds (the
/// one source's fresh parse) is moved in rather than copied.
pub(super) fn merge_and_build(docs: Vec<Arc<FlagDoc>>, salt: Option<&str>) -> Snapshot {
    // One source's fresh document (the common case) is sorted in place and built without a
    // map of every definition beside it: less to allocate, and less the refresh leaves behind.
    if let [only] = &docs[..]
        && Arc::strong_count(only) == 1
    {
        let doc = Arc::try_unwrap(docs.into_iter().next().expect("one document"))
            .expect("the only reference");
        return build_one(doc, salt);
    }
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

fn build_one(doc: FlagDoc, configured: Option<&str>) -> Snapshot {
    let salt = match &doc.salt {
        Some(upstream) => {
            if configured.is_some() && configured != upstream.as_deref() {
                tracing::warn!(
                    "rolloutSalt differs from the upstream relay's; the upstream's is used"
                );
            }
            upstream.clone()
        }
        None => configured.map(str::to_owned),
    };
    let mut flags = doc.flags;
    flags.sort_by(|a, b| a.0.cmp(&b.0));
    if flags.windows(2).any(|w| w[0].0 == w[1].0) {
        // A document repeating a key is refused by the parser; were one to reach here, the
        // map keeps the later definition as a merge would.
        let merged: BTreeMap<String, FlagDef> = flags.into_iter().collect();
        return Snapshot::build(merged, salt.as_deref());
    }
    Snapshot::build_sorted(flags, salt.as_deref())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// One fresh document (sorted in place) builds the same set as the merge of a shared one.
    #[test]
    fn one_document_builds_as_a_merge_does() {
        let text = "z: {rollout: 5}\nb: {enabled: true, users: [u]}\nm: {metadata: {k: v}}\n";
        let doc = crate::parse::parse_document("t", text.as_bytes(), None).unwrap();
        let shared = Arc::new(doc.clone());
        let _other = shared.clone();
        let merged = merge_and_build(vec![shared], Some("s"));
        let sorted = merge_and_build(vec![Arc::new(doc)], Some("s"));
        assert_eq!(sorted.etag, merged.etag);
        assert_eq!(sorted.sync_json(), merged.sync_json());
        let keys: Vec<&str> = sorted.entries().iter().map(|e| e.key()).collect();
        assert_eq!(keys, ["b", "m", "z"]);
        assert_eq!(sorted.get("m").unwrap().metadata_json(), r#"{"k":"v"}"#);
    }
}
