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
//! microseconds such a transaction takes; most calls have lower limits and are never timed),
//! and as each transaction is merged, the engine learns from the execution that was merged: a
//! call (recipient and selector) whose merged executions took [`HEAVY_TIME`] or more
//! [`HEAVY_RUNS`] times in a row is remembered, across blocks, and the dispatcher starts the
//! next transaction that makes it first, as it does a heavy one by gas. One merged execution in
//! less and the call is forgotten. What is remembered only orders the work: a call wrongly
//! taken for heavy starts early and is validated like any other. The time is the wall clock's:
//! a slot of the drop-in that waits for the caller to answer its reads counts the wait, and so
//! does the caller executing at a transaction's turn while it answers the slots, which can make
//! a call look heavier than it is; it then only starts early.
//!
//! Only merged executions teach: a speculative one that was redone, or that failed on stale
//! state, says little of the call. Once is not enough either: a thread preempted in the middle
//! of an execution, or an execution on cold caches, takes milliseconds too. Learnt from single
//! executions, the bench's passes over the 100+ transaction mainnet blocks took swap routers
//! (Uniswap's, 0x's) for heavy a few times each, and a later block's every swap through one of
//! them then left its lane for the front of a worker's, out of its affinity: five of those
//! blocks 4-7% slower (alternating pairs).
//!
//! Once the engine has seen them, 19932703 runs at 1.60x instead of 1.20x and 11743952 at 1.79x
//! instead of 1.54x; 16146267, whose 0.8 ms call is learnt too, at 1.56x instead of 1.65x: its
//! next heaviest (0.44-0.51 ms, under the line) then ends the block alone (`docs/benchmarks-log.md`,
//! "Changes measured alone", session 19). A block whose heavy call is new to the process gains
//! nothing: the call is learnt as it runs.
//!
//! The memory is the engine's, and within the engine only the block's caller's thread looks it
//! up (the dispatch, a session's arrivals) and teaches it (the merge): the engine never
//! contends for the lock.

use std::time::Duration;

use alloy_primitives::{Address, map::HashMap};
use parevm_statedb::TxSummary;
use parking_lot::Mutex;

/// The least gas limit of a transaction that is timed: less than a proof verification needs
/// (a pairing of two points alone is 113,000 gas since Istanbul, and the calls above spent
/// 300,000 and more), more than the limits of most calls (a token transfer, a swap through one
/// pool), which are never timed.
pub const MIN_GAS: u64 = 200_000;

/// An execution this long makes its call heavy: a sixteenth of a block of 8 ms, the time this
/// machine's busiest mainnet blocks take sequentially. Half of it caught 16146267's next
/// heaviest call too, and many more calls besides, for no gain over the whole of the mainnet
/// blocks (`docs/benchmarks-log.md`, session 19).
pub const HEAVY_TIME: Duration = Duration::from_micros(500);

/// Merged executions in a row that must take [`HEAVY_TIME`] for their call to be heavy.
pub const HEAVY_RUNS: u8 = 2;

/// Calls remembered at most; beyond, the one seen longest ago is dropped.
const CAPACITY: usize = 1024;

/// Whether executions of a transaction with this gas limit are timed (see the module's notes).
pub fn is_timed(gas_limit: u64) -> bool {
    gas_limit >= MIN_GAS
}

/// A contract's function: the recipient and the selector of a transaction's call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Call {
    to: Address,
    selector: [u8; 4],
}

impl Call {
    /// The call `tx` makes, if it is one whose executions are timed: a call with a selector
    /// and a gas limit of [`MIN_GAS`] or more.
    fn of(tx: &TxSummary) -> Option<Self> {
        if !is_timed(tx.gas_limit) {
            return None;
        }
        Some(Self { to: tx.recipient?, selector: tx.selector? })
    }
}

/// The heavy calls seen so far, shared by every block an engine runs (see the module's notes).
#[derive(Debug, Default)]
pub struct HeavyCalls {
    calls: Mutex<Calls>,
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
    /// Its merged executions in a row that ran long, up to [`HEAVY_RUNS`].
    runs: u8,
}

impl HeavyCalls {
    /// Learns from the merged execution of `tx`, which took `took`: a step towards making its
    /// call heavy if that is [`HEAVY_TIME`] or more, else the call is forgotten. A transaction
    /// whose executions are not timed (see [`is_timed`]) teaches nothing.
    pub fn learn(&self, tx: &TxSummary, took: Duration) {
        let Some(call) = Call::of(tx) else { return };
        let mut calls = self.calls.lock();
        if took < HEAVY_TIME {
            calls.seen.remove(&call);
            return;
        }
        calls.tick += 1;
        let tick = calls.tick;
        if calls.seen.len() >= CAPACITY
            && !calls.seen.contains_key(&call)
            && let Some(oldest) = calls.seen.iter().min_by_key(|(_, seen)| seen.tick).map(|(call, _)| *call)
        {
            // A scan of a thousand entries, only when a new long call finds the memory full.
            calls.seen.remove(&oldest);
        }
        let seen = calls.seen.entry(call).or_insert(Seen { tick, runs: 0 });
        *seen = Seen { tick, runs: (seen.runs + 1).min(HEAVY_RUNS) };
    }

