//! The receipts the executors build: reth's, without a stored logs bloom.
//!
//! reth's Ethereum node builds its receipts with `RethReceiptBuilder`: type, status, cumulative
//! gas and logs, no bloom (`reth_ethereum_primitives::Receipt`, the same fields as alloy's
//! [`EthereumReceipt`]). The bloom (a keccak of every log's address and topics) is computed later,
//! when the node checks the header's logs bloom and receipts root, outside the block executor.
//! alloy-evm's `AlloyReceiptBuilder` computes it inside `commit_transaction` instead, on the
//! thread that commits, in order: on ERC-20 transfers that was 17% of the sequential
//! executor's profile, serial work that reth never does there. Both executors here build reth's
//! receipt, so that the baseline is what reth runs and the engine's merger commits what reth's
//! would; [`crate::checks`] computes the blooms when it checks a header.

use alloy_consensus::{EthereumReceipt, TxEnvelope, TxType};
use alloy_evm::{
    Evm,
    eth::receipt_builder::{ReceiptBuilder, ReceiptBuilderCtx},
};

/// A receipt as reth stores it.
pub type Receipt = EthereumReceipt<TxType>;

/// Builds [`Receipt`]s, as reth's `RethReceiptBuilder` does.
#[derive(Debug, Default, Clone, Copy)]
pub struct RethReceiptBuilder;

impl ReceiptBuilder for RethReceiptBuilder {
    type Transaction = TxEnvelope;
    type Receipt = Receipt;

    fn build_receipt<E: Evm>(&self, ctx: ReceiptBuilderCtx<'_, TxType, E>) -> Receipt {
        Receipt {
            tx_type: ctx.tx_type,
            success: ctx.result.is_success(),
            cumulative_gas_used: ctx.cumulative_gas_used,
            logs: ctx.result.into_logs(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_consensus::{Eip2718EncodableReceipt, TxReceipt};
    use alloy_eips::Encodable2718;
    use alloy_evm::{EvmEnv, EvmFactory, eth::EthEvmFactory, eth::receipt_builder::AlloyReceiptBuilder};
    use alloy_primitives::{Address, B256, Bytes, Log};
    use revm::{
        context::result::{ExecutionResult, Output, ResultGas, SuccessReason},
        database::EmptyDB,
        state::EvmState,
    };

    /// reth's receipt, encoded with its bloom as the receipts root does, is byte for byte the
    /// receipt alloy's builder makes: the receipts root cannot tell which one a block used.
    #[test]
    fn reth_receipts_encode_as_alloys_with_the_same_bloom() {
        let evm = EthEvmFactory::default().create_evm(EmptyDB::default(), EvmEnv::default());
        let log = Log::new_unchecked(
            Address::with_last_byte(7),
            vec![B256::with_last_byte(1), B256::with_last_byte(2)],
            Bytes::from_static(b"data"),
        );
        let result = ExecutionResult::Success {
            reason: SuccessReason::Stop,
            gas: ResultGas::default(),
            logs: vec![log],
            output: Output::Call(Bytes::new()),
        };
        let state = EvmState::default();
        for tx_type in [TxType::Legacy, TxType::Eip1559, TxType::Eip4844] {
            let ctx = || ReceiptBuilderCtx {
                tx_type,
                evm: &evm,
                result: result.clone(),
                state: &state,
                cumulative_gas_used: 21_000,
            };
            let ours = RethReceiptBuilder.build_receipt(ctx());
            let alloys = AlloyReceiptBuilder::default().build_receipt(ctx());
            assert_eq!(ours.bloom(), alloys.bloom());
            assert_ne!(ours.bloom(), alloy_primitives::Bloom::ZERO, "the log must set bits");
            let mut encoded = Vec::new();
            ours.eip2718_encode_with_bloom(&ours.bloom(), &mut encoded);
            assert_eq!(encoded, alloys.encoded_2718(), "{tx_type:?}");
            assert_eq!(
                Receipt::calculate_receipt_root_no_memo(&[ours]),
                alloy_consensus::proofs::calculate_receipt_root(&[alloys])
            );
        }
    }
}
