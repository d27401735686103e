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
//!
//! A storage read must not walk every writer of a contract either: every transfer of a token
//! writes the token, each to other holders' slots. Once an address has `HOT_WRITERS` writers,
//! its later writers are also listed per slot they changed, and a storage read there looks at
//! that slot's writers, at the accounts' creators and destroyers (which decide every slot), and
//! at the writers from before the list existed, no others. Before it, a read of a token's slot
//! walked the filters of every unmerged writer and opened the results of the one in 64 whose
//! filter matched by chance: about 2 µs a read with 1,024 unmerged transfers (`cargo bench -p
//! parevm-statedb --bench slot_db -- hot_contract`, which reads 0.1 µs at any count now), and a
//! worker running ahead of the merger through a whole block of ERC-20 transfers spent a sixth of
//! its time there.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use alloy_primitives::{Address, U256, map::HashMap};
use crossbeam_utils::CachePadded;
use dashmap::DashMap;
use parking_lot::RwLock;
use revm::{
    context::result::{EVMError, ExecutionResult, HaltReason, InvalidTransaction},
    state::{AccountInfo, EvmState},
};
use smallvec::SmallVec;

use crate::{AccountWrite, DbError, KeyHashBuilder, ReadSet, TxIndex, Wakeup, classify_write};

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
    /// How long the execution took, if it was timed: one of a transaction that may make a heavy
    /// call (`parevm_slots`' `heavy_calls.rs`), or any while the engine's timer is on.
    pub took: Option<Duration>,
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
    /// Per address, the transactions whose results wrote it at some point.
    writers: DashMap<Address, Writers, KeyHashBuilder>,
}

/// The writers of one address.
#[derive(Debug, Default)]
struct Writers {
    /// Every writer, ascending. Most addresses are written once or twice in a block: inline,
    /// that costs no allocation.
    all: SmallVec<[Writer; 2]>,
    /// Per slot, the writers published after the address became hot (at its [`HOT_WRITERS`]th
    /// writer, which is among the `earlier` ones), redos included (see the module's notes).
    by_slot: Option<Box<SlotWriters>>,
}

/// A hot address's writers by the slots they changed, kept from the moment it became hot.
#[derive(Debug, Default)]
struct SlotWriters {
    /// The writers from before, with their filters as they were then: walked as before, at
    /// most [`HOT_WRITERS`] of them.
    earlier: SmallVec<[Writer; HOT_WRITERS]>,
    /// Per changed slot, the later writers that changed it, ascending.
    slots: HashMap<U256, SmallVec<[TxIndex; 2]>, KeyHashBuilder>,
    /// The later writers that created or destroyed the account, ascending.
    wipes: SmallVec<[TxIndex; 1]>,
}

/// An address with this many writers is hot: its later writers are listed per slot.
const HOT_WRITERS: usize = 16;

/// Inserts `tx` into an ascending list unless it is there.
fn insert_sorted<A: smallvec::Array<Item = TxIndex>>(list: &mut SmallVec<A>, tx: TxIndex) {
    if let Err(at) = list.binary_search(&tx) {
        list.insert(at, tx);
    }
}

/// The writers in `lo..hi` of an ascending list, newest first, passing over those whose filter
/// rules out the slot of `bit` (a storage read's; `None`: an account read).
fn filtered(writers: &[Writer], lo: TxIndex, hi: TxIndex, bit: Option<u64>) -> impl Iterator<Item = TxIndex> + '_ {
    writers[..writers.partition_point(|w| w.tx < hi)]
        .iter()
        .rev()
        .take_while(move |w| w.tx >= lo)
        .filter(move |w| bit.is_none_or(|bit| w.slots & bit != 0))
        .map(|w| w.tx)
}

/// The entries of an ascending list in `lo..hi`.
fn in_window(list: &[TxIndex], lo: TxIndex, hi: TxIndex) -> &[TxIndex] {
    &list[list.partition_point(|&tx| tx < lo)..list.partition_point(|&tx| tx < hi)]
}

impl Writers {
    /// Records that `tx`'s newest result wrote the address (`write`, `account`).
    fn add(&mut self, tx: TxIndex, write: AccountWrite, account: &revm::state::Account) {
        let slots = slot_bits(write, account);
        match self.all.binary_search_by_key(&tx, |w| w.tx) {
            Ok(at) => self.all[at].slots |= slots,
            Err(at) => self.all.insert(at, Writer { tx, slots }),
        }
        if self.by_slot.is_none() && self.all.len() >= HOT_WRITERS {
            // Everything so far, this one included, is walked with its filter: its changed slots
            // are not at hand for the others (their results may not be visible yet).
            let earlier = self.all.iter().copied().collect();
            self.by_slot = Some(Box::new(SlotWriters { earlier, ..SlotWriters::default() }));
            return;
        }
        // A redo of an earlier writer is listed like any later one.
        let Some(index) = self.by_slot.as_deref_mut() else { return };
        match write {
            AccountWrite::Created | AccountWrite::Destroyed => insert_sorted(&mut index.wipes, tx),
            AccountWrite::Changed => {
                for (slot, _) in account.changed_storage_slots() {
                    insert_sorted(index.slots.entry(*slot).or_default(), tx);
                }
            }
            AccountWrite::None => {}
        }
    }

