//! What the host does to a parallel run: how long one cache line takes to go from one core to
//! another and back, and how much slower a core works while the other works too.
//!
//! The engine's threads hand data to each other through shared cache lines at every transaction
//! (a result published by a slot and merged on the caller's thread, the base state's shard locks,
//! the count of merged transactions), so its speed depends on that round trip where the
//! sequential executor's does not. On the project's shared 2-core machines it is not constant:
//! about 42 ns most of the time, and 350-450 ns for minutes at a time, while each core alone
//! keeps its full speed (docs/benchmarks.md, "Machine"). It was also seen at 16-36 ns while
//! the engine ran at 1.05x where it ran at 1.24x minutes later, one execution costing 1.44 times
//! a sequential transaction against 1.12 times: a quick line, as between two hardware threads of
//! one physical core, which also share that core's execution units and caches. The second probe
//! tells that apart: a fixed piece of work on each core alone, then on both at once.
//! `parevm bench` probes the round trip before and after every block's timed runs, and the
//! shared cores before the first block and after the last (see `bench_cases` for why not more
//! often), and reports both beside the ratios, so that a run can be judged by the host it ran
//! on.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

/// Round trips per probe: ~2 ms on a quiet host, long enough to average out one interrupt.
const ROUND_TRIPS: u64 = 20_000;

/// A probe gives up after this long (a core taken away entirely, or pinning refused without an
/// error): it is a measurement, and must never hold the benchmark up.
const BUDGET: Duration = Duration::from_millis(200);

/// The shared line, alone on its cache lines (128 bytes: adjacent-line prefetch pairs them).
#[repr(align(128))]
struct Line(AtomicU64);

/// The mean round trip of a cache line between cores 0 and 1, in nanoseconds; `None` where it
/// cannot be measured (fewer than two cores, no thread pinning on this platform, or the budget
/// ran out).
pub fn cross_core_round_trip_ns() -> Option<f64> {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        return None;
    }
    let line = Line(AtomicU64::new(0));
    let deadline = Instant::now() + BUDGET;
    std::thread::scope(|scope| {
        let line = &line;
        // The ponger answers each odd value with the next even one; the pinger times the lot.
        let ponger = scope.spawn(move || {
            if !pin_to_core(1) {
                give_up(line);
                return false;
            }
            (0..ROUND_TRIPS).all(|i| {
                let asked = wait_for(line, 2 * i + 1, deadline);
                if asked {
                    // Release, paired with the pinger's Acquire in `wait_for`: the same hand-off
                    // as a published result's, so the probe measures what the engine pays.
                    line.0.store(2 * i + 2, Ordering::Release);
                }
                asked
            })
        });
        let pinger = scope.spawn(move || {
            if !pin_to_core(0) {
                give_up(line);
                return None;
            }
            let started = Instant::now();
            for i in 0..ROUND_TRIPS {
                // Release: see the ponger's store.
                line.0.store(2 * i + 1, Ordering::Release);
                if !wait_for(line, 2 * i + 2, deadline) {
                    return None;
                }
            }
            Some(started.elapsed().as_secs_f64() * 1e9 / ROUND_TRIPS as f64)
        });
        let answered = ponger.join().unwrap_or(false);
        pinger.join().ok().flatten().filter(|_| answered)
    })
}

/// Steps of each of the shared-core probe's four chains of work: about a millisecond on one
/// core here.
const WORK_STEPS: usize = 100_000;

/// Timed repetitions of the work per thread, after one untimed.
const WORK_REPS: usize = 5;

/// How many times longer a fixed piece of work takes while both cores run it at once than on
/// one core alone (the faster of cores 0 and 1), the slower core's figure: about 1 where each
/// of the engine's two threads would have a whole core, up to 2 where they would not: two
/// hardware threads of one physical core sharing its units, or a neighbour taking turns on one
/// core (which slows that core alone too, and counts: the engine's thread there would be
/// slowed the same). `None` where it cannot be measured (fewer than two cores, no pinning, or
/// the budget ran out).
///
/// The work is four independent chains of loads, multiplies and stores over 256 KiB per thread:
/// past the first-level cache, as the engine's state lookups are, and enough at once to keep a
/// core's units busy, which a sibling hardware thread would compete for.
pub fn shared_core_slowdown() -> Option<f64> {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        return None;
    }
    let deadline = Instant::now() + BUDGET;
    let alone = [timed_work_on(&[0], deadline)?, timed_work_on(&[1], deadline)?];
    Some(slowdown(alone, timed_work_on(&[0, 1], deadline)?))
}

