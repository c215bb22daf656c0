//! Fleet metrics, appended to `/metrics` in the registry's style (`crate::metrics`).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::metrics::{Histogram, family, gauge};

/// Convergence of admin refreshes: from the publish to the last live replica serving it.
const CONVERGENCE_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Debug)]
pub(crate) struct FleetMetrics {
    convergence: Histogram,
    timeouts: AtomicU64,
    published: AtomicU64,
}

impl FleetMetrics {
    pub(crate) fn new() -> FleetMetrics {
        FleetMetrics {
            convergence: Histogram::new(&CONVERGENCE_BUCKETS),
            timeouts: AtomicU64::new(0),
            published: AtomicU64::new(0),
        }
    }

    pub(crate) fn converged(&self, took: Duration) {
        self.convergence.observe(took);
    }

    pub(crate) fn timed_out(&self) {
        self.timeouts.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn published(&self) {
        self.published.fetch_add(1, Ordering::Relaxed);
    }
}

/// What a scrape shows of the fleet right now.
pub(crate) struct FleetScrape<'a> {
    pub(crate) name: &'a str,
    pub(crate) leader: bool,
    pub(crate) version: u64,
    pub(crate) reachable: bool,
    pub(crate) live: usize,
}

pub(crate) fn render(out: &mut String, m: &FleetMetrics, s: &FleetScrape<'_>) {
    family(
        out,
        "flagrelay_fleet_role",
        "gauge",
        "This replica's role in its fleet: 1 for the role it has (leader or follower).",
    );
    let name = s.name;
    let (leader, follower) = if s.leader { (1, 0) } else { (0, 1) };
    let _ = writeln!(
        out,
        "flagrelay_fleet_role{{fleet=\"{name}\",role=\"leader\"}} {leader}"
    );
    let _ = writeln!(
        out,
        "flagrelay_fleet_role{{fleet=\"{name}\",role=\"follower\"}} {follower}"
    );
    gauge(
        out,
        "flagrelay_fleet_served_version",
        "Fleet version of the flag set this replica serves (0 before any).",
        &s.version.to_string(),
    );
    gauge(
        out,
        "flagrelay_fleet_redis_up",
        "Whether the fleet's Redis answered the last command (1) or not (0).",
        if s.reachable { "1" } else { "0" },
    );
    gauge(
        out,
        "flagrelay_fleet_live_replicas",
        "Replicas of the fleet with a current heartbeat, as last seen by this one.",
        &s.live.to_string(),
    );
    family(
        out,
        "flagrelay_fleet_published_total",
        "counter",
        "Flag-set versions this replica published.",
    );
    let _ = writeln!(
        out,
        "flagrelay_fleet_published_total {}",
        m.published.load(Ordering::Relaxed)
    );
    family(
        out,
        "flagrelay_fleet_convergence_seconds",
        "histogram",
        "Time from an admin refresh's publish until every live replica served it.",
    );
    m.convergence
        .render(out, "flagrelay_fleet_convergence_seconds", "");
    family(
        out,
        "flagrelay_fleet_convergence_timeouts_total",
        "counter",
        "Admin refreshes answered 504: a live replica did not confirm within convergenceTimeout.",
    );
    let _ = writeln!(
        out,
        "flagrelay_fleet_convergence_timeouts_total {}",
        m.timeouts.load(Ordering::Relaxed)
    );
}
