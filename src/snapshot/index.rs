//! Positions by key without a copy of the keys: a table of `u32` positions hashed by the key
//! (FNV), the keys themselves living in whatever the positions index (a set's entries, the
//! metrics table's key list).

use std::hash::BuildHasher;

use fnv::FnvBuildHasher;
use hashbrown::HashTable;

#[derive(Debug, Default)]
pub(crate) struct KeyIndex(HashTable<u32>);

fn key_hash(key: &str) -> u64 {
    FnvBuildHasher::default().hash_one(key)
}

impl KeyIndex {
    /// The index of `len` distinct keys, `key_at(i)` being the one at position `i`.
    pub(crate) fn new<'k>(len: usize, key_at: impl Fn(usize) -> &'k str) -> KeyIndex {
        let mut table = HashTable::with_capacity(len);
        for i in 0..len {
            let at = u32::try_from(i).expect("fewer than 2^32 flags");
            table.insert_unique(key_hash(key_at(i)), at, |&j| key_hash(key_at(j as usize)));
        }
        KeyIndex(table)
    }

    /// The position of `key`, with the same `key_at` the index was built with.
    #[inline]
    pub(crate) fn find<'k>(&self, key: &str, key_at: impl Fn(usize) -> &'k str) -> Option<usize> {
        self.0
            .find(key_hash(key), |&i| key_at(i as usize) == key)
            .map(|&i| i as usize)
    }
}
