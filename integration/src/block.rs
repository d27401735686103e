//! A block ready to execute, whatever it was loaded from.

use std::borrow::Cow;

use alloy_consensus::{Header, Transaction, TxEnvelope, transaction::Recovered};
use alloy_eips::eip4895::Withdrawals;
use alloy_evm::{EvmEnv, FromRecoveredTx, eth::EthBlockExecutionCtx};
use alloy_primitives::Address;
use parevm_statedb::{TxIndex, TxSource, TxSummary};
use revm::context::TxEnv;

use crate::ChainSpec;

/// A block: header, transactions with their senders, ommers and withdrawals.
#[derive(Debug, Clone)]
pub struct BlockInput {
    /// The header (checked against after execution).
    pub header: Header,
    /// Transactions with recovered senders, in block order.
    pub txs: Vec<Recovered<TxEnvelope>>,
    /// Ommer headers (empty when the source does not include them; see the data docs).
    pub ommers: Vec<Header>,
    /// Withdrawals (Shanghai and later).
    pub withdrawals: Option<Withdrawals>,
}

impl BlockInput {
    /// The block number.
    pub fn number(&self) -> u64 {
        self.header.number
    }

    /// The EVM environment (spec, block env) for this block on `chain`.
    pub fn evm_env(&self, chain: &ChainSpec) -> EvmEnv {
        EvmEnv::for_eth_block(&self.header, chain, chain.chain_id, chain.blob_params_at(self.header.timestamp))
    }

    /// The context alloy-evm's block executor needs.
    pub fn execution_ctx(&self) -> EthBlockExecutionCtx<'_> {
        EthBlockExecutionCtx {
            parent_hash: self.header.parent_hash,
            parent_beacon_block_root: self.header.parent_beacon_block_root,
            ommers: &self.ommers,
            withdrawals: self.withdrawals.as_ref().map(|w| Cow::Borrowed(w.as_slice())),
            extra_data: self.header.extra_data.clone(),
            tx_count_hint: Some(self.txs.len()),
            slot_number: None,
        }
    }
}

/// The engine converts each transaction when an execution needs it (see `TxSource`).
impl TxSource for BlockInput {
    fn len(&self) -> usize {
        self.txs.len()
    }

    fn tx_env(&self, tx: TxIndex) -> TxEnv {
        let tx = &self.txs[tx];
        TxEnv::from_recovered_tx(tx.inner(), tx.signer())
    }

    fn summary(&self, tx: TxIndex) -> TxSummary {
        let tx = &self.txs[tx];
        TxSummary::new(tx.signer(), tx.to(), tx.gas_limit(), tx.input())
    }

    fn gas_limit(&self, tx: TxIndex) -> u64 {
        self.txs[tx].gas_limit()
    }

    fn parties(&self, tx: TxIndex) -> (Address, Option<Address>) {
        let tx = &self.txs[tx];
        (tx.signer(), tx.to())
    }
}
