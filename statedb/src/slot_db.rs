//! The StateDB of one execution in a slot.
//!
//! Reads go: the transaction's own writes (revm's journal answers those before asking us), then
//! the unconfirmed results of earlier unmerged transactions, newest first, then the base. Every
//! value handed out is recorded in the read set. Code and block hashes are not recorded: code is
//! immutable under its hash (which is recorded with the account) and block hashes do not change
//! within a block.
//!
//! One `SlotDb` lives as long as its worker's EVM for a block; [`SlotDb::begin`] points it at the
//! next transaction and hands it a fresh pooled read buffer, so nothing is allocated per execution.

use std::sync::atomic::{AtomicUsize, Ordering};

use alloy_primitives::{Address, B256, U256};
use revm::{Database, bytecode::Bytecode, state::AccountInfo};

use crate::{BaseState, BlockDb, DbError, Read, ReadSet, TxIndex, Unconfirmed};

/// The `revm::Database` a slot executes one transaction on.
#[derive(Debug)]
pub struct SlotDb<'a, D> {
    base: &'a BaseState<D>,
    unconfirmed: &'a Unconfirmed,
    /// Number of merged transactions, published by the merger.
    merged: &'a AtomicUsize,
    tx: TxIndex,
    reads: Option<ReadSet>,
}

impl<'a, D> SlotDb<'a, D>
where
    D: BlockDb,
{
    /// A StateDB over the block's layers; call [`SlotDb::begin`] before each execution.
    pub fn new(base: &'a BaseState<D>, unconfirmed: &'a Unconfirmed, merged: &'a AtomicUsize) -> Self {
        Self { base, unconfirmed, merged, tx: 0, reads: None }
    }

    /// Prepares for executing transaction `tx`.
    pub fn begin(&mut self, tx: TxIndex) {
        self.tx = tx;
        self.reads = Some(ReadSet::new());
    }

    /// Ends the execution and returns what it read.
    pub fn finish(&mut self) -> ReadSet {
        self.reads.take().unwrap_or_default()
    }

    fn first_unmerged(&self) -> TxIndex {
        // Acquire pairs with the merger's Release store after it applied a write set to the base:
        // once we see `merged = m`, the base holds the writes of every tx below m, so skipping
        // those txs in the unconfirmed layer loses nothing.
        self.merged.load(Ordering::Acquire)
    }

    /// Records how the running execution used `address`'s balance (see [`Read::Balance`]);
    /// called by the slots' instruction hooks.
    pub fn note_balance_use(&mut self, address: Address, slack: Option<U256>) {
        self.record(Read::Balance(address, slack));
    }

    fn record(&mut self, read: Read) {
        if let Some(reads) = self.reads.as_mut() {
            reads.push(read);
        }
    }
}

impl<D> Database for SlotDb<'_, D>
where
    D: BlockDb,
{
    type Error = DbError;

    fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>, DbError> {
        let info = match self.unconfirmed.account(self.tx, self.first_unmerged(), address) {
            Some(info) => info,
            None => self.base.basic(address)?,
        };
        self.record(Read::Account(address, info.as_ref().map(Into::into)));
        Ok(info)
    }

    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, DbError> {
        self.base.code_by_hash(code_hash)
    }

    fn storage(&mut self, address: Address, index: U256) -> Result<U256, DbError> {
        let value = match self.unconfirmed.storage(self.tx, self.first_unmerged(), address, index) {
            Some(value) => value,
            None => self.base.storage(address, index)?,
        };
        self.record(Read::Storage(address, index, value));
        Ok(value)
    }

    fn block_hash(&mut self, number: u64) -> Result<B256, DbError> {
        self.base.block_hash(number)
    }
}
