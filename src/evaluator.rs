//! The rule chain of `shared/spec/evaluation.md`, compiled once per flag at load time.
//!
//! [`Rules::compile`] does everything that does not depend on the caller: short allow lists are
//! packed into bytes and long ones become hash sets, the rollout is clamped, and the FNV-1a
//! state after `salt 0x00 key 0x00` is precomputed. [`Rules::evaluate`] is then a few
//! comparisons and one short hash, with no allocation, whatever the size of the allow lists;
//! [`evaluate_all`] runs a whole set for one caller, four rollout hashes at a time. The allow
//! lists are in `lists`.

use crate::parse::FlagDef;

mod lists;
use lists::{AllowList, Lists, ListsAt, pack, packable, shared_views};

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

    /// Run the chain with the set's `shared` list buffer (see [`Rules::compile_into`]).
    #[inline]
    pub(crate) fn evaluate_in(&self, shared: &[u8], s: &Subject<'_>) -> Outcome {
        match self.before_rollout(shared, s) {
            Ok(outcome) => outcome,
            Err(rollout) => split(self.bucket(s), rollout),
        }
    }

    /// The chain up to the rollout: the outcome, or `Err(rollout)` when the caller's bucket
    /// decides it. Inlined into `evaluate_all`'s loop, where a call per flag showed as 5 % of
    /// a bulk request's CPU.
    #[inline(always)]
    fn before_rollout(&self, shared: &[u8], s: &Subject<'_>) -> Result<Outcome, u8> {
        let out = |on, reason| Ok(Outcome { on, reason });
        if !self.enabled {
            return out(false, Reason::Disabled);
        }
        let lists = match &self.lists {
            ListsAt::None => None,
            ListsAt::Own(l) => Some([l.envs.view(), l.users.view(), l.tenants.view()]),
            ListsAt::Shared(at) => Some(shared_views(shared, *at as usize)),
        };
        if let Some([envs, users, tenants]) = lists {
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
            r => Err(r),
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

/// How many rollout hashes run side by side in [`evaluate_all`]. Each is a chain of dependent
/// multiplies (about four cycles a byte); four chains keep the multiplier busy where one
/// leaves it waiting.
const LANES: usize = 4;

/// Every flag's outcome for `s`, in order, exactly as [`Rules::evaluate_in`] gives each: the
/// bulk answer's thousand evaluations. Flags whose rollout decides are hashed [`LANES`] at a
/// time. `cargo bench --bench evaluate -- all_1000`: 8.3 µs against 8.9 µs one by one (the
/// processor already overlaps some of the chains on its own).
pub fn evaluate_all<'r>(
    rules: impl ExactSizeIterator<Item = &'r Rules>,
    shared: &[u8],
    s: &Subject<'_>,
) -> Vec<Outcome> {
    let subject = s.rollout_subject();
    let mut out = Vec::with_capacity(rules.len());
    // Flags waiting for their hash: position, hash prefix, rollout.
    let mut waiting = [(0usize, 0u32, 0u8); LANES];
    let mut n = 0;
    for (i, r) in rules.enumerate() {
        match r.before_rollout(shared, s) {
            Ok(outcome) => out.push(outcome),
            Err(rollout) => {
                // A place for the outcome, filled in when its hash is known.
                out.push(split(0, 0));
                waiting[n] = (i, r.hash_prefix, rollout);
                n += 1;
                if n == LANES {
                    let h = fnv1a_lanes(waiting.map(|w| w.1), subject);
                    for (&(at, _, rollout), h) in waiting.iter().zip(h) {
                        out[at] = split(h % 100, rollout);
                    }
                    n = 0;
                }
            }
        }
    }
    for &(at, prefix, rollout) in &waiting[..n] {
        out[at] = split(fnv1a(prefix, subject) % 100, rollout);
    }
    out
}

#[inline]
fn fnv1a(mut h: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// [`fnv1a`] of the same bytes from [`LANES`] states at once.
#[inline]
fn fnv1a_lanes(mut h: [u32; LANES], bytes: &[u8]) -> [u32; LANES] {
    for &b in bytes {
        for h in &mut h {
            *h = (*h ^ u32::from(b)).wrapping_mul(FNV_PRIME);
        }
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

    /// `evaluate_all` gives each flag what `evaluate_in` gives it, whatever decides it and
    /// however many flags wait for a hash when the set ends (0 to 3 left over).
    #[test]
    fn evaluate_all_is_evaluate_in_for_every_flag() {
        let mut shared = Vec::new();
        let mut rules = Vec::new();
        for i in 0..103usize {
            let d = flag(|d| {
                d.enabled = i % 11 != 0;
                d.rollout = ((i * 37) % 101) as i64;
                if i % 10 == 0 {
                    d.users = vec![format!("user-{}", i % 7), "alice".into()];
                }
                if i % 7 == 0 {
                    d.tenants = vec![format!("tenant-{}", i % 5)];
                }
                if i % 5 == 0 {
                    d.envs = vec!["production".into()];
                }
            });
            let shared = (i % 3 != 0).then_some(&mut shared);
            rules.push(Rules::compile_into(
                &format!("flag-{i}"),
                &d,
                Some("s"),
                shared,
            ));
        }
        let mut splits = 0;
        for n in [0, 1, 2, 3, 4, 5, 103] {
            for u in 0..40 {
                let user = format!("user-{u}");
                let tenant = format!("tenant-{}", u % 6);
                for s in [
                    subject(&user, &tenant, "production"),
                    subject("", &tenant, "staging"),
                    subject("", "", ""),
                ] {
                    let all = evaluate_all(rules[..n].iter(), &shared, &s);
                    let each: Vec<Outcome> = rules[..n]
                        .iter()
                        .map(|r| r.evaluate_in(&shared, &s))
                        .collect();
                    assert_eq!(all, each, "{n} flags, {s:?}");
                    splits += each.iter().filter(|o| o.reason == Reason::Split).count();
                }
            }
        }
        assert!(splits > 1000, "the rollouts decide often enough: {splits}");
    }

    #[test]
    fn fnv1a_lanes_is_fnv1a_per_lane() {
        let starts = [FNV_OFFSET, 1, 0xdead_beef, u32::MAX];
        for bytes in [&b""[..], b"a", b"user-1234", "é-ü".as_bytes()] {
            let lanes = fnv1a_lanes(starts, bytes);
            for (h, start) in lanes.iter().zip(starts) {
                assert_eq!(*h, fnv1a(start, bytes));
            }
        }
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
