//! Rebasing a transfer's credit to its recipient, instead of redoing the transfer.
//!
//! Many transactions of a block pay one account: an exchange's deposit or hot wallet, a
//! payment processor. Each execution reads the recipient's balance to add its value, so every
//! one of them after the first reads a stale balance and, by plain read-set validation, must be
//! redone at its turn, on the merger's thread, while the pipeline waits. On the mainnet blocks
//! that was most redos (701 of 825 "account" redos at 2 slots differed in a balance alone,
//! 539 of them on the transaction's own recipient).
//!
//! A transaction whose target has no code never observes the target's balance or nonce: no
//! code runs (a precompile's output depends on its input alone), the intrinsic gas depends on
//! neither, and the transfer only adds to the balance. So when the only stale reads are of such a
//! recipient, and it existed both times without code, the execution is valid for the merged state
//! too, and the recipient's write is rebased: the merged account plus what the execution added to
//! its balance. That is what the sequential executor computes, and what a redo would have
//! produced.
//!
//! Excluded, to keep the argument that simple: the beneficiary (its fee has its own path, see
//! `beneficiary.rs`), the sender paying itself, transactions with EIP-7702 authorizations (they
//! may give the target code), and anything that leaves the recipient with code or a nonce of the
//! transaction's making.

use alloy_primitives::Address;
use parevm_statedb::{AccountSnapshot, BaseState, BlockDb, Read};
use revm::{
    context::TxEnv,
    primitives::{KECCAK_EMPTY, TxKind},
    state::{Account, EvmState},
};

use crate::{Mismatch, validate::current};

/// The account `tx` only credits, if it is a candidate for rebasing (see the module docs).
pub fn credited_recipient(tx: &TxEnv, beneficiary: Address) -> Option<Address> {
    let TxKind::Call(to) = tx.kind else { return None };
    (to != tx.caller && to != beneficiary && !tx.value.is_zero() && tx.authorization_list.is_empty()).then_some(to)
}

/// The recipient's account as the merged state makes it, if every read of the execution is
/// current except the recipient's balance and nonce (see the module docs); otherwise the first
/// stale read.
pub(crate) fn rebased_recipient<D: BlockDb>(
    base: &BaseState<D>,
    reads: &[Read],
    state: &EvmState,
    recipient: Address,
) -> Result<Account, Mismatch> {
    let mut seen: Option<AccountSnapshot> = None;
    for read in reads {
        match *read {
            Read::Account(address, Some(snapshot)) if address == recipient => {
                // Every read of it saw the same account (the execution's own view is consistent).
                if seen.is_some_and(|s| s != snapshot) {
                    return Err(Mismatch(*read));
                }
                seen = Some(snapshot);
            }
            _ if current(base, read) => {}
            _ => return Err(Mismatch(*read)),
        }
    }
    let stale = Mismatch(Read::Account(recipient, seen));
    let (Some(seen), Some(Some(now)), Some(written)) = (seen, base.cached_snapshot(recipient), state.get(&recipient))
    else {
        return Err(stale);
    };
    // No code before, now, or after: nothing ran at the recipient, and this transaction did not
    // give it any (nor bump its nonce, which it only can by running code there).
    let no_code = |s: AccountSnapshot| s.code_hash == KECCAK_EMPTY;
    let written_snapshot = AccountSnapshot::from(&written.info);
    if !(no_code(seen) && no_code(now) && no_code(written_snapshot) && written_snapshot.nonce == seen.nonce) {
        return Err(stale);
    }
    let Some(balance) = written.info.balance.checked_sub(seen.balance).and_then(|added| now.balance.checked_add(added))
    else {
        return Err(stale);
    };
    // The merged account, plus the credit: its nonce too may have moved (the wallet sent a
    // transaction in between), which the transfer never read either.
    let mut account = written.clone();
    account.info.balance = balance;
    account.info.nonce = now.nonce;
    let mut original = account.original_info();
    original.balance = now.balance;
    original.nonce = now.nonce;
    *account.original_info_mut() = original;
    Ok(account)
}
