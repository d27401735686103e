//! Waking the pool's threads before a block needs them, and keeping them awake until it does.
//!
//! A pool thread that has slept since the last block takes long to wake on a virtual machine:
//! its core is halted, and the host must run it again. On this project's 2-core KVM machines,
//! with a pause of 100 ms before each block (as a node's blocks come, seconds apart), the first
//! job reached the pool's thread 100-150 µs after the caller queued it, against about 15 µs
//! when blocks follow each other; the block's set-up, which the caller runs alone, took
//! 300-450 µs instead of about 100 (`examples/profile 2 erc20 30 100`, temporary timers,
//! docs/benchmarks-log.md, "Changes measured alone", session 16). So the caller wakes the pool as
//! early as it can ([`Engine::wake_ahead`](crate::Engine::wake_ahead), before its own pre-block
//! work), the block's set-up gives the pool's thread half of the work, and each job the pool
//! runs before the block's workers keeps its thread awake ([`PoolHold::hold`]) until the caller
//! queues the next, rather than letting it go back to sleep in between.
//!
//! A held thread spins, with a deadline: it has a core the block is about to use, and nothing
//! else to run there. At the deadline it lets go and sleeps as before; nothing is lost but the
//! head start.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use crate::placement::{PoolThreads, current_core, step_off};

/// How long a job holds its thread awake at most: longer than a block's set-up and a caller's
/// pre-block work usually take, short enough that a caller that never comes costs little.
pub(crate) const HOLD_FOR: Duration = Duration::from_millis(2);

/// The word that holds the pool's threads: a generation, and whether its last release handed
/// the threads a job (`GO`) or sent them back to sleep.
#[derive(Debug, Default)]
pub(crate) struct PoolHold {
    /// Bits 1..: the generation, raised by every release; bit 0: the last release was a cancel.
    word: AtomicU64,
    /// The cores held threads run on, one bit each (cores 64 and up are not tracked). A hint,
    /// Relaxed: a stale bit costs at most a needless or a missed step (see `step_off_holders`).
    cores: AtomicU64,
}

impl PoolHold {
    /// The generation a job queued now holds its thread for.
    pub fn current(&self) -> u64 {
        // Acquire: pairs with `release`; only the generation matters to a caller.
        self.word.load(Ordering::Acquire) >> 1
    }

    /// Holds the calling pool thread awake while `generation` is current, for at most
    /// [`HOLD_FOR`]. A thread released by a cancel, or that gave up, gives back the core it was
    /// kept off (`PoolThreads::free`): no job of the block will end on it to do so.
    pub fn hold(&self, generation: u64, threads: &PoolThreads) {
        if self.hold_for(generation, HOLD_FOR) != Held::Go {
            threads.free();
        }
    }

    /// [`PoolHold::hold`] for at most `limit`, saying how it ended and giving back nothing.
    fn hold_for(&self, generation: u64, limit: Duration) -> Held {
        let core = current_core().filter(|&core| core < 64).map_or(0, |core| 1 << core);
        self.cores.fetch_or(core, Ordering::Relaxed);
        let mut word = 0;
        // Acquire: pairs with `release`'s Release, so that the job queued before it is visible
        // to this thread's next look at the pool's queues (rayon's own synchronisation covers
        // that too; this keeps the reasoning local).
        let released = yield_until(
            || {
                word = self.word.load(Ordering::Acquire);
                word >> 1 != generation
            },
            limit,
        );
        self.cores.fetch_and(!core, Ordering::Relaxed);
        match (released, word & 1 == 1) {
            (false, _) => Held::GaveUp,
            (true, true) => Held::Cancelled,
            (true, false) => Held::Go,
        }
    }

    /// Moves the calling thread (the caller's) off the cores held threads run on, if it is on
    /// one: woken while one of them held (at the end of the set-up job, which the caller may
    /// sleep waiting for), the kernel may have put it on the waker's core, where the held
    /// thread only yields to it and the block's worker would then start beside it.
    pub fn step_off_holders(&self) {
        let cores = self.cores.load(Ordering::Relaxed);
        if cores != 0 && current_core().is_some_and(|core| core < 64 && cores & 1 << core != 0) {
            step_off(|core| core < 64 && cores & 1 << core != 0);
        }
    }

