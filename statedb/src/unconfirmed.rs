//! Unconfirmed results: the newest execution of every executed-but-not-merged transaction.
//!
//! A result is published once, immutably, behind an `Arc`; a re-execution publishes a new one
//! that replaces it. A later transaction reads an earlier one's writes from here before they are
//! merged (searching from its own predecessor down to the first unmerged transaction, newest
//! first), which is what lets dependent transactions in one slot run back to back.
//!
//! The search does not walk the window of unmerged transactions, which can be the whole block
//! when slots run far ahead of the merger: an index lists, per address, the transactions whose
//! results wrote it, so a read looks only at those. The index only grows during a block; an
//! entry whose newest result no longer writes the address is skipped when found.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use alloy_primitives::{Address, U256, map::DefaultHashBuilder};
use crossbeam_utils::CachePadded;
use dashmap::DashMap;
use parking_lot::RwLock;
use revm::{
    context::result::{EVMError, ExecutionResult, HaltReason, InvalidTransaction},
    state::{AccountInfo, EvmState},
};
use smallvec::SmallVec;

use crate::{AccountWrite, DbError, ReadSet, TxIndex, Wakeup, classify_write};

/// How one execution of a transaction ended.
#[derive(Debug)]
pub enum ExecOutcome {
    /// The transaction ran (it may have reverted or halted: that is still a valid outcome).
    Executed {
        /// revm's result: gas, logs, output.
        result: ExecutionResult<HaltReason>,
        /// Write set (and the accounts it loaded).
        state: EvmState,
        /// The beneficiary's fee, when the transaction never loaded the beneficiary and the
        /// merger must credit it at the transaction's turn (see `slots`' handler).
        deferred_reward: Option<u128>,
    },
    /// revm rejected the transaction (invalid against the state it saw, or a database error).
    Invalid(EVMError<DbError, InvalidTransaction>),
    /// Execution panicked; the message is kept for the error report.
    Panicked(String),
}

/// One execution's result with the reads that justify it.
#[derive(Debug)]
pub struct TxResult {
    /// Which execution of the transaction this is (1 for the first).
    pub incarnation: u32,
    /// The outcome.
    pub outcome: ExecOutcome,
    /// Every value read from the unconfirmed layer or the base.
    pub reads: ReadSet,
    /// How many transactions were merged when this execution started. If that was all of the
    /// transaction's predecessors, the execution read exact state and cannot be invalid.
    pub merged_at_start: TxIndex,
}

impl TxResult {
    /// The write set, if the transaction executed.
    pub fn state(&self) -> Option<&EvmState> {
        match &self.outcome {
            ExecOutcome::Executed { state, .. } => Some(state),
            _ => None,
        }
    }
}

/// The unconfirmed layer of one block.
#[derive(Debug)]
pub struct Unconfirmed {
    /// One cache line per transaction (see `TaskTable`): a slot publishes one transaction while
    /// the merger polls or takes its neighbour.
    results: Vec<CachePadded<RwLock<Option<Arc<TxResult>>>>>,
    /// Wakes the merger when a result is published.
    wakeup: Arc<Wakeup>,
    /// Per address, the transactions (ascending) whose results wrote it at some point. Most
    /// addresses are written once or twice in a block: inline, that costs no allocation.
    writers: DashMap<Address, SmallVec<[Writer; 2]>, DefaultHashBuilder>,
}

/// A transaction that wrote an address, with a one-word filter of the storage slots it changed
/// there: a storage read passes over the writers whose filter rules its slot out without
/// touching their results. A token contract is written by every transfer, each to other
/// holders' slots, so without it every balance read walked every unmerged transfer's result,
/// taking each one's lock, on lines the publishing core had just written.
#[derive(Debug, Clone, Copy)]
struct Writer {
    tx: TxIndex,
    /// Bit `slot_bit(slot)` for every slot changed, over all of the transaction's results (a
    /// redo's filter is added to its predecessor's, as the index only grows); all ones when the
    /// account was created or destroyed, which decides every slot.
    slots: u64,
}

