//! The reader is held to the two-stage path (saphyr's value tree, then validation): whatever it
//! accepts must come out exactly as the two stages make it.

use super::super::{Format, fast::finish, two_stage};
use super::read;

/// `Some(n)` when the reader took the document (`n` flags, equal to the two stages' answer),
/// `None` when it left it to saphyr.
fn taken(doc: &str) -> Option<usize> {
    let mine = read(doc)?;
    let n = mine.len();
    let slow = two_stage("t", doc, Some(Format::Yaml)).map(|d| d.flags);
    assert_eq!(
        finish(mine).ok_or(()),
        slow.map_err(|_| ()),
        "the reader and the two stages disagree on:\n{doc}"
    );
    Some(n)
}

#[test]
fn what_flag_files_hold_is_read_and_matches() {
    for doc in [
        // The benchmark generator's form: flow collections of quoted strings.
        "flag-000000:\n  description: \"Generated flag 0\"\n  enabled: false\n  rollout: 0\n  users: [\"user-0\", \"user-997\"]\n  tenants: [\"tenant-0\", \"tenant-1\"]\n  envs: [\"production\", \"staging\"]\n  value: {on: \"variant-b-0\", off: \"variant-a\"}\n  metadata: {team: \"team-0\", ticket: \"FR-0\"}\nflag-000001:\n  enabled: true\n  rollout: 37\n",
        // Hand-written block style, comments everywhere, sequences at the key's indent.
        "# flags\nnew-checkout:   # the new one\n    enabled: true  # on\n    rollout: 150\n    users:\n    - alice@example.com\n    - 'o''brien'\n    envs:\n      - prod\n      - staging # both\n\n    value:\n      on: green\n      off: 0\n    metadata:\n      owner: team payments\n      ticket: -12\n      \"quoted key\": false\n    description: The new checkout, for some\n\"legacy\":\n  enabled: false\n  rollout: -5\n  tenants: []\n  value: {on: 1, off: -1}\n  metadata: {}\n",
        // CRLF line ends, non-ASCII in quotes, keys YAML 1.1 would read as booleans.
        "a.b_c/d:\r\n  description: 'café ü'\r\n  value: {\"on\": \"ja\", 'off': \"nein\"}\r\n  metadata: {yes: 1, no: 2, on: true}\r\nno:\r\n  enabled: true\r\n",
    ] {
        assert!(taken(doc).is_some(), "left to saphyr:\n{doc}");
    }
}

#[test]
fn a_bad_flag_it_reads_is_still_refused_by_validation() {
    // Well-formed YAML whose flags break the rules: the reader reads it, `finish` refuses, and
    // the two stages must refuse too (`taken` asserts they agree).
    for doc in [
        "a:\n  value: {on: 1, off: x}\n",
        "a:\n  metadata: {k: v}\n  enabled: true\n  enabled: false\n",
        "a:\n  enabled: true\na:\n  enabled: false\n",
    ] {
        let mine = read(doc);
        assert!(mine.is_none() || finish(mine.unwrap()).is_none(), "{doc}");
        taken(doc);
    }
}

#[test]
fn anything_doubtful_is_left_to_saphyr() {
    for doc in [
        "%YAML 1.2\n---\na:\n  enabled: true\n",
        "a: {enabled: true}\n",
        "a:\n  enabled: yes\n",
        "a:\n  enabled: True\n",
        "a:\n  rollout: 010\n",
        "a:\n  rollout: 1.5\n",
        "a:\n  rollout: 0x10\n",
        "a:\n  rollout: 1234567890123456789\n",
        "a:\n  description: ~\n",
        "a:\n  description:\n",
        "a:\n  description: null\n",
        "a:\n  description: \"line\\nbreak\"\n",
        "a:\n  description: two\n    lines\n",
        "a:\n  description: >\n    folded\n",
        "a:\n  description: &d x\n",
        "a:\n  description: !!str 5\n",
        "a:\n  description: \"unclosed\n",
        "a:\n  description: a#b\n",
        "a:\n  description: a: b\n",
        "a:\n\tenabled: true\n",
        "a:\n  users: [a, b,]\n",
        "a:\n  users: [a,\n    b]\n",
        "a:\n  users: [1, 2]\n",
        "a:\n  users:\n    - a\n    - - b\n",
        "a:\n  users:\n    - a\n      b\n",
        "a:\n  users:\n    k: v\n",
        "a:\n  value: {on: 1.5, off: 2}\n",
        "a:\n  value: {on: 1}\n",
        "a:\n  value: {on: 1, off: 2, other: 3}\n",
        "a:\n  value:\n    on: [1]\n    off: [2]\n",
        "a:\n  metadata: {k: v, k: w}\n",
        "a:\n  metadata:\n    k: v\n      more: x\n",
        "a:\n  other: 1\n",
        "a:\n  enabled: true\n enabled: false\n",
        "a:\n",
        "5:\n  enabled: true\n",
        "null:\n  enabled: true\n",
        "a b:\n  enabled: true\n",
        "? a\n: {}\n",
        "{}\n",
    ] {
        assert_eq!(
            read(doc).map(|f| f.len()),
            None,
            "read, not left to saphyr:\n{doc}"
        );
        // Whatever happens to it, the document's answer is the two stages' (fast.rs tests).
    }
}

