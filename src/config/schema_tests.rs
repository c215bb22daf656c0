//! Every key of the schema can be set through its environment variable and `--set`, and lands
//! where the same key in a file does.

use std::io::Write;

use serde_json::Value;

use super::*;
use crate::config::overlay::{Override, set};
use crate::config::{Config, ConfigError};

/// The variable of a key path: `retrievers[0].headers.name` → `FLAGRELAY_RETRIEVERS_0_HEADERS_NAME`.
fn var_of(path: &[Step]) -> String {
    let parts: Vec<String> = path
        .iter()
        .map(|s| match s {
            Step::Key(k) => k.to_ascii_uppercase(),
            Step::Index(i) => i.to_string(),
        })
        .collect();
    format!("FLAGRELAY_{}", parts.join("_"))
}

/// Settings a key needs around it to load (an entry of a list needs its required fields).
/// Keyed by path prefix; only the keys other than the one under test are applied.
const CONTEXT: &[(&str, &str, &str)] = &[
    ("retrievers[0].", "FLAGRELAY_RETRIEVERS_0_KIND", "http"),
    (
        "retrievers[0].",
        "FLAGRELAY_RETRIEVERS_0_URL",
        "https://source.test/flags.yaml",
    ),
    (
        "retrievers[0].clientCertPath",
        "FLAGRELAY_RETRIEVERS_0_CLIENTKEYPATH",
        "client.key",
    ),
    (
        "retrievers[0].clientKeyPath",
        "FLAGRELAY_RETRIEVERS_0_CLIENTCERTPATH",
        "client.pem",
    ),
    (
        "authorizedKeys.evaluation[0].",
        "FLAGRELAY_AUTHORIZEDKEYS_EVALUATION_0_KEY",
        "context-key",
    ),
    (
        "flagd.environment",
        "FLAGRELAY_FLAGD_ALLOWUNAUTHENTICATED",
        "true",
    ),
    ("fleet.", "FLAGRELAY_FLEET_NAME", "relays"),
    (
        "fleet.",
        "FLAGRELAY_FLEET_REDIS_URL",
        "redis://redis.test:6379/0",
    ),
    (
        "fleet.redis.sentinel.",
        "FLAGRELAY_FLEET_REDIS_SENTINEL_MASTERNAME",
        "mymaster",
    ),
    (
        "fleet.redis.sentinel.",
        "FLAGRELAY_FLEET_REDIS_SENTINEL_NODES",
        "sentinel.test:26379",
    ),
    (
        "fleet.redis.clientCertPath",
        "FLAGRELAY_FLEET_REDIS_CLIENTKEYPATH",
        "client.key",
    ),
    (
        "fleet.redis.clientKeyPath",
        "FLAGRELAY_FLEET_REDIS_CLIENTCERTPATH",
        "client.pem",
    ),
    ("notifiers[0].", "FLAGRELAY_NOTIFIERS_0_KIND", "webhook"),
    (
        "notifiers[0].",
        "FLAGRELAY_NOTIFIERS_0_URL",
        "https://hooks.test/flags",
    ),
];

/// Text values to try for a key, as environment text and as the JSON a file would hold.
fn candidates(node: &Value) -> Vec<(String, Value)> {
    let alts = variants(node);
    let list = alts.iter().find_map(|v| v.get("items"));
    let base = list.unwrap_or(node);
    let base_alts = variants(base);
    let has = |t: &str| base_alts.iter().any(|v| is_type(v, t));
    let mut out: Vec<(String, Value)> = Vec::new();
    for v in &base_alts {
        if let Some(Value::String(tag)) = v.get("const") {
            out.push((tag.clone(), Value::from(tag.as_str())));
        }
        if let Some(Value::Array(values)) = v.get("enum") {
            for e in values.iter().rev() {
                if let Some(s) = e.as_str() {
                    out.push((s.to_owned(), Value::from(s)));
                }
            }
        }
    }
    if has("boolean") {
        out.push(("true".into(), Value::Bool(true)));
    }
    if has("integer") || has("number") {
        for n in [12345u64, 37, 3] {
            out.push((n.to_string(), Value::from(n)));
        }
    }
    if has("number") {
        // Fractions too (a ratio between 0 and 1).
        out.push(("0.25".into(), Value::from(0.25)));
    }
    if has("string") {
        for s in [
            "https://sample.test/path-0123456789abcdef0123456789abcdef",
            "debug",
            // A Redis URL that is also a host:port (fleet.redis.url, sentinel nodes).
            "redis://sample.test:6379",
        ] {
            out.push((s.into(), Value::from(s)));
        }
    }
    if list.is_some() {
        out = out
            .into_iter()
            .map(|(text, value)| {
                (
                    format!("{text},{text}"),
                    Value::Array(vec![value.clone(), value]),
                )
            })
            .collect();
    }
    out
}

fn load(env: &[(String, String)], file: Option<&Value>) -> Result<String, ConfigError> {
    let f = file.map(|tree| {
        let mut f = tempfile::Builder::new().suffix(".json").tempfile().unwrap();
        f.write_all(tree.to_string().as_bytes()).unwrap();
        f
    });
    let loaded = Config::load(f.as_ref().map(|f| f.path()), env.to_vec(), &[])?;
    Ok(format!("{:?}", loaded.config))
}

