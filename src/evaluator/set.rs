//! A flag set's rules compiled for the bulk answer: every flag evaluated for one caller.
//!
//! Walking each flag's allow lists was a third of a bulk evaluation (`View::contains` and the
//! list headers, 5.6 % of a bulk request's CPU against 9.5 % for the rest of the loop). Here
//! the lists are turned around at load time: for each user, tenant and environment named
//! anywhere, the ascending positions of the flags that name it. A request then looks its three
//! names up once and walks those (nearly always empty or short) position lists beside the
//! flags, so a flag costs a few compares however long its lists are, and the per-flag facts the
//! chain needs sit in 8 bytes instead of a stride through the entries.

use std::hash::BuildHasher;

use fnv::{FnvBuildHasher, FnvHashMap};
use hashbrown::HashTable;

use super::{FNV_PRIME, Outcome, Reason, Rules, Subject, fnv1a, split};

/// What the chain needs of one flag besides its allow lists.
#[derive(Debug, Clone, Copy)]
struct Flag {
    /// FNV-1a state after `salt 0x00 key 0x00` (see [`Rules`]).
    hash_prefix: u32,
    rollout: u8,
    enabled: bool,
    lists: Named,
    fixed_reason: Reason,
}

/// Whether a flag's position can be in the inverted lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Named {
    /// No allow list and no environment gate (most flags): the walk skips the lists.
    Nowhere,
    AllowLists,
    /// An environment gate too: callers in no environment it names are off.
    Gated,
}

/// Every flag of a set, in the set's order, ready for [`SetRules::evaluate_all`].
#[derive(Debug, Default)]
pub struct SetRules {
    flags: Box<[Flag]>,
    /// How many flags the rollout can decide (enabled, rollout neither 0 nor 100).
    rolled: usize,
    envs: Inverted,
    users: Inverted,
    tenants: Inverted,
}

impl SetRules {
    /// Compile `rules` (a set's, in its order; `shared` is the set's list buffer, see
    /// [`Rules::compile_into`]).
    pub fn compile<'r>(rules: impl ExactSizeIterator<Item = &'r Rules>, shared: &[u8]) -> Self {
        let mut flags = Vec::with_capacity(rules.len());
        let (mut envs, mut users, mut tenants) =
            (Names::default(), Names::default(), Names::default());
        for (i, r) in rules.enumerate() {
            let at = u32::try_from(i).expect("fewer than 2^32 flags");
            let mut lists = Named::Nowhere;
            if let Some([e, u, t]) = r.views(shared) {
                lists = if e.is_empty() {
                    Named::AllowLists
                } else {
                    Named::Gated
                };
                e.for_each(|name| envs.add(name, at));
                u.for_each(|name| users.add(name, at));
                t.for_each(|name| tenants.add(name, at));
            }
            flags.push(Flag {
                hash_prefix: r.hash_prefix,
                rollout: r.rollout,
                enabled: r.enabled,
                lists,
                fixed_reason: r.fixed_reason,
            });
        }
        let rolled = flags
            .iter()
            .filter(|f| f.enabled && f.rollout % 100 != 0)
            .count();
        SetRules {
            rolled,
            flags: flags.into(),
            envs: envs.freeze(),
            users: users.freeze(),
            tenants: tenants.freeze(),
        }
    }

    /// Every flag's outcome for `s`, in order, exactly as [`Rules::evaluate_in`] gives each.
    pub fn evaluate_all(&self, s: &Subject<'_>) -> Vec<Outcome> {
        let subject = s.rollout_subject();
        if self.rolled >= REHASH_FROM {
            let rehash = Rehash::new(subject);
            self.walk(s, |prefix| rehash.hash(prefix))
        } else {
            self.walk(s, |prefix| fnv1a(prefix, subject))
        }
    }

    /// The chain over every flag, `hash` giving the rollout hash from a flag's prefix.
    #[inline(always)]
    fn walk(&self, s: &Subject<'_>, hash: impl Fn(u32) -> u32) -> Vec<Outcome> {
        // The flags naming this caller's environment, user and tenant, ascending; an empty
        // user or tenant matches no allow list (an environment gate may name "").
        let mut envs = self.envs.get(s.env.as_bytes());
        let mut users = if s.user.is_empty() {
            &[][..]
        } else {
            self.users.get(s.user.as_bytes())
        };
        let mut tenants = if s.tenant.is_empty() {
            &[][..]
        } else {
            self.tenants.get(s.tenant.as_bytes())
        };
        let mut out = Vec::with_capacity(self.flags.len());
        for (i, f) in self.flags.iter().enumerate() {
            // What the lists say: `Some(on)` when they decide. A flag they name is stepped
            // past in every list whatever decides it, so that the next flag sees its own.
            let listed = match f.lists {
                Named::Nowhere => None,
                lists => {
                    let at = i as u32;
                    let in_env = next_is(&mut envs, at);
                    let named = next_is(&mut users, at) | next_is(&mut tenants, at);
                    if lists == Named::Gated && !in_env {
                        // The environment gate is outermost: allow lists do not reach outside.
                        Some(false)
                    } else {
                        named.then_some(true)
                    }
                }
            };
            let decided = |on, reason| Outcome { on, reason };
            out.push(if !f.enabled {
                decided(false, Reason::Disabled)
            } else if let Some(on) = listed {
                decided(on, Reason::TargetingMatch)
            } else if f.rollout == 0 || f.rollout == 100 {
                decided(f.rollout == 100, f.fixed_reason)
            } else {
                split(hash(f.hash_prefix) % 100, f.rollout)
            });
        }
        out
    }
}

