//! The base state: the block's database plus every transaction merged so far.
//!
//! Slots read it from many threads while the merger, its only writer, applies confirmed write
//! sets. The maps are sharded (`DashMap`): a read takes one shard's read lock for a moment and
//! never waits on execution. Values loaded from the database are cached here too, so a key is
//! fetched from the database once per block whatever the number of slots that need it.
//!
//! Storage of an account that is destroyed or re-created in the block must read as zero rather
//! than fall through to the database. Each account carries an `epoch`, raised whenever its
//! storage is wiped; a cached slot counts only if it was written in the current epoch, and an
//! account with epoch > 0 never falls through to the database again.
//!
//! A slot's read can race with a merge and see a mix of before and after: that is harmless,
//! because every value a slot reads is recorded and re-checked by the merger, on this same
//! structure, when nothing else writes to it.

use std::sync::atomic::{AtomicBool, Ordering};

use alloy_primitives::{Address, B256, U256};
use dashmap::DashMap;
use revm::{
    bytecode::Bytecode,
    primitives::KECCAK_EMPTY,
    state::{Account, AccountInfo, EvmState},
};

use crate::{AccountSnapshot, AccountWrite, BlockDb, DbError, KeyHashBuilder, classify_write};

/// Shards per map: enough that a slot and the merger rarely meet on one lock.
const SHARDS: usize = 64;

#[derive(Debug, Clone)]
struct BaseAccount {
    /// `None`: the account does not exist. Code is always attached when it exists.
    info: Option<AccountInfo>,
    /// Number of times the account's storage was wiped in this block.
    epoch: u32,
}

/// Merged state of the block over a read-only database `D`.
#[derive(Debug)]
pub struct BaseState<D> {
    db: D,
    accounts: DashMap<Address, BaseAccount, KeyHashBuilder>,
    storage: DashMap<(Address, U256), (u32, U256), KeyHashBuilder>,
    code: DashMap<B256, Bytecode, KeyHashBuilder>,
    /// Set once a merged transaction wiped an account's storage in this block. Relaxed is
    /// enough: it is only a shortcut. A reader that misses a fresh `true` takes the epoch it
    /// knew and may return a pre-wipe value, as it may anyway when it races a merge; every value
    /// a slot reads is validated by the merger, on its own thread, after its own store.
    wiped: AtomicBool,
    /// Accounts seeded with their whole storage known (epoch 1). Most Cancun blocks have one:
    /// the pre-block system call leaves the beacon-roots contract, or its absence, with known
    /// storage. Looked up in this short list instead of flagging the block as wiped, which sent
    /// every storage read of the block through the accounts map. Written only before the slots
    /// start (`seed_account` takes `&mut self`).
    seeded_known: Vec<Address>,
}

/// What a [`BaseState`] held besides its database, for freeing elsewhere.
#[derive(Debug)]
pub struct BaseCache {
    _accounts: DashMap<Address, BaseAccount, KeyHashBuilder>,
    _storage: DashMap<(Address, U256), (u32, U256), KeyHashBuilder>,
    _code: DashMap<B256, Bytecode, KeyHashBuilder>,
}

