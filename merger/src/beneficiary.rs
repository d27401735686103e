//! Crediting a deferred beneficiary fee at the transaction's turn.
//!
//! The slot's handler skipped the credit because the transaction never loaded the beneficiary
//! (see `parevm_slots::ParallelHandler`). Here the base holds the beneficiary's exact balance, so
//! the merger does what revm would have done at the end of the transaction: load the account,
//! touch it, add the fee (ignored on overflow, like revm's `incr_balance`), and, before Spurious
//! Dragon, normalise an empty touched account the way revm's journal `finalize` does.

use alloy_primitives::{Address, U256};
use parevm_statedb::{BaseState, BlockDb, DbError};
use revm::{
    primitives::hardfork::SpecId,
    state::{Account, TransactionId},
};

/// The beneficiary's account after being credited `reward`, as the transaction's write set must
/// hold it (the transaction itself never loaded the beneficiary).
pub(crate) fn credited_account<D: BlockDb>(
    base: &BaseState<D>,
    beneficiary: Address,
    reward: u128,
    spec: SpecId,
) -> Result<Account, DbError> {
    let mut account = match base.basic(beneficiary)? {
        Some(info) => Account::from(info),
        None => Account::new_not_existing(TransactionId::ZERO),
    };
    account.mark_touch();
    if let Some(balance) = account.info.balance.checked_add(U256::from(reward)) {
        account.info.balance = balance;
    }
    if !spec.is_enabled_in(SpecId::SPURIOUS_DRAGON) && account.is_empty() {
        if account.is_loaded_as_not_existing() {
            account.mark_created();
        } else {
            account.unmark_touch();
        }
    }
    Ok(account)
}