    /// Lets every held thread go: to the job queued just before (`go`), or back to sleep.
    pub fn release(&self, go: bool) {
        // Release: see `hold` (Relaxed on failure: the loop reads again). The generation only
        // grows, so a hold from an older one ends.
        let next = |word: u64| Some(((word >> 1) + 1) << 1 | u64::from(!go));
        let _ = self.word.fetch_update(Ordering::Release, Ordering::Relaxed, next);
    }
}

/// How a hold ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// Released to the job queued before the release.
    Go,
    /// Released with nothing to do.
    Cancelled,
    /// The deadline passed first.
    GaveUp,
}

/// The pool's threads woken ahead of a block ([`Engine::wake_ahead`](crate::Engine::wake_ahead)):
/// dropped without a block having started, it sends them back to sleep.
#[derive(Debug)]
#[must_use = "the threads are held only while this lives"]
pub struct WokenAhead<'e> {
    pub(crate) hold: Option<&'e PoolHold>,
    pub(crate) generation: u64,
}

impl WokenAhead<'_> {
    /// Whether any thread was woken (none for a block the engine would hand back at once).
    pub fn woke(&self) -> bool {
        self.hold.is_some()
    }
}

impl Drop for WokenAhead<'_> {
    fn drop(&mut self) {
        // Only if nothing released this generation since: a block that started did.
        if let Some(hold) = self.hold
            && hold.current() == self.generation
        {
            hold.release(false);
        }
    }
}

/// Yields until `done`, for at most `limit`; says whether `done` came first. The one way a
/// thread here waits: yielding, not spinning, so that a thread the kernel puts on this core (the
/// caller, woken by the pool's thread as it finished the set-up job, is put on the waker's core)
/// runs at once instead of waiting out the deadline behind a spin (2 ms at every block in a first
/// version, on mainnet 6196166). With nothing else to run here a yield returns at once; rayon's
/// own idle threads wait the same way.
pub(crate) fn yield_until(mut done: impl FnMut() -> bool, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// Long enough that no test thread runs out of it, however loaded the machine.
    const FOREVER: Duration = Duration::from_secs(60);

    #[test]
    fn a_hold_ends_at_the_next_release_and_says_how() {
        let hold = Arc::new(PoolHold::default());
        for go in [true, false] {
            let generation = hold.current();
            let holder = {
                let hold = Arc::clone(&hold);
                std::thread::spawn(move || hold.hold_for(generation, FOREVER))
            };
            hold.release(go);
            let held = holder.join().unwrap();
            assert_eq!(held, if go { Held::Go } else { Held::Cancelled });
            assert_eq!(hold.current(), generation + 1, "a release raises the generation");
            assert_eq!(hold.cores.load(Ordering::Relaxed), 0, "a thread that leaves holds no core");
        }
    }

    #[test]
    fn a_hold_for_an_older_generation_ends_at_once_and_a_silent_one_at_its_deadline() {
        let hold = PoolHold::default();
        let old = hold.current();
        hold.release(true);
        assert_eq!(hold.hold_for(old, FOREVER), Held::Go, "its release came before it started");
        assert_eq!(hold.hold_for(hold.current(), Duration::ZERO), Held::GaveUp);
    }

    #[test]
    fn a_dropped_wake_cancels_only_if_nothing_released_since() {
        let hold = PoolHold::default();
        drop(WokenAhead { hold: Some(&hold), generation: hold.current() });
        assert_eq!(hold.word.load(Ordering::Relaxed), 1 << 1 | 1, "cancelled: generation 1, cancel bit");
        let woken = WokenAhead { hold: Some(&hold), generation: hold.current() };
        hold.release(true);
        drop(woken);
        assert_eq!(hold.word.load(Ordering::Relaxed), 2 << 1, "a block started: the release stands");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_caller_steps_off_a_core_a_held_thread_runs_on() {
        std::thread::spawn(|| {
            let hold = PoolHold::default();
            let allowed = std::thread::available_parallelism().map_or(1, |n| n.get());
            // The scheduler may move the thread between the two reads: a few tries.
            let stepped_off = (0..20).any(|_| {
                let core = current_core().unwrap();
                hold.cores.store(1 << core, Ordering::Relaxed);
                hold.step_off_holders();
                current_core() != Some(core)
            });
            assert_eq!(stepped_off, allowed > 1, "off the held core if another is allowed");
        })
        .join()
        .unwrap();
    }
}
