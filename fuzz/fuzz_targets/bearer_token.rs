//! The bearer token path: arbitrary credentials in `X-API-Key`, `Authorization` and the
//! `?apiKey=` query key against an `Auth` holding plain and `sha256:` keys, admin keys and a
//! JWT secret; valid issued tokens mutated byte by byte; and tokens with fuzzed header and
//! claims that are correctly signed with the relay's secret.
//!
//! Besides "no panic", every answer is checked against a reference: `Admin` only for an admin
//! key, `Evaluation { env }` only for an evaluation key bound to `env` or a token signed with the
//! secret, unexpired, whose `kid` names a configured key with the same binding.
//!
//! The first byte picks the mode (modulo 8); the rest is the input of that mode.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use flagrelay::config::{AuthorizedKeys, EvaluationKey, Secret};
use flagrelay::http::Auth;
use flagrelay::http::auth::{Caller, Denied, key_id};
use http::{HeaderMap, HeaderName, HeaderValue};
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const SECRET: &str = "fuzz-jwt-secret-0123456789abcdef-0123456789";
/// Raw evaluation keys and their bindings; "eval-staging" is configured in `sha256:` form.
const EVAL: [(&str, Option<&str>); 3] = [
    ("eval-plain", None),
    ("eval-staging", Some("staging")),
    ("eval-prod", Some("production")),
];
/// Raw admin keys; "admin-two" is configured in `sha256:` form.
const ADMIN: [&str; 2] = ["admin-key", "admin-two"];
const SHA256_EVAL_STAGING: &str =
    "sha256:b92cfd465287b9f3757b3148753f62b47552c38b7cd9c32b3e5b5551d7b04e3e";
const SHA256_ADMIN_TWO: &str =
    "sha256:4C52A90B72C66971064B89485C962097C972F392FB917498D4A5EC1F69426908";

struct Fixture {
    auth: Auth,
    /// A token issued for each evaluation key, in `EVAL` order.
    tokens: Vec<String>,
    signing: EncodingKey,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let keys = AuthorizedKeys {
            evaluation: vec![
                EvaluationKey {
                    key: Secret(EVAL[0].0.into()),
                    env: None,
                },
                EvaluationKey {
                    key: Secret(SHA256_EVAL_STAGING.into()),
                    env: Some("staging".into()),
                },
                EvaluationKey {
                    key: Secret(EVAL[2].0.into()),
                    env: Some("production".into()),
                },
            ],
            admin: vec![Secret(ADMIN[0].into()), Secret(SHA256_ADMIN_TWO.into())],
        };
        // A day: a long fuzzing run must not see its issued tokens expire.
        let auth = Auth::new(&keys, Some(&Secret(SECRET.into())), 86_400).expect("auth builds");
        let tokens = EVAL
            .iter()
            .map(|(k, _)| auth.issue_token(k).expect("a token is issued").0)
            .collect();
        Fixture {
            auth,
            tokens,
            signing: EncodingKey::from_secret(SECRET.as_bytes()),
        }
    })
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The caller a presented credential may at most be, by the rules, or `None`.
fn reference(f: &Fixture, presented: &str) -> Option<Caller> {
    if ADMIN.contains(&presented) {
        return Some(Caller::Admin);
    }
    if let Some((_, env)) = EVAL.iter().find(|(k, _)| *k == presented) {
        return Some(Caller::Evaluation {
            env: env.map(Arc::from),
        });
    }
    // A token: three parts, a signature that is exactly HS256 over the first two, header alg
    // HS256, claims an object with an unexpired integer `exp` and a `kid` of a configured key
    // whose binding is the `env` claim.
    let mut parts = presented.split('.');
    let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let signed =
        jsonwebtoken::crypto::sign(format!("{h}.{p}").as_bytes(), &f.signing, Algorithm::HS256)
            .ok()?;
    if signed != s {
        return None;
    }
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).ok()?).ok()?;
    if header.get("alg")?.as_str()? != "HS256" {
        return None;
    }
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).ok()?).ok()?;
    if claims.get("exp")?.as_u64()? + 1 < now() {
        return None;
    }
    let kid = claims.get("kid")?.as_str()?;
    let claimed_env = match claims.get("env") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_str()?),
    };
    let (_, env) = EVAL.iter().find(|(k, _)| key_id(k) == kid)?;
    (*env == claimed_env).then(|| Caller::Evaluation {
        env: env.map(Arc::from),
    })
}

