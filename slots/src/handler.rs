//! revm's mainnet handler with the beneficiary's fee credited lazily.
//!
//! Every transaction pays the block's beneficiary. Done eagerly, that is a read-modify-write of
//! one balance by every transaction, and every transaction would conflict with its predecessor.
//! So when a transaction has not loaded the beneficiary itself (it did not read its balance, call
//! it, or send from it), this handler skips the credit and records the amount; the merger adds it
//! at the transaction's turn, when the beneficiary's exact balance is known. A transaction that
//! did load the beneficiary is credited here exactly as revm does, and its read of the balance is
//! validated like any other read, so it sees the exact sequential value or is redone.

use std::{cell::Cell, marker::PhantomData};

use revm::{
    context::{
        ContextTr,
        result::{EVMError, HaltReason, InvalidTransaction},
    },
    context_interface::{Block, Cfg, Transaction},
    handler::{EvmTr, FrameResult, Handler, post_execution},
    primitives::hardfork::SpecId,
};

use parevm_statedb::{BlockDb, DbError};

use crate::SlotEvm;

/// The handler slots execute with: [`revm::handler::MainnetHandler`] but for the fee credit.
#[derive(Debug)]
pub struct ParallelHandler<EVM> {
    deferred_reward: Cell<Option<u128>>,
    _evm: PhantomData<fn() -> EVM>,
}

impl<EVM> Default for ParallelHandler<EVM> {
    fn default() -> Self {
        Self { deferred_reward: Cell::new(None), _evm: PhantomData }
    }
}

impl<EVM> ParallelHandler<EVM> {
    /// The fee the merger must credit to the beneficiary, if this handler deferred it.
    pub fn take_deferred_reward(&self) -> Option<u128> {
        self.deferred_reward.take()
    }
}

impl<'a, D> Handler for ParallelHandler<SlotEvm<'a, D>>
where
    D: BlockDb,
{
    type Evm = SlotEvm<'a, D>;
    type Error = EVMError<DbError, InvalidTransaction>;
    type HaltReason = HaltReason;

    fn reward_beneficiary(&self, evm: &mut Self::Evm, exec_result: &mut FrameResult) -> Result<(), Self::Error> {
        let ctx = evm.ctx();
        let beneficiary = ctx.block().beneficiary();
        if ctx.journaled_state.inner.state.contains_key(&beneficiary) {
            return post_execution::reward_beneficiary(evm.ctx(), exec_result.gas()).map_err(From::from);
        }
        if ctx.cfg().is_fee_charge_disabled() {
            return Ok(());
        }
        // The same arithmetic as `post_execution::reward_beneficiary`.
        let basefee = ctx.block().basefee() as u128;
        let effective_gas_price = ctx.tx().effective_gas_price(basefee);
        let coinbase_gas_price = if ctx.cfg().spec().is_enabled_in(SpecId::LONDON) {
            effective_gas_price.saturating_sub(basefee)
        } else {
            effective_gas_price
        };
        let gas = exec_result.gas();
        let effective_used = gas.used().saturating_sub(gas.reservoir());
        self.deferred_reward.set(Some(coinbase_gas_price * effective_used as u128));
        Ok(())
    }
}
