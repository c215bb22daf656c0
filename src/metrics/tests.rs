//! The registry and its exposition, checked through `render` as a scrape sees them.

use std::collections::BTreeMap;
use std::time::UNIX_EPOCH;

use super::flags::position;
use super::labels::{REASONS, STATUSES, status_label};
use super::*;

fn snap(text: &str) -> Snapshot {
    let flags = crate::parse::parse_document("t", text.as_bytes(), None)
        .unwrap()
        .flags;
    Snapshot::build(flags.into_iter().collect(), None)
}

/// A snapshot as the refresher's `generation`-th swap brings it in.
fn swapped(generation: u64, text: &str) -> Snapshot {
    let mut s = snap(text);
    s.generation = generation;
    s
}

fn metrics() -> Metrics {
    Metrics::new(&["/health", "/ofrep/v1/evaluate/flags/{*key}", "/health"])
}

fn scrape<'a>(snapshot: Option<&'a Snapshot>) -> Scrape<'a> {
    Scrape {
        version: "1.2.3",
        fips140: false,
        snapshot,
        sse_clients: 2,
        last_refresh: None,
    }
}

/// The exposition parser the end-to-end tests use too.
#[allow(unreachable_pub)]
#[path = "../../tests/support/exposition.rs"]
mod exposition;

/// Every sample, as `name{labels}` → value, after checking the text's format.
fn samples(text: &str) -> BTreeMap<String, f64> {
    exposition::parse(text)
}

#[test]
fn requests_by_route_method_status() {
    let m = metrics();
    let ofrep = m.route_for_path("/ofrep/v1/evaluate/flags/a/b");
    let unmatched = m.route_for_path("/nope");
    assert_eq!(m.route_label(ofrep), "/ofrep/v1/evaluate/flags/{*key}");
    assert_eq!(m.route_for_path("/ofrep/v1/evaluate/flags/"), unmatched);
    assert_eq!(m.route_for_path("/health/"), unmatched);
    assert_ne!(m.route_for_path("/health"), unmatched);
    assert_eq!(m.route_label(unmatched), UNMATCHED_ROUTE);
    let post = method_index(&axum::http::Method::POST);
    m.record_request(ofrep, post, 200, Duration::from_micros(50));
    m.record_request(ofrep, post, 200, Duration::from_millis(3));
    m.record_request(ofrep, post, 404, Duration::from_micros(10));
    m.record_request(
        unmatched,
        method_index(&"BREW".parse().unwrap()),
        404,
        Duration::ZERO,
    );
    m.record_request(unmatched, 0, 599, Duration::ZERO);
    m.record_request(unmatched, 0, 504, Duration::ZERO);
    let text = m.render(&scrape(None));
    let s = samples(&text);
    let k = |r: &str, m: &str, st: &str| {
        format!("flagrelay_http_requests_total{{route=\"{r}\",method=\"{m}\",status=\"{st}\"}}")
    };
    let route = "/ofrep/v1/evaluate/flags/{*key}";
    assert_eq!(s[&k(route, "POST", "200")], 2.0);
    assert_eq!(s[&k(route, "POST", "404")], 1.0);
    assert_eq!(s[&k(UNMATCHED_ROUTE, "other", "404")], 1.0);
    assert_eq!(s[&k(UNMATCHED_ROUTE, "GET", "5xx")], 1.0);
    assert_eq!(s[&k(UNMATCHED_ROUTE, "GET", "504")], 1.0);
    assert!(!s.keys().any(|k| k.contains("/health")), "no zero series");
    // Latency: 10 µs and 50 µs are ≤ 100 µs; 3 ms is in (2.5 ms, 5 ms].
    let b = |le: &str| {
        s[&format!(
            "flagrelay_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{le}\"}}"
        )]
    };
    assert_eq!(b("0.0001"), 2.0);
    assert_eq!(b("0.0025"), 2.0);
    assert_eq!(b("0.005"), 3.0);
    assert_eq!(b("+Inf"), 3.0);
    let count = s[&format!("flagrelay_http_request_duration_seconds_count{{route=\"{route}\"}}")];
    assert_eq!(count, 3.0);
    let sum = s[&format!("flagrelay_http_request_duration_seconds_sum{{route=\"{route}\"}}")];
    assert!((sum - 0.00306).abs() < 1e-9, "{sum}");
}

