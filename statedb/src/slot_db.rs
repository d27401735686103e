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
//!
//! Which unconfirmed results a read searches is fixed when the execution begins: the
//! transactions from the first one unmerged then up to the reader. The merger's count of merged
//! transactions is read once, by the executor, not at every read. Every merge writes that count,
//! so re-reading it made each read after a merge fetch the merger's cache line from the other
//! core (docs/benchmarks.md, "Machine": 50 ns on a quick host, 450 ns on a slow one). A
//! transaction merged since the execution began is then searched too. Its result there may not
//! be what was merged: a stale execution replaced at its turn, or one without the merger's own
//! writes (a rebased balance, the beneficiary's fee). Such a read is stale and found so, since an
//! execution that began with predecessors unmerged is always validated. Once the merger has taken
//! a transaction's result, it has taken every earlier one (it takes them in order), and the base
//! holds their writes.

use alloy_primitives::{Address, B256, U256};
use revm::{Database, bytecode::Bytecode, state::AccountInfo};

use crate::{BaseState, BlockDb, DbError, Read, ReadSet, ReadSetPool, TxIndex, Unconfirmed};

/// The `revm::Database` a slot executes one transaction on.
#[derive(Debug)]
pub struct SlotDb<'a, D> {
    base: &'a BaseState<D>,
    unconfirmed: &'a Unconfirmed,
    pool: ReadSetPool,
    tx: TxIndex,
    /// The number of merged transactions when the execution began.
    first_unmerged: TxIndex,
    reads: Option<ReadSet>,
}

impl<'a, D> SlotDb<'a, D>
where
    D: BlockDb,
{
    /// A StateDB over the block's layers; call [`SlotDb::begin`] before each execution.
    pub fn new(base: &'a BaseState<D>, unconfirmed: &'a Unconfirmed, pool: ReadSetPool) -> Self {
        Self { base, unconfirmed, pool, tx: 0, first_unmerged: 0, reads: None }
    }

    /// Prepares for executing transaction `tx` when `merged` transactions are merged. The
    /// caller reads `merged` with Acquire from the merger's count, after the merger's Release
    /// store once it applied them to the base: the base then holds the writes of every
    /// transaction below `merged`, and the reads skip those in the unconfirmed layer.
    pub fn begin(&mut self, tx: TxIndex, merged: TxIndex) {
        self.tx = tx;
        self.first_unmerged = merged;
        self.reads = Some(self.pool.take());
    }

    /// Ends the execution and returns what it read.
    pub fn finish(&mut self) -> ReadSet {
        self.reads.take().unwrap_or_else(|| self.pool.take())
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
        let info = match self.unconfirmed.account(self.tx, self.first_unmerged, address) {
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
        let value = match self.unconfirmed.storage(self.tx, self.first_unmerged, address, index) {
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
