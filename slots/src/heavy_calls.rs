//! Calls that ran long before: heavy transactions that their gas limits do not show.
//!
//! The dispatcher starts heavy transactions first (`parevm_dispatcher`'s `dispatch.rs`): one
//! started in block order, late, ends the block late and leaves the other thread idle while it
//! runs. It tells them by their gas limits, and some are heavy for their gas: verifying a proof
//! (bn254 pairings) takes milliseconds of a gas limit that other calls spend in microseconds.
//! Mainnet block 19932703 spends 6.0 of its 10.0 ms in transaction 142, a rollup's batches
//! finalized with their proof (gas limit 556,413, a fortieth of the block's limits); 11743952
//! spends 2.6 of 8.3 ms in transaction 165, a mixer's withdrawal (397,826).
//!
//! Such calls recur: a rollup finalizes its batches through the same function of the same
//! contract, a mixer verifies every withdrawal the same way. So every execution of a transaction
//! with a gas limit of [`MIN_GAS`] or more is timed (two clock reads, against the tens of
//! microseconds such a transaction takes; cheaper ones are never timed), and a call (recipient
//! and selector) whose executions took [`HEAVY_TIME`] or more [`HEAVY_RUNS`] times in a row is
//! remembered, across blocks; the dispatcher starts the next transaction that makes it first, as
//! it does a heavy one by gas. One execution in less and the call is forgotten. What is
//! remembered only orders the work: a call wrongly taken for heavy starts early and is
//! validated like any other. The time is the wall clock's: a slot of the drop-in that waits for
//! the caller to answer its reads counts the wait, which can make a call look heavier than it
//! is, and then it only starts early.
//!
//! Once is not enough: a thread preempted in the middle of an execution, or an execution on
//! cold caches, takes milliseconds too. Learnt from single executions, the bench's passes over
//! the 100+ transaction mainnet blocks took swap routers (Uniswap's, 0x's) for heavy a few times
//! each, and a later block's every swap through one of them then left its lane for the front
//! of a worker's, out of its affinity: five of those blocks 4-7% slower (alternating pairs).
//!
//! Once the engine has seen them, 19932703 runs at 1.66x instead of 1.21x and 11743952 at 1.82x
//! instead of 1.56x; 16146267, whose 0.8 ms call is learnt too, at 1.56x instead of 1.61x
//! (`docs/benchmarks.md`, "Changes measured alone", session 19). A block whose heavy call is new
//! to the process gains nothing: the call is learnt as it runs.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use alloy_primitives::{Address, map::HashMap};
use parevm_statedb::{BlockTxs, TxIndex, TxSummary};
use parking_lot::Mutex;

/// The least gas limit of a transaction that is timed: less than a proof verification needs
/// (a pairing of two points alone is 113,000 gas since Istanbul, and the calls above spent
/// 300,000 and more), more than the calls of a busy block's common run (a token transfer, a
/// swap), so that those are never timed.
pub const MIN_GAS: u64 = 200_000;

/// An execution this long makes its call heavy: a sixteenth of a block of 8 ms, the time this
/// machine's busiest mainnet blocks take sequentially.
pub const HEAVY_TIME: Duration = Duration::from_micros(500);

/// Executions in a row that must take [`HEAVY_TIME`] for their call to be heavy.
pub const HEAVY_RUNS: u8 = 2;

/// Calls remembered at most; beyond, the one seen longest ago is dropped.
const CAPACITY: usize = 1024;

/// A contract's function: the recipient and the selector of a transaction's call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Call {
    to: Address,
    selector: [u8; 4],
}

impl Call {
    /// The call `tx` makes, if it is one that is timed: a call with a selector and a gas limit
    /// of [`MIN_GAS`] or more.
    pub fn of(tx: &TxSummary) -> Option<Self> {
        if tx.gas_limit < MIN_GAS {
            return None;
        }
        Some(Self { to: tx.recipient?, selector: tx.selector? })
    }
}

/// The heavy calls seen so far, shared by every block an engine runs (see the module's notes).
#[derive(Debug, Default)]
pub struct HeavyCalls {
    /// Each call, with the tick it was last seen heavy or looked up at.
    calls: Mutex<Calls>,
    /// Whether `calls` holds any: a block with no heavy call in memory (most of them) takes the
    /// lock neither to look up nor to forget. Relaxed: a hint, set and cleared under the lock; a
    /// stale one costs a lock taken for nothing or one call forgotten a block later.
    any: AtomicBool,
}

