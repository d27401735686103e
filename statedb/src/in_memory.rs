//! A complete, read-only-while-executing world state held in memory.
//!
//! Replays, the consensus suite and benchmarks load their pre-state into this and hand it to
//! both executors by shared reference (`DatabaseRef + Sync`). Between blocks of a chain the
//! caller folds a block's [`BundleState`] back in with [`InMemoryDb::apply_bundle`].

use std::{collections::HashMap, convert::Infallible};

use alloy_primitives::{Address, B256, U256, map::HashMap as FastMap};
use revm::{DatabaseRef, bytecode::Bytecode, database::BundleState, primitives::KECCAK_EMPTY, state::AccountInfo};

/// One account: its info (with code attached) and its non-zero storage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InMemoryAccount {
    /// Balance, nonce, code hash and code.
    pub info: AccountInfo,
    /// Storage slots; zero values are not kept.
    pub storage: FastMap<U256, U256>,
}

/// An in-memory world state implementing revm's `DatabaseRef`.
#[derive(Debug, Clone, Default)]
pub struct InMemoryDb {
    /// Existing accounts. An address that is absent does not exist.
    pub accounts: FastMap<Address, InMemoryAccount>,
    /// Code by hash, for `code_by_hash_ref`.
    pub contracts: FastMap<B256, Bytecode>,
    /// Block hashes for the BLOCKHASH opcode.
    pub block_hashes: HashMap<u64, B256>,
}

impl InMemoryDb {
    /// Inserts or replaces an account, registering its code by hash.
    pub fn insert_account(&mut self, address: Address, mut info: AccountInfo, storage: FastMap<U256, U256>) {
        if let Some(code) = &info.code {
            if info.code_hash != KECCAK_EMPTY {
                self.contracts.insert(info.code_hash, code.clone());
            }
        } else if info.code_hash == KECCAK_EMPTY {
            info.code = Some(Bytecode::default());
        }
        let storage = storage.into_iter().filter(|(_, v)| !v.is_zero()).collect();
        self.accounts.insert(address, InMemoryAccount { info, storage });
    }

    /// Folds a block's state changes into this state, as a node does after importing the block.
    pub fn apply_bundle(&mut self, bundle: &BundleState) {
        for (hash, code) in &bundle.contracts {
            self.contracts.insert(*hash, code.clone());
        }
        for (address, account) in &bundle.state {
            match &account.info {
                None => {
                    self.accounts.remove(address);
                }
                Some(info) => {
                    let entry = self.accounts.entry(*address).or_default();
                    if account.was_destroyed() {
                        entry.storage.clear();
                    }
                    let mut info = info.clone();
                    if info.code.is_none() {
                        info.code = self.contracts.get(&info.code_hash).cloned();
                    }
                    entry.info = info;
                    for (slot, value) in &account.storage {
                        if value.present_value.is_zero() {
                            entry.storage.remove(slot);
                        } else {
                            entry.storage.insert(*slot, value.present_value);
                        }
                    }
                }
            }
        }
    }
}

impl InMemoryDb {
    /// Address number `i` of a synthetic state: an LCG step spreads its bytes like a real
    /// address, so hash maps see realistic keys. Used by benchmarks and tests.
    pub fn synthetic_address(i: u64) -> Address {
        let x = i.wrapping_add(1).wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let mut bytes = [0u8; 20];
        bytes[..8].copy_from_slice(&x.to_be_bytes());
        bytes[12..].copy_from_slice(&i.to_be_bytes());
        Address::from(bytes)
    }

    /// A state of `accounts` funded accounts (`synthetic_address(0..accounts)`), each with
    /// `slots` non-zero storage slots `0..slots`.
    pub fn synthetic(accounts: u64, slots: u64) -> Self {
        let mut db = Self::default();
        for i in 0..accounts {
            let storage = (0..slots).map(|s| (U256::from(s), U256::from(i * 100 + s + 1))).collect();
            db.insert_account(Self::synthetic_address(i), AccountInfo::from_balance(U256::from(i + 1) << 60), storage);
        }
        db
    }
}

impl DatabaseRef for InMemoryDb {
    type Error = Infallible;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, Self::Error> {
        Ok(self.accounts.get(&address).map(|a| a.info.clone()))
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, Self::Error> {
        Ok(self.contracts.get(&code_hash).cloned().unwrap_or_default())
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, Self::Error> {
        Ok(self.accounts.get(&address).and_then(|a| a.storage.get(&index).copied()).unwrap_or_default())
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, Self::Error> {
        Ok(self.block_hashes.get(&number).copied().unwrap_or_default())
    }
}