/// Whether the ascending `list` goes on with `at`, stepping past it if so.
#[inline(always)]
fn next_is(list: &mut &[u32], at: u32) -> bool {
    match list.split_first() {
        Some((&first, rest)) if first == at => {
            *list = rest;
            true
        }
        _ => false,
    }
}

/// From this many flags whose rollout can decide, a bulk answer hashes through [`Rehash`].
const REHASH_FROM: usize = 256;

/// FNV-1a of one subject from any starting state, at one multiply and one lookup a flag.
///
/// FNV-1a steps `h = (h ^ b) * P`. The XOR only touches the low byte, so it adds
/// `d = (h ^ b) - h`, which depends on nothing but `h`'s low byte and `b`; and a product's
/// low byte depends only on its factors' low bytes. So the low bytes, and with them every
/// `d`, follow from the start's low byte alone, and for `n` subject bytes
/// `fnv(start) = start * P^n + fnv(start & 0xff) - (start & 0xff) * P^n` (all mod 2^32).
/// The 256 hashes on the right are the request's work, instead of one per flag: a bulk answer
/// of 1,000 flags hashed about 850 and spent half its evaluation time in those multiplies.
struct Rehash {
    /// `P^n`.
    scale: u32,
    /// `fnv(c) - c * P^n` for each low byte `c`.
    offset: [u32; 256],
}

impl Rehash {
    fn new(subject: &[u8]) -> Rehash {
        let scale = subject.iter().fold(1u32, |p, _| p.wrapping_mul(FNV_PRIME));
        let mut offset = [0u32; 256];
        // Eight hashes side by side: each is a chain of dependent multiplies that alone would
        // leave the multiplier waiting.
        for (c, chunk) in (0u32..).step_by(8).zip(offset.chunks_exact_mut(8)) {
            let mut h: [u32; 8] = std::array::from_fn(|j| c + j as u32);
            for &b in subject {
                for h in &mut h {
                    *h = (*h ^ u32::from(b)).wrapping_mul(FNV_PRIME);
                }
            }
            for (j, (slot, h)) in chunk.iter_mut().zip(h).enumerate() {
                *slot = h.wrapping_sub((c + j as u32).wrapping_mul(scale));
            }
        }
        Rehash { scale, offset }
    }

    #[inline(always)]
    fn hash(&self, start: u32) -> u32 {
        start
            .wrapping_mul(self.scale)
            .wrapping_add(self.offset[(start & 0xff) as usize])
    }
}

/// Positions of flags by the names in one kind of their lists, while compiling.
#[derive(Default)]
struct Names<'a>(FnvHashMap<&'a [u8], Vec<u32>>);

impl<'a> Names<'a> {
    fn add(&mut self, name: &'a [u8], at: u32) {
        let positions = self.0.entry(name).or_default();
        // A name twice in one list is one position: the walk steps past each flag once.
        if positions.last() != Some(&at) {
            positions.push(at);
        }
    }

    /// One buffer of names, one of positions and a table of both, not an allocation per
    /// name: a set's small allocations are what a refresh leaves scattered over the heap.
    fn freeze(self) -> Inverted {
        let mut names = Vec::with_capacity(self.0.keys().map(|k| k.len()).sum());
        let mut positions = Vec::with_capacity(self.0.values().map(Vec::len).sum());
        let mut table = HashTable::with_capacity(self.0.len());
        for (name, at) in &self.0 {
            let slot = Slot {
                name: span(names.len(), name.len()),
                positions: span(positions.len(), at.len()),
            };
            names.extend_from_slice(name);
            positions.extend_from_slice(at);
            table.insert_unique(name_hash(name), slot, |s| name_hash(&names[s.name.range()]));
        }
        Inverted {
            names: names.into(),
            positions: positions.into(),
            table,
        }
    }
}

/// Names and, for each, the ascending positions of the flags whose list names it.
#[derive(Debug, Default)]
struct Inverted {
    names: Box<[u8]>,
    positions: Box<[u32]>,
    table: HashTable<Slot>,
}

