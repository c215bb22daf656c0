//! The mass-removal guard (`maxFlagRemovalPercent`): a refresh that would remove more than that
//! share of the flags being served fails instead, since a source cut short that still parses
//! (a file truncated between two flags, an HTTP body without a verifiable length) looks exactly
//! like that. An admin refresh with `?force=true` lets one such change through; the first load
//! is exempt (nothing is served yet).

use std::sync::atomic::{AtomicBool, Ordering};

use crate::snapshot::Snapshot;

#[derive(Debug, Default)]
pub(crate) struct RemovalGuard {
    /// Set by a forced admin refresh; the next run that would be refused takes it.
    allow_once: AtomicBool,
}

impl RemovalGuard {
    pub(crate) fn allow_next(&self) {
        self.allow_once.store(true, Ordering::SeqCst);
    }

    /// Why swapping `current` for `next` is refused, if it is.
    pub(crate) fn check(
        &self,
        max_percent: Option<u8>,
        current: Option<&Snapshot>,
        next: &Snapshot,
    ) -> Option<String> {
        let (max, current) = (max_percent?, current?);
        let removed = current
            .entries()
            .iter()
            .filter(|e| next.get(e.key()).is_none())
            .count();
        let total = current.len();
        if total == 0 || removed * 100 <= usize::from(max) * total {
            return None;
        }
        if self.allow_once.swap(false, Ordering::SeqCst) {
            tracing::warn!(
                removed,
                of = total,
                "mass removal forced by an admin refresh"
            );
            return None;
        }
        Some(format!(
            "refused: this refresh would remove {removed} of the {total} flags being served \
             (more than maxFlagRemovalPercent = {max}%), which is what a source cut short \
             looks like; if intended, call POST /admin/v1/retriever/refresh?force=true"
        ))
    }

    /// A run ended without using a forced permission: it does not carry over.
    pub(crate) fn reset(&self) {
        self.allow_once.store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(n: usize) -> Snapshot {
        let text: String = (0..n)
            .map(|i| format!("f{i}: {{enabled: true}}\n"))
            .collect();
        let flags = crate::parse::parse_document("t", text.as_bytes(), None)
            .unwrap()
            .flags;
        Snapshot::build(flags.into_iter().collect(), None)
    }

    #[test]
    fn refuses_past_the_share_until_allowed_once() {
        let g = RemovalGuard::default();
        let (ten, five, four) = (snap(10), snap(5), snap(4));
        assert!(
            g.check(Some(50), None, &four).is_none(),
            "first load exempt"
        );
        assert!(
            g.check(Some(50), Some(&ten), &five).is_none(),
            "50 % is allowed"
        );
        let why = g.check(Some(50), Some(&ten), &four).unwrap();
        assert!(why.contains("6 of the 10"), "{why}");
        assert!(g.check(None, Some(&ten), &four).is_none(), "guard off");
        g.allow_next();
        assert!(g.check(Some(50), Some(&ten), &four).is_none());
        assert!(
            g.check(Some(50), Some(&ten), &four).is_some(),
            "allowed once only"
        );
    }
}
