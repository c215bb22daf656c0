//! A flag's allow lists and environment gate, compiled: packed into bytes when short (nearly
//! all), hashed when long, and for a flag set packed into one shared buffer.

use std::collections::HashSet;

use fnv::FnvBuildHasher;

/// One allow list of a flag compiled on its own. Short lists, nearly all of them, are packed
/// (a length byte, then the bytes, per entry) and scanned without hashing.
#[derive(Debug, Clone)]
#[allow(
    clippy::box_collection,
    reason = "the box keeps the enum at 16 bytes (a set inline would make it 40): three per flag"
)]
pub(super) enum AllowList {
    Packed(Box<[u8]>),
    Hashed(Box<HashSet<Box<str>, FnvBuildHasher>>),
}

/// Up to this many entries of up to 255 bytes each are packed.
const PACKED_MAX: usize = 32;

pub(super) fn packable(items: &[String]) -> bool {
    items.len() <= PACKED_MAX && items.iter().all(|s| s.len() <= 255)
}

pub(super) fn pack(items: &[String], out: &mut Vec<u8>) {
    for s in items {
        out.push(s.len() as u8);
        out.extend_from_slice(s.as_bytes());
    }
}

impl AllowList {
    pub(super) fn new(items: &[String]) -> AllowList {
        if packable(items) {
            let mut buf = Vec::with_capacity(items.iter().map(|s| s.len() + 1).sum());
            pack(items, &mut buf);
            AllowList::Packed(buf.into())
        } else {
            AllowList::Hashed(Box::new(
                items.iter().map(|s| Box::from(s.as_str())).collect(),
            ))
        }
    }

    #[inline]
    pub(super) fn view(&self) -> View<'_> {
        match self {
            AllowList::Packed(b) => View::Packed(b),
            AllowList::Hashed(h) => View::Hashed(h),
        }
    }
}

/// An allow list as the chain reads it, wherever it is kept.
#[derive(Clone, Copy)]
pub(super) enum View<'a> {
    Packed(&'a [u8]),
    Hashed(&'a HashSet<Box<str>, FnvBuildHasher>),
}

impl<'a> View<'a> {
    /// Each entry of the list (a hashed one in no particular order).
    pub(super) fn for_each(self, mut f: impl FnMut(&'a [u8])) {
        match self {
            View::Packed(mut buf) => {
                while let Some((&len, rest)) = buf.split_first() {
                    let (entry, rest) = rest.split_at(usize::from(len));
                    f(entry);
                    buf = rest;
                }
            }
            View::Hashed(h) => h.iter().for_each(|s| f(s.as_bytes())),
        }
    }

    #[inline]
    pub(super) fn is_empty(self) -> bool {
        match self {
            View::Packed(b) => b.is_empty(),
            View::Hashed(h) => h.is_empty(),
        }
    }

    #[inline]
    pub(super) fn contains(self, s: &str) -> bool {
        match self {
            View::Packed(buf) => {
                let s = s.as_bytes();
                let mut at = 0;
                while let Some(&len) = buf.get(at) {
                    let end = at + 1 + usize::from(len);
                    // Entries of the caller's length mostly differ in their last byte (ids
                    // count up at the end): compare it before calling `memcmp`.
                    if usize::from(len) == s.len()
                        && (len == 0 || buf.get(end - 1) == s.last())
                        && buf.get(at + 1..end) == Some(s)
                    {
                        return true;
                    }
                    at = end;
                }
                false
            }
            View::Hashed(h) => h.contains(s),
        }
    }
}

/// The allow lists and the environment gate of a flag compiled on its own.
#[derive(Debug, Clone)]
pub(super) struct Lists {
    pub(super) users: AllowList,
    pub(super) tenants: AllowList,
    pub(super) envs: AllowList,
}

/// Where a flag's allow lists are.
#[derive(Debug, Clone)]
pub(super) enum ListsAt {
    /// No allow list and no environment gate (most flags).
    None,
    /// Packed in the flag set's shared list buffer at this offset: envs, users, tenants, each
    /// a u16 byte length and the packed entries. A flag set's lists are then one allocation,
    /// not one to four per flag: small allocations that live as long as the set are what a
    /// refresh leaves scattered over the heap (RSS after refreshes, BENCHMARKS.md).
    Shared(u32),
    /// Compiled on its own, or too long to pack.
    Own(Box<Lists>),
}

/// The three packed lists at `at` in a set's shared buffer: envs, users, tenants.
#[inline]
pub(super) fn shared_views(buf: &[u8], mut at: usize) -> [View<'_>; 3] {
    let mut next = || {
        let len = usize::from(u16::from_le_bytes([buf[at], buf[at + 1]]));
        let list = &buf[at + 2..at + 2 + len];
        at += 2 + len;
        View::Packed(list)
    };
    [next(), next(), next()]
}

#[cfg(test)]
mod tests {
    use super::super::Rules;
    use super::super::tests::flag;
    use super::*;

    #[test]
    fn packed_and_hashed_allow_lists_answer_alike() {
        let long = "x".repeat(300);
        let cases: Vec<Vec<String>> = vec![
            vec![],
            vec![String::new()],
            vec!["ab".into(), "abc".into(), "a".into()],
            vec!["abc".into()],
            (0..33).map(|i| format!("user-{i}")).collect(),
            vec!["short".into(), long.clone()],
            vec!["é".into(), "ü-ü".into()],
        ];
        let probes = [
            "", "a", "ab", "abc", "abcd", "b", "user-0", "user-32", "user-33", "short", &long, "é",
            "ü-ü", "ü",
        ];
        for items in &cases {
            let list = AllowList::new(items);
            let packed = matches!(list, AllowList::Packed(_));
            assert_eq!(
                packed,
                items.len() <= 32 && items.iter().all(|s| s.len() <= 255),
                "{items:?}"
            );
            // The same list packed into a set's shared buffer, after another flag's lists.
            let mut shared = Vec::new();
            let other = flag(|d| d.envs = vec!["prod".into()]);
            Rules::compile_into("other", &other, None, Some(&mut shared));
            let def = flag(|d| {
                d.users = items.clone();
                d.tenants = vec!["t".into()];
            });
            let in_set = Rules::compile_into("f", &def, None, Some(&mut shared));
            assert_eq!(matches!(in_set.lists, ListsAt::Shared(_)), packed);
            let views = [list.view(), in_set_users(&in_set, &shared)];
            for view in views {
                assert_eq!(view.is_empty(), items.is_empty());
                for p in probes {
                    assert_eq!(
                        view.contains(p),
                        items.iter().any(|i| i == p),
                        "{p:?} in {items:?}"
                    );
                }
            }
        }
    }

    fn in_set_users<'a>(r: &'a Rules, shared: &'a [u8]) -> View<'a> {
        match &r.lists {
            ListsAt::Shared(at) => shared_views(shared, *at as usize)[1],
            ListsAt::Own(l) => l.users.view(),
            ListsAt::None => unreachable!("the flag has a tenant list"),
        }
    }
}
