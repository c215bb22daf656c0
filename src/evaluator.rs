//! The rule chain of `shared/spec/evaluation.md`, compiled once per flag at load time.
//!
//! [`Rules::compile`] does everything that does not depend on the caller: short allow lists are
//! packed into bytes and long ones become hash sets, the rollout is clamped, and the FNV-1a
//! state after `salt 0x00 key 0x00` is precomputed. [`Rules::evaluate`] is then a few
//! comparisons and one short hash, with no allocation, whatever the size of the allow lists;
//! [`SetRules`] runs a whole set for one caller, its allow lists turned around by name. The allow
//! lists are in `lists`.

use crate::parse::FlagDef;

mod lists;
use lists::{AllowList, Lists, ListsAt, View, pack, packable, shared_views};
mod set;
pub use set::SetRules;

const FNV_OFFSET: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;

/// Who is asking: user, tenant and environment, each empty when absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Subject<'a> {
    pub user: &'a str,
    pub tenant: &'a str,
    pub env: &'a str,
}

/// Why a flag evaluated as it did (OFREP reason codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    Disabled,
    TargetingMatch,
    Static,
    Default,
    Split,
}

impl Reason {
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::Disabled => "DISABLED",
            Reason::TargetingMatch => "TARGETING_MATCH",
            Reason::Static => "STATIC",
            Reason::Default => "DEFAULT",
            Reason::Split => "SPLIT",
        }
    }
}

/// The result of the chain: on or off, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub on: bool,
    pub reason: Reason,
}

impl Outcome {
    /// One byte that tells outcomes apart (the bulk answer's ETag is computed over these).
    #[inline]
    pub(crate) const fn code(self) -> u8 {
        (self.reason as u8) << 1 | self.on as u8
    }
}

/// One flag's rule chain, ready to evaluate.
#[derive(Debug, Clone)]
pub struct Rules {
    enabled: bool,
    rollout: u8,
    lists: ListsAt,
    /// Reason when the rollout is 0 or 100: STATIC if nothing about the caller can matter.
    fixed_reason: Reason,
    /// FNV-1a state after hashing `salt 0x00` (when salted) and `key 0x00`.
    hash_prefix: u32,
}

impl Rules {
    /// Compile a flag on its own. `salt` is the relay's `rolloutSalt`; `None` or empty means
    /// unsalted.
    pub fn compile(key: &str, def: &FlagDef, salt: Option<&str>) -> Rules {
        Rules::compile_into(key, def, salt, None)
    }

    /// Compile a flag of a set, packing its allow lists into the set's `shared` buffer when
    /// they fit (evaluate with [`Rules::evaluate_in`] over that buffer).
    pub(crate) fn compile_into(
        key: &str,
        def: &FlagDef,
        salt: Option<&str>,
        shared: Option<&mut Vec<u8>>,
    ) -> Rules {
        let mut h = FNV_OFFSET;
        if let Some(salt) = salt.filter(|s| !s.is_empty()) {
            h = fnv1a(h, salt.as_bytes());
            h = fnv1a(h, &[0]);
        }
        h = fnv1a(h, key.as_bytes());
        h = fnv1a(h, &[0]);
        let lists = [&def.envs, &def.users, &def.tenants];
        let targets_nobody = lists.iter().all(|l| l.is_empty());
        let lists = match shared {
            _ if targets_nobody => ListsAt::None,
            Some(buf) if lists.iter().all(|l| packable(l)) => {
                let at = u32::try_from(buf.len()).expect("a flag set's lists fit in 4 GiB");
                for l in lists {
                    let len_at = buf.len();
                    buf.extend_from_slice(&[0, 0]);
                    pack(l, buf);
                    let len = u16::try_from(buf.len() - len_at - 2).expect("32 × 256 bytes");
                    buf[len_at..len_at + 2].copy_from_slice(&len.to_le_bytes());
                }
                ListsAt::Shared(at)
            }
            _ => ListsAt::Own(Box::new(Lists {
                users: AllowList::new(&def.users),
                tenants: AllowList::new(&def.tenants),
                envs: AllowList::new(&def.envs),
            })),
        };
        Rules {
            enabled: def.enabled,
            rollout: def.rollout.clamp(0, 100) as u8,
            lists,
            fixed_reason: if targets_nobody {
                Reason::Static
            } else {
                Reason::Default
            },
            hash_prefix: h,
        }
    }

