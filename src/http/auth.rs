//! Credentials: evaluation keys (optionally bound to an environment), admin keys, and the
//! HS256 tokens `POST /client/auth` issues for evaluation keys.
//!
//! Keys are kept only as SHA-256 digests (a config may give them as `sha256:<hex>` already), and
//! a presented credential is hashed and compared in constant time against every stored digest.
//! Neither keys nor tokens are ever logged; [`key_id`] gives a short, non-reversible label when
//! one must be identified.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest::{SHA256, digest};
use axum::http::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::{AuthorizedKeys, ConfigError, Secret};

type Digest = [u8; 32];

/// `streams.ticketTtl`'s default, in seconds.
const DEFAULT_TICKET_TTL: u64 = 600;

struct EvalKey {
    digest: Digest,
    env: Option<Arc<str>>,
}

/// Who a request is from, once its credential checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No evaluation keys are configured: evaluation is open.
    Anonymous,
    /// An evaluation key or a token issued for one; `env` is the environment it is bound to.
    Evaluation {
        env: Option<Arc<str>>,
    },
    Admin,
}

impl Caller {
    /// The environment the credential fixes, which the request context cannot override.
    pub fn bound_env(&self) -> Option<&Arc<str>> {
        match self {
            Caller::Evaluation { env } => env.as_ref(),
            _ => None,
        }
    }
}

/// Why a credential was refused. Never carries the credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// 401: missing, unknown, expired or forged.
    Unauthenticated,
    /// 403: valid, but of a kind that may not call this endpoint.
    Forbidden,
}

/// The claims of a token from `POST /client/auth`.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// Which key the token was issued for (a digest prefix), so removing the key from the
    /// config also revokes its tokens.
    kid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    env: Option<String>,
    iat: u64,
    exp: u64,
}

struct Jwt {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: u64,
}

/// The configured credentials, checked once per request.
pub struct Auth {
    evaluation: Vec<EvalKey>,
    admin: Vec<Digest>,
    jwt: Option<Jwt>,
    /// Mixed into every stream ticket's signing secret: `auth.jwtSecret` when set.
    ticket_base: Vec<u8>,
    /// Seconds a stream ticket lives (at most); see [`super::ticket`].
    ticket_ttl: u64,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("evaluation_keys", &self.evaluation.len())
            .field("admin_keys", &self.admin.len())
            .field("tokens", &self.jwt.is_some())
            .finish()
    }
}

impl Auth {
    pub fn new(
        keys: &AuthorizedKeys,
        jwt_secret: Option<&Secret>,
        token_ttl: u64,
    ) -> Result<Auth, ConfigError> {
        let evaluation = keys
            .evaluation
            .iter()
            .enumerate()
            .map(|(i, k)| {
                Ok(EvalKey {
                    digest: stored_digest(&k.key, &format!("authorizedKeys.evaluation[{i}]"))?,
                    env: k.env.as_deref().map(Arc::from),
                })
            })
            .collect::<Result<_, ConfigError>>()?;
        let admin = keys
            .admin
            .iter()
            .enumerate()
            .map(|(i, k)| stored_digest(k, &format!("authorizedKeys.admin[{i}]")))
            .collect::<Result<_, _>>()?;
        let ticket_base = jwt_secret.map_or_else(Vec::new, |s| s.expose().as_bytes().to_vec());
        let jwt = jwt_secret.map(|s| {
            let mut validation = Validation::new(Algorithm::HS256);
            validation.leeway = 0;
            validation.validate_exp = true;
            validation.set_required_spec_claims(&["exp"]);
            Jwt {
                encoding: EncodingKey::from_secret(s.expose().as_bytes()),
                decoding: DecodingKey::from_secret(s.expose().as_bytes()),
                validation,
                ttl: token_ttl,
            }
        });
        Ok(Auth {
            evaluation,
            admin,
            jwt,
            ticket_base,
            ticket_ttl: DEFAULT_TICKET_TTL,
        })
    }