#[test]
fn status_slots_are_distinct_and_labelled() {
    let mut labels = std::collections::HashSet::new();
    for code in 100..600 {
        let slot = status_slot(code);
        assert!(slot < STATUS_SLOTS);
        let l = status_label(slot);
        if STATUSES.contains(&code) || code == 504 {
            assert_eq!(l, code.to_string());
        } else {
            assert_eq!(l, format!("{}xx", code / 100));
        }
        labels.insert(l);
    }
    assert_eq!(labels.len(), STATUS_SLOTS);
    assert!(
        STATUSES.windows(2).all(|w| w[0] < w[1]),
        "sorted for binary search"
    );
}

#[test]
fn evaluations_by_flag_survive_flag_set_changes() {
    let m = metrics();
    let a = swapped(
        1,
        "keep: {enabled: true, rollout: 100}\ngone: {enabled: false}\n",
    );
    m.evaluation(&a, a.get("keep").unwrap(), Reason::Static);
    m.evaluation(&a, a.get("keep").unwrap(), Reason::Static);
    m.evaluation(&a, a.get("gone").unwrap(), Reason::Disabled);
    m.evaluation_unknown();
    let flag =
        |f: &str, r: &str| format!("flagrelay_evaluations_total{{flag=\"{f}\",reason=\"{r}\"}}");
    let s = samples(&m.render(&scrape(Some(&a))));
    assert_eq!(s[&flag("keep", "STATIC")], 2.0);
    assert_eq!(s[&flag("gone", "DISABLED")], 1.0);
    assert_eq!(s[&flag(UNKNOWN_FLAG, "ERROR")], 1.0);

    // A new flag set: `keep` stays (and keeps counting up), `gone` goes, `new` arrives.
    let b = swapped(
        2,
        "keep: {enabled: true, rollout: 50}\nnew: {enabled: true, rollout: 100}\n",
    );
    m.evaluation(&b, b.get("keep").unwrap(), Reason::Split);
    m.evaluation(&b, b.get("keep").unwrap(), Reason::Static);
    // A request that loaded the old set before the swap still counts.
    m.evaluation(&a, a.get("gone").unwrap(), Reason::Disabled);
    m.evaluation(&a, a.get("keep").unwrap(), Reason::Static);
    let text = m.render(&scrape(Some(&b)));
    let s = samples(&text);
    assert_eq!(s[&flag("keep", "STATIC")], 4.0);
    assert_eq!(s[&flag("keep", "SPLIT")], 1.0);
    assert_eq!(
        s[&flag("gone", "DISABLED")],
        2.0,
        "retired flag still shown"
    );
    assert!(
        !s.contains_key(&flag("new", "STATIC")),
        "only non-zero series"
    );

    // The next change drops the retired flag.
    let c = swapped(3, "keep: {enabled: true, rollout: 100}\n");
    let s = samples(&m.render(&scrape(Some(&c))));
    assert!(!s.keys().any(|k| k.contains("\"gone\"")));
    assert_eq!(s[&flag("keep", "STATIC")], 4.0);
}

#[test]
fn bulk_recorder_counts_per_flag_and_requests() {
    let m = metrics();
    let a = snap("a: {enabled: true, rollout: 100}\nb: {enabled: false}\n");
    m.bulk(Some(&a), |rec| {
        for (i, e) in a.entries().iter().enumerate() {
            rec.record(i, e.evaluate(&crate::evaluator::Subject::default()).reason);
        }
    });
    m.bulk(None, |_| ());
    let s = samples(&m.render(&scrape(Some(&a))));
    assert_eq!(
        s["flagrelay_evaluations_total{flag=\"a\",reason=\"STATIC\"}"],
        1.0
    );
    assert_eq!(
        s["flagrelay_evaluations_total{flag=\"b\",reason=\"DISABLED\"}"],
        1.0
    );
    assert_eq!(s["flagrelay_bulk_evaluations_total"], 2.0);
    assert_eq!(s["flagrelay_bulk_evaluated_flags_total"], 2.0);
}

