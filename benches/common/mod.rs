//! Flag documents for the benchmarks, generated in memory.
//!
//! The shape matches `scripts/bench/gen_flags.py` (the load benchmark's generator), so the
//! micro-benchmarks and `make bench-load` measure the same kind of document: flag `i` is
//! `flag-{i:06}` with a description and a rollout, and every 10th has a user allow list, every
//! 7th a tenant allow list, every 5th an environment gate, every 4th string values, every 3rd
//! metadata. `variant` changes every rollout, so two variants are two different flag sets.
#![allow(dead_code, unreachable_pub)]

use std::fmt::Write;

/// Which serialization of a generated document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fmt {
    Yaml,
    Json,
}

struct Flag {
    key: String,
    description: String,
    enabled: bool,
    rollout: u32,
    users: Vec<String>,
    tenants: Vec<String>,
    envs: Vec<&'static str>,
    string_values: Option<(String, String)>,
    metadata: Option<(String, String)>,
}

fn flag(i: usize, variant: usize) -> Flag {
    Flag {
        key: format!("flag-{i:06}"),
        description: format!("Generated flag {i}"),
        enabled: !i.is_multiple_of(11),
        rollout: ((i * 37 + variant * 13) % 101) as u32,
        users: if i.is_multiple_of(10) {
            (0..5)
                .map(|u| format!("user-{}", (i + u * 997) % 10_000))
                .collect()
        } else {
            Vec::new()
        },
        tenants: if i.is_multiple_of(7) {
            vec![
                format!("tenant-{}", i % 50),
                format!("tenant-{}", (i + 1) % 50),
            ]
        } else {
            Vec::new()
        },
        envs: if i.is_multiple_of(5) {
            vec!["production", "staging"]
        } else {
            Vec::new()
        },
        string_values: i
            .is_multiple_of(4)
            .then(|| (format!("variant-b-{}", i % 9), "variant-a".into())),
        metadata: i
            .is_multiple_of(3)
            .then(|| (format!("team-{}", i % 17), format!("FR-{i}"))),
    }
}

fn list(items: &[impl AsRef<str>]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|s| format!("\"{}\"", s.as_ref()))
        .collect();
    format!("[{}]", quoted.join(", "))
}

/// A document of `n` flags.
pub fn document(n: usize, fmt: Fmt, variant: usize) -> String {
    let mut out = String::with_capacity(n * 200);
    if fmt == Fmt::Json {
        out.push_str("{\n");
    }
    for i in 0..n {
        let f = flag(i, variant);
        match fmt {
            Fmt::Yaml => {
                let _ = writeln!(out, "{}:", f.key);
                let _ = writeln!(out, "  description: \"{}\"", f.description);
                let _ = writeln!(out, "  enabled: {}", f.enabled);
                let _ = writeln!(out, "  rollout: {}", f.rollout);
                if !f.users.is_empty() {
                    let _ = writeln!(out, "  users: {}", list(&f.users));
                }
                if !f.tenants.is_empty() {
                    let _ = writeln!(out, "  tenants: {}", list(&f.tenants));
                }
                if !f.envs.is_empty() {
                    let _ = writeln!(out, "  envs: {}", list(&f.envs));
                }
                if let Some((on, off)) = &f.string_values {
                    let _ = writeln!(out, "  value: {{on: \"{on}\", off: \"{off}\"}}");
                }
                if let Some((team, ticket)) = &f.metadata {
                    let _ = writeln!(
                        out,
                        "  metadata: {{team: \"{team}\", ticket: \"{ticket}\"}}"
                    );
                }
            }
            Fmt::Json => {
                let mut fields = vec![
                    format!("\"description\": \"{}\"", f.description),
                    format!("\"enabled\": {}", f.enabled),
                    format!("\"rollout\": {}", f.rollout),
                ];
                if !f.users.is_empty() {
                    fields.push(format!("\"users\": {}", list(&f.users)));
                }
                if !f.tenants.is_empty() {
                    fields.push(format!("\"tenants\": {}", list(&f.tenants)));
                }
                if !f.envs.is_empty() {
                    fields.push(format!("\"envs\": {}", list(&f.envs)));
                }
                if let Some((on, off)) = &f.string_values {
                    fields.push(format!(
                        "\"value\": {{\"on\": \"{on}\", \"off\": \"{off}\"}}"
                    ));
                }
                if let Some((team, ticket)) = &f.metadata {
                    fields.push(format!(
                        "\"metadata\": {{\"team\": \"{team}\", \"ticket\": \"{ticket}\"}}"
                    ));
                }
                let comma = if i + 1 < n { "," } else { "" };
                let _ = writeln!(out, "  \"{}\": {{{}}}{comma}", f.key, fields.join(", "));
            }
        }
    }
    if fmt == Fmt::Json {
        out.push_str("}\n");
    }
    out
}
