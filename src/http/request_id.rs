//! Generated request ids (`X-Request-Id`, see `observe`): 32 hex digits, a per-process random
//! half and a counter through a keyed bijection, so ids are unique without revealing how many
//! requests came before.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::HeaderValue;

/// Unique ids without a lock: a counter through a bijective mix keyed per process.
pub(super) struct IdGen {
    /// The per-process half of every id, already in hex.
    prefix_hex: [u8; 16],
    key: u64,
}

/// Counter values are handed out to threads in blocks, so a request takes one from its own
/// thread's block instead of a `fetch_add` on a counter every worker writes.
static NEXT_BLOCK: AtomicU64 = AtomicU64::new(0);
const BLOCK: u64 = 1 << 16;

thread_local! {
    /// The next value of this thread's block, and the block's end.
    static IDS: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
}

fn next_count() -> u64 {
    IDS.with(|c| {
        let (mut next, mut end) = c.get();
        if next == end {
            next = NEXT_BLOCK.fetch_add(BLOCK, Ordering::Relaxed);
            end = next + BLOCK;
        }
        c.set((next + 1, end));
        next
    })
}

impl IdGen {
    pub(super) fn new() -> IdGen {
        // Ids are correlation handles, not secrets: std's per-process random hash keys (from
        // the OS) are random enough, and cost nothing like seeding a cryptographic RNG.
        use std::hash::{BuildHasher, Hasher};
        let random = || {
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        };
        let mut prefix_hex = [0u8; 16];
        hex_into(&mut prefix_hex, random());
        IdGen {
            prefix_hex,
            key: random(),
        }
    }

    pub(super) fn next(&self) -> HeaderValue {
        let n = next_count();
        let mut buf = [0u8; 32];
        buf[..16].copy_from_slice(&self.prefix_hex);
        hex_into(&mut buf[16..], splitmix(n ^ self.key));
        HeaderValue::from_bytes(&buf).expect("hex digits are a valid header value")
    }
}

/// SplitMix64's finalizer: a bijection on u64, so distinct counters give distinct ids.
fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// 16 lowercase hex digits of `v` into `out[..16]`.
fn hex_into(out: &mut [u8], v: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, byte) in out.chunks_exact_mut(2).zip(v.to_be_bytes()) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0xf)];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique() {
        let g = IdGen::new();
        let ids: std::collections::HashSet<_> = (0..10_000).map(|_| g.next()).collect();
        assert_eq!(ids.len(), 10_000);
    }
}
