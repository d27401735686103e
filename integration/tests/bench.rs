//! `bench_blocks` on two real mainnet blocks: the report has a row per block, a result per
//! configuration, and positive timings. No timing thresholds: speed depends on the machine.

use std::path::PathBuf;

use parevm::{
    ChainSpec,
    bench::{BenchOptions, bench_blocks, load_blocks},
    mainnet::load_block,
};
use parevm_dispatcher::EngineConfig;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/mainnet");

#[test]
fn bench_two_blocks() {
    let blocks: Vec<_> = ["12244000", "19934116"]
        .iter()
        .map(|n| load_block(&PathBuf::from(DATA).join(n)).expect("block loads"))
        .collect();
    let configs = [EngineConfig::with_slots(2).unwrap(), EngineConfig::with_slots(3).unwrap()];
    let mut seen = Vec::new();
    let report = bench_blocks(
        &ChainSpec::mainnet(),
        &blocks,
        &configs,
        BenchOptions { runs: 1, warmup: 0, drop_in: false, parent_state: false },
        |done, total, block| seen.push((done, total, block.number)),
    )
    .expect("benchmark completes");

    assert_eq!(seen, [(1, 2, 12244000), (2, 2, 19934116)]);
    assert_eq!(report.configs.len(), 2);
    assert_eq!(report.blocks.len(), 2);
    for (block, input) in report.blocks.iter().zip(&blocks) {
        assert_eq!(block.number, input.block.number());
        assert_eq!(block.txs, input.block.txs.len());
        assert_eq!(block.gas_used, input.block.header.gas_used);
        assert!(block.sequential_ms > 0.0);
        assert_eq!(block.sequential_samples_ms.len(), 1);
        assert_eq!(block.parallel.len(), 2);
        for (result, config) in block.parallel.iter().zip(&configs) {
            assert_eq!(result.slots, config.slots);
            assert!(result.median_ms > 0.0);
            assert!(result.speedup > 0.0 && result.speedup.is_finite());
            assert_eq!(result.samples_ms.len(), 1);
            // The speedup pairs the samples of one round.
            assert_eq!(result.speedup, block.sequential_samples_ms[0] / result.samples_ms[0]);
            assert!(result.executions >= block.txs as u64);
            assert!(result.redo_rate >= 0.0);
        }
    }
    let summary = &report.summary;
    assert_eq!(summary.blocks, 2);
    assert_eq!(summary.geomean_blocks, 2);
    assert_eq!(summary.geomean_skipped_empty, 0);
    assert_eq!(summary.parallel.len(), 2);
    for config in &summary.parallel {
        assert!(config.total_ms > 0.0);
        assert!(config.overall_speedup > 0.0 && config.geomean_speedup > 0.0);
    }
    let json = serde_json::to_value(&report).expect("report serializes");
    assert_eq!(json["blocks"].as_array().map(Vec::len), Some(2));

    let table = parevm::bench::render_table(&report);
    // Header and rule, 2 blocks, rule, total and geomean, 7 note lines, execution times, host
    // (the round trip, then the shared cores; each says so when it could not be probed).
    let host_lines = 2;
    assert_eq!(table.lines().count(), 2 + 2 + 1 + 2 + 7 + 1 + host_lines);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[lines.len() - 1 - host_lines].starts_with("execution time, us, over the blocks"), "{table}");
    assert!(lines[lines.len() - host_lines..].iter().all(|line| line.starts_with("host: ")), "{table}");
    // At most one round trip before and one after each block's timed runs (a probe that ran out
    // of its budget on a busy machine is left out, not counted as zero).
    for block in &report.blocks {
        assert!(block.cross_core_ns.len() <= 2, "{:?}", block.cross_core_ns);
        assert!(block.cross_core_ns.iter().all(|ns| *ns > 0.0 && ns.is_finite()), "{:?}", block.cross_core_ns);
    }
    assert_eq!(
        summary.cross_core_ns.map(|c| c.probes),
        Some(report.blocks.iter().map(|b| b.cross_core_ns.len()).sum::<usize>()).filter(|&n| n > 0)
    );
    // The shared-core probe runs before the first block and after the last.
    if let Some(shared) = summary.shared_core {
        assert!((1..=2).contains(&shared.probes), "{shared:?}");
        assert!(shared.min > 0.0 && shared.min <= shared.median && shared.median <= shared.max, "{shared:?}");
    }
    // The engine's own entry point measures its executions; the sequential side comes from the
    // limit's pass.
    for config in &summary.parallel {
        assert!(config.execution_us.is_some_and(|us| us > 0.0), "{:?}", config.execution_us);
        assert!(config.sequential_execution_us.is_some_and(|us| us > 0.0), "{:?}", config.sequential_execution_us);
    }
    for block in &report.blocks {
        assert!(block.limit.critical_path_ms > 0.0 && block.limit.critical_path_ms <= block.limit.total_ms + 1e-9);
        for p in &block.parallel {
            assert!((1.0..=p.slots as f64).contains(&p.limit), "limit {} at {} slots", p.limit, p.slots);
            // One thread commits and the setup and finish run alone: short of the slot count.
            assert!(p.bound >= 1.0 && p.bound < p.slots as f64, "bound {} at {} slots", p.bound, p.slots);
        }
    }
}

#[test]
fn min_txs_filters_blocks() {
    let dir = PathBuf::from(DATA).join("46147");
    let (blocks, skipped) = load_blocks(std::slice::from_ref(&dir), 2).expect("loads");
    assert!(blocks.is_empty());
    assert_eq!(skipped, 1);
    let (blocks, skipped) = load_blocks(&[dir], 1).expect("loads");
    assert_eq!((blocks.len(), skipped), (1, 0));
}

#[test]
fn zero_runs_is_refused() {
    let result = bench_blocks(
        &ChainSpec::mainnet(),
        &[],
        &[],
        BenchOptions { runs: 0, warmup: 0, drop_in: false, parent_state: false },
        |_, _, _| {},
    );
    assert!(result.is_err());
}
