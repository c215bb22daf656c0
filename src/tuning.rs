//! Process tuning for a relay whose memory is one big immutable flag set replaced on changes:
//! glibc malloc settings and the priority of background work. No-ops off Linux/glibc.
#![allow(
    unsafe_code,
    reason = "mallopt, malloc_trim and setpriority are C calls with no safe wrapper in the tree"
)]

/// Caps malloc arenas at the number of CPUs (at least 2) unless the operator chose a value
/// (`MALLOC_ARENA_MAX`, or `glibc.malloc.arena_max` in `GLIBC_TUNABLES`). Call first thing in
/// `main`, before other threads exist.
///
/// Why: glibc gives each new thread its own arena, up to 8 per CPU, and never returns an arena's
/// high-water pages. tokio's blocking pool starts and retires threads as refreshes, file reads
/// and snapshot saves come and go, so over a long run more and more arenas each keep a peak of
/// their own: the soak (`make soak`) showed RSS +15 % in 5 minutes with the thread count, not
/// the heap, growing, and +4.5 % with two arenas. Evaluations run on the runtime's worker
/// threads, one per CPU, so one arena per CPU keeps them from contending.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let chosen = std::env::var_os("MALLOC_ARENA_MAX").is_some()
            || std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("arena_max"));
        if chosen {
            return;
        }
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let arenas = libc::c_int::try_from(cpus.max(2)).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only sets a malloc tuning parameter; an unaccepted value just
        // returns 0 and glibc's default stays.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}

/// Serves allocations of 4 MiB and more with their own mappings (returned to the OS when freed),
/// and leaves up to 4 MiB free at the top of a heap mapped, unless the operator chose either
/// (`MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_`, or `glibc.malloc.mmap_threshold`,
/// `glibc.malloc.trim_threshold` in `GLIBC_TUNABLES`). Call first thing in `main`.
///
/// Why the mapping threshold: glibc's is dynamic: once a large mapped block is freed (the
/// first read of a 13 MB flag document), blocks up to that size come from the heap from then
/// on, and every poll that reads the document again leaves its buffer's pages in the heap.
/// With 100,000 flags polled every 500 ms the RSS was 114 MB with the dynamic threshold and
/// 85 MB with this one (BENCHMARKS.md, issue 18). 4 MiB keeps bulk answers (130 kB for 1,000
/// flags) on the heap.
///
/// Why the trim threshold: fixing the mapping threshold leaves the trim threshold at 128 kB,
/// and a worker thread's heap is trimmed (`madvise`) whenever more than that is free at its
/// top: freeing one bulk answer of 1,000 flags did it, so every bulk request paid a system
/// call and a page fault for the next answer's buffer (64,366 of each in 4 s of load). Pages
/// a refresh frees still go back: it trims explicitly ([`release_free_pages`]).
pub fn fix_malloc_thresholds() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let set = |env: &str, tunable: &str, param: libc::c_int| {
            let chosen = std::env::var_os(env).is_some()
                || std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains(tunable));
            if !chosen {
                // SAFETY: as above, mallopt only sets a tuning parameter.
                unsafe {
                    libc::mallopt(param, 4 << 20);
                }
            }
        };
        set(
            "MALLOC_MMAP_THRESHOLD_",
            "mmap_threshold",
            libc::M_MMAP_THRESHOLD,
        );
        set(
            "MALLOC_TRIM_THRESHOLD_",
            "trim_threshold",
            libc::M_TRIM_THRESHOLD,
        );
    }
}

/// Hands pages that are free inside malloc's heaps back to the OS. Call after freeing a
/// replaced flag set: glibc keeps freed memory mapped (RSS) unless it sits at the top of the
/// heap, so without this every refresh of a large set would leave the process at its peak.
/// The free chunks stay, without their pages: the next large buffer may take one and make its
/// pages resident again, so call it after freeing such a buffer too (`refresh`, a document read
/// again unchanged).
pub(crate) fn release_free_pages() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes malloc's own locks; it only returns unused pages.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Lowers the calling thread's CPU priority (nice 10) for background work: parsing and building
/// a new flag set. On a relay with fewer CPUs than busy threads, a refresh of a large set then
/// takes what requests leave over instead of an equal share, so request latency holds during a
/// refresh (measured in BENCHMARKS.md). Idempotent; Linux with glibc only (nice is per thread there).
pub(crate) fn background_priority() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: gettid has no preconditions; setpriority on our own thread id only changes its
    // scheduling weight, and a failure (EACCES) leaves it as it was.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    /// A thread that allocates, fills and frees a bulk answer's buffer over and over does not
    /// fault its pages in again each time: they stay mapped between answers.
    #[test]
    fn a_freed_answer_buffer_keeps_its_pages() {
        super::fix_malloc_thresholds();
        let faults = std::thread::spawn(|| {
            let faults = || {
                // SAFETY: getrusage writes into the struct it is given and nothing else.
                unsafe {
                    let mut u: libc::rusage = std::mem::zeroed();
                    libc::getrusage(libc::RUSAGE_THREAD, &mut u);
                    u.ru_minflt
                }
            };
            // Warm up: the thread's heap grows to hold one buffer.
            std::hint::black_box(vec![1u8; 512 << 10]);
            let before = faults();
            for i in 0..100u8 {
                std::hint::black_box(vec![i; 512 << 10]);
            }
            faults() - before
        })
        .join()
        .unwrap();
        // Trimmed after each free, each buffer would fault in its 128 pages again: 12,800.
        assert!(faults < 1000, "{faults} page faults for 100 buffers");
    }

    #[test]
    fn background_priority_lowers_only_the_calling_thread() {
        let nice_of_this_thread = || {
            // SAFETY: as in background_priority; getpriority only reads.
            unsafe {
                let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                libc::getpriority(libc::PRIO_PROCESS, tid)
            }
        };
        let before = nice_of_this_thread();
        let (in_thread_before, after) = std::thread::spawn(move || {
            let before = nice_of_this_thread();
            super::background_priority();
            super::background_priority();
            (before, nice_of_this_thread())
        })
        .join()
        .unwrap();
        // Lowering only: a thread already nicer than 10 (tests run under `nice`) stays so.
        assert_eq!(
            after,
            10.max(in_thread_before),
            "the thread runs at nice 10"
        );
        assert_eq!(nice_of_this_thread(), before, "other threads keep theirs");
    }
}

/// The soft limit on open descriptors (RLIMIT_NOFILE), where it can be read.
pub(crate) fn open_files_limit() -> Option<u64> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct it is given and nothing else.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
            return Some(lim.rlim_cur);
        }
    }
    None
}
