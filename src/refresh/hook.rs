//! The seam between refresh and fleet mode (`crate::fleet`), which sits beside refresh: the
//! refresher knows a trait object, never Redis.

use std::future::Future;
use std::pin::Pin;

use std::sync::Arc;

use super::{Refresher, retire};
use crate::snapshot::Snapshot;

/// What the fleet holds for a set a refresh built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Published {
    /// The fleet-wide version (only grows).
    pub version: u64,
    /// The published set's `lastModified` (Unix seconds), served by every replica.
    pub last_modified: u64,
}

/// Fleet mode, as the refresher sees it.
pub(crate) trait FleetHook: Send + Sync {
    /// A refresh built `next`, which differs from the set served. Publish it (or find it
    /// already published under the same etag). `None` when the fleet's store is unreachable:
    /// the refresher then serves the set alone (standalone behaviour).
    fn publish<'a>(
        &'a self,
        next: &'a Snapshot,
    ) -> Pin<Box<dyn Future<Output = Option<Published>> + Send + 'a>>;

    /// Whether this replica's poll timer runs the retrievers now: the leader's does, and
    /// everyone's while the fleet's store is unreachable.
    fn polls(&self) -> bool;
}

impl Refresher {
    /// Join a fleet: changed sets are published through `hook`, and the poll timer refreshes
    /// only when the hook says so. Once, before polling starts.
    pub(crate) fn set_fleet(&self, hook: Arc<dyn FleetHook>) {
        let _ = self.fleet.set(hook);
    }

    /// Serve a set the fleet published (built by the caller), unless it would go back: a set
    /// is taken only over none, a lower version, or the same version with other content (one
    /// built alone while Redis was unreachable). Waits for a running refresh. Returns whether
    /// it was swapped in.
    pub(crate) async fn install(&self, next: Snapshot) -> bool {
        let _running = self.running.lock().await;
        let current = self.store.load();
        let newer = current.as_ref().is_none_or(|c| {
            let (have, got) = (
                c.fleet_version.unwrap_or(0),
                next.fleet_version.unwrap_or(0),
            );
            got > have || (got == have && c.etag != next.etag)
        });
        if !newer {
            return false;
        }
        let mut next = next;
        next.generation = super::next_generation(current.as_deref());
        self.options.metrics.flag_set_loaded(&next);
        let next = Arc::new(next);
        retire(self.store.swap(next.clone()));
        self.persist(next);
        true
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use super::*;
    use crate::config::RetrieverConfig;
    use crate::refresh::{RefreshOptions, Refresher};
    use crate::retriever::Retriever;
    use crate::snapshot::SnapshotStore;

    /// A fleet that answers from a script: `None` plays an unreachable Redis.
    struct Scripted {
        reachable: AtomicBool,
        next_version: AtomicU64,
        published: Mutex<Vec<String>>,
        polls: AtomicBool,
    }

    impl FleetHook for Scripted {
        fn publish<'a>(
            &'a self,
            next: &'a Snapshot,
        ) -> Pin<Box<dyn Future<Output = Option<Published>> + Send + 'a>> {
            Box::pin(async move {
                if !self.reachable.load(Ordering::SeqCst) {
                    return None;
                }
                self.published.lock().unwrap().push(next.etag.clone());
                Some(Published {
                    version: self.next_version.fetch_add(1, Ordering::SeqCst),
                    last_modified: 42,
                })
            })
        }

        fn polls(&self) -> bool {
            self.polls.load(Ordering::SeqCst)
        }
    }

    fn setup(
        text: &str,
    ) -> (
        tempfile::TempDir,
        std::path::PathBuf,
        Arc<Refresher>,
        Arc<Scripted>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("flags.yaml");
        std::fs::write(&p, text).unwrap();
        let r = Refresher::new(
            vec![Retriever::from_config(&RetrieverConfig::file(&p)).unwrap()],
            Arc::new(SnapshotStore::new()),
            RefreshOptions::default(),
        );
        let hook = Arc::new(Scripted {
            reachable: AtomicBool::new(true),
            next_version: AtomicU64::new(7),
            published: Mutex::new(Vec::new()),
            polls: AtomicBool::new(false),
        });
        r.set_fleet(hook.clone());
        (dir, p, r, hook)
    }

    #[tokio::test]
    async fn changed_sets_are_published_and_served_under_the_fleet_version() {
        let (_dir, p, r, hook) = setup("a: {enabled: true}\n");
        assert!(r.refresh().await.changed);
        let s = r.store().load().unwrap();
        assert_eq!((s.fleet_version, s.last_modified), (Some(7), 42));
        // Unchanged: nothing published.
        r.refresh().await;
        assert_eq!(hook.published.lock().unwrap().len(), 1);

        // Unreachable: served alone, under the version already served (never lower).
        hook.reachable.store(false, Ordering::SeqCst);
        std::fs::write(&p, "a: {enabled: false}\n").unwrap();
        assert!(r.refresh().await.changed);
        let s = r.store().load().unwrap();
        assert_eq!(s.fleet_version, Some(7));
        assert_eq!(hook.published.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn install_never_goes_back() {
        let (_dir, _p, r, _hook) = setup("a: {enabled: true}\n");
        r.refresh().await; // version 7
        let build = |text: &str, v: u64| {
            let doc = crate::parse::parse_document("t", text.as_bytes(), None).unwrap();
            let mut s = Snapshot::build(doc.flags.into_iter().collect(), None);
            s.fleet_version = Some(v);
            s
        };
        assert!(
            !r.install(build("b: {}\n", 6)).await,
            "a lower version was taken"
        );
        assert!(r.install(build("b: {}\n", 8)).await);
        assert_eq!(r.store().load().unwrap().fleet_version, Some(8));
        assert!(!r.install(build("b: {}\n", 8)).await, "the same set again");
    }

    #[tokio::test(start_paused = true)]
    async fn the_poll_timer_refreshes_only_when_the_fleet_says_so() {
        let (_dir, _p, r, hook) = setup("a: {enabled: true}\n");
        let poller = tokio::spawn(r.clone().poll(Duration::from_secs(1), false));
        tokio::time::sleep(Duration::from_millis(3500)).await;
        assert!(r.last_refresh().is_none(), "a follower polled");
        hook.polls.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(2)).await;
        // Paused time: let the blocking parse finish on its thread.
        for _ in 0..200 {
            if r.last_refresh().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(r.last_refresh().is_some(), "the leader did not poll");
        poller.abort();
    }

    #[tokio::test]
    async fn last_modified_is_the_file_mtime_not_the_load_time() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("flags.yaml");
        std::fs::write(&p, "a: {enabled: true}\n").unwrap();
        let then = SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(then)
            .unwrap();
        let r = Refresher::new(
            vec![Retriever::from_config(&RetrieverConfig::file(&p)).unwrap()],
            Arc::new(SnapshotStore::new()),
            RefreshOptions::default(),
        );
        r.refresh().await;
        let s = r.store().load().unwrap();
        let want = then.duration_since(UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(s.last_modified, want);
        assert_eq!(s.fleet_version, None);
    }
}
