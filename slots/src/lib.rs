//! Slots: the worker threads that execute a block's transactions speculatively.
//!
//! Every slot has a primary worker, which runs the transactions the dispatcher gave it and then
//! steals, and a shadow worker, which sleeps until the merger asks for a redo while the primary is
//! inside a long transaction. Both run [`Worker::run`]; they differ only in where they look for
//! work ([`TaskSource`], implemented by the dispatcher). A worker claims a transaction with a
//! compare-and-swap on its [`TaskTable`] entry, executes it with revm on a
//! [`parevm_statedb::SlotDb`] (`exec.rs`), publishes the result as unconfirmed, and moves on: it
//! never waits for the merger.

mod balance_use;
mod exec;
mod handler;
pub mod heavy_calls;
mod table;
mod worker;

pub use exec::{ExecCtx, SlotEvm, TxExecutor, panic_message};
pub use handler::ParallelHandler;
pub use heavy_calls::{HEAVY_RUNS, HEAVY_TIME, HeavyCalls};
pub use table::{RedoRequest, TaskTable, TxStatus};
pub use worker::{Role, TaskSource, Worker, WorkerStats};