    /// Stream tickets live `ttl` at most (`streams.ticketTtl`).
    pub(crate) fn with_ticket_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.ticket_ttl = ttl.as_secs().max(2);
        self
    }

    /// No keys and no tokens: everything but `/admin` is open.
    #[cfg(test)]
    pub(crate) fn open() -> Auth {
        Auth {
            evaluation: Vec::new(),
            admin: Vec::new(),
            jwt: None,
            ticket_base: Vec::new(),
            ticket_ttl: DEFAULT_TICKET_TTL,
        }
    }

    /// No evaluation key is configured: evaluation and streams need no credential.
    pub(crate) fn evaluation_open(&self) -> bool {
        self.evaluation.is_empty()
    }

    pub(crate) fn tokens_enabled(&self) -> bool {
        self.jwt.is_some()
    }

    /// Check a caller of OFREP, the sync API and the streams. `query_key` is `?apiKey=`, which
    /// only the SSE endpoints pass (browsers' EventSource cannot send headers).
    pub fn evaluation_caller(
        &self,
        headers: &HeaderMap,
        query_key: Option<&str>,
    ) -> Result<Caller, Denied> {
        if self.evaluation.is_empty() {
            return Ok(Caller::Anonymous);
        }
        let presented = credential(headers)
            .or(query_key)
            .ok_or(Denied::Unauthenticated)?;
        self.identify(presented).ok_or(Denied::Unauthenticated)
    }

    /// Check a caller of `/admin/*`: closed when no admin key is configured.
    pub fn admin_caller(&self, headers: &HeaderMap) -> Result<Caller, Denied> {
        let presented = credential(headers).ok_or(Denied::Unauthenticated)?;
        match self.identify(presented) {
            Some(Caller::Admin) => Ok(Caller::Admin),
            Some(_) => Err(Denied::Forbidden),
            None => Err(Denied::Unauthenticated),
        }
    }

    /// Exchange an evaluation key for a token carrying its environment.
    pub fn issue_token(&self, api_key: &str) -> Result<(String, u64), Denied> {
        let jwt = self.jwt.as_ref().ok_or(Denied::Unauthenticated)?;
        let d = sha256(api_key.as_bytes());
        if self.is_admin(&d) {
            return Err(Denied::Forbidden);
        }
        let key = self.find_eval(&d).ok_or(Denied::Unauthenticated)?;
        let now = now_secs();
        let claims = Claims {
            kid: key_id_of(&key.digest),
            env: key.env.as_deref().map(String::from),
            iat: now,
            exp: now.saturating_add(jwt.ttl),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &jwt.encoding)
            .map_err(|_| Denied::Unauthenticated)?;
        Ok((token, jwt.ttl))
    }

    /// A configured key always authenticates as that key, whatever it looks like (a key such
    /// as `admin.key.with-two-dots-0001` is shaped like a JWT); only a credential that is no
    /// configured key is tried as a token.
    fn identify(&self, presented: &str) -> Option<Caller> {
        self.identify_key(presented).map(|(caller, _)| caller)
    }

    /// The caller and the digest of the configured key behind the credential. A configured key
    /// always authenticates as that key; only a credential that is none is tried as a token.
    fn identify_key(&self, presented: &str) -> Option<(Caller, Digest)> {
        let d = sha256(presented.as_bytes());
        if self.is_admin(&d) {
            return Some((Caller::Admin, d));
        }
        if let Some(k) = self.find_eval(&d) {
            return Some((Caller::Evaluation { env: k.env.clone() }, k.digest));
        }
        match &self.jwt {
            Some(jwt) if looks_like_jwt(presented) => self.verify_token(jwt, presented),
            _ => None,
        }
    }

    fn verify_token(&self, jwt: &Jwt, token: &str) -> Option<(Caller, Digest)> {
        let data = jsonwebtoken::decode::<Claims>(token, &jwt.decoding, &jwt.validation).ok()?;
        if !header_and_claims_are_utf8(token) {
            return None;
        }
        // The key it was issued for must still be configured, with the same binding.
        let key = self
            .evaluation
            .iter()
            .find(|k| key_id_of(&k.digest) == data.claims.kid)?;
        (key.env.as_deref() == data.claims.env.as_deref()).then(|| {
            (
                Caller::Evaluation {
                    env: key.env.clone(),
                },
                key.digest,
            )
        })
    }

    /// A caller of the bulk OFREP endpoint, checked once, and (with `ticket`) a stream ticket
    /// for its credential (see [`super::ticket`]); no ticket when evaluation is open (streams
    /// need no credential then).
    pub(crate) fn bulk_caller(
        &self,
        headers: &HeaderMap,
        ticket: bool,
    ) -> Result<(Caller, Option<String>), Denied> {
        if self.evaluation.is_empty() {
            return Ok((Caller::Anonymous, None));
        }
        let presented = credential(headers).ok_or(Denied::Unauthenticated)?;
        let (caller, digest) = self
            .identify_key(presented)
            .ok_or(Denied::Unauthenticated)?;
        let ticket = ticket.then(|| {
            let kid = key_id_of(&digest);
            let claims = super::ticket::TicketClaims {
                kid: &kid,
                env: caller.bound_env().map(|e| &**e),
            };
            let secret = super::ticket::key_secret(&self.ticket_base, &digest);
            super::ticket::issue(&secret, &claims, now_secs(), self.ticket_ttl)
        });
        Ok((caller, ticket))
    }

    /// The caller a stream ticket stands for: the key it names, if that key is still configured
    /// with the same environment, and the ticket is in date and untampered.
    pub(crate) fn ticket_caller(&self, ticket: &str) -> Result<Caller, Denied> {
        let key_for = |kid: &str| {
            let (digest, env) = self
                .evaluation
                .iter()
                .map(|k| (k.digest, k.env.as_deref().map(String::from)))
                .chain(self.admin.iter().map(|d| (*d, None)))
                .find(|(d, _)| key_id_of(d) == kid)?;
            Some((super::ticket::key_secret(&self.ticket_base, &digest), env))
        };
        let kid = super::ticket::verify(ticket, now_secs(), self.ticket_ttl, key_for)
            .ok_or(Denied::Unauthenticated)?;
        let env = self
            .evaluation
            .iter()
            .find(|k| key_id_of(&k.digest) == kid)
            .and_then(|k| k.env.clone());
        Ok(Caller::Evaluation { env })
    }

    fn is_admin(&self, d: &Digest) -> bool {
        // Compare against every key, without stopping at the first match.
        self.admin
            .iter()
            .fold(false, |hit, k| hit | verify_slices_are_equal(k, d).is_ok())
    }

    fn find_eval(&self, d: &Digest) -> Option<&EvalKey> {
        self.evaluation
            .iter()
            .fold(None, |hit, k| match verify_slices_are_equal(&k.digest, d) {
                Ok(()) => Some(k),
                Err(_) => hit,
            })
    }
}