    /// Remembers `tx`'s call as heavy at once, as [`HEAVY_RUNS`] long merged executions of it
    /// would (nothing if its executions are not timed, see [`is_timed`]): for a caller that
    /// already knows the call is heavy, as the tests do.
    pub fn remember(&self, tx: &TxSummary) {
        (0..HEAVY_RUNS).for_each(|_| self.learn(tx, HEAVY_TIME));
    }

    /// Whether `tx` makes a call remembered as heavy.
    pub fn is_heavy(&self, tx: &TxSummary) -> bool {
        let Some(call) = Call::of(tx) else { return false };
        let mut calls = self.calls.lock();
        calls.tick += 1;
        let tick = calls.tick;
        Self::look_up(&mut calls.seen, call, tick)
    }

    /// For each of `txs`, whether it makes a call remembered as heavy, under one lock, or `None`
    /// if none does.
    pub fn heavy(&self, txs: &[TxSummary]) -> Option<Vec<bool>> {
        let mut calls = self.calls.lock();
        if calls.seen.is_empty() {
            return None;
        }
        calls.tick += 1;
        let tick = calls.tick;
        let heavy: Vec<bool> =
            txs.iter().map(|tx| Call::of(tx).is_some_and(|call| Self::look_up(&mut calls.seen, call, tick))).collect();
        heavy.contains(&true).then_some(heavy)
    }

    fn look_up(seen: &mut HashMap<Call, Seen>, call: Call, tick: u64) -> bool {
        match seen.get_mut(&call) {
            Some(seen) if seen.runs >= HEAVY_RUNS => {
                seen.tick = tick;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(to: u8, gas: u64) -> TxSummary {
        TxSummary::new(Address::repeat_byte(0xaa), Some(Address::with_last_byte(to)), gas, &[1, 2, 3, 4, 5])
    }

    #[test]
    fn a_call_that_ran_long_twice_is_heavy_until_it_runs_short() {
        let calls = HeavyCalls::default();
        let tx = call(1, 500_000);
        assert!(!calls.is_heavy(&tx), "nothing learnt yet");
        calls.learn(&tx, HEAVY_TIME);
        assert!(!calls.is_heavy(&tx), "once is not enough");
        calls.learn(&tx, HEAVY_TIME);
        assert!(calls.is_heavy(&tx));
        assert!(!calls.is_heavy(&call(2, 500_000)), "another contract");
        let other_function = TxSummary::new(Address::ZERO, Some(Address::with_last_byte(1)), 500_000, &[9, 9, 9, 9]);
        assert!(!calls.is_heavy(&other_function), "another function of the same contract");
        assert!(calls.is_heavy(&call(1, MIN_GAS)), "the same call with another gas limit");
        assert!(!calls.is_heavy(&call(1, MIN_GAS - 1)), "too little gas to be timed is never heavy");
        calls.learn(&tx, HEAVY_TIME - Duration::from_nanos(1));
        assert!(!calls.is_heavy(&tx), "forgotten once it ran short");
        calls.learn(&tx, HEAVY_TIME);
        assert!(!calls.is_heavy(&tx), "and learnt from the start again");
    }

    #[test]
    fn a_single_long_execution_between_short_ones_teaches_nothing() {
        let calls = HeavyCalls::default();
        let tx = call(1, 500_000);
        for took in [HEAVY_TIME * 10, HEAVY_TIME / 10, HEAVY_TIME * 10, HEAVY_TIME / 10] {
            calls.learn(&tx, took);
            assert!(!calls.is_heavy(&tx), "{took:?}");
        }
    }

    #[test]
    fn only_calls_with_a_selector_and_enough_gas_teach() {
        let calls = HeavyCalls::default();
        let plain = TxSummary::new(Address::ZERO, Some(Address::with_last_byte(1)), 500_000, &[]);
        let creation = TxSummary::new(Address::ZERO, None, 500_000, &[1, 2, 3, 4]);
        for tx in [call(1, MIN_GAS - 1), plain, creation] {
            calls.remember(&tx);
            assert!(calls.calls.lock().seen.is_empty(), "{tx:?}");
        }
        calls.remember(&call(1, MIN_GAS));
        assert_eq!(calls.calls.lock().seen.len(), 1);
    }

    #[test]
    fn a_full_memory_drops_the_call_seen_longest_ago() {
        let calls = HeavyCalls::default();
        let summary = |i: usize| {
            TxSummary::new(Address::ZERO, Some(Address::left_padding_from(&i.to_be_bytes())), MIN_GAS, &[1, 2, 3, 4])
        };
        for i in 0..CAPACITY {
            calls.remember(&summary(i));
        }
        // Call 0 is looked up (seen again), so call 1 is now the oldest.
        assert!(calls.is_heavy(&summary(0)));
        calls.remember(&summary(CAPACITY));
        assert_eq!(calls.calls.lock().seen.len(), CAPACITY);
        assert!(calls.is_heavy(&summary(0)) && calls.is_heavy(&summary(CAPACITY)));
        assert!(!calls.is_heavy(&summary(1)));
    }

    #[test]
    fn a_lookup_marks_the_heavy_ones_or_says_there_are_none() {
        let calls = HeavyCalls::default();
        let block = [call(1, MIN_GAS), call(7, MIN_GAS), call(7, 21_000), call(7, 1_000_000)];
        assert_eq!(calls.heavy(&block), None, "nothing remembered");
        calls.remember(&call(7, MIN_GAS));
        assert_eq!(calls.heavy(&block), Some(vec![false, true, false, true]));
        assert_eq!(calls.heavy(&block[..1]), None, "none of these");
    }
}