#[derive(Debug, Default)]
struct Calls {
    seen: HashMap<Call, Seen>,
    tick: u64,
}

/// What is remembered of a call.
#[derive(Debug, Clone, Copy)]
struct Seen {
    /// When it last ran long or was looked up: the oldest goes first when the memory is full.
    tick: u64,
    /// Its executions in a row that ran long, up to [`HEAVY_RUNS`].
    runs: u8,
}

impl HeavyCalls {
    /// Runs `execute`, the execution of transaction `tx` of `txs`, timing it if its call may be
    /// heavy and remembering or forgetting the call by the time it took. With no memory
    /// (`None`), or for a transaction under [`MIN_GAS`], it only runs `execute`.
    pub fn time<R>(calls: Option<&Self>, txs: &BlockTxs<'_>, tx: TxIndex, execute: impl FnOnce() -> R) -> R {
        // The gas limit first: it is read without parsing the input.
        let Some(call) = calls.filter(|_| txs.gas_limit(tx) >= MIN_GAS).and_then(|_| Call::of(&txs.summary(tx))) else {
            return execute();
        };
        let started = Instant::now();
        let result = execute();
        calls.expect("checked above").learn(call, started.elapsed());
        result
    }

    /// Counts an execution of `call` that took `took` of [`HEAVY_TIME`] or more towards making
    /// it heavy, and forgets the call after one that took less.
    pub fn learn(&self, call: Call, took: Duration) {
        if took >= HEAVY_TIME {
            let mut calls = self.calls.lock();
            calls.tick += 1;
            let tick = calls.tick;
            if calls.seen.len() >= CAPACITY
                && !calls.seen.contains_key(&call)
                && let Some(oldest) = calls.seen.iter().min_by_key(|(_, seen)| seen.tick).map(|(call, _)| *call)
            {
                // A scan of a thousand entries, only when a new heavy call finds the memory full.
                calls.seen.remove(&oldest);
            }
            let seen = calls.seen.entry(call).or_insert(Seen { tick, runs: 0 });
            *seen = Seen { tick, runs: (seen.runs + 1).min(HEAVY_RUNS) };
            self.any.store(true, Ordering::Relaxed);
        } else if self.any.load(Ordering::Relaxed) {
            let mut calls = self.calls.lock();
            calls.seen.remove(&call);
            self.any.store(!calls.seen.is_empty(), Ordering::Relaxed);
        }
    }

    /// Whether `tx` makes a call remembered as heavy.
    pub fn is_heavy(&self, tx: &TxSummary) -> bool {
        // The gas first: most transactions are looked up without the lock.
        Call::of(tx).is_some() && self.heavy(std::iter::once(tx)).next().is_some()
    }