/// The slower core's time together over the faster core's time alone (see
/// [`shared_core_slowdown`]).
fn slowdown(alone: [f64; 2], together: f64) -> f64 {
    together / alone[0].min(alone[1])
}

/// The longest time, in seconds, that one thread pinned to each of `cores`, all started at
/// once, took for [`WORK_REPS`] repetitions of the work; `None` if a thread could not be pinned
/// or the deadline passed (checked before each repetition and while waiting for the start).
fn timed_work_on(cores: &[usize], deadline: Instant) -> Option<f64> {
    let epoch = Instant::now();
    let since_epoch = || u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX).max(1);
    let ready = AtomicU64::new(0);
    // When the last thread was ready, in nanoseconds since `epoch` (0: not yet): the one start
    // every thread's time counts from, so that a thread waiting for its core while another
    // runs is timed waiting.
    let start = AtomicU64::new(0);
    std::thread::scope(|scope| {
        let (ready, start) = (&ready, &start);
        let threads: Vec<_> = cores
            .iter()
            .map(|&core| {
                scope.spawn(move || {
                    let mut buffer = vec![0u64; 1 << 15];
                    let warmed = pin_to_core(core) && Instant::now() < deadline && {
                        std::hint::black_box(work(&mut buffer));
                        true
                    };
                    // Every thread counts itself, warmed or not, so that none waits for one
                    // that gave up; the wait is bounded by the deadline all the same. Relaxed:
                    // the count hands nothing over but itself.
                    if ready.fetch_add(1, Ordering::Relaxed) + 1 == cores.len() as u64 {
                        // Relaxed: a number, read by the others only as a number.
                        start.store(since_epoch(), Ordering::Relaxed);
                    }
                    let started = loop {
                        // Relaxed: see the store.
                        match start.load(Ordering::Relaxed) {
                            0 if Instant::now() >= deadline => return None,
                            0 => std::hint::spin_loop(),
                            started => break started,
                        }
                    };
                    if !warmed {
                        return None;
                    }
                    for _ in 0..WORK_REPS {
                        if Instant::now() >= deadline {
                            return None;
                        }
                        std::hint::black_box(work(&mut buffer));
                    }
                    Some((since_epoch() - started) as f64 / 1e9)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().ok().flatten()).collect::<Option<Vec<f64>>>()
    })
    .map(|times| times.into_iter().fold(0.0, f64::max))
}

/// The probe's work: four chains of [`WORK_STEPS`] steps, each step a load from `buffer` at a
/// place the chain's previous step chose, a multiply, and a store back.
fn work(buffer: &mut [u64]) -> u64 {
    let mask = buffer.len() - 1;
    let mut chains = [0x9e37_79b9_7f4a_7c15u64, 1, 2, 3];
    for _ in 0..WORK_STEPS {
        for x in &mut chains {
            let i = (*x as usize) & mask;
            *x = (*x ^ buffer[i]).wrapping_mul(0x2545_f491_4f6c_dd1d).rotate_left(17);
            buffer[i] = *x;
        }
    }
    chains.iter().fold(0, |a, x| a ^ x)
}

/// Spins until the line holds `value` (true) or, checked every 1024 spins, the deadline has
/// passed or the other side gave up (false). Bounded by the deadline.
fn wait_for(line: &Line, value: u64, deadline: Instant) -> bool {
    let mut spins = 0u32;
    loop {
        // Acquire: pairs with the other side's Release store (see the ponger).
        match line.0.load(Ordering::Acquire) {
            seen if seen == value => return true,
            u64::MAX => return false,
            _ => {}
        }
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(1024) && Instant::now() >= deadline {
            give_up(line);
            return false;
        }
        std::hint::spin_loop();
    }
}

/// Tells the other side to stop waiting now rather than at the deadline.
fn give_up(line: &Line) {
    // Release: pairs with the Acquire load in `wait_for`, like every store to the line.
    line.0.store(u64::MAX, Ordering::Release);
}

/// Pins the calling thread to `core`. Only the probes' own short-lived threads are pinned.
#[cfg(target_os = "linux")]
fn pin_to_core(core: usize) -> bool {
    // SAFETY: `cpu_set_t` is a plain bit set, valid when zeroed; CPU_SET writes within it for
    // `core` < CPU_SETSIZE (checked); `sched_setaffinity(0, ..)` reads `size_of::<cpu_set_t>()`
    // bytes from a live reference and changes only the calling thread's affinity.
    unsafe {
        if core >= libc::CPU_SETSIZE as usize {
            return false;
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// No pinning outside Linux: two unpinned threads may share a core, and the figure would mean
/// nothing.
#[cfg(not(target_os = "linux"))]
fn pin_to_core(_core: usize) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_ends_at_the_deadline_or_when_the_other_side_gives_up() {
        let line = Line(AtomicU64::new(0));
        let started = Instant::now();
        assert!(!wait_for(&line, 1, started + Duration::from_millis(20)), "nobody writes 1");
        assert!(started.elapsed() >= Duration::from_millis(20));
        assert!(started.elapsed() < Duration::from_secs(5), "the deadline bounds the wait");
        assert_eq!(line.0.load(Ordering::Relaxed), u64::MAX, "the waiter told the other side");
        let far = Instant::now() + Duration::from_secs(60);
        assert!(!wait_for(&line, 1, far), "a side that gave up ends the other's wait at once");
        line.0.store(7, Ordering::Relaxed);
        assert!(wait_for(&line, 7, far));
    }

    /// The probes pin threads to cores 0 and 1: one test at a time, or they measure each other.
    static PROBING: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// Whether this machine has two cores to pin the probes' threads to.
    fn can_pin() -> bool {
        std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2 && cfg!(target_os = "linux")
    }

    /// Runs `probe` alone, checks that it kept to its budget and gave nothing where it cannot
    /// measure, and returns what it gave.
    fn probed<T: PartialEq + std::fmt::Debug>(probe: impl FnOnce() -> Option<T>) -> Option<T> {
        let _probing = PROBING.lock().unwrap_or_else(|e| e.into_inner());
        let started = Instant::now();
        let figure = probe();
        // Pinned threads and the joins: the budget, plus slack for a loaded test machine.
        assert!(started.elapsed() < BUDGET + Duration::from_secs(2), "the probe held the caller up");
        if !can_pin() {
            assert_eq!(figure, None, "no figure without two cores to pin to");
        }
        figure
    }

    #[test]
    fn the_slowdown_is_the_slower_core_together_over_the_faster_core_alone() {
        assert_eq!(slowdown([2.0, 4.0], 3.0), 1.5);
        assert_eq!(slowdown([4.0, 2.0], 3.0), 1.5, "whichever core was faster alone");
        assert_eq!(slowdown([2.0, 2.0], 2.0), 1.0);
    }

    #[test]
    fn the_shared_core_probe_gives_a_plausible_ratio_or_none_within_its_budget() {
        // Other tests may hold the cores meanwhile: a figure may read high, but a ratio of two
        // timings of the same work is never far below 1, nor above what taking turns on one
        // core, with interruptions, could give.
        if let Some(ratio) = probed(shared_core_slowdown) {
            assert!((0.5..20.0).contains(&ratio), "implausible: {ratio}");
        }
    }

    #[test]
    fn two_threads_pinned_to_one_core_take_turns_and_the_probe_sees_it() {
        // What the probe reports when the two cores are in fact one: both threads on core 0.
        if !can_pin() {
            return;
        }
        let _probing = PROBING.lock().unwrap_or_else(|e| e.into_inner());
        // Other tests share the machine: one of three tries must show it (two threads taking
        // turns need about twice as long).
        let mut tries = Vec::new();
        for _ in 0..3 {
            let deadline = Instant::now() + BUDGET;
            if let (Some(alone), Some(shared)) = (timed_work_on(&[0], deadline), timed_work_on(&[0, 0], deadline)) {
                if shared > 1.3 * alone {
                    return;
                }
                tries.push((shared, alone));
            }
        }
        // Every try ran out of budget on a loaded machine: nothing was measured.
        assert!(tries.is_empty(), "two threads on one core, (s, s alone): {tries:?}");
    }

    #[test]
    fn a_probe_gives_a_plausible_round_trip_or_none_and_never_outlives_its_budget() {
        // Other tests may hold the cores meanwhile, so the budget may run out (`None`, which the
        // bench reports as such); a figure, when given, is a real round trip: at least two
        // cache misses, and no longer than the budget spread over the round trips.
        if let Some(ns) = probed(cross_core_round_trip_ns) {
            assert!(ns > 1.0 && ns <= BUDGET.as_nanos() as f64 / ROUND_TRIPS as f64 * 2.0, "implausible: {ns} ns");
        }
    }
}
