//! parevm's integration layer: real blocks in, results compared.
//!
//! - [`chain`]: the chains we execute (mainnet, and the consensus suite's fork-from-genesis
//!   networks) as alloy-evm executor specs.
//! - [`block`]: a block ready to execute (header, recovered transactions, withdrawals) and its
//!   EVM environment.
//! - [`mainnet`] and [`ethtest`]: loaders for `../shared/data` (historical mainnet blocks with
//!   pre-state, and the consensus suite's BlockchainTests).
//! - [`execute`]: the sequential baseline (alloy-evm's `EthBlockExecutor` over revm's `State`,
//!   exactly what reth runs) and the parallel engine behind the same interface, so that every
//!   block can be run both ways and compared field by field.
//! - [`factory`]: the drop-in for reth: an alloy-evm `BlockExecutorFactory` whose executors
//!   hand each transaction to the engine as the caller passes it in.
//! - [`receipt`]: the receipts both executors build (reth's, the bloom left to the checks).
//! - [`checks`]: what a header lets us verify (gas used, logs bloom, receipts root, state root).
//! - [`replay`], [`bench`](mod@bench): the `parevm` CLI's commands; [`host`]: the cross-core round trip
//!   the bench reports beside its ratios.
//! - [`verify`]: the verifying ExEx's comparison (parevm's result against a node's).
//! - [`node_args`]: the `--parallel*` flags of the `parevm-reth` node and their config file.

pub mod alloc_count;
pub mod bench;
pub mod block;
pub mod chain;
pub mod checks;
pub mod config;
pub mod error;
pub mod ethtest;
pub mod execute;
pub mod factory;
pub mod host;
pub mod limit;
pub mod mainnet;
pub mod node_args;
pub mod receipt;
pub mod replay;
pub mod stats;
pub mod synthetic;
pub mod verify;
pub mod workloads;

pub use block::BlockInput;
pub use chain::ChainSpec;
pub use error::LoadError;
pub use execute::{BlockOutput, Executor};
pub use factory::{
    OneParentState, PRE_BLOCK_CONTRACTS, ParallelBlockExecutor, ParallelBlockExecutorFactory, ParentStates,
};
pub use receipt::{Receipt, RethReceiptBuilder};