/// `X-API-Key`, else `Authorization: Bearer …`.
fn credential(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim()).filter(|v| !v.is_empty());
    }
    let auth = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = auth.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// RFC 7519 §7.2: a token's header and claims must each be UTF-8 JSON. serde skips members it
/// does not know without validating their strings, so a correctly signed token with a stray
/// non-UTF-8 byte in an unknown member would pass `jsonwebtoken::decode` (found by the
/// bearer_token fuzz target). Only the relay's secret could sign one, but it is not a token the
/// relay issued, so it is refused. Runs after the signature check: forged tokens never get here.
fn header_and_claims_are_utf8(token: &str) -> bool {
    use base64::Engine;
    token.split('.').take(2).all(|part| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .is_ok_and(|bytes| std::str::from_utf8(&bytes).is_ok())
    })
}

fn looks_like_jwt(s: &str) -> bool {
    s.len() > 20 && s.bytes().filter(|&b| b == b'.').count() == 2
}

fn stored_digest(key: &Secret, at: &str) -> Result<Digest, ConfigError> {
    let k = key.expose();
    match k.strip_prefix("sha256:") {
        Some(hex) => decode_hex32(hex).ok_or_else(|| ConfigError::Invalid {
            key: at.to_owned(),
            message: "a sha256: key must be followed by 64 hex digits".into(),
        }),
        None => Ok(sha256(k.as_bytes())),
    }
}

