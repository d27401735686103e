//! Keeping a block's threads off each other's cores.
//!
//! The merger's thread and the workers park when they have nothing to do (the merger waiting for
//! a result, a worker for work) and wake each other up. Linux often places a woken thread on its
//! waker's core ("wake affine"), and on this project's 2-core KVM machines it did so nearly
//! every time the other core was idle: `perf record -e sched:sched_switch,sched:sched_migrate_task
//! -a` over `parevm bench` showed the caller's thread moving the woken `parevm-slot-0` onto its
//! own core, and the worker, once there, moving the woken caller back after it, the two taking
//! turns on one core for tens of milliseconds while the other idled. A block run so is slower
//! than sequential: mainnet block 5283152 read 0.91-0.99x alone in ten runs of `parevm bench
//! --slots 2 --runs 9`, against 1.4-1.6x when other blocks ran first.
//!
//! The guest's idle driver here is `haltpoll`: an idle virtual core polls for a while before it
//! halts, and the kernel does not count a core that may have been preempted by the host as free,
//! so the waker's own core wins. That is common on cloud VMs, where nodes run.
//!
//! Two measures; neither pins a thread to a core. The first leaves the pool's threads every core
//! but the caller's for the length of a block; the second narrows a thread's cores only for the
//! instant of a move and then sets them back as they were. Off Linux, or when the cores cannot
//! be read, neither does anything. What setting them back cannot undo, on the caller's thread
//! (a node's, not ours): a change its owner makes to its cores in the microseconds between the
//! two calls is lost, and since Linux 6.2 the kernel keeps the set given back as the thread's
//! own request, so a thread that never asked for one no longer widens by itself when its cpuset
//! does (a node that moves cores between cgroups at run time would see it).
//!
//! - At a block's start the caller wakes the pool's threads, and a worker placed on the caller's
//!   core waits there, runnable, while the caller runs the block alone (2 ms on 5283152, the
//!   idle core idle all along). So before waking them the caller keeps the pool's threads off
//!   its core for the block ([`PoolThreads::keep_off`]), and each gives itself back that core as
//!   it ends the block's job ([`PoolThreads::free`]). Given back as the job started instead (a
//!   first version), the drop-in's workers, which the caller wakes with the answer to every
//!   database read they ask it for, were put back on its core, and 5283152 in the drop-in fell
//!   from 0.90-0.93x to 0.71-0.76x.
//! - Within the block, each thread says which core it runs on ([`Placement`]), and one that wakes
//!   up on a core another running thread of the block holds steps off it: it restricts its own
//!   affinity to the cores it may use but the held ones, which makes the kernel move it at once,
//!   and gives the cores back right away.
//!
//! The cores are hints, read and written Relaxed: a stale one costs at most a misplaced thread,
//! never a wrong result.

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

use parking_lot::Mutex;

/// The engine's pool threads, by the ids the kernel knows them by.
#[derive(Debug)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) struct PoolThreads {
    /// Per pool thread, its thread id once it has started (0 before).
    tids: Box<[AtomicI32]>,
    /// Per pool thread, the core [`PoolThreads::keep_off`] took from it and [`PoolThreads::free`]
    /// has not given back yet. Under a lock: the two may run at once on one thread's set (a
    /// session's job can still be ending when the next block starts), and each reads the set,
    /// changes it and writes it back.
    taken: Box<[Mutex<Option<usize>>]>,
}

