//! The lock-free histogram the relay's hot-path families record into.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::text::format_float;

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
        let slots: Vec<u64> = self
            .slots
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .collect();
        let sum_ns = self.sum_ns.load(Ordering::Relaxed);
        render_counts(out, name, labels, self.bounds, &slots, sum_ns);
    }
}

/// A histogram's lines from its non-cumulative slot counts (`bounds.len() + 1`, the last
/// `+Inf`) and sum in nanoseconds.
pub(super) fn render_counts(
    out: &mut String,
    name: &str,
    labels: &str,
    bounds: &[f64],
    slots: &[u64],
    sum_ns: u64,
) {
    {
        let mut cumulative = 0u64;
        for (i, n) in slots.iter().enumerate() {
            cumulative += n;
            let le = match bounds.get(i) {
                Some(b) => format_float(*b),
                None => "+Inf".into(),
            };
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{le}\"}} {cumulative}");
        }
        let sum = sum_ns as f64 / 1e9;
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", labels.trim_end_matches(','))
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", format_float(sum));
        let _ = writeln!(out, "{name}_count{braces} {cumulative}");
    }
}