#[test]
fn every_key_is_set_by_its_environment_variable_and_by_set() {
    let keys = leaves();
    assert!(
        keys.len() > 40,
        "the walk found too few keys: {}",
        keys.len()
    );
    let mut failures = Vec::new();
    for (path, node) in &keys {
        let key = display(path);
        let var = var_of(path);
        let context: Vec<(String, String)> = CONTEXT
            .iter()
            .filter(|(prefix, v, _)| key.starts_with(prefix) && *v != var)
            .map(|(_, v, value)| (v.to_string(), value.to_string()))
            .collect();
        // The context alone may not load (`retrievers[0]` without its `kind`).
        let before = load(&context, None).ok();
        let mut arrived = false;
        let mut tried = Vec::new();
        for (text, json) in candidates(node) {
            let mut env = context.clone();
            env.push((var.clone(), text.clone()));
            let by_env = match load(&env, None) {
                Ok(c) => c,
                Err(e) => {
                    tried.push(format!("{text}: {e}"));
                    continue;
                }
            };
            let mut tree = Value::Object(Default::default());
            set(&mut tree, path, json);
            let by_file = load(&context, Some(&tree)).map_err(|e| e.to_string());
            let by_flag = Override::from_assignment(&format!("{}={text}", key.to_lowercase()))
                .map_err(|e| e.to_string())
                .and_then(|o| {
                    Config::load(None, context.clone(), &[o])
                        .map(|l| format!("{:?}", l.config))
                        .map_err(|e| e.to_string())
                });
            if by_file.as_ref() != Ok(&by_env) || by_flag.as_ref() != Ok(&by_env) {
                failures.push(format!(
                    "{key} ({var}={text}): env and file/--set differ\n env:  {by_env}\n file: {by_file:?}\n flag: {by_flag:?}"
                ));
            } else if before.as_ref() == Some(&by_env) {
                tried.push(format!("{text}: no effect"));
                continue;
            }
            arrived = true;
            break;
        }
        if !arrived && !failures.iter().any(|f| f.starts_with(&key)) {
            failures.push(format!("{key} ({var}): no value arrived; tried {tried:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    println!(
        "{} keys set through their variable, a file and --set",
        keys.len()
    );
}

#[test]
fn the_walk_finds_the_keys_the_old_list_lost() {
    let keys: Vec<String> = leaves().iter().map(|(p, _)| display(p)).collect();
    for key in [
        "server.maxSseClients",
        "server.readHeaderTimeout",
        "server.maxHeaderBytes",
        "retrievers[0].headers.name",
        "authorizedKeys.evaluation",
        "authorizedKeys.evaluation[0]",
        "authorizedKeys.evaluation[0].key",
        "authorizedKeys.evaluation[0].env",
        "auth.jwtSecret",
    ] {
        assert!(
            keys.contains(&key.to_owned()),
            "{key} missing from {keys:?}"
        );
    }
}

#[test]
fn resolve_is_case_insensitive_and_bounded() {
    let (path, _) = resolve(&["SERVER", "MAXSSECLIENTS"], MapKeys::Env).unwrap();
    assert_eq!(display(&path), "server.maxSseClients");
    let (path, _) = resolve(
        &["RETRIEVERS", "2", "HEADERS", "X", "API", "KEY"],
        MapKeys::Env,
    )
    .unwrap();
    assert_eq!(display(&path), "retrievers[2].headers.x-api-key");
    assert_eq!(
        resolve(&["BIN"], MapKeys::Env).unwrap_err(),
        ResolveError::NotOurs("bin".into())
    );
    let ResolveError::Invalid(m) =
        resolve(&["RETRIEVERS", "40000000", "URL"], MapKeys::Env).unwrap_err()
    else {
        panic!("an index past the bound is invalid");
    };
    assert!(m.contains("40000000") && m.contains("999"), "{m}");
    assert!(resolve(&["RETRIEVERS", "999", "URL"], MapKeys::Env).is_ok());
    let huge = "99999999999999999999999999";
    assert!(matches!(
        resolve(&["RETRIEVERS", huge, "URL"], MapKeys::Env),
        Err(ResolveError::Invalid(_))
    ));
    assert!(matches!(
        resolve(&["SERVER", "PROT"], MapKeys::Env),
        Err(ResolveError::Invalid(m)) if m.contains("prot") && m.contains("server")
    ));
    assert!(matches!(
        resolve(&["SERVER", "PORT", "X"], MapKeys::Env),
        Err(ResolveError::Invalid(m)) if m.contains("no keys under it")
    ));
}

#[test]
fn credentials_are_marked_in_the_schema() {
    let secret = |segments: &[&str]| {
        let (_, node) = resolve(segments, MapKeys::Flag).unwrap();
        holds_secret(node)
    };
    assert!(secret(&["auth", "jwtSecret"]));
    assert!(secret(&["authorizedKeys", "admin"]));
    assert!(secret(&["authorizedKeys", "evaluation", "0"]));
    assert!(secret(&["retrievers", "0", "headers", "authorization"]));
    assert!(!secret(&["server", "port"]));
    assert!(secret_name("password") && secret_name("webhookSecret") && !secret_name("tokenTtl"));
    assert!(!secret(&["retrievers", "0", "url"]));
}