/// A slot's bit in a [`Writer`]'s filter: its low six bits. Mapping keys are keccak hashes and
/// plain variables are small consecutive numbers, so both spread over the word without hashing.
fn slot_bit(slot: &U256) -> u64 {
    1 << (slot.as_limbs()[0] & 63)
}

/// The filter bits of one account's write.
fn slot_bits(write: AccountWrite, account: &revm::state::Account) -> u64 {
    match write {
        AccountWrite::Created | AccountWrite::Destroyed => u64::MAX,
        AccountWrite::Changed => account.changed_storage_slots().fold(0, |bits, (slot, _)| bits | slot_bit(slot)),
        AccountWrite::None => 0,
    }
}

impl Unconfirmed {
    /// Room for a block of `len` transactions.
    pub fn new(len: usize) -> Self {
        Self::with_wakeup(len, Arc::default())
    }

    /// Room for `len` transactions, signalling publications on `wakeup` (shared with whatever
    /// else the merger's thread must wake up for).
    pub fn with_wakeup(len: usize, wakeup: Arc<Wakeup>) -> Self {
        Self {
            results: (0..len).map(|_| CachePadded::new(RwLock::new(None))).collect(),
            wakeup,
            // A sender and a recipient per transaction, sized up front like the base state.
            writers: DashMap::with_capacity_and_hasher(2 * len, DefaultHashBuilder::default()),
        }
    }

    /// What the merger's thread sleeps on.
    pub fn wakeup(&self) -> &Wakeup {
        &self.wakeup
    }

    /// Publishes a new execution of `tx`, replacing the previous one.
    pub fn publish(&self, tx: TxIndex, result: Arc<TxResult>) {
        if let Some(state) = result.state() {
            for (address, account) in state {
                let write = classify_write(account);
                if write != AccountWrite::None {
                    let slots = slot_bits(write, account);
                    let mut writers = self.writers.entry(*address).or_default();
                    match writers.binary_search_by_key(&tx, |w| w.tx) {
                        Ok(at) => writers[at].slots |= slots,
                        Err(at) => writers.insert(at, Writer { tx, slots }),
                    }
                }
            }
        }
        // Indexed before it is visible: a reader that finds the index entry but not yet the
        // result just skips it, as if the transaction had not executed yet.
        *self.results[tx].write() = Some(result);
        self.wakeup.notify();
    }

    /// Removes the result of a merged transaction (readers then find its writes in the base).
    pub fn take(&self, tx: TxIndex) -> Option<Arc<TxResult>> {
        self.results[tx].write().take()
    }

    /// Waits until `tx` has a result newer than incarnation `seen`, for at most `timeout`.
    /// Only one thread (the merger) may wait at a time.
    pub fn wait_newer(&self, tx: TxIndex, seen: u32, timeout: Duration) -> Option<Arc<TxResult>> {
        self.wakeup.wait_until(Instant::now() + timeout, || self.newer(tx, seen))
    }

    /// The newest execution of `tx` if it is newer than incarnation `seen`.
    pub fn newer(&self, tx: TxIndex, seen: u32) -> Option<Arc<TxResult>> {
        self.get(tx).filter(|r| r.incarnation > seen)
    }

    /// Whether `tx` has a result, without taking a reference to it.
    pub fn has_result(&self, tx: TxIndex) -> bool {
        self.results[tx].read().is_some()
    }

    /// The newest execution of `tx`.
    pub fn get(&self, tx: TxIndex) -> Option<Arc<TxResult>> {
        self.results[tx].read().clone()
    }

    /// The account as written by the newest of the transactions `first_unmerged..reader`, if any
    /// wrote it. `Some(None)` means it was destroyed.
    pub fn account(&self, reader: TxIndex, first_unmerged: TxIndex, address: Address) -> Option<Option<AccountInfo>> {
        self.search(reader, first_unmerged, address, None, |state| {
            let account = state.get(&address)?;
            match classify_write(account) {
                AccountWrite::None => None,
                AccountWrite::Destroyed => Some(None),
                AccountWrite::Created | AccountWrite::Changed => Some(Some(account.info.clone())),
            }
        })
    }

