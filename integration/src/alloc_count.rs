//! Counting heap allocations: how many executing a block takes, per executor.
//!
//! The `parevm` binary installs [`CountingAlloc`] (over jemalloc) as its global allocator.
//! `parevm bench` switches counting on for one untimed run of every executor on every block and
//! reports allocations per transaction, so a change that adds or removes allocations on the hot
//! path shows up as a number, not a guess. With counting off, an allocation pays one relaxed
//! load. The count is process-wide: a parallel run's workers are counted with the caller.

use std::{
    alloc::{GlobalAlloc, Layout},
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
};

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// A global allocator that counts allocations (reallocations included) while counting is on.
#[derive(Debug, Default)]
pub struct CountingAlloc<A>(pub A);

impl<A> CountingAlloc<A> {
    fn count(&self) {
        // Relaxed: a statistic. Counting is switched on and off by the thread that reads the
        // total, around work it waits for, so the work's allocations are ordered before the
        // read by the waits themselves; a session's workers are not joined when the block ends,
        // so an allocation of theirs after it (finishing a stale execution) may be missed or
        // land in the next count.
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

// SAFETY: every method forwards to the wrapped allocator with the caller's arguments unchanged,
// so the wrapped allocator's guarantees are ours; counting touches only two atomics and never
// allocates.
unsafe impl<A: GlobalAlloc> GlobalAlloc for CountingAlloc<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.count();
        // SAFETY: forwarded as is (see the impl).
        unsafe { self.0.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.count();
        // SAFETY: forwarded as is (see the impl).
        unsafe { self.0.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.count();
        // SAFETY: forwarded as is (see the impl).
        unsafe { self.0.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is (see the impl).
        unsafe { self.0.dealloc(ptr, layout) }
    }
}

/// Runs `work` with counting on and returns its result and the allocations it made; `None` if
/// nothing was counted, which means [`CountingAlloc`] is not the global allocator (running a
/// block always allocates).
pub fn count<T>(work: impl FnOnce() -> T) -> (T, Option<u64>) {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    let result = work();
    COUNTING.store(false, Ordering::Relaxed);
    let counted = ALLOCATIONS.load(Ordering::Relaxed) - before;
    (result, (counted > 0).then_some(counted))
}