    /// Calls `check` on the writers in `lo..hi` that may have changed `slot` (`None`: the
    /// account), newest first, until it returns `Some`.
    fn newest<T>(
        &self,
        lo: TxIndex,
        hi: TxIndex,
        slot: Option<&U256>,
        mut check: impl FnMut(TxIndex) -> Option<T>,
    ) -> Option<T> {
        let bit = slot.map(slot_bit);
        let walk = |writers| filtered(writers, lo, hi, bit);
        let (Some(slot), Some(index)) = (slot, self.by_slot.as_deref()) else {
            return walk(&self.all).find_map(check);
        };
        let listed = index.slots.get(slot).map_or(&[][..], |writers| in_window(writers, lo, hi));
        // Three descending sequences, merged: the earlier writers, the slot's, the wipes.
        let mut earlier = walk(&index.earlier).peekable();
        let mut listed = listed.iter().rev().copied().peekable();
        let mut wipes = in_window(&index.wipes, lo, hi).iter().rev().copied().peekable();
        loop {
            let next = [earlier.peek(), listed.peek(), wipes.peek()].into_iter().flatten().max().copied()?;
            while earlier.next_if_eq(&next).is_some() {}
            while listed.next_if_eq(&next).is_some() {}
            while wipes.next_if_eq(&next).is_some() {}
            if let Some(found) = check(next) {
                return Some(found);
            }
        }
    }
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
    /// redo's filter is added to its predecessor's, as the index only grows; the copies in
    /// `SlotWriters::earlier` keep the filter they had when copied); all ones when the account
    /// was created or destroyed, which decides every slot.
    slots: u64,
}

