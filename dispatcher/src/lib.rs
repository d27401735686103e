//! The dispatcher: the block entry point of the parallel engine.
//!
//! [`Engine`] owns the worker threads (created once, reused for every block) and runs a block:
//! [`dispatch::static_dispatch`] spreads the transactions over the slots up front,
//! the [`scheduler::Scheduler`] hands them to the slots' workers and balances the load at run
//! time by work stealing (`crossbeam-deque`), and the merger confirms results in order on the
//! calling thread while the workers keep executing. A transaction's path, by file:
//! `dispatch.rs` → `scheduler.rs` → `slots/src/worker.rs` → `slots/src/exec.rs` →
//! `statedb/src/unconfirmed.rs` → `merger/src/merge.rs`.

mod chain_rule;
mod cheap_rule;
pub mod config;
pub mod dispatch;
mod engine;
mod job;
mod metrics;
mod placement;
pub mod scheduler;
mod session;
mod wake;

pub use chain_rule::{ChainProbe, WINDOW as CHAIN_RULE_WINDOW};
pub use cheap_rule::{DEFAULT_SEQUENTIAL_BELOW_GAS, SMALL_BLOCK_GAS};
pub use config::{ConfigError, EngineConfig, MAX_SLOTS, default_slots};
pub use engine::{BlockStats, Caller, Engine, Executed, ParallelBlock, Prefix, SeedAccount};
pub use parevm_merger::{BlockError, MergedTx, RedoCause};
pub use session::{MAX_AHEAD as SESSION_MAX_AHEAD, Owner, Session};
pub use wake::WokenAhead;