    /// Run the chain of a flag compiled on its own; first match wins.
    #[inline]
    pub fn evaluate(&self, s: &Subject<'_>) -> Outcome {
        self.evaluate_in(&[], s)
    }

    /// Run the chain with the set's `shared` list buffer (see [`Rules::compile_into`]); first
    /// match wins.
    #[inline]
    pub(crate) fn evaluate_in(&self, shared: &[u8], s: &Subject<'_>) -> Outcome {
        let out = |on, reason| Outcome { on, reason };
        if !self.enabled {
            return out(false, Reason::Disabled);
        }
        if let Some([envs, users, tenants]) = self.views(shared) {
            // The environment gate is outermost: allow lists do not reach outside it.
            if !envs.is_empty() && !envs.contains(s.env) {
                return out(false, Reason::TargetingMatch);
            }
            if !s.user.is_empty() && users.contains(s.user) {
                return out(true, Reason::TargetingMatch);
            }
            if !s.tenant.is_empty() && tenants.contains(s.tenant) {
                return out(true, Reason::TargetingMatch);
            }
        }
        match self.rollout {
            0 => out(false, self.fixed_reason),
            100 => out(true, self.fixed_reason),
            r => split(self.bucket(s), r),
        }
    }

    /// The environment gate, user and tenant allow lists, if the flag has any.
    #[inline(always)]
    fn views<'a>(&'a self, shared: &'a [u8]) -> Option<[View<'a>; 3]> {
        match &self.lists {
            ListsAt::None => None,
            ListsAt::Own(l) => Some([l.envs.view(), l.users.view(), l.tenants.view()]),
            ListsAt::Shared(at) => Some(shared_views(shared, *at as usize)),
        }
    }

    /// `FNV-1a-32(salt 0x00 key 0x00 subject) mod 100`; subject is user, else tenant, else "".
    #[inline]
    pub(crate) fn bucket(&self, s: &Subject<'_>) -> u32 {
        fnv1a(self.hash_prefix, s.rollout_subject()) % 100
    }
}

impl Subject<'_> {
    /// What the rollout hashes: the user, else the tenant, else nothing.
    #[inline]
    fn rollout_subject(&self) -> &[u8] {
        if !self.user.is_empty() {
            self.user
        } else {
            self.tenant
        }
        .as_bytes()
    }
}

#[inline]
fn split(bucket: u32, rollout: u8) -> Outcome {
    Outcome {
        on: bucket < u32::from(rollout),
        reason: Reason::Split,
    }
}

