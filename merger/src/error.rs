//! Why a block failed in the parallel engine.

use std::time::Duration;

use parevm_statedb::{DbError, TxIndex};
use revm::context::result::{EVMError, InvalidTransaction};

/// A block that cannot be executed. The caller's state is untouched when this is returned.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// The transaction's gas limit exceeds what is left of the block's (checked at its turn,
    /// exactly as the sequential executor checks it before executing).
    #[error(
        "transaction {tx}: gas limit {transaction_gas_limit} is more than the block's available gas {block_available_gas}"
    )]
    GasLimitExceeded {
        /// Transaction index.
        tx: TxIndex,
        /// Its gas limit.
        transaction_gas_limit: u64,
        /// Block gas limit minus gas used before it.
        block_available_gas: u64,
    },
    /// revm rejected the transaction on the exact state before it (or the database failed).
    #[error("transaction {tx}: {error}")]
    Evm {
        /// Transaction index.
        tx: TxIndex,
        /// revm's error.
        error: EVMError<DbError, InvalidTransaction>,
    },
    /// Executing the transaction on the exact state panicked.
    #[error("transaction {tx}: execution panicked: {message}")]
    Panicked {
        /// Transaction index.
        tx: TxIndex,
        /// The panic message.
        message: String,
    },
    /// The database failed while the merger validated or committed.
    #[error("transaction {tx}: {error}")]
    Database {
        /// Transaction index.
        tx: TxIndex,
        /// The error.
        error: DbError,
    },
    /// No result arrived for the transaction in time: a worker died or hangs.
    #[error("transaction {tx}: no result after {waited:?}, the engine stalled")]
    Stalled {
        /// Transaction index.
        tx: TxIndex,
        /// How long the merger waited.
        waited: Duration,
    },
    /// An engine invariant broke (a bug); the block is refused rather than risk a wrong result.
    #[error("transaction {tx}: internal error: {message}")]
    Internal {
        /// Transaction index.
        tx: TxIndex,
        /// What broke.
        message: String,
    },
}

impl BlockError {
    /// The transaction the error is about.
    pub fn tx(&self) -> TxIndex {
        match self {
            Self::GasLimitExceeded { tx, .. }
            | Self::Evm { tx, .. }
            | Self::Panicked { tx, .. }
            | Self::Database { tx, .. }
            | Self::Stalled { tx, .. }
            | Self::Internal { tx, .. } => *tx,
        }
    }
}