impl<D> BaseState<D>
where
    D: BlockDb,
{
    /// An empty overlay over `db`, the state at block start.
    pub fn new(db: D) -> Self {
        Self::with_capacity(db, 0)
    }

    /// An empty overlay over `db` with room for the accounts of a block of `txs` transactions
    /// (a sender and a recipient each). Growing a map rehashes it under its shard's lock, on
    /// the merger's and the slots' paths.
    pub fn with_capacity(db: D, txs: usize) -> Self {
        let hasher = KeyHashBuilder::default;
        Self {
            db,
            accounts: DashMap::with_capacity_and_hasher_and_shard_amount(2 * txs, hasher(), SHARDS),
            storage: DashMap::with_capacity_and_hasher_and_shard_amount(2 * txs, hasher(), SHARDS),
            code: DashMap::with_hasher(hasher()),
            wiped: AtomicBool::new(false),
            seeded_known: Vec::new(),
        }
    }

    /// Records a change made before the transactions (pre-block system calls), so that slots
    /// see the state the first transaction sees. `storage_known` means the account's storage
    /// is completely given by `storage` (it was created or wiped), not by the database.
    pub fn seed_account(
        &mut self,
        address: Address,
        info: Option<AccountInfo>,
        storage_known: bool,
        storage: impl IntoIterator<Item = (U256, U256)>,
    ) -> Result<(), DbError> {
        let info = match info {
            Some(info) => Some(self.attach_code(info)?),
            None => None,
        };
        let epoch = u32::from(storage_known);
        if storage_known && !self.seeded_known.contains(&address) {
            self.seeded_known.push(address);
        }
        self.accounts.insert(address, BaseAccount { info, epoch });
        for (slot, value) in storage {
            self.storage.insert((address, slot), (epoch, value));
        }
        Ok(())
    }

    /// Caches an account that the database's owner loaded itself (code attached), unless a merge
    /// or another load got there first. Lets the owner thread warm the base with what it can
    /// predict (sender, recipient, beneficiary) instead of answering each slot's miss later.
    pub fn fill_account(&self, address: Address, info: Option<AccountInfo>) {
        if let Some(AccountInfo { code: Some(code), code_hash, .. }) = &info
            && *code_hash != KECCAK_EMPTY
        {
            self.code.entry(*code_hash).or_insert_with(|| code.clone());
        }
        self.accounts.entry(address).or_insert(BaseAccount { info, epoch: 0 });
    }

    /// Whether the account is cached (merged, loaded or seeded).
    pub fn has_account(&self, address: Address) -> bool {
        self.accounts.contains_key(&address)
    }

    /// The account as the next transaction to merge sees it.
    pub fn basic(&self, address: Address) -> Result<Option<AccountInfo>, DbError> {
        if let Some(entry) = self.accounts.get(&address) {
            return Ok(entry.info.clone());
        }
        let info = match self.db.basic_ref(address).map_err(DbError::from_display)? {
            Some(info) => Some(self.attach_code(info)?),
            None => None,
        };
        // A merge may have written the account since we looked: its value wins.
        Ok(self.accounts.entry(address).or_insert_with(|| BaseAccount { info, epoch: 0 }).info.clone())
    }

    /// The observable part of the account (what validation compares), without cloning its
    /// code, if the base holds it; `None` if only the database would know. Never fetches: the
    /// merger validates on the thread that may be the database's only server.
    pub fn cached_snapshot(&self, address: Address) -> Option<Option<AccountSnapshot>> {
        self.accounts.get(&address).map(|entry| entry.info.as_ref().map(AccountSnapshot::from))
    }

    /// A storage slot's value if the base knows it (written, loaded, or wiped with its account);
    /// `None` if only the database would know. Never fetches.
    pub fn cached_storage(&self, address: Address, slot: U256) -> Option<U256> {
        // Until a merge wipes some account every epoch is 0, or 1 for an account seeded with
        // known storage, and a storage read needs no look at its account (one shared-map lookup
        // fewer on the slots' hottest path). Relaxed: see `wiped`.
        let epoch = if self.wiped.load(Ordering::Relaxed) {
            self.accounts.get(&address).map_or(0, |a| a.epoch)
        } else {
            u32::from(self.seeded_known.contains(&address))
        };
        if let Some(entry) = self.storage.get(&(address, slot)) {
            let (written_in, value) = *entry;
            if written_in == epoch {
                return Some(value);
            }
        }
        (epoch > 0).then_some(U256::ZERO)
    }

    /// A storage slot as the next transaction to merge sees it.
    pub fn storage(&self, address: Address, slot: U256) -> Result<U256, DbError> {
        if let Some(value) = self.cached_storage(address, slot) {
            return Ok(value);
        }
        let value = self.db.storage_ref(address, slot).map_err(DbError::from_display)?;
        Ok(self.storage.entry((address, slot)).or_insert((0, value)).1)
    }

    /// Code by hash, from contracts created in the block or the database.
    pub fn code_by_hash(&self, hash: B256) -> Result<Bytecode, DbError> {
        if hash == KECCAK_EMPTY {
            return Ok(Bytecode::default());
        }
        if let Some(code) = self.code.get(&hash) {
            return Ok(code.clone());
        }
        let code = self.db.code_by_hash_ref(hash).map_err(DbError::from_display)?;
        Ok(self.code.entry(hash).or_insert(code).clone())
    }

    /// A block hash for BLOCKHASH (immutable within the block).
    pub fn block_hash(&self, number: u64) -> Result<B256, DbError> {
        self.db.block_hash_ref(number).map_err(DbError::from_display)
    }

    /// Applies a confirmed transaction's write set. Only the merger calls this, in tx order.
    pub fn apply(&self, state: &EvmState) {
        for (address, account) in state {
            self.apply_account(*address, account);
        }
    }

    /// Applies one account of a confirmed write set (see [`classify_write`]).
    pub fn apply_account(&self, address: Address, account: &Account) {
        let write = classify_write(account);
        if write == AccountWrite::None {
            return;
        }
        // One map operation for the account (this is on the merger's path, once per written
        // account of every transaction); the code map is touched only when the code changed.
        let mut entry = self.accounts.entry(address).or_insert(BaseAccount { info: None, epoch: 0 });
        let base = entry.value_mut();
        if matches!(write, AccountWrite::Destroyed | AccountWrite::Created) {
            base.epoch += 1;
            // Relaxed: see `wiped`; readers that miss it still find the epoch under the lock.
            self.wiped.store(true, Ordering::Relaxed);
        }
        let epoch = base.epoch;
        match write {
            AccountWrite::Destroyed => base.info = None,
            _ => {
                let info = &account.info;
                let same_code = base.info.as_ref().is_some_and(|old| old.code_hash == info.code_hash);
                if !same_code
                    && let Some(code) = &info.code
                    && info.code_hash != KECCAK_EMPTY
                {
                    self.code.entry(info.code_hash).or_insert_with(|| code.clone());
                }
                match &mut base.info {
                    // Keep the attached code: it is the same under the same hash.
                    Some(old) if same_code => {
                        old.balance = info.balance;
                        old.nonce = info.nonce;
                        old.account_id = info.account_id;
                    }
                    slot => *slot = Some(info.clone()),
                }
            }
        }
        drop(entry);
        if write != AccountWrite::Destroyed {
            for (slot, value) in account.changed_storage_slots() {
                self.storage.insert((address, *slot), (epoch, value.present_value));
            }
        }
    }

    /// Gives up the database and keeps only what the block cached and merged, which owns no
    /// borrow: a thread the block no longer needs can then free it (see the engine's teardown).
    pub fn into_cache(self) -> BaseCache {
        BaseCache { _accounts: self.accounts, _storage: self.storage, _code: self.code }
    }

    fn attach_code(&self, mut info: AccountInfo) -> Result<AccountInfo, DbError> {
        if info.code.is_none() {
            info.code = Some(self.code_by_hash(info.code_hash)?);
        }
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InMemoryDb;
    use revm::state::{EvmStorageSlot, TransactionId};

    fn account(info: AccountInfo, slots: &[(u64, u64)]) -> Account {
        let mut account = Account::from(info);
        for &(slot, value) in slots {
            account.storage.insert(
                U256::from(slot),
                EvmStorageSlot::new_changed(U256::ZERO, U256::from(value), TransactionId::ZERO),
            );
        }
        account.mark_touch();
        account
    }

    #[test]
    fn storage_of_a_destroyed_and_recreated_account_never_falls_through_to_the_database() {
        let address = InMemoryDb::synthetic_address(0);
        let db = InMemoryDb::synthetic(1, 3);
        let base = BaseState::new(&db);
        assert_eq!(base.storage(address, U256::from(1)).unwrap(), U256::from(2));

        let mut destroyed = account(AccountInfo::default(), &[]);
        destroyed.mark_selfdestruct();
        base.apply_account(address, &destroyed);
        assert_eq!(base.basic(address).unwrap(), None);
        assert_eq!(base.storage(address, U256::from(1)).unwrap(), U256::ZERO);
        assert_eq!(base.storage(address, U256::from(2)).unwrap(), U256::ZERO);

        let mut created = account(AccountInfo { nonce: 1, ..Default::default() }, &[(2, 9)]);
        created.mark_created();
        base.apply_account(address, &created);
        assert_eq!(base.basic(address).unwrap().unwrap().nonce, 1);
        assert_eq!(base.storage(address, U256::from(1)).unwrap(), U256::ZERO);
        assert_eq!(base.storage(address, U256::from(2)).unwrap(), U256::from(9));
    }

    #[test]
    fn an_account_seeded_with_known_storage_reads_only_its_seeded_slots() {
        let (seeded, other) = (InMemoryDb::synthetic_address(0), InMemoryDb::synthetic_address(1));
        let db = InMemoryDb::synthetic(2, 3);
        let mut base = BaseState::new(&db);
        assert_eq!(
            revm::DatabaseRef::storage_ref(&db, seeded, U256::from(1)).unwrap(),
            U256::from(2),
            "in the database"
        );
        base.seed_account(seeded, Some(AccountInfo::default()), true, [(U256::from(2), U256::from(7))]).unwrap();
        // As revm's `State` reads it: storage known means the database is not asked.
        assert_eq!(base.storage(seeded, U256::from(1)).unwrap(), U256::ZERO);
        assert_eq!(base.storage(seeded, U256::from(2)).unwrap(), U256::from(7));
        let in_db = revm::DatabaseRef::storage_ref(&db, other, U256::from(1)).unwrap();
        assert_ne!(in_db, U256::ZERO);
        assert_eq!(base.storage(other, U256::from(1)).unwrap(), in_db, "other accounts fall through");
        // A merge writes the seeded account's storage in its epoch, and a wipe elsewhere changes
        // nothing for it.
        base.apply_account(seeded, &account(AccountInfo::from_balance(U256::from(1)), &[(1, 5)]));
        let mut destroyed = account(AccountInfo::default(), &[]);
        destroyed.mark_selfdestruct();
        base.apply_account(other, &destroyed);
        assert_eq!(base.storage(seeded, U256::from(1)).unwrap(), U256::from(5));
        assert_eq!(base.storage(seeded, U256::from(0)).unwrap(), U256::ZERO);
        assert_eq!(base.storage(other, U256::from(1)).unwrap(), U256::ZERO);
    }

    #[test]
    fn a_touched_empty_account_is_removed_and_an_untouched_one_is_not_written() {
        let address = InMemoryDb::synthetic_address(0);
        let db = InMemoryDb::synthetic(1, 0);
        let base = BaseState::new(&db);
        let mut read_only = Account::from(AccountInfo::from_balance(U256::from(5)));
        read_only.info.balance = U256::from(6);
        base.apply_account(address, &read_only);
        assert_ne!(base.basic(address).unwrap().unwrap().balance, U256::from(6));

        base.apply_account(address, &account(AccountInfo::default(), &[]));
        assert_eq!(base.basic(address).unwrap(), None);
    }

    #[test]
    fn a_value_merged_while_a_slot_filled_from_the_database_wins() {
        let address = InMemoryDb::synthetic_address(0);
        let db = InMemoryDb::synthetic(1, 2);
        let base = BaseState::new(&db);
        base.apply_account(address, &account(AccountInfo::from_balance(U256::from(1)), &[(0, 77)]));
        // A late fill of the same slot from the database must not overwrite the merged value.
        assert_eq!(base.storage(address, U256::ZERO).unwrap(), U256::from(77));
    }
}
