//! State databases of the parallel executor.
//!
//! A transaction executed in a slot sees the block's state through three layers, newest first:
//! its own writes (revm's journal), the *unconfirmed* results of earlier transactions that have
//! executed but are not merged yet ([`Unconfirmed`]), and the *base* state, which holds exactly the
//! transactions merged so far over the block's read-only database ([`BaseState`]). [`SlotDb`] is
//! the `revm::Database` that walks those layers and records every value it hands out
//! ([`ReadSet`]), so the merger can later prove that the execution saw what a sequential run
//! would have seen. [`InMemoryDb`] is a plain `DatabaseRef` for tests, replays and benchmarks.
//!
//! Only the merger writes to the base; slots read it concurrently. Per-execution buffers are
//! pooled and shared data (code, results) is behind `Arc`, so an execution never deep-copies state.

mod base;
mod error;
mod in_memory;
mod key_hash;
mod read_set;
mod remote;
mod slot_db;
mod txs;
mod unconfirmed;
mod wakeup;
mod writes;

pub use base::{BaseCache, BaseState};
pub use error::DbError;
pub use in_memory::{InMemoryAccount, InMemoryDb};
use key_hash::KeyHashBuilder;
pub use read_set::{AccountSnapshot, Read, ReadSet};
pub use remote::{
    Answer, OwnerChanges, ParentState, Query, RemoteDb, Request, Requests, ServingDb, SharedParent, answering_own_reads,
};
pub use slot_db::SlotDb;
pub use txs::{BlockTxs, OwnedTxs, TxSource, TxSummary, token_selector};
pub use unconfirmed::{ExecOutcome, TxResult, Unconfirmed};
pub use wakeup::Wakeup;
pub use writes::{AccountWrite, classify_write};

/// Position of a transaction in its block.
pub type TxIndex = usize;

/// The database under a block, as the engine needs it: read-only, shareable across slots, with
/// errors that can be reported.
pub trait BlockDb: revm::DatabaseRef<Error: std::fmt::Display> + Sync {}

impl<T> BlockDb for T where T: revm::DatabaseRef<Error: std::fmt::Display> + Sync {}