/// The value one write set gives `address`'s `slot`, if it decides it: changed there, or the
/// account created (slots it did not set are zero) or destroyed.
fn slot_written(state: &EvmState, address: Address, slot: &U256) -> Option<U256> {
    let account = state.get(&address)?;
    match classify_write(account) {
        AccountWrite::None => None,
        AccountWrite::Destroyed => Some(U256::ZERO),
        AccountWrite::Created => Some(account.storage.get(slot).map_or(U256::ZERO, |s| s.present_value)),
        AccountWrite::Changed => account.storage.get(slot).filter(|s| s.is_changed()).map(|s| s.present_value),
    }
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
            writers: DashMap::with_capacity_and_hasher(2 * len, KeyHashBuilder::default()),
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
                    self.writers.entry(*address).or_default().add(tx, write, account);
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
        self.search(reader, first_unmerged, address, Some(&slot), |state| slot_written(state, address, &slot))
    }

    fn search<T>(
        &self,
        reader: TxIndex,
        first_unmerged: TxIndex,
        address: Address,
        slot: Option<&U256>,
        mut find: impl FnMut(&EvmState) -> Option<T>,
    ) -> Option<T> {
        // Every predecessor merged: nothing here for the reader (and one shared-map lookup
        // saved on the path of every exact execution).
        if first_unmerged >= reader {
            return None;
        }
        self.writers.get(&address)?.newest(first_unmerged, reader, slot, |tx| {
            let guard = self.results[tx].read();
            guard.as_ref().and_then(|r| r.state()).and_then(&mut find)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ReadSet;
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
        let reads = ReadSet::new();
        unconfirmed.publish(tx, Arc::new(TxResult { incarnation: 1, outcome, reads, merged_at_start: 0, took: None }));
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
    fn a_hot_contracts_storage_reads_find_the_newest_writer_of_the_slot() {
        let a = Address::with_last_byte(1);
        let n = 3 * HOT_WRITERS;
        let unconfirmed = Unconfirmed::new(n + 2);
        // A token: every transaction writes a slot of its own, 64 apart, so that every filter
        // bit is the same and only the list per slot tells the writers apart.
        for tx in 0..n {
            publish(&unconfirmed, tx, &[(a, tx as u64 + 1, Some((64 * tx as u64, tx as u64 + 100)))]);
        }
        let slot = |tx: usize| U256::from(64 * tx);
        for tx in [0, 3, HOT_WRITERS - 1, HOT_WRITERS, n - 1] {
            assert_eq!(unconfirmed.storage(n, 0, a, slot(tx)), Some(U256::from(tx + 100)), "writer {tx}");
            assert_eq!(unconfirmed.storage(tx, 0, a, slot(tx)), None, "not before its writer");
            assert_eq!(unconfirmed.storage(n, tx + 1, a, slot(tx)), None, "not once merged");
        }
        assert_eq!(unconfirmed.storage(n, 0, a, U256::from(64 * n)), None, "nobody wrote it");
        // Redos, of a writer from before the list and of one on it, now writing another slot.
        publish(&unconfirmed, 2, &[(a, 3, Some((64 * n as u64, 7)))]);
        publish(&unconfirmed, n - 2, &[(a, 3, Some((64 * n as u64, 8)))]);
        assert_eq!(unconfirmed.storage(n, 0, a, U256::from(64 * n)), Some(U256::from(8)));
        assert_eq!(unconfirmed.storage(n - 2, 0, a, U256::from(64 * n)), Some(U256::from(7)));
        assert_eq!(unconfirmed.storage(n, 0, a, slot(n - 2)), None, "the redo no longer writes it");
        // The account created again: every slot reads zero after it.
        let mut state = EvmState::default();
        let mut created = Account::from(AccountInfo::from_balance(U256::from(1)));
        created.mark_created();
        created.mark_touch();
        state.insert(a, created);
        publish_state(&unconfirmed, n, state);
        assert_eq!(unconfirmed.storage(n + 1, 0, a, slot(HOT_WRITERS)), Some(U256::ZERO));
        assert_eq!(unconfirmed.storage(n, 0, a, slot(HOT_WRITERS)), Some(U256::from(HOT_WRITERS + 100)));
    }

    /// One account of a published write set, for the model test below: `kind` 0 changed, 1
    /// created, 2 emptied (destroyed), 3 loaded but not touched.
    type ModelWrite = (usize, u8, Vec<(u64, u64)>);

    fn model_state(writes: &[ModelWrite]) -> EvmState {
        let mut state = EvmState::default();
        for (address, kind, slots) in writes {
            let balance = if *kind == 2 { 0 } else { 1 + slots.len() as u64 };
            let mut account = Account::from(AccountInfo::from_balance(U256::from(balance)));
            for &(key, value) in slots {
                account.storage.insert(
                    U256::from(key),
                    EvmStorageSlot::new_changed(U256::ZERO, U256::from(value), TransactionId::ZERO),
                );
            }
            if *kind == 1 {
                account.mark_created();
            }
            if *kind != 3 {
                account.mark_touch();
            }
            state.insert(Address::with_last_byte(*address as u8), account);
        }
        state
    }

    proptest::proptest! {
        /// Whatever was published, in whatever order, with redos: every read returns what a
        /// walk over every transaction's newest result, newest first, finds.
        #[test]
        fn reads_match_a_walk_over_every_result(
            publishes in proptest::collection::vec(
                (0usize..40, proptest::collection::vec(
                    (0usize..2, 0u8..4, proptest::collection::vec((proptest::sample::select(vec![0u64, 1, 2, 64, 65, 128]), 1u64..5), 0..3)),
                    1..3,
                )),
                0..150,
            ),
            reads in proptest::collection::vec((0usize..41, 0usize..41, 0usize..2, proptest::sample::select(vec![0u64, 1, 2, 3, 64, 65, 128])), 1..40),
        ) {
            let unconfirmed = Unconfirmed::new(41);
            let mut newest: Vec<Option<EvmState>> = vec![None; 41];
            for (tx, writes) in &publishes {
                publish_state(&unconfirmed, *tx, model_state(writes));
                newest[*tx] = Some(model_state(writes));
            }
            for (reader, lo, address, key) in reads {
                let address = Address::with_last_byte(address as u8);
                let slot = U256::from(key);
                let walk = |find: &dyn Fn(&EvmState) -> Option<U256>| {
                    (lo.min(reader)..reader).rev().find_map(|tx| newest[tx].as_ref().and_then(find))
                };
                // What one write set says of a slot is `slot_written`'s; what is checked here is
                // which write sets the index looks at.
                let expected = walk(&|state| slot_written(state, address, &slot));
                proptest::prop_assert_eq!(unconfirmed.storage(reader, lo, address, slot), expected);
                let expected = walk(&|state| {
                    let account = state.get(&address)?;
                    (classify_write(account) != AccountWrite::None).then_some(account.info.balance)
                });
                let found = unconfirmed.account(reader, lo, address).map(|info| info.map_or(U256::ZERO, |info| info.balance));
                proptest::prop_assert_eq!(found, expected);
            }
        }
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
