//! How much parallelism a block allows: its critical path, and the bound a pipeline on revm's
//! `State` sets.
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
//! The limit counts execution only. The same pass also times each transaction's commit (receipt
//! and `State` commit), the block's setup (the `State`, the pre-block steps) and its finish (the
//! post-block steps, the bundle merge, as reth runs it after the executor, and dropping the
//! `State`, as the bench's timed runs do), for the *bound*:
//! every executor that commits into revm's `State` commits in order on one thread, and runs the
//! setup and the finish alone, so that `n` threads take at least `setup + finish + max(commit,
//! (execution + commit) / n, critical path)`. The bound is the block's time divided by that.
//! It is what explains the limit's 2.0x on cheap transactions that no executor reaches
//! (docs/benchmarks.md, "What eats the time").

use std::{collections::HashMap, time::Instant};

use alloy_consensus::Transaction;
use alloy_evm::{
    EvmFactory,
    block::{BlockExecutionError, BlockExecutor, BlockExecutorFactory},
    eth::{EthBlockExecutorFactory, EthEvmFactory},
};
use alloy_primitives::{Address, U256};
use parevm_statedb::{AccountSnapshot, AccountWrite, InMemoryDb, classify_write};
use revm::database::{State, states::bundle_state::BundleRetention};
use serde::Serialize;

use crate::{BlockInput, ChainSpec, RethReceiptBuilder};

/// A block's parallelism, measured on one sequential pass.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BlockLimit {
    /// Transactions in the block.
    pub txs: usize,
    /// Sum of the transactions' execution times, in milliseconds.
    pub total_ms: f64,
    /// The heaviest chain of dependent transactions, in milliseconds.
    pub critical_path_ms: f64,
    /// Transactions on that chain.
    pub critical_path_txs: usize,
    /// Sum of the transactions' commits (receipt and `State` commit), in milliseconds.
    pub commit_ms: f64,
    /// The block's setup: the `State`, the EVM and the pre-block steps, in milliseconds.
    pub setup_ms: f64,
    /// The block's finish: the post-block steps, the bundle merge and dropping the `State`, as
    /// in the bench's timed runs, in milliseconds.
    pub finish_ms: f64,
}

impl BlockLimit {
    /// The best speedup `slots` slots could reach on this block.
    pub fn speedup(&self, slots: usize) -> f64 {
        if self.critical_path_ms <= 0.0 { 1.0 } else { (self.total_ms / self.critical_path_ms).min(slots as f64) }
    }

    /// The block's sequential time: setup, executions, commits and finish, in milliseconds.
    pub fn block_ms(&self) -> f64 {
        self.setup_ms + self.total_ms + self.commit_ms + self.finish_ms
    }

    /// The shortest time the block can take on `slots` threads, one of which commits every
    /// transaction in order (see the module's comment), when an engine adds `extra_ms` of work
    /// of its own that any thread may do.
    fn least_ms(&self, slots: usize, extra_ms: f64) -> f64 {
        let shared = (self.total_ms + self.commit_ms + extra_ms) / slots.max(1) as f64;
        self.setup_ms + self.finish_ms + self.commit_ms.max(shared).max(self.critical_path_ms)
    }

    /// The best speedup `slots` threads can reach on this block in an executor that commits into
    /// revm's `State` (see the module's comment); 1.0 at one slot. On a chain of dependent
    /// transactions it reads above [`Self::speedup`], which leaves commits out: one thread can
    /// commit a transaction while the other executes the next from its unconfirmed result.
    pub fn bound(&self, slots: usize) -> f64 {
        bound(std::slice::from_ref(self), slots)
    }
}

/// [`BlockLimit::bound`] of `blocks` run one after another: their summed sequential time over
/// the sum of their shortest times (each block's own, so that one held up by its commits or its
/// chain is not averaged away by others).
pub fn bound(blocks: &[BlockLimit], slots: usize) -> f64 {
    let least: f64 = blocks.iter().map(|b| b.least_ms(slots, 0.0)).sum();
    if slots <= 1 || least <= 0.0 { 1.0 } else { blocks.iter().map(BlockLimit::block_ms).sum::<f64>() / least }
}