#[test]
fn label_values_are_escaped() {
    let m = metrics();
    let a = snap("\"we\\\\ird \\\"key\\\"\\n\": {enabled: true, rollout: 100}\n");
    let e = &a.entries()[0];
    assert_eq!(e.key(), "we\\ird \"key\"\n");
    m.evaluation(&a, e, Reason::Static);
    let text = m.render(&scrape(Some(&a)));
    assert!(
        text.contains(r#"flagrelay_evaluations_total{flag="we\\ird \"key\"\n",reason="STATIC"} 1"#),
        "{text}"
    );
}

#[test]
fn refreshes_by_retriever_and_outcome() {
    let m = metrics();
    let retrievers = |ok: bool| {
        vec![
            ("file", "a.yaml".to_owned(), None),
            (
                "http",
                "https://h/f".to_owned(),
                (!ok).then(|| "boom".to_owned()),
            ),
        ]
    };
    let (good, bad) = (retrievers(true), retrievers(false));
    let report = |ok: bool, changed: bool| RefreshOutcome {
        ok,
        changed,
        duration: Duration::from_millis(30),
        retrievers: if ok { &good } else { &bad },
    };
    m.refresh_finished(&report(true, true));
    m.refresh_finished(&report(false, false));
    m.refresh_finished(&report(true, false));
    let last = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let text = m.render(&Scrape {
        last_refresh: Some(last),
        ..scrape(None)
    });
    let s = samples(&text);
    assert_eq!(s["flagrelay_refreshes_total{outcome=\"success\"}"], 2.0);
    assert_eq!(s["flagrelay_refreshes_total{outcome=\"failure\"}"], 1.0);
    let r = |k: &str, src: &str, o: &str| {
        s[&format!(
            "flagrelay_retriever_refreshes_total{{kind=\"{k}\",source=\"{src}\",outcome=\"{o}\"}}"
        )]
    };
    assert_eq!(r("file", "a.yaml", "success"), 3.0);
    assert_eq!(r("http", "https://h/f", "success"), 2.0);
    assert_eq!(r("http", "https://h/f", "failure"), 1.0);
    assert_eq!(s["flagrelay_flag_set_changes_total"], 1.0);
    assert_eq!(s["flagrelay_refresh_duration_seconds_count"], 3.0);
    assert_eq!(
        s["flagrelay_refresh_duration_seconds_bucket{le=\"0.05\"}"],
        3.0
    );
    assert_eq!(
        s["flagrelay_refresh_duration_seconds_bucket{le=\"0.025\"}"],
        0.0
    );
    assert_eq!(
        s["flagrelay_last_successful_refresh_timestamp_seconds"],
        1.7e9
    );
    assert!(
        s["flagrelay_retriever_last_success_timestamp_seconds{kind=\"file\",source=\"a.yaml\"}"]
            > 1.7e9
    );
}

#[test]
fn gauges_and_build_info() {
    let m = metrics();
    let a = snap("x: {enabled: true}\ny: {enabled: true}\n");
    let s = samples(&m.render(&Scrape {
        fips140: true,
        ..scrape(Some(&a))
    }));
    assert_eq!(
        s["flagrelay_build_info{version=\"1.2.3\",fips140=\"true\"}"],
        1.0
    );
    assert_eq!(s["flagrelay_flags_loaded"], 2.0);
    assert_eq!(s["flagrelay_sse_clients"], 2.0);
    assert_eq!(
        s["flagrelay_last_successful_refresh_timestamp_seconds"],
        0.0
    );
    assert_eq!(
        s["flagrelay_evaluations_total{flag=\"__unknown__\",reason=\"ERROR\"}"],
        0.0
    );
}

#[test]
fn disabled_records_nothing() {
    let m = metrics();
    m.set_enabled(false);
    let a = snap("x: {enabled: true}\n");
    m.evaluation(&a, a.get("x").unwrap(), Reason::Static);
    m.evaluation_unknown();
    m.record_request(m.route_for_path("/"), 0, 200, Duration::ZERO);
    let s = samples(&m.render(&scrape(Some(&a))));
    assert!(
        !s.keys()
            .any(|k| k.starts_with("flagrelay_http_requests_total"))
    );
    assert_eq!(
        s["flagrelay_evaluations_total{flag=\"__unknown__\",reason=\"ERROR\"}"],
        0.0
    );
}

#[test]
fn position_of_entries() {
    let a = snap("a: {enabled: true}\nb: {enabled: true}\nc: {enabled: true}\n");
    for (i, e) in a.entries().iter().enumerate() {
        assert_eq!(position(&a, e), Some(i));
    }
    let other = snap("a: {enabled: true}\n");
    assert_eq!(position(&a, &other.entries()[0]), None);
}

#[test]
fn reasons_round_trip() {
    for (i, r) in REASONS.iter().enumerate() {
        assert_eq!(reason_index(*r), i);
    }
}

#[test]
fn concurrent_recording_loses_nothing() {
    let m = Arc::new(metrics());
    let a = Arc::new(snap("a: {enabled: true, rollout: 100}\n"));
    let route = m.route_for_path("/health");
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (m, a) = (m.clone(), a.clone());
            std::thread::spawn(move || {
                for _ in 0..10_000 {
                    m.record_request(route, 0, 200, Duration::from_micros(5));
                    m.evaluation(&a, &a.entries()[0], Reason::Static);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = samples(&m.render(&scrape(Some(&a))));
    assert_eq!(
        s["flagrelay_http_requests_total{route=\"/health\",method=\"GET\",status=\"200\"}"],
        40_000.0
    );
    assert_eq!(
        s["flagrelay_evaluations_total{flag=\"a\",reason=\"STATIC\"}"],
        40_000.0
    );
}

#[test]
fn counts_made_in_the_old_table_after_a_swap_are_kept() {
    let m = metrics();
    let a = swapped(1, "keep: {enabled: true}\ngone: {enabled: true}\n");
    m.flag_set_loaded(&a);
    let b = swapped(2, "keep: {enabled: true}\n");
    let flag =
        |f: &str, r: &str| format!("flagrelay_evaluations_total{{flag=\"{f}\",reason=\"{r}\"}}");
    // A bulk answer over `a` that started before the swap and finishes after it.
    let (gone, keep) = (0, 1); // positions: sorted by key
    m.bulk(Some(&a), |rec| {
        rec.record(keep, Reason::Static);
        m.install_flags(m.prepare_flags(&b), &b);
        rec.record(keep, Reason::Static);
        rec.record(gone, Reason::Static);
    });
    m.evaluation(&b, b.get("keep").unwrap(), Reason::Static);
    let s = samples(&m.render(&scrape(Some(&b))));
    assert_eq!(s[&flag("keep", "STATIC")], 3.0);
    assert_eq!(s[&flag("gone", "STATIC")], 1.0, "retired, still shown");
    // The next change folds them in and drops the retired flag.
    let c = swapped(3, "keep: {enabled: true}\nnew: {enabled: true}\n");
    m.install_flags(m.prepare_flags(&c), &c);
    let s = samples(&m.render(&scrape(Some(&c))));
    assert_eq!(s[&flag("keep", "STATIC")], 3.0);
    assert!(!s.keys().any(|k| k.contains("\"gone\"")));
}

#[test]
fn a_replaced_table_lets_go_of_the_old_sets_keys() {
    // The table a change replaced was kept alive (through the new table's link) until the
    // next change, and with it the old set's keys: 100,000 small allocations pinning the pages
    // of a freed flag set.
    let m = metrics();
    let a = swapped(1, "k: {enabled: true}\n");
    m.flag_set_loaded(&a);
    m.evaluation(&a, a.get("k").unwrap(), Reason::Static);
    let old_table = Arc::downgrade(&m.flags.load_full());
    let b = swapped(2, "k: {enabled: false}\n");
    m.install_flags(m.prepare_flags(&b), &b);
    drop(a);
    assert!(old_table.upgrade().is_none(), "the replaced table is gone");
    m.evaluation(&b, b.get("k").unwrap(), Reason::Disabled);
    let s = samples(&m.render(&scrape(Some(&b))));
    assert_eq!(
        s["flagrelay_evaluations_total{flag=\"k\",reason=\"STATIC\"}"],
        1.0
    );
    assert_eq!(
        s["flagrelay_evaluations_total{flag=\"k\",reason=\"DISABLED\"}"],
        1.0
    );
}

#[test]
fn a_table_built_for_a_refused_set_is_never_installed() {
    let m = metrics();
    let a = swapped(1, "a: {enabled: true}\nb: {enabled: true}\n");
    m.flag_set_loaded(&a);
    // Built for the next swap, which the removal guard then refuses.
    let refused = swapped(2, "a: {enabled: true}\n");
    drop(m.prepare_flags(&refused));
    m.bulk(Some(&a), |rec| {
        rec.record(0, Reason::Static);
        rec.record(1, Reason::Static);
    });
    let s = samples(&m.render(&scrape(Some(&a))));
    assert_eq!(
        s["flagrelay_evaluations_total{flag=\"b\",reason=\"STATIC\"}"],
        1.0
    );
    // The table is still the served set's: its positions, no rebuild.
    assert_eq!(m.flags.load().generation, 1);
}

#[test]
fn an_older_snapshot_counts_by_key_and_does_not_rebuild() {
    let m = metrics();
    let old = swapped(1, "a: {enabled: true}\nz: {enabled: true}\n");
    let new = swapped(2, "b: {enabled: true}\nz: {enabled: true}\n");
    m.flag_set_loaded(&new);
    m.evaluation(&old, old.get("z").unwrap(), Reason::Static);
    m.evaluation(&old, old.get("a").unwrap(), Reason::Static);
    assert_eq!(m.flags.load().generation, 2, "no rebuild for an older set");
    let s = samples(&m.render(&scrape(Some(&new))));
    assert_eq!(
        s["flagrelay_evaluations_total{flag=\"z\",reason=\"STATIC\"}"],
        1.0
    );
    assert!(
        !s.keys().any(|k| k.contains("\"a\"")),
        "a was never served here"
    );
}
