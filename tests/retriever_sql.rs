//! `kind: sql` against GoFastr's flag table: SQLite files made with its DDL, and a real
//! PostgreSQL started per test (`bash scripts/install-deps.sh postgres` installs it).

mod support;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use support::{postgres, relay};

use flagrelay::config::{Millis, RetrieverConfig, RetrieverKind, Secret};
use flagrelay::evaluator::{Rules, Subject};
use flagrelay::parse::{FlagDef, parse_document};
use flagrelay::refresh::{RefreshOptions, Refresher};
use flagrelay::retriever::{Fetched, Retriever, Validators};
use flagrelay::snapshot::SnapshotStore;
use postgres::{CERT_USER, PASSWORD, Postgres};
use serde_json::{Value, json};
use support::retrieving::entry;

/// GoFastr's DDL, exactly.
const DDL: &str = "CREATE TABLE feature_flags (key TEXT PRIMARY KEY, enabled INTEGER NOT NULL, \
    rollout INTEGER NOT NULL, users TEXT NOT NULL, tenants TEXT NOT NULL, \
    envs TEXT NOT NULL DEFAULT '[]')";

fn cfg(url: &str) -> RetrieverConfig {
    let mut c = entry(RetrieverKind::Sql);
    c.url = Some(url.into());
    c.timeout = Millis(5_000);
    c
}

async fn fetch(c: &RetrieverConfig) -> Result<Value, String> {
    let r = Retriever::from_config(c).map_err(|e| e.to_string())?;
    fetch_with(&r).await
}

async fn fetch_with(r: &Retriever) -> Result<Value, String> {
    match r.fetch(&Validators::default()).await {
        Ok(Fetched::Changed(doc)) => {
            parse_document(r.source(), &doc.bytes, doc.format).map_err(|e| e.to_string())?;
            Ok(serde_json::from_slice(&doc.bytes).unwrap())
        }
        Ok(Fetched::NotModified) => panic!("sql sources always answer with the rows"),
        Err(e) => Err(e.to_string()),
    }
}

// ---------------------------------------------------------------- SQLite