impl Inverted {
    #[inline]
    fn get(&self, name: &[u8]) -> &[u32] {
        if self.table.is_empty() {
            return &[];
        }
        self.table
            .find(name_hash(name), |s| &self.names[s.name.range()] == name)
            .map_or(&[], |s| &self.positions[s.positions.range()])
    }
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    name: Span,
    positions: Span,
}

#[derive(Debug, Clone, Copy)]
struct Span {
    at: u32,
    len: u32,
}

impl Span {
    fn range(self) -> std::ops::Range<usize> {
        self.at as usize..(self.at + self.len) as usize
    }
}

fn span(at: usize, len: usize) -> Span {
    let fit = |n: usize| u32::try_from(n).expect("a flag set's lists fit in 4 GiB");
    Span {
        at: fit(at),
        len: fit(len),
    }
}

fn name_hash(name: &[u8]) -> u64 {
    FnvBuildHasher::default().hash_one(name)
}

#[cfg(test)]
mod tests {
    use super::super::tests::flag;
    use super::*;

    fn subject<'a>(user: &'a str, tenant: &'a str, env: &'a str) -> Subject<'a> {
        Subject { user, tenant, env }
    }

    /// Every flag gets what `evaluate_in` gives it, whatever decides it, in sets hashed flag
    /// by flag and through [`Rehash`], with lists packed in the set's buffer, compiled on their
    /// own and too long to pack; with names twice in a list and empty names.
    #[test]
    fn evaluate_all_is_evaluate_in_for_every_flag() {
        let mut shared = Vec::new();
        let mut rules = Vec::new();
        for i in 0..700usize {
            let d = flag(|d| {
                d.enabled = i % 11 != 0;
                d.rollout = ((i * 37) % 101) as i64;
                if i % 10 == 0 {
                    d.users = vec![format!("user-{}", i % 7), "alice".into(), "alice".into()];
                }
                if i % 13 == 0 {
                    // Too many to pack: hashed.
                    d.users = (0..40).map(|u| format!("user-{}", (u + i) % 9)).collect();
                }
                if i % 7 == 0 {
                    d.tenants = vec![format!("tenant-{}", i % 5), String::new()];
                }
                if i % 5 == 0 {
                    d.envs = vec!["production".into()];
                }
                if i % 17 == 0 {
                    d.envs = vec![String::new(), "staging".into()];
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
        let (mut splits, mut matches) = (0, 0);
        for n in [0, 1, 2, 5, 103, 700] {
            let set = SetRules::compile(rules[..n].iter(), &shared);
            assert_eq!(set.rolled >= REHASH_FROM, n == 700);
            for u in 0..40 {
                let user = format!("user-{u}");
                let tenant = format!("tenant-{}", u % 6);
                for s in [
                    subject(&user, &tenant, "production"),
                    subject("", &tenant, "staging"),
                    subject("alice", "", ""),
                    subject("", "", ""),
                ] {
                    let all = set.evaluate_all(&s);
                    let each: Vec<Outcome> = rules[..n]
                        .iter()
                        .map(|r| r.evaluate_in(&shared, &s))
                        .collect();
                    assert_eq!(all, each, "{n} flags, {s:?}");
                    splits += each.iter().filter(|o| o.reason == Reason::Split).count();
                    matches += each
                        .iter()
                        .filter(|o| o.reason == Reason::TargetingMatch && o.on)
                        .count();
                }
            }
        }
        assert!(splits > 1000, "the rollouts decide often enough: {splits}");
        assert!(
            matches > 150,
            "the allow lists decide often enough: {matches}"
        );
    }

    /// The table gives FNV-1a from any start, for subjects of every length the table sees.
    #[test]
    fn rehash_is_fnv1a_from_any_start() {
        let long = "x".repeat(300);
        let starts = [
            0,
            1,
            0xff,
            0x100,
            super::super::FNV_OFFSET,
            0xdead_beef,
            u32::MAX,
        ];
        for bytes in [
            &b""[..],
            b"a",
            b"user-1234",
            "é-ü".as_bytes(),
            long.as_bytes(),
        ] {
            let rehash = Rehash::new(bytes);
            for start in starts
                .into_iter()
                .chain((0..5000u32).map(|i| i.wrapping_mul(0x9e37_79b9)))
            {
                assert_eq!(
                    rehash.hash(start),
                    fnv1a(start, bytes),
                    "{start:#x} {bytes:?}"
                );
            }
        }
    }

    #[test]
    fn names_nobody_lists_find_no_flag() {
        let d = flag(|d| {
            d.enabled = true;
            d.users = vec!["a".into()];
        });
        let rules = [Rules::compile("k", &d, None)];
        let set = SetRules::compile(rules.iter(), &[]);
        assert_eq!(set.users.get(b"a"), &[0]);
        assert!(set.users.get(b"b").is_empty());
        assert!(set.tenants.get(b"a").is_empty());
    }
}
