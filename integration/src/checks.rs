//! What a header lets us verify about an execution.
//!
//! Gas used and the logs bloom always; the receipts root from Byzantium on (earlier receipts
//! carry intermediate state roots, which a partial pre-state cannot reproduce); the state root
//! only where the whole state is known (the consensus suite). A check names the field and both
//! values, so a mismatch report is enough to start debugging.

use alloy_consensus::{Header, TxReceipt};
use alloy_evm::block::BlockExecutionResult;
use alloy_primitives::{B256, Bloom};

use crate::Receipt;

/// One header field that does not match the execution.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: header has {expected}, execution gives {actual}")]
pub struct Mismatch {
    /// The header field.
    pub field: &'static str,
    /// The header's value.
    pub expected: String,
    /// The execution's value.
    pub actual: String,
}

impl Mismatch {
    fn new(field: &'static str, expected: impl std::fmt::Display, actual: impl std::fmt::Display) -> Self {
        Self { field, expected: expected.to_string(), actual: actual.to_string() }
    }
}

/// Which header fields to check.
#[derive(Debug, Clone, Copy)]
pub struct Checks {
    /// Check the receipts root (Byzantium and later).
    pub receipts_root: bool,
    /// Check blob gas used (Cancun and later, where the header has it).
    pub blob_gas_used: bool,
}

/// Compares an execution result with the header; returns every mismatching field.
pub fn check_header(header: &Header, result: &BlockExecutionResult<Receipt>, checks: Checks) -> Vec<Mismatch> {
    let mut mismatches = Vec::new();
    if result.gas_used != header.gas_used {
        mismatches.push(Mismatch::new("gasUsed", header.gas_used, result.gas_used));
    }
    let bloom = result.receipts.iter().fold(Bloom::ZERO, |acc, r| acc | r.bloom());
    if bloom != header.logs_bloom {
        mismatches.push(Mismatch::new("logsBloom", header.logs_bloom, bloom));
    }
    if checks.receipts_root {
        let root = Receipt::calculate_receipt_root_no_memo(&result.receipts);
        if root != header.receipts_root {
            mismatches.push(Mismatch::new("receiptsRoot", header.receipts_root, root));
        }
    }
    if checks.blob_gas_used
        && let Some(expected) = header.blob_gas_used
        && expected != result.blob_gas_used
    {
        mismatches.push(Mismatch::new("blobGasUsed", expected, result.blob_gas_used));
    }
    mismatches
}

/// Compares a computed state root with the header's.
pub fn check_state_root(header: &Header, root: B256) -> Option<Mismatch> {
    (root != header.state_root).then(|| Mismatch::new("stateRoot", header.state_root, root))
}
