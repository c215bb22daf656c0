//! One evaluation of the rule chain (`Rules::evaluate`), with small and 10,000-entry allow
//! lists. Issue 7's target: < 100 ns for list hits and splits, independent of list size. And
//! a bulk request's 1,000 evaluations, one by one and with `SetRules::evaluate_all`.

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use flagrelay::evaluator::{Reason, Rules, SetRules, Subject};
use flagrelay::parse::{FlagDef, FlagValue};

fn def(users: usize, envs: &[&str], rollout: i64) -> FlagDef {
    FlagDef {
        enabled: true,
        rollout,
        users: (0..users).map(|i| format!("user-{i}")).collect(),
        tenants: (0..users.min(100)).map(|i| format!("tenant-{i}")).collect(),
        envs: envs.iter().map(|s| s.to_string()).collect(),
        value: FlagValue::default(),
        description: None,
        metadata: None,
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("evaluate");
    // Subjects that are not in the list, cycled so the branch predictor cannot learn one hash.
    let strangers: Vec<String> = (0..1024).map(|i| format!("stranger-{i:05}")).collect();
    for size in [3usize, 10_000] {
        let split = Rules::compile("checkout-redesign", &def(size, &[], 50), None);
        let gated = Rules::compile("checkout-redesign", &def(size, &["production"], 50), None);
        let hit_user = format!("user-{}", size - 1);

        // Sanity: each case really takes the branch it is named after.
        let s = Subject {
            user: &hit_user,
            tenant: "",
            env: "",
        };
        assert_eq!(split.evaluate(&s).reason, Reason::TargetingMatch);
        let s = Subject {
            user: &strangers[0],
            tenant: "",
            env: "",
        };
        assert_eq!(split.evaluate(&s).reason, Reason::Split);
        let s = Subject {
            user: &hit_user,
            tenant: "",
            env: "staging",
        };
        assert_eq!(gated.evaluate(&s).reason, Reason::TargetingMatch);
        assert!(!gated.evaluate(&s).on);

        // Hits cycle through up to 1,024 listed users, spread over the whole list.
        let hits: Vec<String> = (0..1024)
            .map(|i| format!("user-{}", (i * 7919) % size))
            .collect();
        g.bench_with_input(BenchmarkId::new("list_hit", size), &size, |b, _| {
            let mut i = 0usize;
            b.iter(|| {
                i = (i + 1) & 1023;
                let s = Subject {
                    user: &hits[i],
                    tenant: "",
                    env: "",
                };
                black_box(&split).evaluate(black_box(&s))
            })
        });
        g.bench_with_input(BenchmarkId::new("split", size), &size, |b, _| {
            let mut i = 0usize;
            b.iter(|| {
                i = (i + 1) & 1023;
                let s = Subject {
                    user: &strangers[i],
                    tenant: "",
                    env: "",
                };
                black_box(&split).evaluate(black_box(&s))
            })
        });
        g.bench_with_input(BenchmarkId::new("env_gate_closed", size), &size, |b, _| {
            let s = Subject {
                user: &hit_user,
                tenant: "",
                env: "staging",
            };
            b.iter(|| black_box(&gated).evaluate(black_box(&s)))
        });
        g.bench_with_input(
            BenchmarkId::new("env_gate_open_split", size),
            &size,
            |b, _| {
                let mut i = 0usize;
                b.iter(|| {
                    i = (i + 1) & 1023;
                    let s = Subject {
                        user: &strangers[i],
                        tenant: "",
                        env: "production",
                    };
                    black_box(&gated).evaluate(black_box(&s))
                })
            },
        );
    }
    // The generated 1,000 flags of the load benchmark, for callers `user-0` to `user-1023`.
    let text = common::document(1000, common::Fmt::Json, 0);
    let doc = flagrelay::parse::parse_document("bench.json", text.as_bytes(), None)
        .expect("generated doc is valid");
    let rules: Vec<Rules> = doc
        .flags
        .iter()
        .map(|(key, def)| Rules::compile(key, def, None))
        .collect();
    let users: Vec<String> = (0..1024).map(|i| format!("user-{i}")).collect();
    let caller = |i: usize| Subject {
        user: &users[i],
        tenant: "tenant-1",
        env: "production",
    };
    g.bench_function("all_1000/one_by_one", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) & 1023;
            let s = caller(i);
            black_box(&rules)
                .iter()
                .map(|r| r.evaluate(&s))
                .collect::<Vec<_>>()
        })
    });
    let set = SetRules::compile(rules.iter(), &[]);
    g.bench_function("all_1000/together", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) & 1023;
            black_box(&set).evaluate_all(&caller(i))
        })
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
