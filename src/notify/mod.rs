//! Change notifications: every change of the served flag set is announced to the configured
//! `notifiers` (signed webhooks, Slack, a log line) with what changed.
//!
//! Notifications follow the snapshot store, so they describe exactly what is served: the first
//! load at start is not a change, an unchanged refresh swaps nothing, and several swaps that a
//! slow follower sees at once are reported as one change from the last set it reported. Each
//! notifier delivers from its own bounded queue on its own task (see [`deliver`]), so no
//! receiver can slow a refresh, a request, or another notifier.

mod change;
mod deliver;
mod metrics;

use std::sync::Arc;

use tokio::sync::watch;

pub(crate) use deliver::NotifierError;

use crate::config::NotifierConfig;
use crate::snapshot::Snapshot;
use change::ChangeSet;

/// The configured notifiers' queues.
pub(crate) struct Notifiers {
    queues: Vec<Arc<deliver::Queue>>,
}

impl Notifiers {
    /// Set up every notifier and start its delivery task (needs a tokio runtime).
    /// Their metrics go into `registry` (the relay's).
    pub(crate) fn start(
        configs: &[NotifierConfig],
        registry: &crate::metrics::Metrics,
    ) -> Result<Arc<Notifiers>, NotifierError> {
        let families = metrics::Families::register(registry);
        let workers = configs
            .iter()
            .enumerate()
            .map(|(i, cfg)| {
                deliver::Worker::new(i, cfg, families.for_notifier(i, cfg.kind.as_str()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let queues = workers.iter().map(deliver::Worker::queue).collect();
        for w in workers {
            tokio::spawn(w.run());
        }
        Ok(Arc::new(Notifiers { queues }))
    }

    /// Announce the change from `prev` to `next` (`version`: the fleet's, where there is one).
    pub(crate) fn changed(&self, prev: &Snapshot, next: &Snapshot, version: Option<u64>) {
        if self.queues.is_empty() || prev.etag == next.etag {
            return;
        }
        let change = ChangeSet::between(prev, next, version);
        for q in &self.queues {
            q.push(change.clone());
        }
    }

    /// Follow the served flag set and announce each change, starting from what `changes`
    /// holds now (so the set loaded at start is not announced).
    pub(crate) async fn follow(
        self: Arc<Self>,
        mut changes: watch::Receiver<Option<Arc<Snapshot>>>,
    ) {
        let mut last = changes.borrow_and_update().clone();
        while changes.changed().await.is_ok() {
            let Some(next) = changes.borrow_and_update().clone() else {
                continue;
            };
            if let Some(prev) = &last {
                self.changed(prev, &next, None);
            }
            last = Some(next);
        }
    }
}

#[cfg(test)]
mod tests;
