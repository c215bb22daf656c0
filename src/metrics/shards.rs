//! Counter arrays written by one thread each and summed at scrape time.
//!
//! A bulk answer of 1,000 flags counts 1,000 evaluations. As one `fetch_add` per flag on a
//! counter object of its own (the design before this one) that was a locked instruction and,
//! the objects being scattered over the heap, a cache miss each: 21 % of a bulk request's CPU.
//! Here every recording thread owns one contiguous array (its *shard*) outright, so a count is a
//! plain load and store at an index, next to the previous flag's; a scrape adds the shards up.
//!
//! Ownership: a thread claims a shard number the first time it records and gives it back when
//! it exits (the claim and the return go through a mutex, once per thread, so the next owner
//! sees every count the last one made). Threads beyond [`SHARDS`] at once share one more array
//! with `fetch_add`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// Shards with an owner thread each; enough for the runtime's workers and some more.
pub(super) const SHARDS: usize = 16;

/// Shard numbers free to claim, and the next never claimed.
static FREE: Mutex<(Vec<usize>, usize)> = Mutex::new((Vec::new(), 0));

/// This thread's shard number (`None`: all are taken, use the shared array).
struct Claim(Option<usize>);

impl Claim {
    fn take() -> Claim {
        let mut free = FREE.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = free.0.pop() {
            return Claim(Some(i));
        }
        if free.1 < SHARDS {
            free.1 += 1;
            return Claim(Some(free.1 - 1));
        }
        Claim(None)
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(i) = self.0 {
            FREE.lock().unwrap_or_else(|p| p.into_inner()).0.push(i);
        }
    }
}

thread_local! {
    static CLAIM: Claim = Claim::take();
}

/// The shard numbers claimed right now (to allocate their arrays ahead of first use).
fn claimed() -> Vec<usize> {
    let free = FREE.lock().unwrap_or_else(|p| p.into_inner());
    (0..free.1).filter(|i| !free.0.contains(i)).collect()
}

/// `len` counters per shard, each shard allocated on its first use.
#[derive(Debug)]
pub(super) struct Counts {
    len: usize,
    owned: Box<[OnceLock<Box<[AtomicU64]>>]>,
    shared: OnceLock<Box<[AtomicU64]>>,
}

/// `len` zeroed counters whose pages cost memory only once a count is written to them: a
/// thread that evaluates a few of 100,000 flags does not hold its whole array (4 MB) in memory.
///
/// `calloc` gives that only for memory malloc has never used. A table built during a refresh
/// gets memory the replaced set has just freed, and `calloc` writes zeros over all of it:
/// 4 MB resident per recording thread per table, twice over while the replaced table's
/// counters are kept (`flags::Late`). So the whole pages of a large array are handed back to
/// the kernel, which maps them again as zero pages on the first write.
#[allow(
    unsafe_code,
    reason = "alloc_zeroed is the only way to calloc (Box::new_zeroed_slice needs Rust 1.92), \
              and madvise has no safe wrapper in the tree"
)]
fn zeroed(len: usize) -> Box<[AtomicU64]> {
    use std::alloc::{Layout, alloc_zeroed, handle_alloc_error};
    if len == 0 {
        return Box::new([]);
    }
    let layout = Layout::array::<AtomicU64>(len).expect("counter array fits in memory");
    // SAFETY: the layout has a non-zero size (len > 0).
    let ptr = unsafe { alloc_zeroed(layout) }.cast::<AtomicU64>();
    if ptr.is_null() {
        handle_alloc_error(layout);
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if layout.size() >= LAZY_PAGES_FROM {
        // SAFETY: sysconf only reads a system value.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(0);
        let (start, end) = match page {
            0 => (0, 0),
            page => (
                (ptr as usize).next_multiple_of(page),
                (ptr as usize + layout.size()) / page * page,
            ),
        };
        if end > start {
            // SAFETY: [start, end) is whole pages inside this fresh allocation, which no one
            // else references; private anonymous pages read back as zeros after
            // MADV_DONTNEED, which is what they hold now. On failure they stay as they are.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
            }
        }
    }
    // SAFETY: `ptr` is a fresh allocation from the global allocator with the layout of
    // `[AtomicU64; len]`, and all-zero bytes are a valid AtomicU64, so it is an initialized
    // slice that Box may own and free with that same layout.
    unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, len)) }
}

/// Arrays this large (about 26,000 flags × 5 reasons) give their pages back at once; smaller
/// ones are not worth a system call per thread per flag set.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const LAZY_PAGES_FROM: usize = 1 << 20;

impl Counts {
    /// Counters for `len` slots; the arrays of the threads recording now are allocated here
    /// (off the request path), the others when a thread first records.
    pub(super) fn new(len: usize) -> Counts {
        let owned: Box<[OnceLock<Box<[AtomicU64]>>]> =
            (0..SHARDS).map(|_| OnceLock::new()).collect();
        if len > 0 {
            for i in claimed() {
                let _ = owned[i].set(zeroed(len));
            }
        }
        Counts {
            len,
            owned,
            shared: OnceLock::new(),
        }
    }

    /// This thread's array.
    #[inline]
    pub(super) fn writer(&self) -> Writer<'_> {
        let shard = CLAIM.try_with(|c| c.0).ok().flatten();
        match shard {
            Some(i) => Writer {
                cells: self.owned[i].get_or_init(|| zeroed(self.len)),
                owned: true,
            },
            None => Writer {
                cells: self.shared.get_or_init(|| zeroed(self.len)),
                owned: false,
            },
        }
    }

    /// Slot `i` summed over the shards.
    pub(super) fn sum(&self, i: usize) -> u64 {
        self.owned
            .iter()
            .chain(std::iter::once(&self.shared))
            .filter_map(|s| s.get())
            .map(|cells| cells[i].load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }
}

/// One thread's view of a [`Counts`].
pub(super) struct Writer<'a> {
    cells: &'a [AtomicU64],
    /// Only this thread writes `cells`.
    owned: bool,
}

impl Writer<'_> {
    #[inline]
    pub(super) fn add(&self, i: usize) {
        self.add_n(i, 1);
    }

    #[inline]
    pub(super) fn add_n(&self, i: usize, n: u64) {
        let Some(c) = self.cells.get(i) else { return };
        if self.owned {
            // No other writer: a plain load and store, no locked instruction.
            c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
        } else {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_large_array_reads_zero_and_counts() {
        // Large enough for its pages to be handed back at allocation.
        let c = Counts::new(600_000);
        let w = c.writer();
        assert_eq!(c.sum(0) + c.sum(300_000) + c.sum(599_999), 0);
        w.add(300_000);
        w.add_n(599_999, 5);
        assert_eq!((c.sum(300_000), c.sum(599_999), c.sum(1)), (1, 5, 0));
    }

    #[test]
    fn counts_from_many_threads_add_up() {
        let c = Arc::new(Counts::new(3));
        // More threads than shards at once: some share the last array.
        let barrier = Arc::new(std::sync::Barrier::new(SHARDS + 4));
        let threads: Vec<_> = (0..SHARDS + 4)
            .map(|_| {
                let (c, barrier) = (c.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let w = c.writer();
                    for _ in 0..1000 {
                        w.add(1);
                    }
                    w.add(7); // out of range: ignored
                    barrier.wait();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(c.sum(1), (SHARDS as u64 + 4) * 1000);
        assert_eq!(c.sum(0), 0);
        // Every claim was given back.
        assert!(claimed().len() <= SHARDS);
    }
}