#[test]
fn every_word_it_types_is_typed_as_saphyr_types_it() {
    let words = [
        "x",
        "plain words here",
        "a-b_c.d/e@f+g",
        "_x",
        "e",
        "E",
        "y",
        "Y",
        "n",
        "N",
        "yes",
        "No",
        "ON",
        "off",
        "Off",
        "true",
        "True",
        "TRUE",
        "false",
        "FALSE",
        "null",
        "Null",
        "NULL",
        "~",
        "nan",
        "NaN",
        ".nan",
        "inf",
        "Inf",
        "-.inf",
        "infinity",
        "0",
        "-0",
        "+1",
        "1",
        "-1",
        "01",
        "007",
        "1_000",
        "0x1F",
        "0o7",
        "1e3",
        "1.5",
        "-1.5",
        "2024-01-01",
        "12:30",
        "a:b",
        "a #c",
        "'it''s'",
        "\"a'b\"",
        "\"a #b\"",
        "\"\u{85}\"",
        "\"\u{a0}\"",
        "'\u{2028}'",
        "\"\u{feff}\"",
        "'\u{7f}'",
        "\"\"",
        "''",
        "\"true\"",
        "'1'",
        "9223372036854775807",
        "-999999999999999999",
    ];
    let templates = [
        "f:\n  description: W\n",
        "f:\n  users: [W]\n",
        "f:\n  users:\n  - W\n",
        "f:\n  value: {on: W, off: W}\n",
        "f:\n  value:\n    on: W\n    off: W\n",
        "f:\n  metadata:\n    W: W\n",
        "f:\n  metadata: {W: 1}\n",
        "W:\n  enabled: true\n",
        "f:\n  rollout: W\n",
        "f:\n  enabled: W\n",
    ];
    let mut read_count = 0;
    for word in words {
        for template in templates {
            read_count += taken(&template.replace('W', word)).is_some() as usize;
        }
    }
    // Not vacuous: the plain, quoted and numeric forms are read, not all left to saphyr.
    assert!(read_count > 150, "only {read_count} read");
    assert_eq!(taken("f:\n  description: plain words here\n"), Some(1));
    assert_eq!(taken("f:\n  value: {on: -1, off: 0}\n"), Some(1));
    assert_eq!(
        taken("f:\n  metadata: {on: 'it''s', off: \"\u{a0}\"}\n"),
        Some(1)
    );
}

#[test]
fn a_large_generated_document_is_read_whole_and_in_pieces() {
    let mut doc = String::new();
    for i in 0..3000 {
        doc.push_str(&format!(
            "flag-{i:06}:\n  description: \"Generated flag {i}\"\n  enabled: {}\n  rollout: {}\n  users: [\"user-{i}\", \"user-{}\"]\n  envs:\n    - production\n  value: {{on: \"variant-b-{i}\", off: \"variant-a\"}}\n  metadata: {{team: \"team-{}\", n: {i}}}\n",
            i % 2 == 0,
            i % 101,
            i * 7,
            i % 10
        ));
    }
    assert_eq!(taken(&doc), Some(3000));
    let pieces = super::super::pieces::yaml(&doc, 4, 1000);
    assert_eq!(pieces.len(), 4);
    assert!(
        pieces.iter().all(|p| read(p).is_some()),
        "every piece is read by the reader"
    );
}

#[test]
fn random_documents_of_its_forms_agree_with_the_two_stages() {
    // A fixed-seed walk over the forms it reads (and some it must not), so a reading that
    // differs from saphyr's in some combination shows up here, not in a relay.
    let words = [
        "x", "a b", "a, b", "on", "no", "1", "-7", "0", "true", "false", "'q''q'", "\"d\"", "\"\"",
        "~", "1.5", "a#b", "a #c", "u@e.io", "'é'",
    ];
    let fields = [
        "enabled",
        "rollout",
        "users",
        "tenants",
        "envs",
        "value",
        "description",
        "metadata",
    ];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut pick = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let mut read_count = 0;
    for _ in 0..10_000 {
        let mut doc = String::new();
        for f in 0..1 + pick(3) {
            let ind = " ".repeat(1 + pick(4));
            doc.push_str(&format!("f{f}:{}\n", ["", "  # c", " "][pick(3)]));
            for _ in 0..1 + pick(2) {
                let field = fields[pick(fields.len())];
                let (a, b) = (words[pick(words.len())], words[pick(words.len())]);
                let (da, db) = (["", "  "][pick(2)], ["", "  "][pick(2)]);
                // Mostly the form the field takes, sometimes any form.
                let form = match (field, pick(4)) {
                    (_, 0) => pick(5),
                    ("users" | "tenants" | "envs", _) => [1, 4][pick(2)],
                    ("value" | "metadata", _) => [2, 3][pick(2)],
                    _ => 0,
                };
                let line = match form {
                    0 => format!("{ind}{field}: {a}\n"),
                    1 => format!("{ind}{field}: [{a}, {b}]\n"),
                    2 => format!("{ind}{field}: {{on: {a}, off: {b}}}\n"),
                    3 => format!("{ind}{field}:\n{ind}  on: {a}\n{ind}  off: {b}\n"),
                    _ => format!("{ind}{field}:\n{ind}{da}- {a}\n{ind}{db}- {b}\n"),
                };
                doc.push_str(&line);
            }
        }
        read_count += taken(&doc).is_some() as usize;
    }
    assert!(read_count > 400, "only {read_count} of 10,000 read");
}
