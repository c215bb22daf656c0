use super::*;
use crate::config::RetrieverConfig;

fn file_retriever(path: &std::path::Path) -> Retriever {
    Retriever::from_config(&RetrieverConfig::file(path)).unwrap()
}

fn refresher(paths: &[&std::path::Path]) -> Arc<Refresher> {
    Refresher::new(
        paths.iter().map(|p| file_retriever(p)).collect(),
        Arc::new(SnapshotStore::new()),
        RefreshOptions::default(),
    )
}

#[tokio::test]
async fn good_documents_swap_in_and_bad_ones_keep_the_last_good_set() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("flags.yaml");
    std::fs::write(&p, "a: {enabled: true, rollout: 100}\n").unwrap();
    let r = refresher(&[&p]);
    let first = r.refresh().await;
    assert!(first.ok && first.changed, "{first:?}");
    let etag = r.store().load().unwrap().etag.clone();

    assert!(first.built);

    // Unchanged: no swap, and no build either.
    let again = r.refresh().await;
    assert!(again.ok && !again.changed && !again.built, "{again:?}");
    // Rewritten with the same bytes: still nothing to build.
    std::fs::write(&p, "a: {enabled: true, rollout: 100}\n").unwrap();
    let again = r.refresh().await;
    assert!(again.ok && !again.changed && !again.built, "{again:?}");
    // Different bytes, same flags (a comment): built, same etag, so no swap.
    std::fs::write(&p, "# note\na: {enabled: true, rollout: 100}\n").unwrap();
    let again = r.refresh().await;
    assert!(again.ok && !again.changed && again.built, "{again:?}");

    // Broken, truncated and empty documents never replace the good set.
    for bad in ["a: {enabled: tru", "a: {enabled: true, rolout: 1}\n", ""] {
        std::fs::write(&p, bad).unwrap();
        let rep = r.refresh().await;
        assert!(!rep.ok, "{bad:?} accepted");
        assert_eq!(r.store().load().unwrap().etag, etag);
        assert!(r.statuses()[0].last_error.is_some());
    }

    std::fs::write(&p, "a: {enabled: false}\nb: {}\n").unwrap();
    let rep = r.refresh().await;
    assert!(rep.ok && rep.changed);
    assert_eq!(rep.flags, 2);
    assert!(r.statuses()[0].last_error.is_none());
    assert!(r.statuses()[0].last_success.is_some());
}

#[tokio::test]
async fn a_large_document_read_again_unchanged_hands_its_pages_back() {
    // Every poll reads a file again; a large one's buffer took trimmed heap pages and kept
    // them resident until the next change (RSS after refreshes, BENCHMARKS.md).
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("flags.yaml");
    let small = "a: {enabled: true}\n";
    let large = format!("# {}\n{small}", "x".repeat(LARGE_DOCUMENT));
    std::fs::write(&p, small).unwrap();
    let r = refresher(&[&p]);
    assert!(r.refresh().await.changed);
    assert!(!r.refresh().await.changed);
    let released = || r.large_rereads_released.load(Ordering::SeqCst);
    assert_eq!(released(), 0, "a small document is left to malloc");
    std::fs::write(&p, &large).unwrap();
    let rep = r.refresh().await;
    assert!(rep.ok && rep.built && !rep.changed, "{rep:?}");
    assert_eq!(
        released(),
        0,
        "a changed document is handed back by its refresh"
    );
    // Written again, the same bytes: modified just now, so read again (not skipped by its
    // stamp), and found unchanged.
    std::fs::write(&p, &large).unwrap();
    let rep = r.refresh().await;
    assert!(rep.ok && !rep.built, "{rep:?}");
    assert_eq!(released(), 1, "read again unchanged: handed back");
}

