//! Where the sequential executor's time goes: executing transactions, committing them (receipt
//! and `State` commit), and finishing the block (post-block steps, the bundle merge, dropping the
//! `State`).
//!
//! The engine parallelises only the first part; the commit of each confirmed transaction and the
//! block's finish stay on one thread, in order, in every executor built on revm's `State`. The
//! "2-thread bound" column is what that leaves two threads at best, in a pipeline like the
//! engine's: the setup before the first transaction and the finish after the last run alone, and
//! in between one thread must commit every transaction in order while both execute, so that part
//! takes at least `max(commit, (execute + commit) / 2, critical path)`. Commit overlaps execution
//! there; Amdahl's law, which would let nothing overlap the serial part, understates the bound
//! (docs/benchmarks.md). `parevm bench` prints the same bound per block, from one pass
//! (`parevm::limit`, where the arithmetic lives); this example takes the fastest of several.
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
//! the fastest of 9 passes of `parevm::limit::block_limit` (which also track the transactions'
//! dependencies, between execution and commit and outside the timers), and "total" is the sum of
//! those fastest phases, the setup's among them (not a column). The "mainnet" row is the blocks
//! run one after another: each keeps its own bottleneck, commit or chain.

use parevm::{
    BlockInput, ChainSpec,
    limit::{self, BlockLimit, block_limit},
    mainnet,
    workloads::{self, Erc20Code, Workload},
};
use parevm_statedb::InMemoryDb;

/// The allocator of the `parevm` binary, whose `bench` this bound is read against.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const RUNS: usize = 9;

/// Each phase's fastest time over `RUNS` passes.
fn phases(chain: &ChainSpec, block: &BlockInput, db: &InMemoryDb) -> BlockLimit {
    (0..RUNS)
        .map(|_| block_limit(chain, block, db).expect("valid block"))
        .reduce(|a, b| BlockLimit {
            total_ms: a.total_ms.min(b.total_ms),
            critical_path_ms: a.critical_path_ms.min(b.critical_path_ms),
            commit_ms: a.commit_ms.min(b.commit_ms),
            setup_ms: a.setup_ms.min(b.setup_ms),
            finish_ms: a.finish_ms.min(b.finish_ms),
            ..a
        })
        .expect("RUNS > 0")
}

/// The spare budget at `speedup` in microseconds, "none", or "-" without transactions.
fn spare_column(blocks: &[BlockLimit], speedup: f64) -> String {
    if blocks.iter().all(|b| b.txs == 0) {
        return "-".into();
    }
    limit::spare_us_per_tx(blocks, 2, speedup).map_or("none".into(), |s| format!("{s:.2}"))
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
    let mut mainnet = Vec::new();
    for (label, chain, block, db) in &cases {
        let times = phases(chain, block, db);
        print_row(label, &[times]);
        if label.parse::<u64>().is_ok() {
            mainnet.push(times);
        }
    }
    if !mainnet.is_empty() {
        print_row("mainnet", &mainnet);
    }
}

/// One line of the table: a block's phases, or several blocks' run one after another.
fn print_row(label: &str, blocks: &[BlockLimit]) {
    let sum = |phase: fn(&BlockLimit) -> f64| blocks.iter().map(phase).sum::<f64>();
    let total = sum(BlockLimit::block_ms);
    let share = |phase: fn(&BlockLimit) -> f64| format!("{:.1}%", 100.0 * sum(phase) / total);
    println!(
        "{label:<10} {:>6} {total:>9.3}  {:>8} {:>8} {:>8} {:>14.2}x {:>10} {:>10}",
        blocks.iter().map(|b| b.txs).sum::<usize>(),
        share(|b| b.total_ms),
        share(|b| b.commit_ms),
        share(|b| b.finish_ms),
        limit::bound(blocks, 2),
        spare_column(blocks, 1.3),
        spare_column(blocks, 1.7)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spare_columns_say_none_or_nothing_to_divide() {
        // Commit-bound at 1.29x (`parevm::limit`'s tests): nothing at 1.7x, some at 1.1x.
        let commits = BlockLimit {
            txs: 10,
            total_ms: 20.0,
            critical_path_ms: 2.0,
            critical_path_txs: 1,
            commit_ms: 60.0,
            setup_ms: 5.0,
            finish_ms: 5.0,
        };
        assert_eq!(spare_column(&[BlockLimit { txs: 0, ..commits }], 1.3), "-");
        assert_eq!(spare_column(&[commits], 1.7), "none");
        assert_ne!(spare_column(&[commits], 1.1), "none");
    }
}
