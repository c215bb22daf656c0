//! Per-notifier metrics, in the shared `prometheus-client` registry: deliveries sent, failed
//! (after retries, or refused with a 4xx), retried, changes merged because the queue was full,
//! and delivery latency.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Labels {
    notifier: String,
    kind: String,
}

/// The families every notifier records into (registered once).
#[derive(Clone)]
pub(crate) struct Families {
    sent: Family<Labels, Counter>,
    failed: Family<Labels, Counter>,
    retried: Family<Labels, Counter>,
    coalesced: Family<Labels, Counter>,
    latency: Family<Labels, Histogram>,
}

impl Families {
    pub(crate) fn register(metrics: &crate::metrics::Metrics) -> Families {
        let f = Families {
            sent: Family::default(),
            failed: Family::default(),
            retried: Family::default(),
            coalesced: Family::default(),
            latency: Family::new_with_constructor(|| {
                Histogram::new([
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                ])
            }),
        };
        metrics.with_registry(|r| {
            let r = r.sub_registry_with_prefix("flagrelay_notifier");
            r.register(
                "deliveries",
                "Change notifications delivered",
                f.sent.clone(),
            );
            r.register(
                "failures",
                "Change notifications given up on (4xx, or 5xx/network errors after every retry)",
                f.failed.clone(),
            );
            r.register(
                "retries",
                "Delivery attempts repeated after a 5xx or a network error",
                f.retried.clone(),
            );
            r.register(
                "coalesced",
                "Pending changes merged into their neighbour because the queue was full",
                f.coalesced.clone(),
            );
            r.register(
                "delivery_seconds",
                "Time from taking a change off the queue to its delivery, retries included",
                f.latency.clone(),
            );
        });
        f
    }

    pub(crate) fn for_notifier(&self, index: usize, kind: &str) -> NotifierMetrics {
        NotifierMetrics {
            families: self.clone(),
            labels: Labels {
                notifier: index.to_string(),
                kind: kind.to_owned(),
            },
        }
    }
}

/// One notifier's handle on the families.
#[derive(Clone)]
pub(crate) struct NotifierMetrics {
    families: Families,
    labels: Labels,
}

impl NotifierMetrics {
    pub(crate) fn sent(&self, took: Duration) {
        self.families.sent.get_or_create(&self.labels).inc();
        self.families
            .latency
            .get_or_create(&self.labels)
            .observe(took.as_secs_f64());
    }

    pub(crate) fn failed(&self) {
        self.families.failed.get_or_create(&self.labels).inc();
    }

    pub(crate) fn retried(&self) {
        self.families.retried.get_or_create(&self.labels).inc();
    }

    pub(crate) fn coalesced(&self) {
        self.families.coalesced.get_or_create(&self.labels).inc();
    }
}