#[tokio::test]
async fn later_sources_override_earlier_ones_and_any_failure_fails_all() {
    let dir = tempfile::tempdir().unwrap();
    let (p1, p2) = (dir.path().join("1.yaml"), dir.path().join("2.json"));
    std::fs::write(&p1, "a: {rollout: 1}\nb: {rollout: 1}\n").unwrap();
    std::fs::write(&p2, r#"{"b": {"rollout": 2}, "c": {"rollout": 2}}"#).unwrap();
    let r = refresher(&[&p1, &p2]);
    assert!(r.refresh().await.ok);
    let s = r.store().load().unwrap();
    let rollouts: Vec<(&str, i64)> = s
        .entries()
        .iter()
        .map(|e| (e.key(), e.def().rollout))
        .collect();
    assert_eq!(rollouts, vec![("a", 1), ("b", 2), ("c", 2)]);

    // A change in one source is merged with the other's kept document, which is not re-read
    // into a new parse.
    std::fs::write(&p1, "a: {rollout: 5}\nb: {rollout: 1}\n").unwrap();
    let kept = lock(&r.slots[1].state)
        .doc
        .clone()
        .expect("kept with two sources");
    let rep = r.refresh().await;
    assert!(rep.ok && rep.changed && rep.built, "{rep:?}");
    assert!(Arc::ptr_eq(
        &kept,
        lock(&r.slots[1].state).doc.as_ref().unwrap()
    ));
    let s = r.store().load().unwrap();
    assert_eq!(s.get("a").unwrap().def().rollout, 5);
    assert_eq!(s.get("b").unwrap().def().rollout, 2);

    std::fs::remove_file(&p2).unwrap();
    std::fs::write(&p1, "a: {rollout: 9}\n").unwrap();
    let rep = r.refresh().await;
    assert!(!rep.ok);
    assert_eq!(rep.errors().count(), 1);
    assert_eq!(r.store().load().unwrap().get("a").unwrap().def().rollout, 5);
}

#[tokio::test]
async fn one_source_keeps_no_parsed_copy() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("flags.yaml");
    std::fs::write(&p, "a: {enabled: true}\n").unwrap();
    let r = refresher(&[&p]);
    assert!(r.refresh().await.built);
    assert!(lock(&r.slots[0].state).doc.is_none());
    // Unchanged: nothing to build, and nothing missing for it.
    let rep = r.refresh().await;
    assert!(rep.ok && !rep.built && !rep.changed, "{rep:?}");
    std::fs::write(&p, "a: {enabled: false}\n").unwrap();
    let rep = r.refresh().await;
    assert!(rep.ok && rep.built && rep.changed, "{rep:?}");
    assert!(!r.store().load().unwrap().get("a").unwrap().def().enabled);
}

#[tokio::test]
async fn concurrent_callers_share_runs() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("flags.yaml");
    std::fs::write(&p, "a: {}\n").unwrap();
    let r = refresher(&[&p]);
    let reports = join_all((0..20).map(|_| r.refresh())).await;
    assert!(reports.iter().all(|rep| rep.ok));
    // 20 callers: the first runs alone, the other 19 arrive while it runs and share one more.
    let runs = reports
        .iter()
        .map(|rep| rep.duration)
        .collect::<std::collections::HashSet<_>>()
        .len();
    assert!(runs <= 2, "{runs} distinct runs for 20 concurrent callers");
}

#[test]
fn jitter_stays_within_ten_percent_and_varies() {
    let base = Duration::from_secs(10);
    let draws: Vec<Duration> = (0..200).map(|_| jittered(base)).collect();
    assert!(
        draws
            .iter()
            .all(|d| *d >= base.mul_f64(0.9) && *d <= base.mul_f64(1.1))
    );
    let distinct = draws.iter().collect::<std::collections::HashSet<_>>().len();
    assert!(distinct > 100, "only {distinct} distinct waits");
}

#[tokio::test(start_paused = true)]
async fn a_forced_refresh_restarts_the_poll_interval() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("flags.yaml");
    std::fs::write(&p, "a: {}\n").unwrap();
    let r = refresher(&[&p]);
    let runs = |r: &Refresher| r.requested.load(Ordering::SeqCst);
    tokio::spawn(r.clone().poll(Duration::from_millis(1000), false));
    // Let the poller start its first wait at t=0.
    tokio::task::yield_now().await;

    tokio::time::sleep(Duration::from_millis(600)).await;
    r.refresh_forced().await;
    assert_eq!(runs(&r), 1);
    // t≈1200: the old schedule would have polled at 1000; the restarted one waits until 1600.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        runs(&r),
        1,
        "the poll interval did not restart after the forced refresh"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(runs(&r), 2, "no poll at the restarted interval");
}

