//! Rebasing balances an execution only added to or took from, instead of redoing it.
//!
//! Many transactions of a block move ether into or out of one account without looking at its
//! balance: an exchange's deposit or hot wallet paid by plain transfers, WETH credited by every
//! swap that wraps ether, a contract paid through a router. Each execution reads the account (to
//! add to it, or to run its code), so every one after the first unmerged one reads a stale
//! balance and, by plain read-set validation, must be redone at its turn, on the merger's thread,
//! while the pipeline waits. On the mainnet blocks that was most redos: at 2 slots, 701 of 825
//! "account" redos differed in a balance alone, 539 of them on the transaction's own recipient;
//! of the redos left once those were rebased, three quarters were of contracts' balances alone.
//!
//! Rebasing is exact when nothing in the execution depended on the balance: it then ran the same
//! code the same way on the merged balance, and its effect on the account is the same difference,
//! so the merged account plus that difference is what the sequential executor computes and what a
//! redo would produce. Two kinds of account qualify:
//! - the recipient of a transaction whose target has no code, before, now and after: no code ran
//!   there (a precompile's output depends on its input alone) and the intrinsic gas depends on
//!   neither balance nor nonce; its nonce may have moved too (the wallet sent a transaction in
//!   between), which such a transfer never reads either;
//! - any other account with code or a nonce, the same now as when read, whose balance the
//!   execution did not observe: the slots' instruction hooks (`slots/src/balance_use.rs`) record
//!   every BALANCE, SELFBALANCE and SELFDESTRUCT ([`Read::Balance`] with `None`), and for every
//!   transfer the account sent (CALL, CALLCODE, CREATE) how much the balance covered it by; a
//!   balance lower now must still cover each. Code or a nonce keeps it non-empty whatever its
//!   balance, so new-account gas, EXTCODEHASH and state clearing do not depend on the balance.
//!
//! Never rebased: the beneficiary (its fee has its own path, see `beneficiary.rs`), the sender
//! (the fee and value checks read its balance), and any account of a transaction with EIP-7702
//! authorizations (they may give an account code).

use alloy_primitives::{Address, U256};
use parevm_statedb::{AccountSnapshot, BaseState, BlockDb, Read};
use revm::{
    context::TxEnv,
    primitives::{KECCAK_EMPTY, TxKind},
    state::{Account, EvmState},
};

use crate::{Mismatch, validate::current};

/// The account `tx` only credits at the top level, if it can be rebased as a plain transfer's
/// recipient (see the module docs).
pub fn credited_recipient(tx: &TxEnv, beneficiary: Address) -> Option<Address> {
    let TxKind::Call(to) = tx.kind else { return None };
    (to != tx.caller && to != beneficiary && !tx.value.is_zero() && tx.authorization_list.is_empty()).then_some(to)
}

/// The accounts of `state` rebased onto the merged state, if every stale read of the execution
/// is the balance (or a plain recipient's nonce) of an account that can be rebased (see the
/// module docs); otherwise the first stale read that cannot.
pub(crate) fn rebased_balances<D: BlockDb>(
    base: &BaseState<D>,
    reads: &[Read],
    state: &EvmState,
    tx: &TxEnv,
    beneficiary: Address,
) -> Result<Vec<(Address, Account)>, Mismatch> {
    let eligible =
        |address: Address| address != tx.caller && address != beneficiary && tx.authorization_list.is_empty();
    let mut stale: Vec<(Address, AccountSnapshot)> = Vec::new();
    for read in reads {
        match *read {
            _ if current(base, read) => {}
            Read::Account(address, Some(seen)) if eligible(address) => {
                if !stale.iter().any(|&(a, _)| a == address) {
                    stale.push((address, seen));
                }
            }
            _ => return Err(Mismatch(*read)),
        }
    }
    let recipient = credited_recipient(tx, beneficiary);
    let mut rebased = Vec::with_capacity(stale.len());
    for (address, seen) in stale {
        let mismatch = Mismatch(Read::Account(address, Some(seen)));
        // Every read of it saw the same account (the execution's own view is consistent), and
        // every transfer it sent leaves `slack` to spare at least.
        let mut slack = U256::MAX;
        for read in reads {
            match *read {
                Read::Account(a, snapshot) if a == address && snapshot != Some(seen) => return Err(mismatch),
                Read::Balance(a, None) if a == address => return Err(mismatch),
                Read::Balance(a, Some(spare)) if a == address => slack = slack.min(spare),
                _ => {}
            }
        }
        let (Some(Some(now)), Some(written)) = (base.cached_snapshot(address), state.get(&address)) else {
            return Err(mismatch);
        };
        let written_snapshot = AccountSnapshot::from(&written.info);
        let no_code = |s: AccountSnapshot| s.code_hash == KECCAK_EMPTY;
        let nonce = if recipient == Some(address)
            && no_code(seen)
            && no_code(now)
            && no_code(written_snapshot)
            && written_snapshot.nonce == seen.nonce
        {
            // No code before, now, or after: nothing ran at the recipient, and this transaction did
            // not give it any (nor bump its nonce, which it only can by running code there). The
            // merged nonce stands.
            now.nonce
        } else if now.nonce == seen.nonce && now.code_hash == seen.code_hash && (seen.nonce > 0 || !no_code(seen)) {
            written.info.nonce
        } else {
            return Err(mismatch);
        };
        // A lower balance now must still cover every transfer the account sent.
        if now.balance < seen.balance && seen.balance - now.balance > slack {
            return Err(mismatch);
        }
        let balance = if written.info.balance >= seen.balance {
            now.balance.checked_add(written.info.balance - seen.balance)
        } else {
            now.balance.checked_sub(seen.balance - written.info.balance)
        };
        let Some(balance) = balance else { return Err(mismatch) };
        let mut account = written.clone();
        account.info.balance = balance;
        account.info.nonce = nonce;
        let mut original = account.original_info();
        original.balance = now.balance;
        original.nonce = now.nonce;
        *account.original_info_mut() = original;
        rebased.push((address, account));
    }
    Ok(rebased)
}

