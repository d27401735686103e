//! Field-by-field comparison of what parevm produced with what a node committed: the logic of
//! `parevm-reth`'s verifying ExEx (`--parallel.verify`), kept here so that CI tests it.
//!
//! Only revm and alloy types: receipts by the fields reth's Ethereum `Receipt` has, and the
//! *net* state change of a block or chain (post-state balance, nonce and code hash of every
//! changed account, destroyed accounts, changed slots), ignoring book-keeping entries that change
//! nothing and reverts. The first difference is reported, with both values. (The workspace's own
//! equivalence tests use the stricter `replay::compare_outputs`, reverts included.)

use std::collections::{BTreeMap, BTreeSet};

use alloy_primitives::{Address, B256, Log, U256};
use revm::database::{BundleAccount, BundleState};

/// The first field in which two executions of the same block differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diff {
    /// The field, e.g. `receipt[3].cumulative_gas_used` or `state[0xab..].storage[0x01]`.
    pub field: String,
    /// What the node committed.
    pub expected: String,
    /// What parevm produced.
    pub got: String,
}

impl Diff {
    fn new(field: impl Into<String>, expected: impl ToString, got: impl ToString) -> Self {
        Self { field: field.into(), expected: expected.to_string(), got: got.to_string() }
    }
}

/// The fields of a receipt that are compared (reth's Ethereum `Receipt` has exactly these).
#[derive(Debug, Clone, Copy)]
pub struct ReceiptView<'a> {
    /// EIP-2718 type byte.
    pub tx_type: u8,
    /// Status.
    pub success: bool,
    /// Cumulative gas used in the block up to and including this transaction.
    pub cumulative_gas_used: u64,
    /// Logs.
    pub logs: &'a [Log],
}

/// Compares two receipt lists; `None` if equal.
pub fn receipts(expected: &[ReceiptView<'_>], got: &[ReceiptView<'_>]) -> Option<Diff> {
    for (i, (e, g)) in expected.iter().zip(got).enumerate() {
        if e.tx_type != g.tx_type {
            return Some(Diff::new(format!("receipt[{i}].tx_type"), e.tx_type, g.tx_type));
        }
        if e.success != g.success {
            return Some(Diff::new(format!("receipt[{i}].success"), e.success, g.success));
        }
        if e.cumulative_gas_used != g.cumulative_gas_used {
            return Some(Diff::new(
                format!("receipt[{i}].cumulative_gas_used"),
                e.cumulative_gas_used,
                g.cumulative_gas_used,
            ));
        }
        if e.logs.len() != g.logs.len() {
            return Some(Diff::new(format!("receipt[{i}].logs.len"), e.logs.len(), g.logs.len()));
        }
        for (j, (el, gl)) in e.logs.iter().zip(g.logs).enumerate() {
            if el != gl {
                return Some(Diff::new(format!("receipt[{i}].logs[{j}]"), format!("{el:?}"), format!("{gl:?}")));
            }
        }
    }
    (expected.len() != got.len()).then(|| Diff::new("receipts.len", expected.len(), got.len()))
}

/// One account's net effect in a bundle: its post-state (balance, nonce, code hash; `None` if
/// it does not exist after the block), whether it was destroyed, and its changed slots.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NetChange {
    info: Option<(U256, u64, B256)>,
    destroyed: bool,
    storage: BTreeMap<U256, U256>,
}

/// The accounts a bundle actually changes, with their net effect.
///
/// Entries that the bundle carries but that change nothing (an account whose info equals its
/// original info, not destroyed, no slot whose present value differs from its original) are left
/// out, so two bundles that differ only in such bookkeeping compare equal.
fn net_changes(bundle: &BundleState) -> BTreeMap<Address, NetChange> {
    bundle.state.iter().filter_map(|(address, account)| net_change(account).map(|change| (*address, change))).collect()
}

fn net_change(account: &BundleAccount) -> Option<NetChange> {
    let info = account.info.as_ref().map(|i| (i.balance, i.nonce, i.code_hash));
    let original = account.original_info.as_ref().map(|i| (i.balance, i.nonce, i.code_hash));
    let destroyed = account.was_destroyed();
    let storage: BTreeMap<U256, U256> = account
        .storage
        .iter()
        .filter(|(_, slot)| destroyed || slot.present_value != slot.previous_or_original_value)
        .map(|(key, slot)| (*key, slot.present_value))
        .collect();
    (info != original || destroyed || !storage.is_empty()).then_some(NetChange { info, destroyed, storage })
}