#[test]
fn an_upstream_relays_salt_replaces_the_local_one() {
    let doc = |salt: Option<Option<&str>>| {
        let mut d =
            crate::parse::parse_document("t", b"{\"a\": {\"enabled\": true}}", None).unwrap();
        d.salt = salt.map(|s| s.map(String::from));
        Arc::new(d)
    };
    let salt_of = |snap: Snapshot| {
        let v: serde_json::Value = serde_json::from_str(snap.sync_json()).unwrap();
        v.get("salt").and_then(|s| s.as_str()).map(String::from)
    };
    // A file source keeps the configured salt.
    let snap = merge_and_build(vec![doc(None)], Some("local"));
    assert_eq!(salt_of(snap).as_deref(), Some("local"));
    // An upstream's salt wins, and so does an upstream without one.
    let snap = merge_and_build(vec![doc(None), doc(Some(Some("up")))], Some("local"));
    assert_eq!(salt_of(snap).as_deref(), Some("up"));
    let snap = merge_and_build(vec![doc(Some(None))], Some("local"));
    assert_eq!(salt_of(snap), None);
    // Several upstreams: the later one, as for flags.
    let snap = merge_and_build(vec![doc(Some(Some("u1"))), doc(Some(Some("u2")))], None);
    assert_eq!(salt_of(snap).as_deref(), Some("u2"));
}

#[tokio::test]
async fn a_panic_while_building_is_a_refresh_error_and_polling_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("flags.yaml");
    std::fs::write(&p, "a: {enabled: true, rollout: 100}\n").unwrap();
    let r = refresher(&[&p]);
    assert!(r.refresh().await.ok);
    let etag = r.store().load().unwrap().etag.clone();

    std::fs::write(&p, "a: {enabled: true, rollout: 100}\nb: {enabled: true}\n").unwrap();
    r.panic_next_build.store(true, Ordering::SeqCst);
    let rep = r.refresh().await;
    assert!(!rep.ok && !rep.changed, "{rep:?}");
    let why = rep.errors().collect::<Vec<_>>().join("; ");
    assert!(
        why.contains("building the flag set failed") && why.contains("injected"),
        "{why}"
    );
    assert_eq!(
        r.store().load().unwrap().etag,
        etag,
        "the last good set stays"
    );

    // The poller keeps running and the next refresh builds the same document.
    let poller = tokio::spawn(r.clone().poll(std::time::Duration::from_millis(20), false));
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while r.store().load().unwrap().len() != 2 {
        assert!(std::time::Instant::now() < end, "polling did not recover");
        assert!(!poller.is_finished(), "the poller ended");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    poller.abort();
}

#[tokio::test]
async fn each_swap_is_one_generation_and_its_flags_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("flags.yaml");
    std::fs::write(&p, "a: {enabled: true}\nb: {enabled: true}\n").unwrap();
    let r = Refresher::new(
        vec![file_retriever(&p)],
        Arc::new(SnapshotStore::new()),
        RefreshOptions {
            max_removal_percent: Some(10),
            ..RefreshOptions::default()
        },
    );
    assert!(r.refresh().await.changed);
    assert_eq!(r.store().load().unwrap().generation, 1);
    std::fs::write(&p, "a: {enabled: false}\nb: {enabled: true}\n").unwrap();
    assert!(r.refresh().await.changed);
    // Removes half the flags: refused by the guard, so no swap and no new generation.
    std::fs::write(&p, "a: {enabled: false}\n").unwrap();
    let refused = r.refresh().await;
    assert!(!refused.changed && refused.refused.is_some(), "{refused:?}");
    let served = r.store().load().unwrap();
    assert_eq!(served.generation, 2);
    // The served set's flags are counted under their keys, by position.
    r.metrics().bulk(Some(&served), |rec| {
        rec.record(1, crate::evaluator::Reason::Static)
    });
    let text = r.metrics().render(&crate::metrics::Scrape {
        snapshot: Some(&served),
        ..Default::default()
    });
    assert!(
        text.contains("flagrelay_evaluations_total{flag=\"b\",reason=\"STATIC\"} 1"),
        "{text}"
    );
}