fn sqlite_db(dir: &std::path::Path, rows: &[(&str, i64, i64, &str, &str, &str)]) -> String {
    let path = dir.join("app.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(DDL).unwrap();
    for r in rows {
        conn.execute(
            "INSERT INTO feature_flags (key, enabled, rollout, users, tenants, envs) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            rusqlite::params![r.0, r.1, r.2, r.3, r.4, r.5],
        )
        .unwrap();
    }
    format!("sqlite://{}", path.display())
}

#[tokio::test]
async fn sqlite_gofastr_table_becomes_flags() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_db(
        dir.path(),
        &[
            (
                "checkout",
                1,
                30,
                r#"["alice"]"#,
                r#"["acme"]"#,
                r#"["production"]"#,
            ),
            ("beta", 0, 250, "[]", "", "[]"),
        ],
    );
    let doc = fetch(&cfg(&url)).await.unwrap();
    assert_eq!(
        doc,
        json!({
            "beta": {"enabled": false, "rollout": 100, "users": [], "tenants": [], "envs": []},
            "checkout": {"enabled": true, "rollout": 30, "users": ["alice"], "tenants": ["acme"],
                         "envs": ["production"]},
        })
    );

    // Bad input: each an error naming the source and the row.
    let conn = rusqlite::Connection::open(dir.path().join("app.db")).unwrap();
    conn.execute(
        "INSERT INTO feature_flags VALUES ('broken', 1, 5, '[\"a\",', '[]', '[]')",
        [],
    )
    .unwrap();
    let e = fetch(&cfg(&url)).await.unwrap_err();
    let source = format!(
        "sqlite://{} (table feature_flags)",
        dir.path().join("app.db").display()
    );
    assert!(e.starts_with(&source), "{e}");
    assert!(
        e.contains("row \"broken\": column `users` is not a JSON array"),
        "{e}"
    );
    conn.execute(
        "UPDATE feature_flags SET users = '[]', enabled = 'yes' WHERE key = 'broken'",
        [],
    )
    .unwrap();
    let e = fetch(&cfg(&url)).await.unwrap_err();
    assert!(
        e.contains("row \"broken\": column `enabled` is text"),
        "{e}"
    );
    conn.execute("DELETE FROM feature_flags WHERE key = 'broken'", [])
        .unwrap();

    let mut c = cfg(&url);
    c.table = Some("missing_table".into());
    let e = fetch(&c).await.unwrap_err();
    assert!(
        e.contains("(table missing_table)") && e.contains("no such table"),
        "{e}"
    );

    let mut c = cfg(&url);
    c.query = Some(
        "SELECT key, enabled, NULL AS rollout, users, tenants, envs FROM feature_flags".into(),
    );
    let e = fetch(&c).await.unwrap_err();
    assert!(
        e.contains("(query)") && e.contains("column `rollout` is NULL"),
        "{e}"
    );

    let mut c = cfg(&url);
    c.query = Some(
        "SELECT key, enabled, rollout, users, tenants, envs FROM feature_flags \
         UNION ALL SELECT 'beta', 1, 1, '[]', '[]', '[]'"
            .into(),
    );
    let e = fetch(&c).await.unwrap_err();
    assert!(
        e.contains("row \"beta\": the key appears in more than one row"),
        "{e}"
    );

    let e = fetch(&cfg(&format!("sqlite://{}/nope.db", dir.path().display())))
        .await
        .unwrap_err();
    assert!(e.contains("nope.db") && e.contains("cannot open"), "{e}");
    assert!(
        !dir.path().join("nope.db").exists(),
        "a wrong path creates no database"
    );

    // A writer holding the database's lock: a lock timeout, not a hang.
    let locker = rusqlite::Connection::open(dir.path().join("app.db")).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let mut c = cfg(&url);
    c.timeout = Millis(500);
    let e = fetch(&c).await.unwrap_err();
    assert!(
        e.contains("database is locked") || e.contains("timed out"),
        "{e}"
    );
    locker.execute_batch("ROLLBACK").unwrap();

    // A custom query with values and descriptions, and an older schema without envs.
    let mut c = cfg(&url);
    c.query = Some(
        "SELECT key, enabled, rollout, users, tenants, '\"v2\"' AS value_on, \
         '\"v1\"' AS value_off, 'the checkout' AS description FROM feature_flags \
         WHERE key = 'checkout'"
            .into(),
    );
    let doc = fetch(&c).await.unwrap();
    assert_eq!(doc["checkout"]["value"], json!({"on": "v2", "off": "v1"}));
    assert_eq!(doc["checkout"]["description"], "the checkout");
    assert_eq!(doc["checkout"]["envs"], json!([]));
}

