//! The OFREP hot path without the network: parse the request body, find the flag, evaluate,
//! and serialize the answer, for one flag and for a bulk request over 1,000 flags.

mod common;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flagrelay::http::auth::Caller;
use flagrelay::http::ofrep::{EvalSettings, bulk_answer, parse_context, render_bulk};
use flagrelay::parse::parse_document;
use flagrelay::snapshot::{Snapshot, short_hash};

fn snapshot(n: usize) -> Snapshot {
    let text = common::document(n, common::Fmt::Json, 0);
    let doc = parse_document("bench.json", text.as_bytes(), None).expect("generated doc is valid");
    let flags: BTreeMap<_, _> = doc.flags.into_iter().collect();
    Snapshot::build(flags, None)
}

/// 10,000 request bodies as an OpenFeature provider sends them, rotating the targeting key.
fn bodies() -> Vec<Vec<u8>> {
    (0..10_000)
        .map(|i| {
            format!(
                r#"{{"context":{{"targetingKey":"user-{i}","tenantId":"tenant-{}","env":"production","plan":"pro","country":"DE","appVersion":"4.2.1"}}}}"#,
                i % 50
            )
            .into_bytes()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let settings = EvalSettings {
        default_env: None,
        max_body_bytes: 1 << 20,
        change_stream: true,
    };
    let caller = Caller::Anonymous;
    let bodies = bodies();

    let mut g = c.benchmark_group("ofrep");
    // `parse_context_by_serde`: the same bodies with `"x":[0]` first, which makes the
    // common-shape reader give up at once (it reads no arrays), so serde reads them as it read
    // every body before that reader.
    let serde_bodies: Vec<Vec<u8>> = bodies
        .iter()
        .map(|b| [&b"{\"x\":[0],"[..], &b[1..]].concat())
        .collect();
    for (name, set) in [
        ("parse_context", &bodies),
        ("parse_context_by_serde", &serde_bodies),
    ] {
        g.bench_function(name, |b| {
            let mut i = 0usize;
            b.iter(|| {
                i = (i + 1) % set.len();
                let ctx = parse_context(black_box(&set[i])).unwrap();
                black_box(ctx.subject(&caller, &settings).user.len())
            })
        });
    }

    // Single flag: parse + look up + evaluate + serialize. The handler writes the answer with
    // the private `ofrep::write_success`; until that is public this renders it through
    // `render_bulk` over a snapshot of the one flag, which adds the bulk envelope (~170 bytes
    // and one integer format), so this is an upper bound of the single-flag serialization.
    let big = snapshot(1_000);
    let key = "flag-000042";
    let one = {
        let mut m = BTreeMap::new();
        m.insert(key.to_string(), big.get(key).unwrap().def());
        Snapshot::build(m, None)
    };
    g.bench_function("single_parse_eval_serialize", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) % bodies.len();
            let ctx = parse_context(black_box(&bodies[i])).unwrap();
            let subject = ctx.subject(&caller, &settings);
            let entry = big.get(black_box(key)).unwrap();
            black_box(entry.evaluate(&subject));
            black_box(render_bulk(Some(&one), &subject, false))
        })
    });
    g.bench_function("single_parse_eval", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) % bodies.len();
            let ctx = parse_context(black_box(&bodies[i])).unwrap();
            let subject = ctx.subject(&caller, &settings);
            let entry = big.get(black_box(key)).unwrap();
            black_box(entry.evaluate(&subject))
        })
    });

    // Bulk over 1,000 flags: what `evaluate_all` does (parse, render every flag, ETag).
    let body_len = render_bulk(
        Some(&big),
        &parse_context(&bodies[0])
            .unwrap()
            .subject(&caller, &settings),
        true,
    )
    .len();
    g.throughput(Throughput::Bytes(body_len as u64));
    g.bench_function("bulk_1000_parse_eval_serialize_etag", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) % bodies.len();
            let ctx = parse_context(black_box(&bodies[i])).unwrap();
            let subject = ctx.subject(&caller, &settings);
            black_box(bulk_answer(Some(&big), &subject, true, |_, _| {}))
        })
    });
    // The same with the per-flag evaluation counters recorded (as the handler does).
    let metrics = flagrelay::metrics::Metrics::default();
    metrics.flag_set_loaded(&big);
    g.bench_function("bulk_1000_with_flag_metrics", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) % bodies.len();
            let ctx = parse_context(black_box(&bodies[i])).unwrap();
            let subject = ctx.subject(&caller, &settings);
            metrics.bulk(Some(&big), |rec| {
                black_box(bulk_answer(Some(&big), &subject, true, |i, r| {
                    rec.record(i, r)
                }))
            })
        })
    });
    g.bench_function("bulk_1000_render_only", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) % bodies.len();
            let ctx = parse_context(&bodies[i]).unwrap();
            let subject = ctx.subject(&caller, &settings);
            black_box(render_bulk(Some(&big), &subject, true))
        })
    });
    // What the ETag cost when it hashed the whole body (before it hashed the outcomes).
    g.bench_function("bulk_1000_body_hash", |b| {
        let body = render_bulk(
            Some(&big),
            &parse_context(&bodies[0])
                .unwrap()
                .subject(&caller, &settings),
            true,
        );
        b.iter(|| black_box(short_hash(black_box(body.as_bytes()))))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
