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
    let loaded = Config::load(
        None,
        env(&[("FLAGRELAY_BIN", "/x"), ("FLAGRELAY_CONFIG", "f.yaml")]),
        &[],
    )
    .unwrap();
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

#[test]
fn keys_the_old_variable_list_lost_have_their_variables() {
    let c = Config::load(
        None,
        env(&[
            ("FLAGRELAY_SERVER_MAXSSECLIENTS", "7"),
            ("FLAGRELAY_SERVER_READHEADERTIMEOUT", "2s"),
            ("FLAGRELAY_SERVER_MAXHEADERBYTES", "9000"),
        ]),
        &[],
    )
    .unwrap()
    .config;
    assert_eq!(c.server.max_sse_clients, 7);
    assert_eq!(c.server.read_header_timeout, Millis(2_000));
    assert_eq!(c.server.max_header_bytes, 9000);
}

#[test]
fn a_huge_list_index_is_refused_without_growing_the_list() {
    let e = Config::load(
        None,
        env(&[("FLAGRELAY_RETRIEVERS_40000000_URL", "x")]),
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("FLAGRELAY_RETRIEVERS_40000000_URL"), "{e}");
    assert!(e.contains("out of range"), "{e}");
}

#[test]
fn an_empty_credential_list_variable_is_an_error() {
    let f = file(
        ".yaml",
        "authorizedKeys:\n  evaluation: [k1]\n  admin: [a1]\n",
    );
    for var in [
        "FLAGRELAY_AUTHORIZEDKEYS_EVALUATION",
        "FLAGRELAY_AUTHORIZEDKEYS_ADMIN",
    ] {
        for value in ["", " ", " , "] {
            let e = Config::load(Some(f.path()), env(&[(var, value)]), &[])
                .unwrap_err()
                .to_string();
            assert!(e.contains(var) && e.contains("empty"), "{e}");
        }
    }
    // A list that is no credential may still be emptied.
    let c = Config::load(None, env(&[("FLAGRELAY_CORS_ALLOWEDORIGINS", "")]), &[])
        .unwrap()
        .config;
    assert!(c.cors.allowed_origins.is_empty());
}

#[test]
fn credential_values_never_appear_in_errors() {
    for yaml in [
        "authorizedKeys: {admin: [123456789012]}",
        "authorizedKeys: {evaluation: [123456789012]}",
        "authorizedKeys: {evaluation: [{key: 123456789012}]}",
        "auth: {jwtSecret: 123456789012}",
        "auth: {jwtSecret: [123456789012]}",
        "retrievers: [{kind: http, url: 'https://x.test/', headers: {authorization: 123456789012}}]",
    ] {
        let f = file(".yaml", yaml);
        let e = Config::load(Some(f.path()), env(&[]), &[])
            .unwrap_err()
            .to_string();
        assert!(!e.contains("123456789012"), "{yaml}: secret leaked: {e}");
        assert!(e.contains("expected") || e.contains("invalid"), "{e}");
    }
    // Other keys keep the value in the message: it helps and it is no secret.
    let f = file(".yaml", "server: {port: 123456789012}");
    let e = Config::load(Some(f.path()), env(&[]), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("123456789012"), "{e}");
}

#[test]
fn set_flags_reach_every_key_and_name_the_key_when_bad() {
    let o = [
        Override::from_assignment("server.maxSseClients=12").unwrap(),
        Override::from_assignment("SERVER.READHEADERTIMEOUT=3s").unwrap(),
        Override::from_assignment("retrievers[0].kind=http").unwrap(),
        Override::from_assignment("retrievers.0.url=https://x.test/f.yaml").unwrap(),
        Override::from_assignment("retrievers.0.headers.X-Api-Key=v=1").unwrap(),
        Override::from_assignment("authorizedKeys.admin=a,b").unwrap(),
    ];
    let c = Config::load(None, env(&[("FLAGRELAY_SERVER_MAXSSECLIENTS", "5")]), &o)
        .unwrap()
        .config;
    assert_eq!(c.server.max_sse_clients, 12, "--set beats the environment");
    assert_eq!(c.server.read_header_timeout, Millis(3_000));
    assert_eq!(c.retrievers[0].headers["X-Api-Key"].expose(), "v=1");
    assert_eq!(c.authorized_keys.admin.len(), 2);
    for (bad, expect) in [
        ("server.prot=1", "server.prot"),
        ("server.port", "KEY=VALUE"),
        ("bogus=1", "bogus"),
        ("server.port=many", "whole number"),
        ("retrievers.40000000.url=x", "out of range"),
        ("authorizedKeys.admin=", "empty"),
    ] {
        let e = Override::from_assignment(bad).unwrap_err().to_string();
        assert!(e.contains("--set") && e.contains(expect), "{bad}: {e}");
    }
}

#[test]
fn a_bad_value_from_a_variable_names_the_variable() {
    let e = Config::load(None, env(&[("FLAGRELAY_POLLINGINTERVAL", "soon")]), &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("pollingInterval") && e.contains("FLAGRELAY_POLLINGINTERVAL"),
        "{e}"
    );
}
