//! Parsing and validating flag documents (`parse::parse_document`) of 1,000 and 100,000 flags
//! in YAML and JSON, and building the served snapshot (`Snapshot::build`) of 100,000 flags.
//! Together these are the CPU work of one refresh of a changed document.

mod common;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use flagrelay::parse::{Format, parse_document};
use flagrelay::snapshot::Snapshot;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    // The 100k cases take hundreds of ms per iteration: flat sampling, 10 samples.
    g.sampling_mode(SamplingMode::Flat).sample_size(10);
    for n in [1_000usize, 100_000] {
        for (fmt, format, name) in [
            (common::Fmt::Yaml, Format::Yaml, "yaml"),
            (common::Fmt::Json, Format::Json, "json"),
        ] {
            let text = common::document(n, fmt, 0);
            g.throughput(Throughput::Bytes(text.len() as u64));
            g.bench_with_input(BenchmarkId::new(name, n), &text, |b, text| {
                b.iter(|| {
                    let doc = parse_document("bench", black_box(text.as_bytes()), Some(format))
                        .expect("generated doc is valid");
                    assert_eq!(doc.flags.len(), n);
                    doc
                })
            });
        }
    }
    g.finish();

    let mut g = c.benchmark_group("snapshot");
    g.sampling_mode(SamplingMode::Flat).sample_size(10);
    let text = common::document(100_000, common::Fmt::Json, 0);
    let flags: BTreeMap<_, _> = parse_document("bench", text.as_bytes(), Some(Format::Json))
        .unwrap()
        .flags
        .into_iter()
        .collect();
    g.bench_function("build/100000", |b| {
        // Build consumes its input; clone outside the timed part.
        b.iter_batched(
            || flags.clone(),
            |flags| Snapshot::build(flags, Some("salt")),
            criterion::BatchSize::PerIteration,
        )
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