/// The 2,000 shared vectors through a SQLite table answer as through a file.
#[tokio::test]
async fn sqlite_vectors_answer_as_a_file_does() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = std::env::var_os("FLAGRELAY_SHARED")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("../shared"));
    let text = std::fs::read_to_string(shared.join("vectors/evaluation.json")).unwrap();
    let cases: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(cases.len(), 2000);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flags.db");
    let mut conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(DDL).unwrap();
    let mut file_doc = serde_json::Map::new();
    let tx = conn.transaction().unwrap();
    for case in &cases {
        let mut flag = case["flag"].as_object().unwrap().clone();
        let key = flag.remove("key").unwrap().as_str().unwrap().to_owned();
        // As GoFastr's Set writes a row: 0/1, the rollout as given, lists as JSON arrays.
        tx.execute(
            "INSERT INTO feature_flags VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            rusqlite::params![
                key,
                i64::from(flag["enabled"].as_bool().unwrap()),
                flag["rollout"].as_i64().unwrap(),
                flag["users"].to_string(),
                flag["tenants"].to_string(),
                flag["envs"].to_string(),
            ],
        )
        .unwrap();
        file_doc.insert(key, Value::Object(flag));
    }
    tx.commit().unwrap();
    let file_path = dir.path().join("flags.json");
    std::fs::write(&file_path, Value::Object(file_doc).to_string()).unwrap();

    let defs = |bytes: &[u8]| -> BTreeMap<String, FlagDef> {
        parse_document("t", bytes, None)
            .unwrap()
            .flags
            .into_iter()
            .collect()
    };
    let from_file = defs(&std::fs::read(&file_path).unwrap());
    let r = Retriever::from_config(&cfg(&format!("sqlite://{}", path.display()))).unwrap();
    let Ok(Fetched::Changed(doc)) = r.fetch(&Validators::default()).await else {
        panic!("the table reads")
    };
    let from_sql = defs(&doc.bytes);
    assert_eq!(from_sql, from_file, "the same definitions");

    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let key = case["flag"]["key"].as_str().unwrap();
        let s = |f: &str| case[f].as_str().unwrap();
        let subject = Subject {
            user: s("user"),
            tenant: s("tenant"),
            env: s("env"),
        };
        let got = Rules::compile(key, &from_sql[key], Some(s("salt"))).evaluate(&subject);
        let want = &case["expect"];
        if got.on != want["on"].as_bool().unwrap() || got.reason.as_str() != want["reason"] {
            failures.push(format!("case {i} ({key})"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures: {:?}",
        failures.len(),
        failures
    );
}

// ---------------------------------------------------------------- PostgreSQL

/// As GoFastr's `Set` writes a row.
async fn set(
    client: &tokio_postgres::Client,
    key: &str,
    enabled: bool,
    rollout: i32,
    users: &[&str],
) {
    client
        .execute(
            "INSERT INTO feature_flags (key, enabled, rollout, users, tenants, envs) \
             VALUES ($1, $2, $3, $4, '[]', '[]') ON CONFLICT (key) DO UPDATE SET \
             enabled = EXCLUDED.enabled, rollout = EXCLUDED.rollout, users = EXCLUDED.users",
            &[
                &key,
                &i32::from(enabled),
                &rollout,
                &serde_json::to_string(users).unwrap(),
            ],
        )
        .await
        .unwrap();
}

fn pg_cfg(pg: &Postgres, tls: bool) -> RetrieverConfig {
    let mode = if tls { "require" } else { "disable" };
    let mut c = cfg(&format!("{}?sslmode={mode}", pg.url("postgres")));
    c.password = Some(Secret(PASSWORD.into()));
    c.ca_cert_path = pg.ca_cert.clone();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_tls_reads_changes_and_fails_cleanly() {
    let pg = Postgres::start(true).await;
    let admin = pg.client("postgres").await;
    admin.batch_execute(DDL).await.unwrap();
    set(&admin, "checkout", true, 40, &["alice"]).await;
    set(&admin, "beta", false, -3, &[]).await;

    let c = pg_cfg(&pg, true);
    let store = Arc::new(SnapshotStore::new());
    let refresher = Refresher::new(
        vec![Retriever::from_config(&c).unwrap()],
        store.clone(),
        RefreshOptions::default(),
    );
    let report = refresher.refresh().await;
    assert!(report.ok, "{:?}", report.retrievers);
    let snap = store.load().unwrap();
    assert_eq!(snap.len(), 2);
    assert_eq!(snap.defs()["beta"].rollout, 0);
    assert_eq!(snap.defs()["checkout"].users, vec!["alice".to_owned()]);

    // Unchanged table: no rebuild. A changed row: picked up.
    let report = refresher.refresh().await;
    assert!(report.ok && !report.built, "{report:?}");
    set(&admin, "checkout", true, 60, &["alice", "bob"]).await;
    let report = refresher.refresh().await;
    assert!(report.ok && report.changed, "{report:?}");
    assert_eq!(store.load().unwrap().defs()["checkout"].rollout, 60);

    // A malformed list: an error naming the source and the row; the set keeps serving.
    let etag = store.load().unwrap().etag.clone();
    admin
        .execute(
            "UPDATE feature_flags SET tenants = 'acme' WHERE key = 'beta'",
            &[],
        )
        .await
        .unwrap();
    let report = refresher.refresh().await;
    let e = report.errors().next().unwrap().to_owned();
    assert!(!report.ok);
    let source = format!(
        "postgres://127.0.0.1:{}/postgres (table feature_flags)",
        pg.port
    );
    assert!(e.starts_with(&source), "{e}");
    assert!(
        e.contains("row \"beta\": column `tenants` is not a JSON array"),
        "{e}"
    );
    assert_eq!(
        store.load().unwrap().etag,
        etag,
        "the served set did not change"
    );
    admin
        .execute(
            "UPDATE feature_flags SET tenants = '[]' WHERE key = 'beta'",
            &[],
        )
        .await
        .unwrap();

    // A wrong password: the server's refusal, never the password.
    let mut wrong = pg_cfg(&pg, true);
    wrong.password = Some(Secret("not-the-password-77".into()));
    let e = fetch(&wrong).await.unwrap_err();
    assert!(e.starts_with(&source), "{e}");
    assert!(e.contains("password authentication failed"), "{e}");
    assert!(
        !e.contains("not-the-password-77") && !e.contains(PASSWORD),
        "{e}"
    );

    // A client certificate instead of a password (mutual TLS; `cert` login for that role).
    admin
        .batch_execute(&format!(
            "CREATE ROLE {CERT_USER} LOGIN; GRANT SELECT ON feature_flags TO {CERT_USER}"
        ))
        .await
        .unwrap();
    let mut by_cert = cfg(&format!(
        "postgres://{CERT_USER}@127.0.0.1:{}/postgres?sslmode=require",
        pg.port
    ));
    by_cert.ca_cert_path = pg.ca_cert.clone();
    let e = fetch(&by_cert).await.unwrap_err();
    assert!(
        e.contains("certificate"),
        "no client certificate, no login: {e}"
    );
    let (cert, key) = pg.client_cert.clone().unwrap();
    by_cert.client_cert_path = Some(cert);
    by_cert.client_key_path = Some(key);
    let doc = fetch(&by_cert).await.unwrap();
    assert_eq!(doc.as_object().unwrap().len(), 2);

    // TLS is checked: without the CA the server's certificate is not trusted.
    let mut untrusted = pg_cfg(&pg, true);
    untrusted.ca_cert_path = None;
    assert!(fetch(&untrusted).await.is_err());

    // A table that does not exist; a column of the wrong type; NULL and duplicates from a
    // custom query.
    let mut c = pg_cfg(&pg, false);
    c.table = Some("nope".into());
    let e = fetch(&c).await.unwrap_err();
    assert!(e.contains("relation \"nope\" does not exist"), "{e}");
    admin
        .batch_execute(
            "CREATE TABLE typed (key TEXT PRIMARY KEY, enabled TEXT NOT NULL, rollout INTEGER \
             NOT NULL, users TEXT NOT NULL, tenants TEXT NOT NULL, envs TEXT NOT NULL); \
             INSERT INTO typed VALUES ('t1', 'true', 5, '[]', '[]', '[]')",
        )
        .await
        .unwrap();
    let mut c = pg_cfg(&pg, false);
    c.table = Some("typed".into());
    let e = fetch(&c).await.unwrap_err();
    assert!(e.contains("row \"t1\": column `enabled` is text"), "{e}");
    let mut c = pg_cfg(&pg, false);
    c.query = Some(
        "SELECT key, enabled, NULL::int AS rollout, users, tenants, envs FROM feature_flags".into(),
    );
    let e = fetch(&c).await.unwrap_err();
    assert!(
        e.contains("(query)") && e.contains("column `rollout` is NULL"),
        "{e}"
    );
    c.query = Some(
        "SELECT key, enabled, rollout, users, tenants, envs FROM feature_flags UNION ALL \
         SELECT key, enabled, rollout, users, tenants, envs FROM feature_flags"
            .into(),
    );
    let e = fetch(&c).await.unwrap_err();
    assert!(e.contains("appears in more than one row"), "{e}");

    // A writer holding the table's lock: a lock timeout, not a hang.
    let mut locker = pg.client("postgres").await;
    let tx = locker.transaction().await.unwrap();
    tx.batch_execute("LOCK TABLE feature_flags IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let mut c = pg_cfg(&pg, false);
    c.timeout = Millis(1_500);
    let e = fetch(&c).await.unwrap_err();
    assert!(e.contains("lock timeout") || e.contains("timed out"), "{e}");
    tx.rollback().await.unwrap();

    // An unreachable database.
    drop(admin);
    let port = pg.port;
    drop(pg);
    let mut c = cfg(&format!("postgres://postgres@127.0.0.1:{port}/postgres"));
    c.password = Some(Secret(PASSWORD.into()));
    let e = fetch(&c).await.unwrap_err();
    assert!(
        e.contains(&format!("127.0.0.1:{port}")) && e.contains("cannot connect"),
        "{e}"
    );
    let report = refresher.refresh().await;
    assert!(!report.ok);
    assert_eq!(store.load().unwrap().len(), 2, "still serving");
}

/// Through the binary: a changed row is picked up by the poll; with `notifyChannel`, by
/// `LISTEN` at once. The password comes from `PGPASSWORD` and reaches no log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_poll_and_listen_through_the_relay() {
    let pg = Postgres::start(false).await;
    let admin = pg.client("postgres").await;
    admin.batch_execute(DDL).await.unwrap();
    admin
        .batch_execute(include_str!("../docs/sql-notify-trigger.sql"))
        .await
        .unwrap();
    set(&admin, "checkout", true, 100, &[]).await;

    let polled = relay::Relay::start_with(relay::Options {
        config: &format!(
            "pollingInterval: 300\nretrievers: [{{kind: sql, url: '{}'}}]\n",
            pg.url("postgres")
        ),
        env: &[("PGPASSWORD", PASSWORD)],
        ..relay::Options::default()
    });
    let listening = relay::Relay::start_with(relay::Options {
        config: &format!(
            "pollingInterval: 600000\nretrievers: [{{kind: sql, url: '{}', \
             notifyChannel: flagrelay_flags}}]\n",
            pg.url("postgres")
        ),
        env: &[("PGPASSWORD", PASSWORD)],
        ..relay::Options::default()
    });
    relay::wait_ready(&polled).await;
    relay::wait_ready(&listening).await;
    // The LISTEN connection is up once the relay says so.
    assert!(
        listening
            .wait_for_log(
                |l| l.contains("listening for changes"),
                Duration::from_secs(20)
            )
            .is_some(),
        "{}",
        listening.all_output()
    );

    set(&admin, "checkout", false, 100, &[]).await;
    let c = relay::client();
    for r in [&polled, &listening] {
        relay::eventually(Duration::from_secs(20), "the changed row", || {
            let (c, url) = (c.clone(), r.url("/ofrep/v1/evaluate/flags/checkout"));
            async move {
                let v: Value = c
                    .post(url)
                    .json(&json!({"context": {}}))
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                (v["value"] == json!(false)).then_some(())
            }
        })
        .await;
        assert!(
            !r.all_output().contains(PASSWORD),
            "the password reaches no log"
        );
    }
}

/// `flagrelay validate --source` checks a table without serving it: 0 for a good one, 1 with
/// the row's error for a bad one, 2 for a bad entry.
#[test]
fn validate_source_checks_a_table() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_db(dir.path(), &[("ok-flag", 1, 50, "[]", "[]", "[]")]);
    let run = |entry: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_flagrelay"))
            .args(["validate", "--source", entry])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code().unwrap(), text)
    };
    let (code, text) = run(&format!("{{kind: sql, url: '{url}'}}"));
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("(table feature_flags): ok (1 flags)"),
        "{text}"
    );

    let conn = rusqlite::Connection::open(dir.path().join("app.db")).unwrap();
    conn.execute(
        "INSERT INTO feature_flags VALUES ('bad-flag', 1, 5, '[]', 'acme', '[]')",
        [],
    )
    .unwrap();
    let (code, text) = run(&format!("{{kind: sql, url: '{url}'}}"));
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("row \"bad-flag\": column `tenants`"),
        "{text}"
    );

    let (code, text) = run(&format!("{{kind: sql, url: '{url}', table: 'x;y'}}"));
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("`table`"), "{text}");
}
