//! The Prometheus text exposition as `/metrics` writes it, parsed and checked: the one parser
//! of the unit tests (`src/metrics/tests.rs` includes this file) and the end-to-end tests.
//!
//! Checked: each family announced once, by `# HELP` then `# TYPE`, before its samples; sample
//! names belong to their family (`_bucket`/`_sum`/`_count` for histograms, `_total` allowed
//! for counters as `prometheus-client` writes them); label names and quoted, escaped values;
//! numeric values; no series twice. `# EOF` and `# UNIT` (from `prometheus-client`) pass.

use std::collections::BTreeMap;

/// Every sample as `name{labels}` → value, after checking the text (panics naming the line).
pub fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut families: Vec<(String, String)> = Vec::new();
    let mut out = BTreeMap::new();
    let mut lines = text.lines().peekable();
    while let Some(l) = lines.next() {
        if l.is_empty() || l == "# EOF" || l.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = l.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            let ty = lines.next().expect("TYPE after HELP");
            let ty = ty
                .strip_prefix(&format!("# TYPE {name} "))
                .unwrap_or_else(|| panic!("TYPE for {name} after its HELP: {ty}"));
            assert!(["counter", "gauge", "histogram"].contains(&ty), "{ty}");
            assert!(
                !families.iter().any(|(n, _)| n == name),
                "family {name} announced twice"
            );
            assert!(name.starts_with("flagrelay_"), "{name}");
            families.push((name.to_owned(), ty.to_owned()));
            continue;
        }
        assert!(!l.starts_with('#'), "stray comment {l}");
        let (series, value) = l
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {l}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("value of {l}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, Some(rest.strip_suffix('}').expect("closing brace"))),
            None => (series, None),
        };
        let (fam, ty) = families.last().expect("sample before any family");
        let ok = match ty.as_str() {
            "histogram" => ["_bucket", "_sum", "_count"]
                .iter()
                .any(|s| name == format!("{fam}{s}")),
            "counter" => name == fam || name == format!("{fam}_total"),
            _ => name == fam,
        };
        assert!(ok, "{name} under family {fam}");
        if let Some(labels) = labels {
            check_labels(labels, l);
        }
        assert!(
            out.insert(series.to_owned(), value).is_none(),
            "duplicate series {series}"
        );
    }
    out
}

/// `name="value"` pairs separated by commas, values with `\\`, `\"` and `\n` escaped.
fn check_labels(labels: &str, line: &str) {
    let mut rest = labels;
    while !rest.is_empty() {
        let (k, v) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("label =\" in {line}"));
        assert!(
            !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "label name {k} in {line}"
        );
        let mut end = None;
        let mut esc = false;
        for (i, c) in v.char_indices() {
            match (esc, c) {
                (true, '\\' | '"' | 'n') => esc = false,
                (true, _) => panic!("bad escape in {line}"),
                (false, '\\') => esc = true,
                (false, '"') => {
                    end = Some(i);
                    break;
                }
                (false, '\n') => panic!("raw line feed in {line}"),
                _ => {}
            }
        }
        let end = end.unwrap_or_else(|| panic!("closing quote in {line}"));
        rest = v[end + 1..].strip_prefix(',').unwrap_or(&v[end + 1..]);
    }
}