    /// The slot as written by the newest of the transactions `first_unmerged..reader`, if any
    /// wrote it (or wiped the account's storage).
    pub fn storage(&self, reader: TxIndex, first_unmerged: TxIndex, address: Address, slot: U256) -> Option<U256> {
        self.search(reader, first_unmerged, address, Some(slot_bit(&slot)), |state| {
            let account = state.get(&address)?;
            match classify_write(account) {
                AccountWrite::None => None,
                AccountWrite::Destroyed => Some(U256::ZERO),
                AccountWrite::Created => Some(account.storage.get(&slot).map_or(U256::ZERO, |s| s.present_value)),
                AccountWrite::Changed => account.storage.get(&slot).filter(|s| s.is_changed()).map(|s| s.present_value),
            }
        })
    }

    fn search<T>(
        &self,
        reader: TxIndex,
        first_unmerged: TxIndex,
        address: Address,
        slot_bit: Option<u64>,
        mut find: impl FnMut(&EvmState) -> Option<T>,
    ) -> Option<T> {
        // Every predecessor merged: nothing here for the reader (and one shared-map lookup
        // saved on the path of every exact execution).
        if first_unmerged >= reader {
            return None;
        }
        let writers = self.writers.get(&address)?;
        let below = writers.partition_point(|w| w.tx < reader);
        let candidates = writers[..below].iter().rev().take_while(|w| w.tx >= first_unmerged);
        // A storage read (`slot_bit`) looks only at writers that may have changed its slot.
        for tx in candidates.filter(|w| slot_bit.is_none_or(|bit| w.slots & bit != 0)).map(|w| w.tx) {
            let guard = self.results[tx].read();
            if let Some(state) = guard.as_ref().and_then(|r| r.state())
                && let Some(found) = find(state)
            {
                return Some(found);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ReadSetPool;
    use revm::{
        context::result::{ExecutionResult, Output, SuccessReason},
        primitives::Bytes,
        state::{Account, EvmStorageSlot, TransactionId},
    };

    /// An account written with this balance and, optionally, one storage slot (key, value).
    type Write = (Address, u64, Option<(u64, u64)>);

    fn publish(unconfirmed: &Unconfirmed, tx: TxIndex, writes: &[Write]) {
        let mut state = EvmState::default();
        for &(address, balance, slot) in writes {
            let mut account = Account::from(AccountInfo::from_balance(U256::from(balance)));
            if let Some((key, value)) = slot {
                account.storage.insert(
                    U256::from(key),
                    EvmStorageSlot::new_changed(U256::ZERO, U256::from(value), TransactionId::ZERO),
                );
            }
            account.mark_touch();
            state.insert(address, account);
        }
        publish_state(unconfirmed, tx, state);
    }

    /// Publishes a successful execution of `tx` that wrote `state`.
    fn publish_state(unconfirmed: &Unconfirmed, tx: TxIndex, state: EvmState) {
        let result = ExecutionResult::Success {
            reason: SuccessReason::Stop,
            gas: Default::default(),
            logs: vec![],
            output: Output::Call(Bytes::new()),
        };
        let outcome = ExecOutcome::Executed { result, state, deferred_reward: None };
        let reads = ReadSetPool::new(1).take();
        unconfirmed.publish(tx, Arc::new(TxResult { incarnation: 1, outcome, reads, merged_at_start: 0 }));
    }

    #[test]
    fn reads_see_the_newest_earlier_unmerged_writer_only() {
        let a = Address::with_last_byte(1);
        let unconfirmed = Unconfirmed::new(6);
        publish(&unconfirmed, 1, &[(a, 10, Some((7, 70)))]);
        publish(&unconfirmed, 3, &[(a, 30, None)]);
        publish(&unconfirmed, 5, &[(a, 50, None)]);
        let balance = |reader, first_unmerged| {
            unconfirmed.account(reader, first_unmerged, a).map(|info| info.unwrap().balance.to::<u64>())
        };
        assert_eq!(balance(5, 0), Some(30), "newest earlier writer");
        assert_eq!(balance(3, 0), Some(10), "never a later one");
        assert_eq!(balance(1, 0), None, "nothing before tx 1");
        assert_eq!(balance(5, 4), None, "merged writers are the base's business");
        // The slot was written only by tx 1: tx 3's write of the account does not hide it.
        assert_eq!(unconfirmed.storage(5, 0, a, U256::from(7)), Some(U256::from(70)));
        assert_eq!(unconfirmed.storage(5, 2, a, U256::from(7)), None);
        assert_eq!(unconfirmed.account(5, 0, Address::with_last_byte(2)), None);
    }

    #[test]
    fn the_slot_filter_never_hides_a_writer_of_the_slot() {
        let a = Address::with_last_byte(1);
        let unconfirmed = Unconfirmed::new(8);
        // Slots 7 and 71 share a filter bit, 8 has its own.
        publish(&unconfirmed, 1, &[(a, 10, Some((7, 70)))]);
        publish(&unconfirmed, 2, &[(a, 20, Some((71, 710)))]);
        publish(&unconfirmed, 3, &[(a, 30, Some((8, 80)))]);
        assert_eq!(unconfirmed.storage(4, 0, a, U256::from(7)), Some(U256::from(70)), "past a colliding writer");
        assert_eq!(unconfirmed.storage(4, 0, a, U256::from(71)), Some(U256::from(710)));
        assert_eq!(unconfirmed.storage(4, 0, a, U256::from(8)), Some(U256::from(80)));
        assert_eq!(unconfirmed.storage(4, 0, a, U256::from(9)), None);
        // A redo of 3 that writes slot 9 instead: found, though its first result did not write it.
        publish(&unconfirmed, 3, &[(a, 30, Some((9, 90)))]);
        assert_eq!(unconfirmed.storage(4, 0, a, U256::from(9)), Some(U256::from(90)));
        assert_eq!(unconfirmed.storage(4, 0, a, U256::from(8)), None, "the redo no longer writes 8");
        // A created account decides every slot, whatever bits its storage has.
        let mut state = EvmState::default();
        let mut created = Account::from(AccountInfo::from_balance(U256::from(1)));
        created.mark_created();
        created.mark_touch();
        state.insert(a, created);
        publish_state(&unconfirmed, 5, state);
        assert_eq!(unconfirmed.storage(6, 0, a, U256::from(7)), Some(U256::ZERO), "a new account's slots are zero");
    }

    #[test]
    fn a_redo_that_no_longer_writes_an_address_is_skipped() {
        let (a, b) = (Address::with_last_byte(1), Address::with_last_byte(2));
        let unconfirmed = Unconfirmed::new(4);
        publish(&unconfirmed, 0, &[(a, 1, None)]);
        publish(&unconfirmed, 2, &[(a, 2, None)]);
        publish(&unconfirmed, 2, &[(b, 3, None)]);
        let info = unconfirmed.account(3, 0, a).unwrap().unwrap();
        assert_eq!(info.balance, U256::from(1));
    }

    #[test]
    fn the_merger_is_woken_by_a_publication() {
        let unconfirmed = Unconfirmed::new(1);
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(20));
                publish(&unconfirmed, 0, &[]);
            });
            let started = Instant::now();
            let result = unconfirmed.wait_newer(0, 0, Duration::from_secs(10));
            assert!(result.is_some());
            assert!(started.elapsed() < Duration::from_secs(5));
        });
        assert!(unconfirmed.wait_newer(0, 1, Duration::from_millis(10)).is_none(), "times out without a newer one");
    }
}