/// What an engine on `slots` threads may spend per transaction over `blocks`, summed over the
/// threads, beyond the sequential executor's own execution and commit, and still reach
/// `speedup` over their summed time, in microseconds: the most `x` such that the blocks' shortest
/// times, each with `x` more work per transaction, fit in `sum(block_ms) / speedup`. `None`
/// where even an engine that spends nothing cannot (a block's commit, critical path or the part
/// alone too long), or there are no transactions.
pub fn spare_us_per_tx(blocks: &[BlockLimit], slots: usize, speedup: f64) -> Option<f64> {
    let txs: usize = blocks.iter().map(|b| b.txs).sum();
    if txs == 0 || !speedup.is_finite() || speedup <= 0.0 {
        return None;
    }
    let allowed = blocks.iter().map(BlockLimit::block_ms).sum::<f64>() / speedup;
    let least = |x_ms: f64| blocks.iter().map(|b| b.least_ms(slots, x_ms * b.txs as f64)).sum::<f64>();
    // A hair of room for the sums' rounding: at one slot and 1.0x the two are the same sum.
    if least(0.0) > allowed * (1.0 + 1e-12) {
        return None;
    }
    // `least` grows with `x` and reaches `allowed` by `hi`, where the added work alone, spread
    // over the threads, takes `allowed`: bisect between.
    let (mut lo, mut hi) = (0.0, allowed * slots.max(1) as f64 / txs as f64);
    for _ in 0..100 {
        let mid = (lo + hi) / 2.0;
        if least(mid) <= allowed { lo = mid } else { hi = mid }
    }
    Some(lo * 1e3)
}