/// Check both entry points with these headers (and query key) against the reference for every
/// candidate credential they carry.
fn check(f: &Fixture, headers: &HeaderMap, query: Option<&str>) {
    let mut candidates: Vec<&str> = Vec::new();
    for name in ["x-api-key", "authorization"] {
        for v in headers.get_all(name) {
            if let Ok(s) = std::str::from_utf8(v.as_bytes()) {
                candidates.push(s.trim());
                if let Some((_, rest)) = s.trim().split_once(' ') {
                    candidates.push(rest.trim());
                }
            }
        }
    }
    candidates.extend(query);
    let allowed = |got: &Caller| {
        candidates
            .iter()
            .any(|c| reference(f, c).as_ref() == Some(got))
    };
    match f.auth.evaluation_caller(headers, query) {
        Ok(got) => assert!(
            allowed(&got),
            "evaluation_caller accepted {candidates:?} as {got:?}"
        ),
        Err(Denied::Unauthenticated) => {}
        Err(Denied::Forbidden) => panic!("evaluation_caller answered Forbidden"),
    }
    match f.auth.admin_caller(headers) {
        Ok(Caller::Admin) => assert!(
            allowed(&Caller::Admin),
            "admin_caller accepted {candidates:?}"
        ),
        Ok(other) => panic!("admin_caller answered {other:?}"),
        Err(Denied::Forbidden) => assert!(
            candidates
                .iter()
                .any(|c| matches!(reference(f, c), Some(Caller::Evaluation { .. }))),
            "admin_caller answered Forbidden to {candidates:?}"
        ),
        Err(Denied::Unauthenticated) => {}
    }
}

fn header(name: &'static str, value: &[u8]) -> Option<HeaderMap> {
    let mut h = HeaderMap::new();
    h.insert(
        HeaderName::from_static(name),
        HeaderValue::from_bytes(value).ok()?,
    );
    Some(h)
}

fn bearer(token: &[u8]) -> Option<HeaderMap> {
    let mut v = b"Bearer ".to_vec();
    v.extend_from_slice(token);
    header("authorization", &v)
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 8 {
        // One header, raw.
        0 => {
            if let Some(h) = header("x-api-key", rest) {
                check(f, &h, None);
            }
        }
        1 => {
            if let Some(h) = header("authorization", rest) {
                check(f, &h, None);
            }
        }
        2 => {
            if let Some(h) = bearer(rest) {
                check(f, &h, None);
            }
        }
        // The query key, alone and behind a header (which wins).
        3 => {
            let q = String::from_utf8_lossy(rest);
            check(f, &HeaderMap::new(), Some(&q));
            if let Some(h) = header("x-api-key", b"not-a-key") {
                check(f, &h, Some(&q));
            }
        }
        // A valid issued token, mutated: pairs of (position, byte) overwrite, a trailing odd
        // byte truncates at that position.
        4 => {
            let Some((&which, edits)) = rest.split_first() else {
                return;
            };
            let original = &f.tokens[usize::from(which) % f.tokens.len()];
            let mut token = original.as_bytes().to_vec();
            let mut pairs = edits.chunks_exact(2);
            for p in &mut pairs {
                let at = usize::from(p[0]) % token.len();
                token[at] = p[1];
            }
            if let [cut] = pairs.remainder() {
                token.truncate(usize::from(*cut).min(token.len()));
            }
            if let Some(h) = bearer(&token) {
                check(f, &h, None);
            }
            if let Ok(s) = std::str::from_utf8(&token) {
                check(f, &HeaderMap::new(), Some(s));
            }
        }
        // A token with a fuzzed header and claims, correctly signed with the relay's secret:
        // `header JSON \0 claims JSON`.
        5 => {
            let mut split = rest.splitn(2, |&b| b == 0);
            let (h, p) = (
                split.next().unwrap_or_default(),
                split.next().unwrap_or_default(),
            );
            let signing_input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(h),
                URL_SAFE_NO_PAD.encode(p)
            );
            let Ok(sig) =
                jsonwebtoken::crypto::sign(signing_input.as_bytes(), &f.signing, Algorithm::HS256)
            else {
                return;
            };
            let token = format!("{signing_input}.{sig}");
            if let Some(h) = bearer(token.as_bytes()) {
                check(f, &h, None);
            }
        }
        // Exchanging a key for a token.
        6 => {
            let key = String::from_utf8_lossy(rest);
            match f.auth.issue_token(&key) {
                Ok((token, ttl)) => {
                    assert_eq!(ttl, 86_400);
                    let (_, env) = EVAL
                        .iter()
                        .find(|(k, _)| **k == *key)
                        .unwrap_or_else(|| panic!("a token was issued for {key:?}"));
                    let h = bearer(token.as_bytes()).expect("a token is a header value");
                    assert_eq!(
                        f.auth.evaluation_caller(&h, None),
                        Ok(Caller::Evaluation {
                            env: env.map(Arc::from)
                        })
                    );
                }
                Err(Denied::Forbidden) => assert!(ADMIN.contains(&&*key), "{key:?} forbidden"),
                Err(Denied::Unauthenticated) => {
                    assert!(!EVAL.iter().any(|(k, _)| **k == *key), "{key:?} refused")
                }
            }
        }
        // Both headers at once: `X-API-Key \0 Authorization`.
        _ => {
            let mut split = rest.splitn(2, |&b| b == 0);
            let (k, a) = (
                split.next().unwrap_or_default(),
                split.next().unwrap_or_default(),
            );
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_bytes(k) {
                h.insert("x-api-key", v);
            }
            if let Ok(v) = HeaderValue::from_bytes(a) {
                h.insert("authorization", v);
            }
            check(f, &h, None);
        }
    }
});
