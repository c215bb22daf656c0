//! The text exposition (format 0.0.4): the relay's own families, then those of the shared
//! `prometheus-client` registry, then the collectors layers above registered.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use super::histogram::render_counts;
use super::labels::{LATENCY_BUCKETS, METHODS, REASONS, STATUS_SLOTS, status_label};
use super::routes::{LATENCY_SLOTS, REQUEST_SLOTS, ROUTE_STRIDE};
use super::{Metrics, Scrape, UNKNOWN_FLAG};
use crate::snapshot::Snapshot;

impl Metrics {
    // --- exposition -------------------------------------------------------------------------

    /// The text exposition of every metric.
    pub(crate) fn render(&self, s: &Scrape<'_>) -> String {
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
        for (ri, r) in self.routes.iter().enumerate() {
            for slot in 0..REQUEST_SLOTS {
                let n = self.route_counts.sum(ri * ROUTE_STRIDE + slot);
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
        for (ri, r) in self.routes.iter().enumerate() {
            let base = ri * ROUTE_STRIDE + REQUEST_SLOTS;
            let slots: Vec<u64> = (0..LATENCY_SLOTS)
                .map(|i| self.route_counts.sum(base + i))
                .collect();
            if slots.iter().all(|&n| n == 0) {
                continue;
            }
            let labels = format!("route=\"{}\",", escape(&r.template));
            render_counts(
                o,
                "flagrelay_http_request_duration_seconds",
                &labels,
                &LATENCY_BUCKETS,
                &slots,
                self.route_counts.sum(base + LATENCY_SLOTS),
            );
        }

        family(
            o,
            "flagrelay_evaluations_total",
            "counter",
            "Flag evaluations by flag key and OFREP reason; keys not in the flag set count as __unknown__.",
        );
        self.flags.load().for_each(|key, counts| {
            for (reason, &n) in REASONS.iter().zip(counts) {
                if n > 0 {
                    let _ = writeln!(
                        o,
                        "flagrelay_evaluations_total{{flag=\"{}\",reason=\"{}\"}} {n}",
                        escape(key),
                        reason.as_str()
                    );
                }
            }
        });
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
        for c in self
            .collectors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            (c.0)(o);
        }
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
pub(super) fn format_float(v: f64) -> String {
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
