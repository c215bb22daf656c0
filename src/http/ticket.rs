//! Stream tickets: how a browser, whose `EventSource` cannot send headers, opens the OFREP
//! change stream when evaluation needs a key.
//!
//! A bulk answer to an authenticated request names the stream as a URL whose query holds a
//! ticket. A ticket is not a credential: it is accepted by the stream endpoint only, it names
//! the key it was issued for by its id (never the key), and it is signed with an HMAC whose key
//! is derived from that configured key. So:
//!
//! - removing the key from the config revokes its tickets (there is nothing left to derive from);
//! - every replica with the same config issues and accepts the same tickets, with no shared
//!   state: the bulk body, which carries the ticket, stays byte-identical across replicas;
//! - the ticket depends on the time *window* it was issued in, not the second, so the bulk body
//!   and its ETag stay stable within a window. A window is half the ticket lifetime; a ticket is
//!   accepted in its own window and the next one (and one window early, for clocks a little
//!   ahead), so it lives between half and all of `streams.ticketTtl`.
//!
//! Format: `<window>.<key id>.<environment, base64url>.<HMAC-SHA256, first 128 bits, base64url>`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

const LABEL: &[u8] = b"flagrelay stream ticket v1";

/// What a ticket is signed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TicketClaims<'a> {
    pub kid: &'a str,
    pub env: Option<&'a str>,
}

/// The window a unix time falls in, for tickets living `ttl_secs`.
pub(crate) fn window(now: u64, ttl_secs: u64) -> u64 {
    now / half(ttl_secs)
}

fn half(ttl_secs: u64) -> u64 {
    (ttl_secs / 2).max(1)
}

/// Sign a ticket for `claims` in the window of `now`. `key` is the per-key signing secret.
pub(crate) fn issue(key: &[u8], claims: &TicketClaims<'_>, now: u64, ttl_secs: u64) -> String {
    let w = window(now, ttl_secs);
    let env = URL_SAFE_NO_PAD.encode(claims.env.unwrap_or_default());
    let mac = mac(key, w, claims.kid, &env);
    format!("{w}.{}.{env}.{mac}", claims.kid)
}

/// Check a ticket's shape, window and signature, and return the key id it names; `key_for`
/// gives that key's signing secret and the environment it is bound to today (None when the key
/// is gone). The environment in the ticket must still be the key's.
pub(crate) fn verify<F>(ticket: &str, now: u64, ttl_secs: u64, key_for: F) -> Option<&str>
where
    F: FnOnce(&str) -> Option<(Vec<u8>, Option<String>)>,
{
    let mut parts = ticket.split('.');
    let (w, kid, env_b64, tag) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || w.len() > 20 || kid.is_empty() || kid.len() > 64 {
        return None;
    }
    let w: u64 = w.parse().ok()?;
    let current = window(now, ttl_secs);
    // This window or the previous one; one ahead for a replica whose clock runs a little fast.
    if w.saturating_add(1) < current || w > current.saturating_add(1) {
        return None;
    }
    let (key, bound_env) = key_for(kid)?;
    let expected = mac(&key, w, kid, env_b64);
    if aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_bytes(), tag.as_bytes())
        .is_err()
    {
        return None;
    }
    let env_bytes = URL_SAFE_NO_PAD.decode(env_b64).ok()?;
    let env = std::str::from_utf8(&env_bytes).ok()?;
    let env = (!env.is_empty()).then_some(env);
    (env == bound_env.as_deref()).then_some(kid)
}

fn mac(key: &[u8], window: u64, kid: &str, env_b64: &str) -> String {
    let msg = format!("{window}\u{0}{kid}\u{0}{env_b64}");
    let tag = crate::crypto::hmac_sha256(key, msg.as_bytes());
    URL_SAFE_NO_PAD.encode(&tag[..16])
}

/// The signing secret for one configured key: derived from the key's digest and, when set,
/// `auth.jwtSecret` (so that knowing a `sha256:` digest from a config alone does not let anyone
/// mint tickets where a secret is configured).
pub(crate) fn key_secret(base: &[u8], key_digest: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(LABEL.len() + key_digest.len());
    msg.extend_from_slice(LABEL);
    msg.extend_from_slice(key_digest);
    crate::crypto::hmac_sha256(base, &msg).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: u64 = 600;

    fn key_for(env: Option<&str>) -> impl FnOnce(&str) -> Option<(Vec<u8>, Option<String>)> {
        let env = env.map(String::from);
        move |kid| (kid == "k1").then(|| (b"secret".to_vec(), env))
    }

    fn claims(env: Option<&str>) -> TicketClaims<'_> {
        TicketClaims { kid: "k1", env }
    }

    #[test]
    fn stable_within_a_window_and_valid_for_the_next() {
        let t0 = 1_000_200; // window start: 1_000_200 / 300 = 3334 exactly
        let a = issue(b"secret", &claims(None), t0, TTL);
        let b = issue(b"secret", &claims(None), t0 + 299, TTL);
        assert_eq!(a, b, "one window, one ticket");
        assert_ne!(a, issue(b"secret", &claims(None), t0 + 300, TTL));
        assert!(verify(&a, t0 + 599, TTL, key_for(None)).is_some());
        assert!(
            verify(&a, t0 + 600, TTL, key_for(None)).is_none(),
            "expired"
        );
        assert!(
            verify(&a, t0 - 300, TTL, key_for(None)).is_some(),
            "clock skew"
        );
        assert!(verify(&a, t0 - 301, TTL, key_for(None)).is_none());
    }

    #[test]
    fn refuses_tampering_other_keys_and_rebinding() {
        let now = 5_000_000;
        let t = issue(b"secret", &claims(Some("prod")), now, TTL);
        assert!(verify(&t, now, TTL, key_for(Some("prod"))).is_some());
        // The key is now bound to another environment, or gone, or signs differently.
        assert!(verify(&t, now, TTL, key_for(Some("dev"))).is_none());
        assert!(verify(&t, now, TTL, |_| None).is_none());
        assert!(
            verify(&t, now, TTL, |_| Some((
                b"other".to_vec(),
                Some("prod".into())
            )))
            .is_none()
        );
        // Every single-character change is refused.
        for i in 0..t.len() {
            let mut bytes = t.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let forged = String::from_utf8(bytes).unwrap();
            if forged != t {
                assert!(
                    verify(&forged, now, TTL, key_for(Some("prod"))).is_none(),
                    "{forged}"
                );
            }
        }
        for junk in ["", "...", "1.k1..", "x.k1.AA.AA", "1.k1.AA.AA.AA"] {
            assert!(verify(junk, now, TTL, key_for(None)).is_none(), "{junk:?}");
        }
    }

    #[test]
    fn secrets_differ_per_key_and_base() {
        assert_ne!(key_secret(b"", b"a"), key_secret(b"", b"b"));
        assert_ne!(key_secret(b"x", b"a"), key_secret(b"y", b"a"));
    }
}