    /// The positions, among `txs`, of the transactions that make a call remembered as heavy,
    /// under one lock.
    pub fn heavy<'t>(&self, txs: impl IntoIterator<Item = &'t TxSummary>) -> impl Iterator<Item = usize> {
        let mut found = Vec::new();
        if self.any.load(Ordering::Relaxed) {
            let mut calls = self.calls.lock();
            calls.tick += 1;
            let tick = calls.tick;
            for (i, tx) in txs.into_iter().enumerate() {
                if let Some(seen) = Call::of(tx).and_then(|call| calls.seen.get_mut(&call))
                    && seen.runs >= HEAVY_RUNS
                {
                    seen.tick = tick;
                    found.push(i);
                }
            }
        }
        found.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(to: u8, gas: u64) -> TxSummary {
        TxSummary::new(Address::repeat_byte(0xaa), Some(Address::with_last_byte(to)), gas, &[1, 2, 3, 4, 5])
    }

    #[test]
    fn a_call_that_ran_long_is_heavy_until_it_runs_short() {
        let calls = HeavyCalls::default();
        let tx = call(1, 500_000);
        assert!(!calls.is_heavy(&tx), "nothing learnt yet");
        calls.learn(Call::of(&tx).unwrap(), HEAVY_TIME);
        assert!(!calls.is_heavy(&tx), "once is not enough");
        calls.learn(Call::of(&tx).unwrap(), HEAVY_TIME);
        assert!(calls.is_heavy(&tx));
        assert!(!calls.is_heavy(&call(2, 500_000)), "another contract");
        let other_function = TxSummary::new(Address::ZERO, Some(Address::with_last_byte(1)), 500_000, &[9, 9, 9, 9]);
        assert!(!calls.is_heavy(&other_function), "another function of the same contract");
        assert!(calls.is_heavy(&call(1, MIN_GAS)), "the same call with another gas limit");
        assert!(!calls.is_heavy(&call(1, MIN_GAS - 1)), "too little gas to be timed is never heavy");
        calls.learn(Call::of(&tx).unwrap(), HEAVY_TIME - Duration::from_nanos(1));
        assert!(!calls.is_heavy(&tx), "forgotten once it ran short");
        calls.learn(Call::of(&tx).unwrap(), HEAVY_TIME);
        assert!(!calls.is_heavy(&tx), "and learnt from the start again");
    }

    #[test]
    fn a_single_long_execution_between_short_ones_teaches_nothing() {
        let calls = HeavyCalls::default();
        let tx = call(1, 500_000);
        for took in [HEAVY_TIME * 10, HEAVY_TIME / 10, HEAVY_TIME * 10, HEAVY_TIME / 10] {
            calls.learn(Call::of(&tx).unwrap(), took);
            assert!(!calls.is_heavy(&tx), "{took:?}");
        }
    }

    #[test]
    fn only_calls_with_a_selector_and_enough_gas_are_timed() {
        assert!(Call::of(&call(1, MIN_GAS)).is_some());
        assert!(Call::of(&call(1, MIN_GAS - 1)).is_none());
        let plain = TxSummary::new(Address::ZERO, Some(Address::with_last_byte(1)), 500_000, &[]);
        assert!(Call::of(&plain).is_none(), "no input");
        let creation = TxSummary::new(Address::ZERO, None, 500_000, &[1, 2, 3, 4]);
        assert!(Call::of(&creation).is_none(), "a creation");
    }

    #[test]
    fn a_full_memory_drops_the_call_seen_longest_ago() {
        let calls = HeavyCalls::default();
        let key = |i: usize| Call { to: Address::left_padding_from(&i.to_be_bytes()), selector: [1, 2, 3, 4] };
        let learn = |call| (0..HEAVY_RUNS).for_each(|_| calls.learn(call, HEAVY_TIME));
        for i in 0..CAPACITY {
            learn(key(i));
        }
        // Call 0 is looked up (seen again), so call 1 is now the oldest.
        let summary = |i: usize| TxSummary::new(Address::ZERO, Some(key(i).to), MIN_GAS, &key(i).selector);
        assert_eq!(calls.heavy([&summary(0)]).count(), 1);
        learn(key(CAPACITY));
        assert_eq!(calls.calls.lock().seen.len(), CAPACITY);
        assert!(calls.is_heavy(&summary(0)) && calls.is_heavy(&summary(CAPACITY)));
        assert!(!calls.is_heavy(&summary(1)));
    }

    #[test]
    fn a_lookup_gives_the_positions_of_the_heavy_ones() {
        let calls = HeavyCalls::default();
        (0..HEAVY_RUNS).for_each(|_| calls.learn(Call::of(&call(7, MIN_GAS)).unwrap(), HEAVY_TIME * 2));
        let block = [call(1, MIN_GAS), call(7, MIN_GAS), call(7, 21_000), call(7, 1_000_000)];
        assert_eq!(calls.heavy(&block).collect::<Vec<_>>(), [1, 3]);
    }

    #[test]
    fn an_execution_is_timed_only_when_its_call_may_be_heavy() {
        use revm::context::TxEnv;
        let env = |gas| TxEnv {
            kind: revm::primitives::TxKind::Call(Address::with_last_byte(3)),
            gas_limit: gas,
            data: vec![1, 2, 3, 4].into(),
            ..Default::default()
        };
        let source = vec![env(MIN_GAS), env(MIN_GAS - 1)];
        let txs = BlockTxs::from_source(&source);
        let calls = HeavyCalls::default();
        let slow = || std::thread::sleep(HEAVY_TIME);
        HeavyCalls::time(Some(&calls), &txs, 1, slow);
        assert!(!calls.is_heavy(&txs.summary(0)) && !calls.any.load(Ordering::Relaxed), "not timed");
        HeavyCalls::time(None, &txs, 0, slow);
        assert!(!calls.is_heavy(&txs.summary(0)), "no memory");
        for _ in 0..HEAVY_RUNS {
            assert_eq!(HeavyCalls::time(Some(&calls), &txs, 0, || (slow(), 42).1), 42);
        }
        assert!(calls.is_heavy(&txs.summary(0)));
    }
}