/// Compares the state changes of two bundles (post-state of every changed account and slot,
/// plus new contract code); `None` if they are the same.
pub fn bundles(expected: &BundleState, got: &BundleState) -> Option<Diff> {
    let expected_changes = net_changes(expected);
    let got_changes = net_changes(got);
    let addresses: BTreeSet<&Address> = expected_changes.keys().chain(got_changes.keys()).collect();
    for address in addresses {
        let (e, g) = match (expected_changes.get(address), got_changes.get(address)) {
            (Some(e), Some(g)) => (e, g),
            (e, g) => {
                return Some(Diff::new(
                    format!("state[{address}]"),
                    if e.is_some() { "changed" } else { "unchanged" },
                    if g.is_some() { "changed" } else { "unchanged" },
                ));
            }
        };
        if e.info != g.info {
            return Some(Diff::new(format!("state[{address}].info"), fmt_info(e.info), fmt_info(g.info)));
        }
        if e.destroyed != g.destroyed {
            return Some(Diff::new(format!("state[{address}].destroyed"), e.destroyed, g.destroyed));
        }
        let keys: BTreeSet<&U256> = e.storage.keys().chain(g.storage.keys()).collect();
        for key in keys {
            let (ev, gv) = (e.storage.get(key), g.storage.get(key));
            if ev != gv {
                return Some(Diff::new(format!("state[{address}].storage[{key:#x}]"), fmt_slot(ev), fmt_slot(gv)));
            }
        }
    }
    let code: BTreeSet<&B256> = expected.contracts.keys().chain(got.contracts.keys()).collect();
    for hash in code {
        let (e, g) = (expected.contracts.contains_key(hash), got.contracts.contains_key(hash));
        if e != g {
            return Some(Diff::new(format!("contracts[{hash}]"), present(e), present(g)));
        }
    }
    None
}

fn fmt_info(info: Option<(U256, u64, B256)>) -> String {
    match info {
        Some((balance, nonce, code_hash)) => format!("balance={balance} nonce={nonce} code_hash={code_hash}"),
        None => "none".into(),
    }
}

fn fmt_slot(value: Option<&U256>) -> String {
    value.map_or_else(|| "unchanged".into(), |v| format!("{v:#x}"))
}

const fn present(yes: bool) -> &'static str {
    if yes { "present" } else { "absent" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{LogData, address};
    use revm::{
        database::{AccountStatus, states::StorageSlot},
        state::AccountInfo,
    };

    fn account(balance: u64, original: u64, slots: &[(u64, u64, u64)]) -> BundleAccount {
        BundleAccount {
            info: Some(AccountInfo { balance: U256::from(balance), ..Default::default() }),
            original_info: Some(AccountInfo { balance: U256::from(original), ..Default::default() }),
            storage: slots
                .iter()
                .map(|&(k, orig, now)| {
                    (
                        U256::from(k),
                        StorageSlot { previous_or_original_value: U256::from(orig), present_value: U256::from(now) },
                    )
                })
                .collect(),
            status: AccountStatus::Changed,
        }
    }

    fn bundle(accounts: Vec<(Address, BundleAccount)>) -> BundleState {
        BundleState { state: accounts.into_iter().collect(), ..Default::default() }
    }

    const A: Address = address!("0x00000000000000000000000000000000000000aa");
    const B: Address = address!("0x00000000000000000000000000000000000000bb");

    #[test]
    fn equal_bundles_and_noop_entries() {
        let e = bundle(vec![(A, account(5, 1, &[(1, 0, 7)]))]);
        // Same change, plus an entry that changes nothing: still equal.
        let g = bundle(vec![(A, account(5, 1, &[(1, 0, 7), (2, 3, 3)])), (B, account(9, 9, &[]))]);
        assert_eq!(bundles(&e, &g), None);
    }

    #[test]
    fn first_differing_field() {
        let e = bundle(vec![(A, account(5, 1, &[(1, 0, 7)]))]);
        let g = bundle(vec![(A, account(5, 1, &[(1, 0, 8)]))]);
        let diff = bundles(&e, &g).expect("differs");
        assert!(diff.field.ends_with(".storage[0x1]"), "{diff:?}");
        assert_eq!((diff.expected.as_str(), diff.got.as_str()), ("0x7", "0x8"));

        let g = bundle(vec![(A, account(6, 1, &[(1, 0, 7)]))]);
        assert!(bundles(&e, &g).expect("differs").field.ends_with(".info"));

        let g = bundle(vec![(A, account(5, 1, &[(1, 0, 7)])), (B, account(2, 1, &[]))]);
        let diff = bundles(&e, &g).expect("differs");
        assert_eq!((diff.expected.as_str(), diff.got.as_str()), ("unchanged", "changed"));
    }

    #[test]
    fn receipt_fields() {
        let one = [Log { address: A, data: LogData::new_unchecked(vec![], Default::default()) }];
        let r = |gas, success, logs| ReceiptView { tx_type: 2, success, cumulative_gas_used: gas, logs };
        let field = |e: &[ReceiptView<'_>], g: &[ReceiptView<'_>]| receipts(e, g).map(|d| d.field);
        assert_eq!(field(&[r(21_000, true, &one)], &[r(21_000, true, &one)]), None);
        assert_eq!(
            field(&[r(21_000, true, &one)], &[r(21_001, true, &one)]).as_deref(),
            Some("receipt[0].cumulative_gas_used")
        );
        assert_eq!(field(&[r(21_000, true, &one)], &[r(21_000, false, &one)]).as_deref(), Some("receipt[0].success"));
        assert_eq!(field(&[r(21_000, true, &one)], &[r(21_000, true, &[])]).as_deref(), Some("receipt[0].logs.len"));
        assert_eq!(field(&[r(1, true, &[])], &[]).as_deref(), Some("receipts.len"));
    }
}
