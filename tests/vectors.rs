//! Runs every case of `shared/vectors/evaluation.json` through the real evaluator.

use std::collections::BTreeMap;

use flagrelay::evaluator::{Rules, Subject};
use flagrelay::parse::FlagDef;
use flagrelay::snapshot::Snapshot;
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    flag: serde_json::Map<String, serde_json::Value>,
    user: String,
    tenant: String,
    env: String,
    salt: String,
    expect: Expect,
}

#[derive(Deserialize)]
struct Expect {
    on: bool,
    reason: String,
}

fn vectors_path() -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = std::env::var_os("FLAGRELAY_SHARED")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("../shared"));
    shared.join("vectors/evaluation.json")
}

#[test]
fn all_shared_vectors_pass() {
    let path = vectors_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let cases: Vec<Case> = serde_json::from_str(&text).unwrap();
    assert_eq!(cases.len(), 2000, "the vector file should hold 2,000 cases");
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let mut flag = case.flag.clone();
        let key = flag
            .remove("key")
            .and_then(|k| k.as_str().map(String::from))
            .unwrap();
        // Go through the real document parser, so clamping and defaults are the loader's.
        let doc = serde_json::json!({ key.clone(): flag }).to_string();
        let parsed = flagrelay::parse::parse_document("vector", doc.as_bytes(), None).unwrap();
        let def: &FlagDef = &parsed.flags[0].1;
        let subject = Subject {
            user: &case.user,
            tenant: &case.tenant,
            env: &case.env,
        };
        let got = Rules::compile(&key, def, Some(&case.salt)).evaluate(&subject);
        // The flag as a relay serves it: compiled into a set, its lists in the set's buffer
        // after another flag's.
        let set = Snapshot::build(
            BTreeMap::from([(key.clone(), def.clone()), (format!("{key}~"), def.clone())]),
            Some(&case.salt),
        );
        let served = set.get(&key).unwrap().evaluate(&subject);
        assert_eq!(
            served, got,
            "case {i} ({key}): served differs from compiled alone"
        );
        if got.on != case.expect.on || got.reason.as_str() != case.expect.reason {
            failures.push(format!(
                "case {i} ({key}): got {:?}/{}, want {}/{}",
                got.on,
                got.reason.as_str(),
                case.expect.on,
                case.expect.reason
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
