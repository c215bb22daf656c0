use super::*;
use std::io::Write;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn file(ext: &str, text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(ext).tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

#[test]
fn defaults_without_file_or_env() {
    let c = Config::load(None, env(&[]), &[]).unwrap().config;
    assert_eq!(c.server.port, 1031);
    assert_eq!(c.server.host, "0.0.0.0");
    assert_eq!(c.polling_interval, Millis(60_000));
    assert_eq!(c.retrievers.len(), 1);
    assert_eq!(
        c.retrievers[0].path.as_deref(),
        Some(Path::new("config/flags.yaml"))
    );
    assert_eq!(c.max_request_body_bytes, 1_048_576);
    assert_eq!(c.cors.allowed_origins, vec!["*"]);
}

#[test]
fn precedence_flags_over_env_over_file() {
    let f = file(
        ".yaml",
        "server:\n  port: 1000\n  host: 127.0.0.1\nlogLevel: debug\n",
    );
    let c = Config::load(
        Some(f.path()),
        env(&[("FLAGRELAY_SERVER_PORT", "2000")]),
        &[],
    )
    .unwrap()
    .config;
    assert_eq!(c.server.port, 2000);
    assert_eq!(c.server.host, "127.0.0.1");
    assert_eq!(c.log_level, "debug");
    let c = Config::load(
        Some(f.path()),
        env(&[("FLAGRELAY_SERVER_PORT", "2000")]),
        &[Override::new("server.port", 3000)],
    )
    .unwrap()
    .config;
    assert_eq!(c.server.port, 3000);
}

#[test]
fn json_config_file() {
    let f = file(
        ".json",
        r#"{"pollingInterval": "30s", "rolloutSalt": "pepper"}"#,
    );
    let c = Config::load(Some(f.path()), env(&[]), &[]).unwrap().config;
    assert_eq!(c.polling_interval, Millis(30_000));
    assert_eq!(c.rollout_salt.as_deref(), Some("pepper"));
}

#[test]
fn env_lists_indexes_and_bools() {
    let c = Config::load(
        None,
        env(&[
            ("FLAGRELAY_AUTHORIZEDKEYS_ADMIN", "a1, a2"),
            ("FLAGRELAY_RETRIEVERS_0_KIND", "http"),
            (
                "FLAGRELAY_RETRIEVERS_0_URL",
                "https://example.test/flags.yaml",
            ),
            ("FLAGRELAY_RETRIEVERS_0_HEADERS_AUTHORIZATION", "Bearer t"),
            ("FLAGRELAY_STARTWITHRETRIEVERERROR", "true"),
            ("FLAGRELAY_POLLINGINTERVAL", "5s"),
            ("FLAGRELAY_FIPS_STRICT", "false"),
            ("FLAGRELAY_AUTHORIZEDKEYS_EVALUATION_0_KEY", "k"),
            ("FLAGRELAY_AUTHORIZEDKEYS_EVALUATION_0_ENV", "staging"),
        ]),
        &[],
    )
    .unwrap()
    .config;
    let admin: Vec<&str> = c.authorized_keys.admin.iter().map(Secret::expose).collect();
    assert_eq!(admin, vec!["a1", "a2"]);
    assert_eq!(c.retrievers[0].kind, RetrieverKind::Http);
    assert_eq!(
        c.retrievers[0].headers["authorization"].expose(),
        "Bearer t"
    );
    assert!(c.start_with_retriever_error);
    assert_eq!(c.polling_interval, Millis(5_000));
    assert_eq!(
        c.authorized_keys.evaluation[0].env.as_deref(),
        Some("staging")
    );
}

#[test]
fn errors_name_the_key() {
    let f = file(".yaml", "server:\n  port: lots\n");
    let e = Config::load(Some(f.path()), env(&[]), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("server.port"), "{e}");

    let f = file(".yaml", "server:\n  prot: 1\n");
    let e = Config::load(Some(f.path()), env(&[]), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("prot"), "{e}");

    let e = Config::load(None, env(&[("FLAGRELAY_SERVER_PORT", "x")]), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("FLAGRELAY_SERVER_PORT"), "{e}");

    let e = Config::load(None, env(&[("FLAGRELAY_RETRIEVERS_0_KIND", "http")]), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("retrievers[0].url"), "{e}");

    let e = Config::load(None, env(&[("FLAGRELAY_AUTH_JWTSECRET", "short")]), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("auth.jwtSecret"), "{e}");
    assert!(!e.contains("short"), "secret leaked: {e}");

    let f = file(".yaml", "server: [1\n");
    let e = Config::load(Some(f.path()), env(&[]), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("line"), "{e}");
}

#[test]
fn foreign_flagrelay_variables_are_skipped_with_a_warning() {
    let loaded = Config::load(None, env(&[("FLAGRELAY_BIN", "/x")]), &[]).unwrap();
    assert_eq!(loaded.warnings.len(), 1);
    assert!(loaded.warnings[0].contains("FLAGRELAY_BIN"));
}

#[test]
fn secrets_do_not_debug_print() {
    let c = Config::load(
        None,
        env(&[
            ("FLAGRELAY_AUTHORIZEDKEYS_ADMIN", "supersecretadmin"),
            (
                "FLAGRELAY_AUTH_JWTSECRET",
                "0123456789abcdef0123456789abcdefXYZ",
            ),
        ]),
        &[],
    )
    .unwrap()
    .config;
    let shown = format!("{c:?}");
    assert!(!shown.contains("supersecretadmin"));
    assert!(!shown.contains("0123456789abcdef"));
}

#[test]
fn evaluation_keys_plain_or_bound() {
    let f = file(
        ".yaml",
        "authorizedKeys:\n  evaluation:\n    - plain\n    - {key: bound, env: prod}\n",
    );
    let c = Config::load(Some(f.path()), env(&[]), &[]).unwrap().config;
    let k = &c.authorized_keys.evaluation;
    assert_eq!((k[0].key.expose(), k[0].env.as_deref()), ("plain", None));
    assert_eq!(
        (k[1].key.expose(), k[1].env.as_deref()),
        ("bound", Some("prod"))
    );
    let f = file(".yaml", "authorizedKeys:\n  evaluation: [7]\n");
    let e = Config::load(Some(f.path()), env(&[]), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("authorizedKeys.evaluation"), "{e}");
}
