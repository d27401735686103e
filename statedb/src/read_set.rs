//! What an execution read, by value.
//!
//! A result is valid iff every value it read still equals the merged state's value when its turn
//! comes: a transaction whose every input equals its sequential input computes its sequential
//! output. Reads are recorded by value (not by version), so a write that restores an old value
//! causes no conflict, and a read of an absent account or a zero slot is a read like any other.
//!
//! Read sets' buffers are recycled: an execution allocates nothing for them once warm. They flow
//! one way, taken on the thread that executes and dropped on the merger's once the result is
//! merged. A pool shared by those threads (`object_pool`'s, taken from and returned to at every
//! execution) put its lock, and its `Arc`'s count, on one cache line that crossed between the
//! cores twice per transaction. So each thread keeps a stock of its own, and the threads trade
//! buffers in batches through one depot for the process: a crossing per batch.

use std::{cell::RefCell, sync::LazyLock};

use alloy_primitives::{Address, B256, U256};
use object_pool::Pool;
use revm::state::AccountInfo;

/// The part of an account that an execution can observe, code identified by its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountSnapshot {
    /// Balance.
    pub balance: U256,
    /// Nonce.
    pub nonce: u64,
    /// Code hash (the code itself is immutable under its hash).
    pub code_hash: B256,
}

impl From<&AccountInfo> for AccountSnapshot {
    fn from(info: &AccountInfo) -> Self {
        Self { balance: info.balance, nonce: info.nonce, code_hash: info.code_hash }
    }
}

/// One value handed to an execution from the unconfirmed layer or the base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// An account, `None` if it did not exist.
    Account(Address, Option<AccountSnapshot>),
    /// A storage slot.
    Storage(Address, U256, U256),
    /// Not a value but how the execution used an account's balance, beyond the `Account` read
    /// that holds it (which alone says only that the execution loaded the account). `None`: it
    /// observed the balance (BALANCE, SELFBALANCE, SELFDESTRUCT). `Some(slack)`: the account
    /// sent value (CALL, CALLCODE, CREATE), and the balance covered the transfer with `slack` to
    /// spare. An account with neither was only credited or debited, so a stale balance of it
    /// can be rebased instead of redone (the merger's `credit.rs`). Always current by itself.
    Balance(Address, Option<U256>),
}

/// The reads of one execution, in the order they were made. Dropping it recycles the buffer
/// (see the module's notes).
pub struct ReadSet(Vec<Read>);

impl ReadSet {
    /// An empty read set, on a recycled buffer when there is one.
    pub fn new() -> Self {
        let recycled = STOCK.try_with(|stock| stock.borrow_mut().take()).ok().flatten();
        Self(recycled.unwrap_or_else(|| Vec::with_capacity(BUFFER)))
    }
}

/// An empty read set with no buffer, for a result that records no reads (an execution on exact
/// state): nothing taken from the stock, nothing given back.
impl Default for ReadSet {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl Drop for ReadSet {
    fn drop(&mut self) {
        let mut buffer = std::mem::take(&mut self.0);
        // Nothing to keep, or too much to keep: a transaction that read thousands of values
        // does not leave every buffer that size.
        if buffer.capacity() == 0 || buffer.capacity() > BUFFER_MAX {
            return;
        }
        buffer.clear();
        // A thread that is exiting has no stock any more: the buffer is freed.
        let _ = STOCK.try_with(|stock| stock.borrow_mut().keep(buffer));
    }
}

impl std::ops::Deref for ReadSet {
    type Target = Vec<Read>;
    fn deref(&self) -> &Vec<Read> {
        &self.0
    }
}

impl std::ops::DerefMut for ReadSet {
    fn deref_mut(&mut self) -> &mut Vec<Read> {
        &mut self.0
    }
}

impl std::fmt::Debug for ReadSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.iter()).finish()
    }
}

/// Reads a new buffer has room for.
const BUFFER: usize = 64;
/// A buffer grown past this many reads (about 110 KiB) is freed, not recycled, so that the
/// spare buffers stay a few megabytes at most.
const BUFFER_MAX: usize = 1024;
/// Buffers moved to or from the depot at once.
const BATCH: usize = 32;
/// A thread keeps at most this many spare buffers; beyond, it hands a batch to the depot.
const STOCK_MAX: usize = 2 * BATCH;
/// The depot keeps at most this many; beyond, a thread's surplus is freed. The buffers in use
/// are a block's unmerged results, a few hundred at most when slots run far ahead.
const DEPOT_MAX: usize = 256;

/// Spare buffers shared by the process's threads, moved in batches.
static DEPOT: LazyLock<Pool<Vec<Read>>> = LazyLock::new(|| Pool::new(0, Vec::new));

thread_local! {
    /// This thread's spare buffers.
    static STOCK: RefCell<Stock> = const { RefCell::new(Stock(Vec::new())) };
}

/// One thread's spare buffers.
struct Stock(Vec<Vec<Read>>);

impl Stock {
    /// A spare buffer, refilling from the depot when out.
    fn take(&mut self) -> Option<Vec<Read>> {
        if self.0.is_empty() {
            self.0.extend(std::iter::from_fn(|| DEPOT.try_pull().map(|buffer| buffer.detach().1)).take(BATCH));
        }
        self.0.pop()
    }

    /// Keeps an emptied buffer, handing a batch to the depot when the stock is full.
    fn keep(&mut self, buffer: Vec<Read>) {
        self.0.push(buffer);
        if self.0.len() > STOCK_MAX {
            let surplus = self.0.drain(self.0.len() - BATCH..);
            if DEPOT.len() < DEPOT_MAX {
                surplus.for_each(|buffer| DEPOT.attach(buffer));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stock() -> usize {
        STOCK.with(|stock| stock.borrow().0.len())
    }

    #[test]
    fn a_dropped_read_set_gives_its_buffer_emptied_to_the_next_one_on_its_thread() {
        let mut reads = ReadSet::new();
        reads.push(Read::Balance(Address::ZERO, None));
        let buffer = reads.as_ptr();
        drop(reads);
        let next = ReadSet::new();
        assert_eq!(next.as_ptr(), buffer);
        assert!(next.is_empty());
    }

    #[test]
    fn a_buffer_grown_past_the_bound_is_freed_not_recycled() {
        let mut reads = ReadSet::new();
        reads.extend(std::iter::repeat_n(Read::Balance(Address::ZERO, None), BUFFER_MAX + 1));
        let before = stock();
        drop(reads);
        assert_eq!(stock(), before, "not kept");
        assert!(ReadSet::new().capacity() <= BUFFER_MAX);
    }

    #[test]
    fn a_thread_keeps_a_bounded_stock_and_hands_its_surplus_on_in_a_batch() {
        // On a thread of its own: the stock is per thread (what the depot hands it depends on
        // the other tests).
        std::thread::spawn(|| {
            let sets: Vec<ReadSet> = (0..=STOCK_MAX).map(|_| ReadSet::new()).collect();
            let before = stock();
            drop(sets);
            assert!(stock() <= STOCK_MAX, "bounded: {}", stock());
            assert!(stock() < before + STOCK_MAX + 1, "the surplus went to the depot");
        })
        .join()
        .expect("the test thread");
    }
}
