//! The seam between refresh and fleet mode (`crate::fleet`), which sits beside refresh: the
//! refresher knows a trait object, never Redis.

use std::future::Future;
use std::pin::Pin;

use crate::snapshot::Snapshot;

/// What the fleet holds for a set a refresh built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// The fleet-wide version (only grows).
    pub version: u64,
    /// The published set's `lastModified` (Unix seconds), served by every replica.
    pub last_modified: u64,
}

/// Fleet mode, as the refresher sees it.
pub trait FleetHook: Send + Sync {
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
