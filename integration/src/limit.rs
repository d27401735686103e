//! How much parallelism a block allows: its critical path.
//!
//! One sequential pass, timing every transaction and taking its read and write sets from revm's
//! `EvmState` (which lists every account and slot the transaction loaded, and marks what it
//! changed). Transaction `i` depends on the last earlier writer of anything it read; the critical
//! path is the heaviest chain of dependencies, weighted by execution time. `total / critical` is
//! the speedup no scheduler can beat with unlimited slots; with `n` slots the limit is that,
//! capped at `n`.
//!
//! Dependencies are by value, as the engine validates them: a write that leaves an account's
//! balance, nonce and code as they were is no write. The beneficiary's fee credit is left out, as
//! the engine defers it: a transaction depends on earlier ones through the beneficiary only if it
//! sends from it or to it. Everything else the transaction loaded counts as read.
//!
//! The limit counts slots only. With one slot parevm can still beat 1.0x, because the caller's
//! thread merges and commits while the slot executes.

use std::{collections::HashMap, time::Instant};

use alloy_consensus::Transaction;
use alloy_evm::{
    EvmFactory,
    block::{BlockExecutionError, BlockExecutor, BlockExecutorFactory},
    eth::{EthBlockExecutorFactory, EthEvmFactory},
};
use alloy_primitives::{Address, U256};
use parevm_statedb::{AccountSnapshot, AccountWrite, InMemoryDb, classify_write};
use revm::database::State;
use serde::Serialize;

use crate::{BlockInput, ChainSpec, RethReceiptBuilder};

/// A block's parallelism, measured on one sequential pass.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BlockLimit {
    /// Sum of the transactions' execution times, in milliseconds.
    pub total_ms: f64,
    /// The heaviest chain of dependent transactions, in milliseconds.
    pub critical_path_ms: f64,
    /// Transactions on that chain.
    pub critical_path_txs: usize,
}

impl BlockLimit {
    /// The best speedup `slots` slots could reach on this block.
    pub fn speedup(&self, slots: usize) -> f64 {
        if self.critical_path_ms <= 0.0 { 1.0 } else { (self.total_ms / self.critical_path_ms).min(slots as f64) }
    }
}

/// Measures `block`'s limit (one sequential pass over `db`).
pub fn block_limit(chain: &ChainSpec, block: &BlockInput, db: &InMemoryDb) -> Result<BlockLimit, BlockExecutionError> {
    let mut state = State::builder().with_database_ref(db).with_bundle_update().build();
    let env = block.evm_env(chain);
    let beneficiary = env.block_env.beneficiary;
    let evm = EthEvmFactory::default().create_evm(&mut state, env);
    let factory = EthBlockExecutorFactory::new(RethReceiptBuilder, chain.clone(), EthEvmFactory::default());
    let mut executor = factory.create_executor(evm, block.execution_ctx());
    executor.apply_pre_execution_changes()?;

    let mut account_writer: HashMap<Address, usize> = HashMap::new();
    let mut slot_writer: HashMap<(Address, U256), usize> = HashMap::new();
    // (weight of the heaviest chain ending at tx, its length)
    let mut chains: Vec<(f64, usize)> = Vec::with_capacity(block.txs.len());
    let mut total = 0.0;
    for (i, tx) in block.txs.iter().enumerate() {
        let started = Instant::now();
        let output = executor.execute_transaction_without_commit(tx)?;
        let millis = started.elapsed().as_secs_f64() * 1e3;
        total += millis;
        let touches_beneficiary = tx.signer() == beneficiary || tx.to() == Some(beneficiary);
        let evm_state = &output.result.state;
        let mut depends_on = None::<usize>;
        let mut note = |writer: Option<&usize>| {
            if let Some(&w) = writer {
                depends_on = Some(depends_on.map_or(w, |d: usize| if chains[d].0 >= chains[w].0 { d } else { w }));
            }
        };
        for (address, account) in evm_state {
            if *address == beneficiary && !touches_beneficiary {
                continue;
            }
            note(account_writer.get(address));
            for slot in account.storage.keys() {
                note(slot_writer.get(&(*address, *slot)));
            }
        }
        let (weight, length) = depends_on.map_or((0.0, 0), |d| chains[d]);
        chains.push((weight + millis, length + 1));
        for (address, account) in evm_state {
            if *address == beneficiary && !touches_beneficiary {
                continue;
            }
            match classify_write(account) {
                AccountWrite::None => {}
                write => {
                    // Dependencies are by value, as the engine validates: an account that was
                    // touched but kept its balance, nonce and code is not a write.
                    let changed = write != AccountWrite::Changed
                        || AccountSnapshot::from(&account.info) != AccountSnapshot::from(&account.original_info());
                    if changed {
                        account_writer.insert(*address, i);
                    }
                    // A wipe changes every slot: later readers of any slot depend on it through
                    // the account entry, which they all read first.
                    if write != AccountWrite::Destroyed {
                        for (slot, _) in account.changed_storage_slots() {
                            slot_writer.insert((*address, *slot), i);
                        }
                    }
                }
            }
        }
        executor.commit_transaction(output);
    }
    let (critical_path_ms, critical_path_txs) =
        chains.iter().copied().fold((0.0, 0), |best, chain| if chain.0 > best.0 { chain } else { best });
    Ok(BlockLimit { total_ms: total, critical_path_ms, critical_path_txs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_capped_by_slots_and_never_below_one() {
        let limit = BlockLimit { total_ms: 10.0, critical_path_ms: 2.0, critical_path_txs: 3 };
        assert_eq!(limit.speedup(8), 5.0);
        assert_eq!(limit.speedup(2), 2.0);
        let serial = BlockLimit { total_ms: 10.0, critical_path_ms: 10.0, critical_path_txs: 9 };
        assert_eq!(serial.speedup(8), 1.0);
    }
}
