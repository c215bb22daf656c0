use super::*;

fn rows(columns: &[&str], rows: Vec<Vec<Cell>>) -> Rows {
    Rows {
        columns: columns.iter().map(|c| c.to_string()).collect(),
        rows,
    }
}

const GOFASTR: &[&str] = &["key", "enabled", "rollout", "users", "tenants", "envs"];

fn t(s: &str) -> Cell {
    Cell::Text(s.into())
}

fn row(key: &str, enabled: i64, rollout: i64, users: &str) -> Vec<Cell> {
    vec![
        t(key),
        Cell::Int(enabled),
        Cell::Int(rollout),
        t(users),
        t(""),
        t("[]"),
    ]
}

#[test]
fn rows_become_a_canonical_document() {
    let doc = to_document(&rows(
        GOFASTR,
        vec![row("b", 1, 250, r#"["u1","u2"]"#), row("a", 0, -5, "")],
    ))
    .unwrap();
    assert_eq!(
        String::from_utf8(doc).unwrap(),
        r#"{"a":{"enabled":false,"rollout":0,"users":[],"tenants":[],"envs":[]},"b":{"enabled":true,"rollout":100,"users":["u1","u2"],"tenants":[],"envs":[]}}"#
    );
    // The same rows in another order are the same bytes: the refresher sees "unchanged".
    let again = to_document(&rows(
        GOFASTR,
        vec![row("a", 0, -5, ""), row("b", 1, 250, r#"["u1","u2"]"#)],
    ))
    .unwrap();
    assert_eq!(
        again,
        to_document(&rows(
            GOFASTR,
            vec![row("b", 1, 250, r#"["u1","u2"]"#), row("a", 0, -5, "")]
        ))
        .unwrap()
    );
}

#[test]
fn bad_rows_name_the_key_and_the_column() {
    let err = |r: Vec<Cell>| to_document(&rows(GOFASTR, vec![r])).unwrap_err();
    let e = err(row("k1", 1, 5, "[\"u1\""));
    assert!(
        e.contains("row \"k1\": column `users` is not a JSON array"),
        "{e}"
    );
    let e = err(row("k1", 1, 5, r#"[1]"#));
    assert!(e.contains("`users`"), "{e}");
    let e = err(row("k2", 2, 5, "[]"));
    assert!(e.contains("row \"k2\": column `enabled` is 2"), "{e}");
    let mut r = row("k3", 1, 5, "[]");
    r[2] = Cell::Null;
    let e = err(r);
    assert!(e.contains("row \"k3\": column `rollout` is NULL"), "{e}");
    let mut r = row("k4", 1, 5, "[]");
    r[1] = t("yes");
    assert!(err(r).contains("row \"k4\": column `enabled` is text"));
    let mut r = row("k5", 1, 5, "[]");
    r[0] = Cell::Null;
    assert!(err(r).contains("row 1: column `key` is NULL"));
    let e = to_document(&rows(
        GOFASTR,
        vec![row("d", 1, 5, "[]"), row("d", 0, 5, "[]")],
    ))
    .unwrap_err();
    assert!(
        e.contains("row \"d\": the key appears in more than one row"),
        "{e}"
    );
    let e = to_document(&rows(&["key", "enabled"], vec![])).unwrap_err();
    assert!(e.contains("no column `rollout`"), "{e}");
}

#[test]
fn custom_columns() {
    let cols = [
        "key",
        "enabled",
        "rollout",
        "users",
        "tenants",
        "value_on",
        "value_off",
        "description",
    ];
    let doc = to_document(&rows(
        &cols,
        vec![vec![
            t("v"),
            Cell::Bool(true),
            Cell::Int(40),
            t("[]"),
            t("[\"t1\"]"),
            t("\"blue\""),
            t("\"red\""),
            t("colour"),
        ]],
    ))
    .unwrap();
    let v: Value = serde_json::from_slice(&doc).unwrap();
    assert_eq!(
        v["v"]["value"],
        serde_json::json!({"on": "blue", "off": "red"})
    );
    assert_eq!(v["v"]["envs"], serde_json::json!([]));
    assert_eq!(v["v"]["description"], "colour");
    let e = to_document(&rows(
        &cols,
        vec![vec![
            t("w"),
            Cell::Int(1),
            Cell::Int(1),
            t("[]"),
            t("[]"),
            t("blue"),
            Cell::Null,
            Cell::Null,
        ]],
    ))
    .unwrap_err();
    assert!(
        e.contains("row \"w\": column `value_on` is not JSON"),
        "{e}"
    );
}

#[test]
fn postgres_source_names_no_password() {
    let mut c = RetrieverConfig::file("x");
    c.kind = crate::config::RetrieverKind::Sql;
    c.url = Some("postgres://app:pa55w0rd@db.internal:5433/flags?sslmode=disable".into());
    let r = SqlRetriever::new(&c).unwrap();
    assert_eq!(
        r.source(),
        "postgres://db.internal:5433/flags (table feature_flags)"
    );
    assert!(!format!("{r:?}").contains("pa55w0rd"));
}

#[test]
fn config_errors_name_the_key() {
    let e = crate::config::parse_text(
        "c.yaml",
        "retrievers: [{kind: sql, url: 'sqlite:///x.db', table: 'a b'}]",
    )
    .unwrap_err();
    assert!(e.to_string().contains("retrievers[0].table"), "{e}");
    let e = crate::config::parse_text("c.yaml", "retrievers: [{kind: sql}]").unwrap_err();
    assert!(e.to_string().contains("retrievers[0].url"), "{e}");
}