#[inline]
fn fnv1a(mut h: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn flag(f: impl FnOnce(&mut FlagDef)) -> FlagDef {
        let mut d: FlagDef = serde_json::from_str("{}").unwrap();
        f(&mut d);
        d
    }

    fn subject<'a>(user: &'a str, tenant: &'a str, env: &'a str) -> Subject<'a> {
        Subject { user, tenant, env }
    }

    #[test]
    fn fnv1a_matches_published_vectors() {
        // From the FNV reference test suite.
        assert_eq!(fnv1a(FNV_OFFSET, b""), 0x811c9dc5);
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xe40c292c);
        assert_eq!(fnv1a(FNV_OFFSET, b"foobar"), 0xbf9cf968);
    }

    #[test]
    fn bucket_hashes_salt_key_and_subject() {
        let d = flag(|d| d.enabled = true);
        let unsalted = Rules::compile("k", &d, None);
        assert_eq!(
            unsalted.bucket(&subject("u", "t", "")),
            fnv1a(FNV_OFFSET, b"k\0u") % 100
        );
        // No user: the tenant is the subject; neither: the empty string.
        assert_eq!(
            unsalted.bucket(&subject("", "t", "")),
            fnv1a(FNV_OFFSET, b"k\0t") % 100
        );
        assert_eq!(
            unsalted.bucket(&subject("", "", "")),
            fnv1a(FNV_OFFSET, b"k\0") % 100
        );
        let salted = Rules::compile("k", &d, Some("s"));
        assert_eq!(
            salted.bucket(&subject("u", "", "")),
            fnv1a(FNV_OFFSET, b"s\0k\0u") % 100
        );
        // An empty salt is no salt.
        let empty = Rules::compile("k", &d, Some(""));
        assert_eq!(empty.hash_prefix, unsalted.hash_prefix);
    }

    #[test]
    fn reasons_in_chain_order() {
        let d = flag(|d| {
            d.enabled = true;
            d.envs = vec!["prod".into()];
            d.users = vec!["alice".into()];
            d.tenants = vec!["acme".into()];
            d.rollout = 0;
        });
        let r = Rules::compile("f", &d, None);
        let eval = |u, t, e| r.evaluate(&subject(u, t, e));
        // Env gate is outermost, even for an allow-listed user.
        assert_eq!(
            eval("alice", "", "dev"),
            Outcome {
                on: false,
                reason: Reason::TargetingMatch
            }
        );
        assert_eq!(
            eval("alice", "", "prod"),
            Outcome {
                on: true,
                reason: Reason::TargetingMatch
            }
        );
        assert_eq!(
            eval("bob", "acme", "prod"),
            Outcome {
                on: true,
                reason: Reason::TargetingMatch
            }
        );
        // Targeting exists, so a fixed rollout is DEFAULT rather than STATIC.
        assert_eq!(
            eval("bob", "other", "prod"),
            Outcome {
                on: false,
                reason: Reason::Default
            }
        );
        // Env comparison is case-sensitive.
        assert_eq!(eval("alice", "", "PROD").reason, Reason::TargetingMatch);
        assert!(!eval("alice", "", "PROD").on);

        let disabled = Rules::compile("f", &flag(|d| d.users = vec!["alice".into()]), None);
        assert_eq!(
            disabled.evaluate(&subject("alice", "", "")).reason,
            Reason::Disabled
        );
    }

    #[test]
    fn static_only_when_nothing_targets() {
        let all = Rules::compile(
            "f",
            &flag(|d| {
                d.enabled = true;
                d.rollout = 100
            }),
            None,
        );
        assert_eq!(
            all.evaluate(&subject("x", "", "")),
            Outcome {
                on: true,
                reason: Reason::Static
            }
        );
        let none = Rules::compile("f", &flag(|d| d.enabled = true), None);
        assert_eq!(
            none.evaluate(&subject("x", "", "")),
            Outcome {
                on: false,
                reason: Reason::Static
            }
        );
    }

    #[test]
    fn rollout_clamps_and_splits() {
        let over = Rules::compile(
            "f",
            &flag(|d| {
                d.enabled = true;
                d.rollout = 250
            }),
            None,
        );
        assert!(over.evaluate(&subject("x", "", "")).on);
        let split = Rules::compile(
            "f",
            &flag(|d| {
                d.enabled = true;
                d.rollout = 50
            }),
            None,
        );
        let mut on = 0;
        for i in 0..2000 {
            let u = format!("user-{i}");
            let o = split.evaluate(&subject(&u, "", ""));
            assert_eq!(o.reason, Reason::Split);
            assert_eq!(o.on, split.bucket(&subject(&u, "", "")) < 50);
            on += usize::from(o.on);
        }
        // FNV-1a mod 100 spreads users roughly evenly.
        assert!((800..1200).contains(&on), "{on} of 2000 on at 50%");
    }
}
