//! One executor alone, over and over, for a profiler: `parevm bench` interleaves executors and
//! spends much of its run loading blocks and checking results, which would drown the profile.
//!
//! ```text
//! cargo build --release -p parevm --example profile
//! perf record -g target/release/examples/profile EXECUTOR WHAT [ROUNDS [PAUSE_MS]]
//! perf report --sort comm,sym
//! ```
//!
//! EXECUTOR: `seq`, `N` (the engine with N slots), `dropin:N`, or `parent:N` (the drop-in given
//! each block's pre-state as its parent state). WHAT: a workload
//! (`transfers`, `erc20`, `amm`, `hot`, 30 Mgas, seed 1) or `mainnet` (the blocks with 100+
//! transactions from $PAREVM_DATA or ../shared/data/mainnet). ROUNDS (default 50): passes over
//! the blocks. PAUSE_MS (default 0): a sleep before each pass, so that it starts cold, as a
//! node's block does after the seconds between blocks (`parevm bench` runs them back to back).
//! It prints the median time of one pass, so two executors can also be compared by hand; only
//! `parevm bench` gives figures for the docs.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use parevm::{
    BlockInput, ChainSpec, Executor, mainnet,
    workloads::{self, Erc20Code},
};
use parevm_dispatcher::{Engine, EngineConfig};
use parevm_statedb::{InMemoryDb, ParentState, SharedParent};

/// The binary's allocator, so the profile shows what `parevm` runs.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: profile seq|N|dropin:N|parent:N transfers|erc20|amm|hot|mainnet [ROUNDS [PAUSE_MS]]";
    let (Some(executor), Some(what)) = (args.first(), args.get(1)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let rounds: usize = args.get(2).map_or(50, |r| r.parse().expect("ROUNDS: a number")).max(1);
    let pause = Duration::from_millis(args.get(3).map_or(0, |p| p.parse().expect("PAUSE_MS: a number")));
    let engine = |slots: &str| {
        let slots = slots.parse().expect("slots: a number");
        Engine::new(EngineConfig { slots, ..EngineConfig::default() }).expect("a valid configuration")
    };
    let with_parent = executor.starts_with("parent:");
    let executor = match executor.as_str() {
        "seq" => Executor::Sequential,
        e => match e.strip_prefix("dropin:").or_else(|| e.strip_prefix("parent:")) {
            Some(slots) => Executor::DropIn(Arc::new(engine(slots))),
            None => Executor::Parallel(engine(e)),
        },
    };
    let data = mainnet::default_data_dir();
    let blocks: Vec<(ChainSpec, BlockInput, InMemoryDb)> = if what == "mainnet" {
        mainnet::discover(&[data])
            .expect("mainnet data")
            .iter()
            .map(|dir| mainnet::load_block(dir).expect("loadable block"))
            .filter(|b| b.block.txs.len() >= 100)
            .map(|b| (ChainSpec::mainnet(), b.block, b.db))
            .collect()
    } else {
        let workload = workloads::parse_workloads(what).expect(usage).0[0];
        let generated = workloads::generate(workload, workloads::DEFAULT_GAS, 1, &Erc20Code::locate(&data));
        vec![(generated.chain, generated.block, generated.db)]
    };
    let parents: Vec<Option<ParentState>> =
        blocks.iter().map(|(_, _, db)| with_parent.then(|| SharedParent::view(db.clone()))).collect();
    let mut passes = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        std::thread::sleep(pause);
        let started = Instant::now();
        for ((chain, block, db), parent) in blocks.iter().zip(&parents) {
            executor.execute_with_parent(chain, block, db, parent.as_ref()).expect("a valid block");
        }
        passes.push(started.elapsed());
    }
    passes.sort();
    println!("{}: {} block(s), median pass {:?}", executor.name(), blocks.len(), passes[rounds / 2]);
}
