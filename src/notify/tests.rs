use super::*;
use crate::config::{Millis, NotifierKind};

fn log_notifier(queue_size: usize) -> NotifierConfig {
    NotifierConfig {
        kind: NotifierKind::Log,
        url: None,
        headers: Default::default(),
        secret: None,
        timeout: Millis(1000),
        queue_size,
        max_retries: 0,
        ca_cert_path: None,
    }
}

#[test]
fn a_full_queue_merges_its_two_oldest_changes() {
    let families = metrics::Families::register(&crate::metrics::Metrics::default());
    let worker =
        deliver::Worker::new(0, &log_notifier(2), families.for_notifier(0, "log")).unwrap();
    let q = worker.queue();
    let sets: Vec<Snapshot> = (0..4)
        .map(|i| {
            crate::snapshot::of_yaml(&format!("a: {{rollout: {i}}}\nk{i}: {{enabled: true}}\n"))
        })
        .collect();
    for w in sets.windows(2) {
        q.push(ChangeSet::between(&w[0], &w[1], None));
    }
    // Three changes into two places: the first two became one.
    assert_eq!(q.len(), 2);
    let notifiers = Notifiers {
        queues: vec![q.clone()],
    };
    // Unchanged sets announce nothing.
    notifiers.changed(&sets[3], &sets[3], None);
    assert_eq!(q.len(), 2);
}