fn decode_hex32(hex: &str) -> Option<Digest> {
    let hex = hex.trim();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in hex.as_bytes().chunks(2).enumerate() {
        let s = std::str::from_utf8(chunk).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

fn sha256(bytes: &[u8]) -> Digest {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}

fn key_id_of(d: &Digest) -> String {
    crate::shared::hex(&d[..6])
}

/// A short label for a credential, safe to log: the first 12 hex digits of its SHA-256.
pub fn key_id(credential: &str) -> String {
    key_id_of(&sha256(credential.as_bytes()))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EvaluationKey;
    use axum::http::HeaderValue;

    const SECRET: &str = "0123456789abcdef0123456789abcdef-secret";

    fn auth() -> Auth {
        let keys = AuthorizedKeys {
            evaluation: vec![
                EvaluationKey {
                    key: Secret("eval-plain".into()),
                    env: None,
                },
                EvaluationKey {
                    key: Secret(format!(
                        "sha256:{}",
                        crate::shared::hex(&sha256(b"eval-staging"))
                    )),
                    env: Some("staging".into()),
                },
            ],
            admin: vec![Secret("admin-key".into())],
        };
        Auth::new(&keys, Some(&Secret(SECRET.into())), 60).unwrap()
    }

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn keys_and_kinds() {
        let a = auth();
        let none = HeaderMap::new();
        assert_eq!(
            a.evaluation_caller(&none, None),
            Err(Denied::Unauthenticated)
        );
        assert_eq!(
            a.evaluation_caller(&headers("x-api-key", "eval-plain"), None),
            Ok(Caller::Evaluation { env: None })
        );
        assert_eq!(
            a.evaluation_caller(&headers("authorization", "Bearer eval-staging"), None),
            Ok(Caller::Evaluation {
                env: Some("staging".into())
            })
        );
        assert_eq!(
            a.evaluation_caller(&none, Some("eval-plain")),
            Ok(Caller::Evaluation { env: None })
        );
        assert_eq!(
            a.evaluation_caller(&headers("x-api-key", "admin-key"), None),
            Ok(Caller::Admin)
        );
        assert_eq!(
            a.evaluation_caller(&headers("x-api-key", "nope"), None),
            Err(Denied::Unauthenticated)
        );
        assert_eq!(
            a.admin_caller(&headers("x-api-key", "eval-plain")),
            Err(Denied::Forbidden)
        );
        assert_eq!(
            a.admin_caller(&headers("x-api-key", "admin-key")),
            Ok(Caller::Admin)
        );
        assert_eq!(
            Auth::open().admin_caller(&headers("x-api-key", "x")),
            Err(Denied::Unauthenticated)
        );
        assert_eq!(
            Auth::open().evaluation_caller(&none, None),
            Ok(Caller::Anonymous)
        );
    }

    #[test]
    fn tokens_carry_the_environment_and_reject_tampering() {
        let a = auth();
        let (token, ttl) = a.issue_token("eval-staging").unwrap();
        assert_eq!(ttl, 60);
        let bearer = headers("authorization", &format!("Bearer {token}"));
        assert_eq!(
            a.evaluation_caller(&bearer, None),
            Ok(Caller::Evaluation {
                env: Some("staging".into())
            })
        );
        // Flip a character of the signature.
        let mut forged = token.clone();
        let last = forged.pop().unwrap();
        forged.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(
            a.evaluation_caller(&headers("authorization", &format!("Bearer {forged}")), None),
            Err(Denied::Unauthenticated)
        );
        // Signed with another secret.
        let other = Auth::new(
            &AuthorizedKeys {
                evaluation: vec![EvaluationKey {
                    key: Secret("eval-staging".into()),
                    env: Some("staging".into()),
                }],
                admin: vec![],
            },
            Some(&Secret("another-secret-another-secret-0123".into())),
            60,
        )
        .unwrap();
        let (foreign, _) = other.issue_token("eval-staging").unwrap();
        assert_eq!(
            a.evaluation_caller(
                &headers("authorization", &format!("Bearer {foreign}")),
                None
            ),
            Err(Denied::Unauthenticated)
        );
        assert_eq!(a.issue_token("unknown"), Err(Denied::Unauthenticated));
        assert_eq!(a.issue_token("admin-key"), Err(Denied::Forbidden));
        // Tokens are not admin credentials.
        assert_eq!(a.admin_caller(&bearer), Err(Denied::Forbidden));
    }

    #[test]
    fn expired_tokens_are_rejected() {
        let a = auth();
        let jwt = a.jwt.as_ref().unwrap();
        let claims = Claims {
            kid: key_id_of(&sha256(b"eval-plain")),
            env: None,
            iat: now_secs() - 120,
            exp: now_secs() - 60,
        };
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &jwt.encoding).unwrap();
        assert_eq!(
            a.evaluation_caller(&headers("authorization", &format!("Bearer {token}")), None),
            Err(Denied::Unauthenticated)
        );
    }

    #[test]
    fn bad_sha256_keys_are_config_errors() {
        let keys = AuthorizedKeys {
            evaluation: vec![],
            admin: vec![Secret("sha256:xyz".into())],
        };
        let e = Auth::new(&keys, None, 60).unwrap_err().to_string();
        assert!(e.contains("authorizedKeys.admin[0]"), "{e}");
    }
}