#[cfg(test)]
mod tests {
    use super::*;
    use parevm_statedb::InMemoryDb;
    use revm::{bytecode::Bytecode, primitives::Bytes, state::AccountInfo};

    const CALLER: Address = Address::with_last_byte(1);
    const BENEFICIARY: Address = Address::with_last_byte(2);
    const CONTRACT: Address = Address::with_last_byte(3);

    fn contract(balance: u64) -> AccountInfo {
        let code = Bytecode::new_raw(Bytes::from_static(&[0x00]));
        AccountInfo {
            balance: U256::from(balance),
            nonce: 1,
            code_hash: code.hash_slow(),
            code: Some(code),
            ..Default::default()
        }
    }

    /// A base where `address` now holds `now`, an execution that read it as `seen` (and made its
    /// other reads `extra`) and left it as `written`.
    fn rebase(
        address: Address,
        now: AccountInfo,
        seen: AccountInfo,
        written: AccountInfo,
        extra: &[Read],
    ) -> Result<Vec<(Address, Account)>, Mismatch> {
        let base = BaseState::new(InMemoryDb::default());
        base.fill_account(address, Some(now));
        let mut reads = vec![Read::Account(address, Some((&seen).into()))];
        reads.extend_from_slice(extra);
        let mut account = Account::from(seen);
        account.info = written;
        account.mark_touch();
        let state: EvmState = [(address, account)].into_iter().collect();
        let tx = TxEnv { caller: CALLER, kind: TxKind::Call(Address::with_last_byte(9)), ..Default::default() };
        rebased_balances(&base, &reads, &state, &tx, BENEFICIARY)
    }

    fn balance_of(rebased: &[(Address, Account)]) -> U256 {
        rebased[0].1.info.balance
    }

    #[test]
    fn a_contract_credited_without_observing_its_balance_is_rebased_onto_the_merged_one() {
        // Read at 10, credited 5; the merged balance is 14 by now: 19, as sequential gives.
        let rebased = rebase(CONTRACT, contract(14), contract(10), contract(15), &[]).unwrap();
        assert_eq!(balance_of(&rebased), U256::from(19));
        assert_eq!(rebased[0].1.original_info().balance, U256::from(14));
        // Debited 4 (it sent 4, with 6 to spare), merged down to 7: 3, and 7 still covers 4.
        let sent = [Read::Balance(CONTRACT, Some(U256::from(6)))];
        assert_eq!(
            balance_of(&rebase(CONTRACT, contract(7), contract(10), contract(6), &sent).unwrap()),
            U256::from(3)
        );
    }

    #[test]
    fn an_observed_or_uncovered_balance_is_stale() {
        let stale = Err(Mismatch(Read::Account(CONTRACT, Some((&contract(10)).into()))));
        let observed = [Read::Balance(CONTRACT, None)];
        assert_eq!(rebase(CONTRACT, contract(14), contract(10), contract(15), &observed), stale);
        // It sent value with 2 to spare; the merged balance is 3 lower, so that send would fail.
        let sent = [Read::Balance(CONTRACT, Some(U256::from(2)))];
        assert_eq!(rebase(CONTRACT, contract(7), contract(10), contract(6), &sent), stale);
        // Another account's observation says nothing about this one.
        let elsewhere = [Read::Balance(CALLER, None)];
        assert!(rebase(CONTRACT, contract(14), contract(10), contract(15), &elsewhere).is_ok());
    }

    #[test]
    fn only_balances_of_accounts_that_cannot_be_empty_are_rebased() {
        let eoa = |balance: u64, nonce: u64| AccountInfo { balance: U256::from(balance), nonce, ..Default::default() };
        let other = Address::with_last_byte(4);
        // Without code or nonce, a zero balance would make it empty (new-account gas, EXTCODEHASH).
        assert!(rebase(other, eoa(14, 0), eoa(10, 0), eoa(15, 0), &[]).is_err());
        assert_eq!(balance_of(&rebase(other, eoa(14, 3), eoa(10, 3), eoa(15, 3), &[]).unwrap()), U256::from(19));
        // Its nonce moved: it sent a transaction in between, which this one may have depended on.
        assert!(rebase(other, eoa(14, 4), eoa(10, 3), eoa(15, 3), &[]).is_err());
        // The sender's balance pays the fee and is checked against it: never rebased.
        assert!(rebase(CALLER, eoa(14, 3), eoa(10, 3), eoa(15, 3), &[]).is_err());
        assert!(rebase(BENEFICIARY, eoa(14, 3), eoa(10, 3), eoa(15, 3), &[]).is_err());
    }

    #[test]
    fn a_stale_storage_read_is_never_rebased() {
        let storage = Read::Storage(CONTRACT, U256::from(1), U256::from(1));
        assert_eq!(rebase(CONTRACT, contract(14), contract(10), contract(15), &[storage]), Err(Mismatch(storage)));
    }
}
