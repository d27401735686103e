//! Where the sequential executor's time goes: executing transactions, committing them (receipt
//! and `State` commit), and finishing the block (post-block steps and the bundle merge).
//!
//! The engine parallelises only the first part; the commit of each confirmed transaction and the
//! block's finish stay on one thread, in order, in every executor built on revm's `State`. The
//! "2-thread bound" column is what that leaves two threads at best, in a pipeline like the
//! engine's: the setup before the first transaction and the finish after the last run alone, and
//! in between one thread must commit every transaction in order while both execute, so that part
//! takes at least `max(commit, (execute + commit) / 2)`. Commit overlaps execution there; Amdahl's
//! law, which would let nothing overlap the serial part, understates the bound
//! (docs/benchmarks.md).
//!
//! The two "spare" columns turn the bound into a budget: the microseconds per transaction, summed
//! over both threads, that an engine may spend beyond the sequential executor's own execution and
//! commit (publishing results, validating, applying them to a shared state, lines crossing
//! between the cores) and still reach the project's speed targets (docs/benchmarks.md, "At a
//! glance"): 1.3x (mainnet) and 1.7x (raw and ERC-20 transfers); "none" where even an engine
//! that spends nothing cannot, "-" for a block without transactions:
//!
//! ```text
//! cargo run --release -p parevm --example phases [GAS]
//! ```
//!
//! GAS sizes the synthetic blocks (default 30,000,000); the mainnet blocks with 100+
//! transactions are read from $PAREVM_DATA or ../shared/data/mainnet when present. Each phase is
//! the fastest of 9 runs.

use std::time::{Duration, Instant};

use alloy_evm::{
    EvmFactory,
    block::{BlockExecutor, BlockExecutorFactory},
    eth::{EthBlockExecutorFactory, EthEvmFactory},
};
use parevm::{
    BlockInput, ChainSpec, RethReceiptBuilder, mainnet,
    workloads::{self, Erc20Code, Workload},
};
use parevm_statedb::InMemoryDb;
use revm::database::{State, states::bundle_state::BundleRetention};

const RUNS: usize = 9;

/// Fastest total, execute, commit and finish times of `RUNS` sequential runs.
fn phases(chain: &ChainSpec, block: &BlockInput, db: &InMemoryDb) -> [Duration; 4] {
    let mut best = [Duration::MAX; 4];
    for _ in 0..RUNS {
        let started = Instant::now();
        let mut state = State::builder().with_database_ref(db).with_bundle_update().build();
        let evm = EthEvmFactory::default().create_evm(&mut state, block.evm_env(chain));
        let factory = EthBlockExecutorFactory::new(RethReceiptBuilder, chain.clone(), EthEvmFactory::default());
        let mut executor = factory.create_executor(evm, block.execution_ctx());
        executor.apply_pre_execution_changes().expect("pre-block steps");
        let (mut execute, mut commit) = (Duration::ZERO, Duration::ZERO);
        for tx in &block.txs {
            let before = Instant::now();
            let output = executor.execute_transaction_without_commit(tx).expect("valid block");
            let executed = Instant::now();
            executor.commit_transaction(output);
            commit += executed.elapsed();
            execute += executed - before;
        }
        let finishing = Instant::now();
        executor.finish().expect("post-block steps");
        state.merge_transitions(BundleRetention::Reverts);
        drop(state.take_bundle());
        let finish = finishing.elapsed();
        for (best, time) in best.iter_mut().zip([started.elapsed(), execute, commit, finish]) {
            *best = (*best).min(time);
        }
    }
    best
}

/// The best speedup two threads can reach over `[total, execute, commit, finish]` (see the
/// module's comment): everything but executing and committing stays serial, and one thread
/// commits in order while both execute.
fn two_thread_bound([total, execute, commit, _]: [f64; 4]) -> f64 {
    let alone = total - execute - commit;
    total / (alone + commit.max((execute + commit) / 2.0))
}

/// What an engine may add per transaction, over both threads, beyond the sequential executor's
/// own execution and commit, and still reach `speedup` in the same pipeline: the block may take
/// `total / speedup`, of which the serial part takes `alone` and the rest holds two threads'
/// work. `None` when even an engine that adds nothing cannot (the commit alone, or the serial
/// part, is too long). `txs` must be above zero.
fn spare_per_tx([total, execute, commit, _]: [f64; 4], txs: usize, speedup: f64) -> Option<f64> {
    let alone = total - execute - commit;
    let pipeline = total / speedup - alone;
    let spare = 2.0 * pipeline - execute - commit;
    (commit <= pipeline && spare >= 0.0).then(|| spare / txs as f64)
}

