//! What an execution read, by value.
//!
//! A result is valid iff every value it read still equals the merged state's value when its turn
//! comes: a transaction whose every input equals its sequential input computes its sequential
//! output. Reads are recorded by value (not by version), so a write that restores an old value
//! causes no conflict, and a read of an absent account or a zero slot is a read like any other.
//! Read sets are recycled through a pool: an execution allocates nothing for them once warm.

use std::sync::Arc;

use alloy_primitives::{Address, B256, U256};
use object_pool::{Pool, ReusableOwned};
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

/// The reads of one execution, in the order they were made. Dropping it returns the buffer to
/// its pool.
pub struct ReadSet(ReusableOwned<Vec<Read>>);

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

/// A pool of read buffers shared by all slots of an engine.
#[derive(Clone)]
pub struct ReadSetPool(Arc<Pool<Vec<Read>>>);

impl std::fmt::Debug for ReadSetPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadSetPool").field("idle", &self.0.len()).finish()
    }
}

impl Default for ReadSetPool {
    fn default() -> Self {
        Self::new(64)
    }
}

impl ReadSetPool {
    /// A pool that starts with `capacity` empty buffers.
    pub fn new(capacity: usize) -> Self {
        Self(Arc::new(Pool::new(capacity, || Vec::with_capacity(64))))
    }

    /// Takes an empty buffer; it returns to the pool when the last owner drops it.
    pub fn take(&self) -> ReadSet {
        let mut reads = self.0.pull_owned(|| Vec::with_capacity(64));
        reads.clear();
        ReadSet(reads)
    }
}
