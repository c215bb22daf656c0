//! Saving the served flag set to `persistentFlagConfigurationFile`, off the reactor, one save
//! at a time: a change that arrives while a save runs (maybe stuck on a hung volume) replaces
//! the set waiting to be written, instead of adding one more blocked thread per change.

use std::path::Path;
use std::sync::{Arc, Mutex};

use super::lock;
use crate::persist;
use crate::snapshot::Snapshot;

#[derive(Default)]
pub(super) struct SaveQueue {
    running: bool,
    pending: Option<Arc<Snapshot>>,
}

/// Save `snapshot` (now, or after the save under way).
pub(super) fn persist(saves: &Arc<Mutex<SaveQueue>>, path: &Path, snapshot: Arc<Snapshot>) {
    {
        let mut q = lock(saves);
        if q.running {
            // A save is under way (maybe stuck on a hung volume): keep only the newest set
            // for it to write next, instead of one more blocked thread per change.
            q.pending = Some(snapshot);
            return;
        }
        q.running = true;
    }
    let (saves, path) = (saves.clone(), path.to_owned());
    // Disk I/O off the reactor; a failure is logged and serving goes on.
    tokio::task::spawn_blocking(move || {
        let mut next = snapshot;
        loop {
            match persist::save(&path, &next) {
                Ok(()) => {
                    tracing::debug!(path = %path.display(), etag = %next.etag, "persisted flag set")
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not persist the flag set; serving continues")
                }
            }
            let mut q = lock(&saves);
            match q.pending.take() {
                Some(newer) => next = newer,
                None => {
                    q.running = false;
                    return;
                }
            }
        }
    });
}
