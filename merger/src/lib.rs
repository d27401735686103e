//! The merger: confirms a block's results strictly in transaction order.
//!
//! For transaction `i` (all of `0..i` merged, so the base holds exactly the sequential state
//! before `i`): take its newest result, check every value it read against the base
//! ([`validate`]), and either ask for a redo or accept it: credit the beneficiary's deferred fee,
//! apply its writes to the base, add its gas, and hand it on ([`MergedTx`]) while the slots keep
//! executing later transactions. A result that is valid but failed (an invalid transaction, a
//! panic on exact state) fails the block with a typed [`BlockError`]. Every wait is bounded and
//! every transaction is executed a bounded number of times (see [`merge::MAX_EXECUTIONS_AT_TURN`]).

mod beneficiary;
mod credit;
mod error;
mod merge;
mod validate;

pub use credit::credited_recipient;
pub use error::BlockError;
pub use merge::{MAX_EXECUTIONS_AT_TURN, MergeDriver, MergeInput, MergeStats, MergedTx, Merger, RedoCause};
pub use validate::{Mismatch, validate};
