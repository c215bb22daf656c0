//! Flag documents: arbitrary bytes to `parse_document`, the format chosen by the first byte
//! (0: sniffed, 1: YAML, 2: JSON, modulo 3). A document that parses must come out exactly as
//! the two stages alone make it (saphyr's or serde_json's tree, then validation: the fast
//! readers, `yaml_subset` among them, only skip work), and must survive what a refresh does
//! next: its canonical JSON form (what the sync API serves) parses back to the same flags, the
//! snapshot builds, and a bulk OFREP answer over it is valid JSON.
#![no_main]

use std::collections::BTreeMap;

use flagrelay::evaluator::Subject;
use flagrelay::http::ofrep::render_bulk;
use flagrelay::parse::{Format, parse_document, parse_document_two_stage};
use flagrelay::snapshot::Snapshot;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, doc)) = data.split_first() else {
        return;
    };
    let format = match selector % 3 {
        0 => None,
        1 => Some(Format::Yaml),
        _ => Some(Format::Json),
    };
    let parsed = match parse_document("fuzz", doc, format) {
        Ok(parsed) => parsed,
        Err(e) => {
            assert!(!e.errors.is_empty(), "an error with no errors in it");
            let _ = e.to_string();
            return;
        }
    };
    // Held to the two stages. (A refused document was refused by them: the fast readers only
    // ever accept, and leave everything else to the two stages.)
    match parse_document_two_stage("fuzz", doc, format) {
        Ok(slow) => assert_eq!(parsed, slow, "the fast readers and the two stages disagree"),
        Err(e) => panic!("the fast readers accept what the two stages refuse: {e}"),
    }
    let count = parsed.flags.len();
    let mut flags = BTreeMap::new();
    for (key, def) in parsed.flags {
        assert!(!key.is_empty(), "empty flag key accepted");
        assert!((0..=100).contains(&def.rollout), "rollout not clamped");
        flags.insert(key, def);
    }
    assert_eq!(flags.len(), count, "a duplicate flag key was accepted");

    // The canonical form parses back to the same definitions.
    let canonical = serde_json::to_vec(&flags).expect("flags serialize");
    let again = parse_document("canonical", &canonical, Some(Format::Json))
        .unwrap_or_else(|e| panic!("canonical form does not parse back: {e}"));
    let expected: Vec<_> = flags.iter().map(|(k, d)| (k.clone(), d.clone())).collect();
    assert_eq!(
        again.flags, expected,
        "canonical form parses back differently"
    );

    let snapshot = Snapshot::build(flags, Some("fuzz-salt"));
    for subject in [
        Subject {
            user: "",
            tenant: "",
            env: "",
        },
        Subject {
            user: "alice",
            tenant: "acme",
            env: "staging",
        },
    ] {
        let body = render_bulk(Some(&snapshot), &subject, true);
        if let Err(e) = serde_json::from_str::<serde_json::Value>(&body) {
            panic!("bulk answer is not JSON ({e}): {body}");
        }
    }
});
