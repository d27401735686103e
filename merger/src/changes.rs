//! What the merges changed, and when: the merger's own log, read only on its own thread.
//!
//! Validation asks, for every value an execution read, whether the merged state still holds it.
//! Looking that up in the base costs a shared-map lookup per read, on lines the executing core
//! wrote (it cached the values it read from the database there): a cross-core miss per read,
//! and on a host whose cores hand a line over in 400 ns instead of 50 (docs/benchmarks.md,
//! "Machine") validation took a seventh of the merger's time on ERC-20 transfers. Most reads need
//! less: a value an execution read from the base is still current if no merge since the
//! execution started changed its key (`merged_at_start`: the merges before it were in the base
//! before its first read, see `SlotDb`), which this log answers from the merger's own memory.
//!
//! The log is a table of the index of the last merge that changed a key hashing to each entry:
//! keys that share an entry look changed when only one of them is, which sends a read to the
//! check by value, never the reverse. A read of a value from an unconfirmed result is always
//! checked by value: that result may have been replaced by the time it merged.

use std::hash::{BuildHasher, Hash};

use alloy_primitives::Address;
use parevm_statedb::{Applied, KeyHashBuilder, Read, TxIndex};
use revm::state::Account;

/// Entries of the table: 8 KiB, allocated with each block's merger from the allocator's
/// thread cache. Only the merges since an execution started can make its reads look changed, a
/// few dozen transactions' keys when slots run ahead, so collisions are rare: of the reads from
/// the base, 1% looked changed on ERC-20 transfers and 14% on the mainnet blocks, true changes
/// included (a temporary counter). A 128 KiB table took pages from the system at every block
/// and cost more than the whole log saved: 1.12x the time on ERC-20 transfers, 1.14x on AMM swaps.
const ENTRIES: usize = 1 << 11;

/// The merger's log of the keys that merges changed.
pub(crate) struct ChangeLog {
    /// Per entry, 1 + the index of the last transaction whose merge changed a key hashing
    /// there; 0 if none did.
    last: Box<[u32]>,
    /// 1 + the index of the last transaction whose merge wiped an account's storage: storage
    /// reads older than that are all checked by value (wipes are rare).
    last_wipe: u32,
    /// The shared maps' hasher, whose keys these are.
    hasher: KeyHashBuilder,
}

impl Default for ChangeLog {
    fn default() -> Self {
        Self { last: vec![0; ENTRIES].into_boxed_slice(), last_wipe: 0, hasher: KeyHashBuilder::default() }
    }
}

impl std::fmt::Debug for ChangeLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let marked = self.last.iter().filter(|&&stamp| stamp > 0).count();
        f.debug_struct("ChangeLog").field("marked", &marked).field("last_wipe", &self.last_wipe).finish()
    }
}

impl ChangeLog {
    fn entry(&self, key: impl Hash) -> usize {
        (self.hasher.hash_one(key) as usize) & (ENTRIES - 1)
    }

    fn mark(&mut self, key: impl Hash, tx: TxIndex) {
        let entry = self.entry(key);
        self.last[entry] = stamp(tx);
    }

    /// Records what merging `account` of `tx`'s write set at `address` changed (`applied`: what
    /// the base reported, and the slots the write changed).
    pub fn record(&mut self, tx: TxIndex, address: Address, account: &Account, applied: Applied) {
        if applied.account {
            self.mark(address, tx);
        }
        if applied.wiped {
            self.last_wipe = stamp(tx);
        }
        for (slot, _) in account.changed_storage_slots() {
            self.mark((address, slot), tx);
        }
    }

    /// Whether no merge of a transaction from `since` on changed what `read` read (then the
    /// value read from the base at any time after `since` merges is the merged value now).
    /// `false` means only "maybe": check the value.
    pub fn unchanged_since(&self, read: &Read, since: TxIndex) -> bool {
        // The merges from `since` on stored `since + 1` or more.
        let Ok(since) = u32::try_from(since) else { return false };
        match read {
            Read::Account(address, _) => self.last[self.entry(address)] <= since,
            Read::Storage(address, slot, _) => {
                self.last_wipe <= since && self.last[self.entry((address, slot))] <= since
            }
            // Says how the balance was used; the `Account` read holds the value.
            Read::Balance(..) => true,
        }
    }
}

/// 1 + `tx`, as stored in the table (0 stands for "never").
fn stamp(tx: TxIndex) -> u32 {
    u32::try_from(tx).map_or(u32::MAX, |tx| tx.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::U256;
    use revm::state::{AccountInfo, EvmStorageSlot, TransactionId};

    fn written(slot: u64, from: u64, to: u64) -> Account {
        let mut account = Account::from(AccountInfo::default());
        account.storage.insert(
            U256::from(slot),
            EvmStorageSlot::new_changed(U256::from(from), U256::from(to), TransactionId::ZERO),
        );
        account.mark_touch();
        account
    }

    #[test]
    fn a_key_looks_changed_only_to_reads_from_before_its_merge() {
        let (a, b) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let mut log = ChangeLog::default();
        log.record(5, a, &written(7, 1, 2), Applied { account: true, wiped: false });
        let account = Read::Account(a, None);
        let slot = Read::Storage(a, U256::from(7), U256::from(1));
        // An execution that started with 5 merged read before tx 5's merge; with 6, after.
        assert!(!log.unchanged_since(&account, 5));
        assert!(!log.unchanged_since(&slot, 5));
        assert!(log.unchanged_since(&account, 6));
        assert!(log.unchanged_since(&slot, 6));
        // Keys the merge did not change.
        assert!(log.unchanged_since(&Read::Account(b, None), 0));
        assert!(log.unchanged_since(&Read::Storage(a, U256::from(8), U256::ZERO), 0));
        assert!(log.unchanged_since(&Read::Balance(a, None), 0));
    }

    #[test]
    fn a_write_that_left_the_account_as_it_was_does_not_mark_it_and_a_wipe_marks_every_slot() {
        let (a, b) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let mut log = ChangeLog::default();
        // Storage only (a token's transfer): the account's own read stays current.
        log.record(3, a, &written(1, 0, 9), Applied::default());
        assert!(log.unchanged_since(&Read::Account(a, None), 0));
        assert!(!log.unchanged_since(&Read::Storage(a, U256::from(1), U256::ZERO), 3));
        // Another account's storage wiped: every storage read from before looks changed.
        log.record(4, b, &Account::from(AccountInfo::default()), Applied { account: true, wiped: true });
        assert!(!log.unchanged_since(&Read::Storage(a, U256::from(2), U256::ZERO), 4));
        assert!(log.unchanged_since(&Read::Storage(a, U256::from(2), U256::ZERO), 5));
    }
}