/// Measures `block`'s limit (one sequential pass over `db`).
pub fn block_limit(chain: &ChainSpec, block: &BlockInput, db: &InMemoryDb) -> Result<BlockLimit, BlockExecutionError> {
    let ms = |since: Instant| since.elapsed().as_secs_f64() * 1e3;
    let started = Instant::now();
    let mut state = State::builder().with_database_ref(db).with_bundle_update().build();
    let env = block.evm_env(chain);
    let beneficiary = env.block_env.beneficiary;
    let evm = EthEvmFactory::default().create_evm(&mut state, env);
    let factory = EthBlockExecutorFactory::new(RethReceiptBuilder, chain.clone(), EthEvmFactory::default());
    let mut executor = factory.create_executor(evm, block.execution_ctx());
    executor.apply_pre_execution_changes()?;
    let setup_ms = ms(started);

    let mut account_writer: HashMap<Address, usize> = HashMap::new();
    let mut slot_writer: HashMap<(Address, U256), usize> = HashMap::new();
    // (weight of the heaviest chain ending at tx, its length)
    let mut chains: Vec<(f64, usize)> = Vec::with_capacity(block.txs.len());
    let (mut total, mut commit_ms) = (0.0, 0.0);
    for (i, tx) in block.txs.iter().enumerate() {
        let started = Instant::now();
        let output = executor.execute_transaction_without_commit(tx)?;
        let millis = ms(started);
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
        let committing = Instant::now();
        executor.commit_transaction(output);
        commit_ms += ms(committing);
    }
    // As in the bench's timed runs: the result and the bundle outlive the timer (the caller
    // keeps them), the `State` does not.
    let finishing = Instant::now();
    let result = executor.finish()?.1;
    state.merge_transitions(BundleRetention::Reverts);
    let bundle = state.take_bundle();
    drop(state);
    let finish_ms = ms(finishing);
    drop((result, bundle));
    let (critical_path_ms, critical_path_txs) =
        chains.iter().copied().fold((0.0, 0), |best, chain| if chain.0 > best.0 { chain } else { best });
    Ok(BlockLimit {
        txs: block.txs.len(),
        total_ms: total,
        critical_path_ms,
        critical_path_txs,
        commit_ms,
        setup_ms,
        finish_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_capped_by_slots_and_never_below_one() {
        let limit = BlockLimit { total_ms: 10.0, critical_path_ms: 2.0, critical_path_txs: 3, ..BLOCK };
        assert_eq!(limit.speedup(8), 5.0);
        assert_eq!(limit.speedup(2), 2.0);
        let serial = BlockLimit { total_ms: 10.0, critical_path_ms: 10.0, critical_path_txs: 9, ..BLOCK };
        assert_eq!(serial.speedup(8), 1.0);
    }

    /// 100 ms in all: 80 executing, 10 committing, 5 of setup and 5 of finish; ten
    /// transactions, a short critical path.
    const BLOCK: BlockLimit = BlockLimit {
        txs: 10,
        total_ms: 80.0,
        critical_path_ms: 8.0,
        critical_path_txs: 1,
        commit_ms: 10.0,
        setup_ms: 5.0,
        finish_ms: 5.0,
    };

    #[test]
    fn the_bound_counts_the_commit_and_the_part_alone() {
        assert_eq!(BLOCK.block_ms(), 100.0);
        // Execution-bound at 2 slots: 10 alone + (80 + 10) / 2 = 55 ms.
        assert!((BLOCK.bound(2) - 100.0 / 55.0).abs() < 1e-9, "{}", BLOCK.bound(2));
        // One slot does everything itself.
        assert_eq!(BLOCK.bound(1), 1.0);
        // Commit-bound at 16 slots: 10 alone + max(10, 90 / 16) = 20 ms.
        assert!((BLOCK.bound(16) - 5.0).abs() < 1e-9, "{}", BLOCK.bound(16));
        // A chain: the critical path is every execution, and the commits still overlap it.
        let chain = BlockLimit { critical_path_ms: 80.0, critical_path_txs: 10, ..BLOCK };
        assert_eq!(chain.speedup(2), 1.0);
        assert!((chain.bound(2) - 100.0 / 90.0).abs() < 1e-9, "{}", chain.bound(2));
    }

    #[test]
    fn blocks_together_keep_each_ones_own_bottleneck() {
        // The chain alone: 10 alone + 80 = 90 ms; BLOCK alone 55 ms. Together 200 ms over 145,
        // not over the 10 + 10 + max(20, 180 / 2, 88) = 110 ms of one block made of both.
        let chain = BlockLimit { critical_path_ms: 80.0, critical_path_txs: 10, ..BLOCK };
        let both = bound(&[BLOCK, chain], 2);
        assert!((both - 200.0 / 145.0).abs() < 1e-9, "{both}");
        assert_eq!(bound(&[], 2), 1.0);
    }

    #[test]
    fn the_budget_runs_out_exactly_at_the_bound() {
        let at = |speedup: f64| spare_us_per_tx(&[BLOCK], 2, speedup);
        let bound = BLOCK.bound(2);
        // Just under the bound the budget is nearly nothing; just over it, there is none.
        let under = at(bound * 0.999).expect("room just under the bound");
        assert!(under > 0.0 && under < 20.0, "{under}");
        assert_eq!(at(bound * 1.001), None);
        // At 1.25x the block may take 80 ms: 70 for the pipeline, 140 over two threads, of which
        // 90 are the sequential executor's own: 50 ms spare over 10 transactions.
        let spare = at(1.25).expect("room");
        assert!((spare - 5_000.0).abs() < 1e-6, "{spare}");
        assert_eq!(spare_us_per_tx(&[BlockLimit { txs: 0, ..BLOCK }], 2, 1.25), None, "no transactions");
        assert_eq!(at(0.0), None);
    }

    #[test]
    fn a_commit_or_chain_longer_than_the_pipeline_leaves_nothing() {
        // Commit-bound: 10 alone + max(60, (20 + 60) / 2) = 70 ms, bound 1.29x.
        let commits = BlockLimit { total_ms: 20.0, critical_path_ms: 2.0, commit_ms: 60.0, ..BLOCK };
        let bound = commits.bound(2);
        assert!((bound - 90.0 / 70.0).abs() < 1e-9, "{bound}");
        // Just under the bound the two threads' sum still has room (at the bound, 60 ms of
        // pipeline: 2 * 60 - 80 = 40 ms), but past it the commit alone no longer fits.
        assert!(spare_us_per_tx(&[commits], 2, bound * 0.999).is_some_and(|us| us > 3_000.0));
        assert_eq!(spare_us_per_tx(&[commits], 2, bound * 1.001), None);
        // Chain-bound: 10 alone + 70 ms of one chain, bound 1.25x; the threads' sum has room
        // past it, the chain has not.
        let chain = BlockLimit { critical_path_ms: 70.0, ..BLOCK };
        let bound = chain.bound(2);
        assert!((bound - 100.0 / 80.0).abs() < 1e-9, "{bound}");
        assert!(spare_us_per_tx(&[chain], 2, bound * 0.999).is_some());
        assert_eq!(spare_us_per_tx(&[chain], 2, bound * 1.001), None);
    }

    #[test]
    fn a_budget_over_blocks_is_shared_by_their_transactions() {
        // Two copies of BLOCK at 1.25x: 200 ms may take 160, each block 80, so each keeps its
        // 5 ms a transaction.
        let spare = spare_us_per_tx(&[BLOCK, BLOCK], 2, 1.25).expect("room");
        assert!((spare - 5_000.0).abs() < 1e-6, "{spare}");
        // Beside a commit-bound block, 190 ms may take 152: with x ms more per transaction
        // BLOCK takes 10 + (90 + 10x) / 2 and the other 10 + max(60, (80 + 10x) / 2), which
        // sum to 152 at x = 4.7.
        let commits = BlockLimit { total_ms: 20.0, critical_path_ms: 2.0, commit_ms: 60.0, ..BLOCK };
        let spare = spare_us_per_tx(&[BLOCK, commits], 2, 1.25).expect("room");
        assert!((spare - 4_700.0).abs() < 1e-6, "{spare}");
    }
}