#[cfg(target_os = "linux")]
thread_local! {
    /// The calling pool thread's index in its [`PoolThreads`] (see `PoolThreads::started`).
    static POOL_INDEX: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

impl PoolThreads {
    /// For a pool of `threads` threads.
    pub fn new(threads: usize) -> Self {
        Self {
            tids: (0..threads).map(|_| AtomicI32::new(0)).collect(),
            taken: (0..threads).map(|_| Mutex::new(None)).collect(),
        }
    }

    /// The pool's start handler: records the calling thread as pool thread `index`.
    pub fn started(&self, index: usize) {
        #[cfg(target_os = "linux")]
        if let Some(slot) = self.tids.get(index) {
            POOL_INDEX.with(|i| i.set(Some(index)));
            // SAFETY: the `gettid` system call takes no arguments and cannot fail (called
            // through `syscall`: libc's wrapper needs glibc 2.30).
            let tid = unsafe { libc::syscall(libc::SYS_gettid) } as libc::pid_t;
            // Relaxed: read by the caller at a block's start; a thread not seen yet is just not
            // kept off the caller's core that once.
            slot.store(tid, Ordering::Relaxed);
        }
        #[cfg(not(target_os = "linux"))]
        let _ = index;
    }

    /// Keeps every started pool thread off `core` (if it may run elsewhere) until it ends the
    /// block's job ([`PoolThreads::free`]); called by the caller on `core` before it wakes
    /// them. A thread still kept off a core (its last job has not ended, or it ran none) is
    /// left as it is: taking a second core could leave it one fewer for good.
    pub fn keep_off(&self, core: usize) {
        #[cfg(target_os = "linux")]
        for (tid, taken) in self.tids.iter().zip(self.taken.iter()) {
            // Relaxed: see `started`.
            let tid = tid.load(Ordering::Relaxed);
            if tid == 0 || core >= libc::CPU_SETSIZE as usize {
                continue;
            }
            let mut taken = taken.lock();
            if taken.is_some() {
                continue;
            }
            // SAFETY: as in `step_off`, on pool thread `tid`'s affinity instead of our own
            // (pool threads live as long as the engine, so `tid` is theirs); the lock keeps
            // `free` off the same set meanwhile.
            unsafe {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                if libc::sched_getaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0
                    || !libc::CPU_ISSET(core, &set)
                    || libc::CPU_COUNT(&set) < 2
                {
                    continue;
                }
                libc::CPU_CLR(core, &mut set);
                if libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0 {
                    *taken = Some(core);
                }
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = core;
    }

    /// Called by a pool thread as it ends a block's job: gives it back the core
    /// [`PoolThreads::keep_off`] took, if it took one (whatever else its owner changed since).
    pub fn free(&self) {
        #[cfg(target_os = "linux")]
        {
            let Some(taken) = POOL_INDEX.with(std::cell::Cell::get).and_then(|i| self.taken.get(i)) else {
                return;
            };
            let mut taken = taken.lock();
            let Some(core) = *taken else { return };
            // SAFETY: reads and writes the calling thread's own affinity through a set of
            // exactly the size passed; `core` was below `CPU_SETSIZE` when it was taken.
            unsafe {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
                    libc::CPU_SET(core, &mut set);
                    if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0 {
                        *taken = None;
                    }
                }
            }
        }
    }
}

/// Where each of a block's threads runs: the merger's thread is participant 0, slot `s`'s
/// primary `1 + 2s` and its shadow `2 + 2s`.
#[derive(Debug)]
pub(crate) struct Placement {
    /// Per participant, its core plus one while it runs, 0 while it is parked or not started.
    cores: Box<[AtomicUsize]>,
}

impl Placement {
    /// The merger's participant number.
    pub const MERGER: usize = 0;

    /// For a block with `slots` worker slots.
    pub fn new(slots: usize) -> Self {
        Self { cores: (0..1 + 2 * slots).map(|_| AtomicUsize::new(0)).collect() }
    }

    /// The participant number of slot `slot`'s primary or shadow.
    pub fn worker(slot: usize, shadow: bool) -> usize {
        1 + 2 * slot + usize::from(shadow)
    }

    /// Called by participant `me` when it starts or wakes up: off any core another running
    /// participant holds, if it may run elsewhere; then says where it is.
    pub fn settle(&self, me: usize) {
        let Some(mut core) = current_core() else { return };
        let held =
            |core: usize| self.cores.iter().enumerate().any(|(p, c)| p != me && c.load(Ordering::Relaxed) == core + 1);
        if held(core) && step_off(held) {
            core = current_core().unwrap_or(core);
        }
        if let Some(slot) = self.cores.get(me) {
            slot.store(core + 1, Ordering::Relaxed);
        }
    }

    /// Runs `wait`, in which participant `me` may park: it holds no core meanwhile, and settles
    /// when it is back (see [`Placement::settle`]).
    pub fn parked<T>(&self, me: usize, wait: impl FnOnce() -> T) -> T {
        self.park(me);
        let woken = wait();
        self.settle(me);
        woken
    }

    /// Marks participant `me` parked: it holds no core.
    fn park(&self, me: usize) {
        if let Some(slot) = self.cores.get(me) {
            slot.store(0, Ordering::Relaxed);
        }
    }
}

/// The core the calling thread runs on now, if the platform says.
pub(crate) fn current_core() -> Option<usize> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `sched_getcpu` takes no arguments and only reads the calling thread's state.
        let core = unsafe { libc::sched_getcpu() };
        usize::try_from(core).ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// Moves the calling thread to one of the cores it may use that `held` does not name (the kernel
/// picks which); its allowed cores are the same afterwards. Returns whether it moved.
pub(crate) fn step_off(held: impl Fn(usize) -> bool) -> bool {
    #[cfg(target_os = "linux")]
    {
        use std::mem::{size_of, zeroed};
        // SAFETY: `cpu_set_t` is a plain bit set, valid all zero; the calls read and write the
        // calling thread's own affinity (pid 0) through a set of exactly the size passed, and
        // `CPU_ISSET`/`CPU_CLR` index it below `CPU_SETSIZE`.
        unsafe {
            let mut allowed: libc::cpu_set_t = zeroed();
            if libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut allowed) != 0 {
                return false;
            }
            let mut elsewhere = allowed;
            for core in 0..libc::CPU_SETSIZE as usize {
                if libc::CPU_ISSET(core, &allowed) && held(core) {
                    libc::CPU_CLR(core, &mut elsewhere);
                }
            }
            if libc::CPU_COUNT(&elsewhere) == 0 || libc::CPU_COUNT(&elsewhere) == libc::CPU_COUNT(&allowed) {
                return false;
            }
            // The kernel moves a running thread off a core its new set leaves out before the
            // call returns; giving the set back then leaves it where it landed.
            let moved = libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &elsewhere) == 0;
            // Giving a thread back a set it had cannot fail but for a cpuset change in between;
            // then a second try against the kernel's own view is all we can do.
            if moved && libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &allowed) != 0 {
                libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &allowed);
            }
            moved
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = held;
        false
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn allowed_cores() -> i32 {
        // SAFETY: as in `step_off`.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            assert_eq!(libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set), 0);
            libc::CPU_COUNT(&set)
        }
    }

    #[test]
    fn a_thread_steps_off_held_cores_and_keeps_its_allowed_cores() {
        std::thread::spawn(|| {
            let before = allowed_cores();
            // The scheduler may move the thread between reading its core and stepping off it:
            // a few tries.
            let moved = (0..20).any(|_| {
                let core = current_core().expect("Linux says which core a thread runs on");
                step_off(|c| c == core) && current_core() != Some(core)
            });
            assert_eq!(allowed_cores(), before, "the allowed cores are given back");
            assert_eq!(moved, before > 1, "it moves if and only if another core is allowed");
            assert!(!step_off(|_| true), "every core held: nowhere to go");
            assert!(!step_off(|_| false), "no core held: nothing to do");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_pool_thread_is_kept_off_a_core_until_it_frees_itself() {
        let cores_of = |tid: i32| {
            // SAFETY: as in `keep_off`.
            unsafe {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                assert_eq!(libc::sched_getaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &mut set), 0);
                (0..libc::CPU_SETSIZE as usize).filter(|&c| libc::CPU_ISSET(c, &set)).collect::<Vec<_>>()
            }
        };
        let threads = std::sync::Arc::new(PoolThreads::new(1));
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let (done, finished) = std::sync::mpsc::channel::<()>();
        let pool_thread = std::thread::spawn({
            let threads = std::sync::Arc::clone(&threads);
            move || {
                threads.started(0);
                done.send(()).unwrap();
                wait.recv().unwrap();
                threads.free();
                done.send(()).unwrap();
                // Alive until the last check has read its cores.
                wait.recv().unwrap();
            }
        });
        finished.recv().unwrap();
        let tid = threads.tids[0].load(Ordering::Relaxed);
        assert_ne!(tid, 0, "a started thread is recorded");
        let before = cores_of(tid);
        let core = before[0];
        threads.keep_off(core);
        let during = cores_of(tid);
        if before.len() > 1 {
            assert!(!during.contains(&core), "kept off {core}: {during:?}");
            assert_eq!(during.len(), before.len() - 1, "only that core is taken");
            // Kept off a core and not yet freed: a second core is not taken as well.
            threads.keep_off(before[1]);
            assert_eq!(cores_of(tid), during, "one core at a time");
        } else {
            assert_eq!(during, before, "with one core there is nothing to keep it off");
        }
        go.send(()).unwrap();
        finished.recv().unwrap();
        assert_eq!(cores_of(tid), before, "it gives the core back");
        go.send(()).unwrap();
        pool_thread.join().unwrap();
    }

    #[test]
    fn a_participant_settles_off_a_core_another_running_one_holds() {
        std::thread::spawn(|| {
            let placement = Placement::new(1);
            let worker = Placement::worker(0, false);
            // The merger says it runs on the worker's core (as if it had just been moved there);
            // a few tries, since the scheduler may move the thread at any point.
            let settled_off = (0..20).any(|_| {
                let core = current_core().unwrap();
                placement.cores[Placement::MERGER].store(core + 1, Ordering::Relaxed);
                placement.settle(worker);
                let now = placement.cores[worker].load(Ordering::Relaxed);
                assert_ne!(now, 0, "a settled participant says where it runs");
                now != core + 1
            });
            assert_eq!(settled_off, allowed_cores() > 1, "off the merger's core if another is allowed");
            // A parked merger holds no core.
            placement.park(Placement::MERGER);
            assert_eq!(placement.cores[Placement::MERGER].load(Ordering::Relaxed), 0);
        })
        .join()
        .unwrap();
    }
}