/// [`spare_per_tx`] in microseconds, "none", or "-" without transactions.
fn spare_column(times: [f64; 4], txs: usize, speedup: f64) -> String {
    if txs == 0 {
        return "-".into();
    }
    spare_per_tx(times, txs, speedup).map_or("none".into(), |s| format!("{:.2}", s * 1e6))
}

fn main() {
    let gas = std::env::args().nth(1).map_or(workloads::DEFAULT_GAS, |g| g.parse().expect("GAS: a number"));
    let data = mainnet::default_data_dir();
    let erc20 = Erc20Code::locate(&data);
    let mut cases: Vec<(String, ChainSpec, BlockInput, InMemoryDb)> =
        [Workload::Transfers, Workload::Erc20, Workload::Amm, Workload::Hot]
            .into_iter()
            .map(|w| {
                let generated = workloads::generate(w, gas, 1, &erc20);
                (w.name().to_string(), generated.chain, generated.block, generated.db)
            })
            .collect();
    for dir in mainnet::discover(&[data]).unwrap_or_default() {
        let block = mainnet::load_block(&dir).expect("loadable block");
        if block.block.txs.len() >= 100 {
            cases.push((block.block.number().to_string(), ChainSpec::mainnet(), block.block, block.db));
        }
    }
    println!(
        "{:<10} {:>6} {:>9}  {:>8} {:>8} {:>8} {:>15} {:>10} {:>10}",
        "block", "txs", "total ms", "execute", "commit", "finish", "2-thread bound", "spare 1.3x", "spare 1.7x"
    );
    let (mut mainnet_sum, mut mainnet_txs) = ([0.0; 4], 0);
    for (label, chain, block, db) in &cases {
        let times = phases(chain, block, db).map(|d| d.as_secs_f64());
        print_row(label, block.txs.len(), times);
        if label.parse::<u64>().is_ok() {
            mainnet_sum.iter_mut().zip(times).for_each(|(sum, t)| *sum += t);
            mainnet_txs += block.txs.len();
        }
    }
    if mainnet_sum[0] > 0.0 {
        print_row("mainnet", mainnet_txs, mainnet_sum);
    }
}

/// One line of the table: a block's (or the mainnet blocks' summed) `[total, execute, commit,
/// finish]`, in seconds.
fn print_row(label: &str, txs: usize, times: [f64; 4]) {
    let share = |i: usize| format!("{:.1}%", 100.0 * times[i] / times[0]);
    println!(
        "{label:<10} {txs:>6} {:>9.3}  {:>8} {:>8} {:>8} {:>14.2}x {:>10} {:>10}",
        times[0] * 1e3,
        share(1),
        share(2),
        share(3),
        two_thread_bound(times),
        spare_column(times, txs, 1.3),
        spare_column(times, txs, 1.7)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 100 µs in all: 80 executing, 10 committing, 10 alone (5 of them finishing).
    const TIMES: [f64; 4] = [100e-6, 80e-6, 10e-6, 5e-6];

    #[test]
    fn the_budget_runs_out_exactly_at_the_bound() {
        let bound = two_thread_bound(TIMES);
        // Execution-bound: 10 alone + (80 + 10) / 2 = 55 µs.
        assert!((bound - 100.0 / 55.0).abs() < 1e-9, "{bound}");
        // Just under the bound the budget is nearly nothing; just over it, there is none.
        let under = spare_per_tx(TIMES, 10, bound * 0.999).expect("room just under the bound");
        assert!(under > 0.0 && under < 0.02e-6, "{under}");
        assert_eq!(spare_per_tx(TIMES, 10, bound * 1.001), None);
        // At 1.25x the block may take 80 µs: 70 for the pipeline, 140 over two threads, of which
        // 90 are the sequential executor's own: 50 µs spare over 10 transactions.
        let spare = spare_per_tx(TIMES, 10, 1.25).expect("room");
        assert!((spare - 5e-6).abs() < 1e-12, "{spare}");
    }

    #[test]
    fn a_commit_longer_than_the_pipeline_leaves_nothing() {
        // Commit-bound: 10 alone + max(60, (20 + 60) / 2) = 70 µs, bound 1.29x.
        let times = [90e-6, 20e-6, 60e-6, 5e-6];
        let bound = two_thread_bound(times);
        assert!((bound - 90.0 / 70.0).abs() < 1e-9, "{bound}");
        // Just under the bound the two threads' sum still has room (at the bound, 60 µs of
        // pipeline: 2 * 60 - 80 = 40 µs), but past it the commit alone no longer fits.
        assert!(spare_per_tx(times, 10, bound * 0.999).is_some());
        assert_eq!(spare_per_tx(times, 10, bound * 1.001), None);
        assert_eq!(spare_column(times, 0, 1.3), "-");
        assert_eq!(spare_column(times, 10, 1.7), "none");
    }
}
