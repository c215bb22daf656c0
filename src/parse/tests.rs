use super::*;
use serde_json::json;

fn parse_yaml(text: &str) -> Result<FlagDoc, DocumentError> {
    parse_document("flags.yaml", text.as_bytes(), Some(Format::Yaml))
}

fn parse_json(text: &str) -> Result<FlagDoc, DocumentError> {
    parse_document("flags.json", text.as_bytes(), Some(Format::Json))
}

fn only_error(r: Result<FlagDoc, DocumentError>) -> FlagError {
    let mut errs = r.expect_err("document should be rejected").errors;
    assert_eq!(errs.len(), 1, "{errs:?}");
    errs.remove(0)
}

#[test]
fn yaml_full_flag_with_typed_values() {
    let doc = parse_yaml(
        "checkout:\n  enabled: true\n  rollout: 25\n  users: [alice]\n  tenants: [acme]\n  envs: [prod]\n  value: {on: 2.5, off: 1.0}\n  description: new checkout\n  metadata: {team: payments, tier: 2, beta: true}\nplain: {enabled: true}\n",
    )
    .unwrap();
    assert_eq!(doc.flags.len(), 2);
    let (key, f) = &doc.flags[0];
    assert_eq!(key, "checkout");
    assert!(f.enabled);
    assert_eq!(f.rollout, 25);
    assert_eq!(f.users, vec!["alice"]);
    assert_eq!(f.tenants, vec!["acme"]);
    assert_eq!(f.envs, vec!["prod"]);
    assert_eq!(f.value.on, json!(2.5));
    // A float stays a float, so it serializes with a decimal point.
    assert_eq!(serde_json::to_string(&f.value.off).unwrap(), "1.0");
    assert_eq!(f.description.as_deref(), Some("new checkout"));
    assert_eq!(f.metadata.as_ref().unwrap()["tier"], json!(2));
    let (_, plain) = &doc.flags[1];
    assert_eq!(plain.value, FlagValue::default());
    assert_eq!(plain.rollout, 0);
}

#[test]
fn json_document_and_object_values() {
    let doc = parse_json(
        r#"{"theme": {"enabled": true, "rollout": 100, "value": {"on": {"color": "dark"}, "off": {"color": "light"}}}}"#,
    )
    .unwrap();
    assert_eq!(doc.flags[0].1.value.on, json!({"color": "dark"}));
}

#[test]
fn rollout_is_clamped_on_load() {
    let doc = parse_yaml("a: {rollout: 150}\nb: {rollout: -5}\nc: {rollout: 42}\n").unwrap();
    let r: Vec<i64> = doc.flags.iter().map(|(_, f)| f.rollout).collect();
    assert_eq!(r, vec![100, 0, 42]);
}

#[test]
fn unknown_field_names_key_field_and_line() {
    let e = only_error(parse_yaml(
        "good: {enabled: true}\nbad:\n  enabled: true\n  rolout: 10\n",
    ));
    assert_eq!(e.key.as_deref(), Some("bad"));
    assert_eq!(e.position.unwrap().line, 2);
    assert!(e.message.contains("rolout"), "{}", e.message);
    let shown = e.to_string();
    assert!(shown.starts_with("flags.yaml:2:"), "{shown}");
}

#[test]
fn wrong_type_names_the_field() {
    let e = only_error(parse_yaml("f:\n  enabled: true\n  rollout: lots\n"));
    assert_eq!(e.key.as_deref(), Some("f"));
    assert!(e.message.contains("rollout"), "{}", e.message);
    let e = only_error(parse_json("{\n  \"f\": {\"users\": \"bob\"}\n}"));
    assert_eq!(e.key.as_deref(), Some("f"));
    assert_eq!(e.position.unwrap().line, 2);
    assert!(e.message.contains("users"), "{}", e.message);
}

#[test]
fn empty_key_is_an_error() {
    let e = only_error(parse_json(r#"{"": {"enabled": true}}"#));
    assert!(e.message.contains("empty"), "{}", e.message);
    let e = only_error(parse_yaml("\"\": {enabled: true}\n"));
    assert!(e.message.contains("empty"), "{}", e.message);
}

#[test]
fn mismatched_on_off_types() {
    let e = only_error(parse_yaml("f:\n  value: {on: \"red\", off: 0}\n"));
    assert_eq!(e.key.as_deref(), Some("f"));
    assert!(
        e.message.contains("string") && e.message.contains("number"),
        "{}",
        e.message
    );
}

#[test]
fn non_scalar_metadata_is_rejected() {
    let e = only_error(parse_yaml("f:\n  metadata: {owners: [a, b]}\n"));
    assert!(e.message.contains("metadata.owners"), "{}", e.message);
}

#[test]
fn document_that_is_not_a_map() {
    let e = only_error(parse_yaml("- a\n- b\n"));
    assert!(e.message.contains("not a map"), "{}", e.message);
    let e = only_error(parse_json("[1, 2]"));
    assert!(e.message.contains("not a map"), "{}", e.message);
    let e = only_error(parse_yaml("just a string\n"));
    assert!(e.message.contains("not a map"), "{}", e.message);
}

#[test]
fn empty_documents_are_errors_but_empty_map_is_zero_flags() {
    for text in ["", "  \n", "# only a comment\n", "---\n"] {
        let e = only_error(parse_yaml(text));
        assert!(e.message.contains("empty"), "{text:?}: {}", e.message);
    }
    assert_eq!(parse_yaml("{}\n").unwrap().flags.len(), 0);
    assert_eq!(parse_json("{}").unwrap().flags.len(), 0);
}

#[test]
fn truncated_json_reports_a_location() {
    let e = only_error(parse_json("{\"a\": {\"enabled\": tr"));
    assert!(e.position.is_some());
}

#[test]
fn every_bad_flag_is_reported() {
    let errs = parse_yaml("a: {rollout: x}\nb: {enabled: true}\nc: {colour: red}\n")
        .unwrap_err()
        .errors;
    let keys: Vec<_> = errs.iter().map(|e| e.key.clone().unwrap()).collect();
    assert_eq!(keys, vec!["a", "c"]);
    assert_eq!(errs[1].position.unwrap().line, 3);
}

#[test]
fn duplicate_keys_are_rejected() {
    let r = parse_json(r#"{"a": {}, "a": {"enabled": true}}"#);
    assert!(r.unwrap_err().to_string().contains("twice"));
}

#[test]
fn sniffing_picks_json_or_yaml() {
    let j = parse_document("x", br#"{"a": {"enabled": true}}"#, None).unwrap();
    assert!(j.flags[0].1.enabled);
    let y = parse_document("x", b"{a: {enabled: true}}", None).unwrap();
    assert!(y.flags[0].1.enabled);
    let y = parse_document("x", b"a:\n  enabled: true\n", None).unwrap();
    assert!(y.flags[0].1.enabled);
}

#[test]
fn null_flag_body_is_rejected() {
    let e = only_error(parse_yaml("a:\n"));
    assert!(e.message.contains("map of fields"), "{}", e.message);
}

#[test]
fn format_from_name() {
    assert_eq!(Format::from_name("x/flags.YAML"), Some(Format::Yaml));
    assert_eq!(
        Format::from_name("https://h/f.json?x=1"),
        Some(Format::Json)
    );
    assert_eq!(Format::from_name("flags"), None);
}

/// Positions of JSON keys are found in one pass (they were counted from the start for every
/// key, which made 100,000 flags take minutes): each bad flag still gets its own line, a
/// duplicate its second occurrence (the speed is measured in benches/parse.rs, not here).
#[test]
fn json_key_positions_in_one_pass() {
    let mut text = String::from("{\n");
    for i in 0..20_000 {
        text.push_str(&format!("  \"f{i}\": {{\"enabled\": true}},\n"));
    }
    text.push_str("  \"f7\": {\"enabled\": true},\n");
    text.push_str("  \"last\": {\"users\": \"bob\"}\n}\n");
    let e = parse_json(&text).unwrap_err();
    let at = |key: &str| {
        e.errors
            .iter()
            .find(|x| x.key.as_deref() == Some(key))
            .and_then(|x| x.position)
            .map(|p| (p.line, p.column))
    };
    assert_eq!(at("f7"), Some((20_002, 3)), "{e}");
    assert_eq!(at("last"), Some((20_003, 3)), "{e}");
}

#[test]
fn json_duplicate_keys_are_refused_at_every_depth() {
    let e = only_error(parse_json(r#"{"a": {"rollout": 100, "rollout": 1}}"#));
    assert!(e.message.contains("\"rollout\" appears twice"), "{e}");
    assert!(e.position.is_some(), "{e}");
    let e = only_error(parse_json(r#"{"a": {"metadata": {"t": 1, "t": 2}}}"#));
    assert!(e.message.contains("appears twice"), "{e}");
    // Equal keys in different maps are fine.
    assert!(parse_json(r#"{"a": {"rollout": 1}, "b": {"rollout": 1}}"#).is_ok());
}

#[test]
fn yaml_booleans_are_yaml_1_2() {
    let e = only_error(parse_yaml("a: {enabled: yes}\n"));
    assert_eq!(e.key.as_deref(), Some("a"), "{e}");
    let doc = parse_yaml("a: {enabled: true, value: {on: yes, off: off}}\n").unwrap();
    assert_eq!(doc.flags[0].1.value.on, json!("yes"));
    assert_eq!(doc.flags[0].1.value.off, json!("off"));
}
