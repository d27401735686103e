//! `parevm replay`: execute historical blocks and check them against their headers and, for the
//! parallel engine, against the sequential baseline (receipts, gas, requests and the whole state
//! change set, not only what the header commits to).

use std::{path::PathBuf, time::Instant};

use alloy_hardforks::EthereumHardforks;
use serde::Serialize;

use crate::{
    ChainSpec, Executor,
    checks::{Checks, Mismatch, check_header},
    execute::BlockOutput,
    mainnet::{MainnetBlock, load_block},
};

/// The outcome of replaying one block.
#[derive(Debug, Clone, Serialize)]
pub struct BlockReport {
    /// Block number.
    pub number: u64,
    /// Transactions.
    pub txs: usize,
    /// Gas used (as executed).
    pub gas_used: u64,
    /// Wall time of the execution, in milliseconds.
    pub millis: f64,
    /// `true` if every check passed.
    pub ok: bool,
    /// Failed checks, one line each.
    pub problems: Vec<String>,
    /// Redos (parallel only).
    pub redos: Option<u64>,
    /// Executions (parallel only).
    pub executions: Option<u64>,
}

/// Whether the receipts root can be checked at this height (see `checks`).
pub fn header_checks(chain: &ChainSpec, block: &MainnetBlock) -> Checks {
    let header = &block.block.header;
    Checks {
        receipts_root: chain.is_byzantium_active_at_block(header.number),
        blob_gas_used: chain.is_cancun_active_at_timestamp(header.timestamp),
    }
}

/// Describes the first differences between two outputs of the same block.
pub fn compare_outputs(expected: &BlockOutput, actual: &BlockOutput) -> Vec<String> {
    let (e, a) = (&expected.result, &actual.result);
    let mut diffs = Vec::new();
    if e.gas_used != a.gas_used {
        diffs.push(format!("gas used: sequential {} parallel {}", e.gas_used, a.gas_used));
    }
    if e.blob_gas_used != a.blob_gas_used {
        diffs.push(format!("blob gas used: sequential {} parallel {}", e.blob_gas_used, a.blob_gas_used));
    }
    if e.receipts.len() != a.receipts.len() {
        diffs.push(format!("receipt count: sequential {} parallel {}", e.receipts.len(), a.receipts.len()));
    } else if let Some(i) = (0..e.receipts.len()).find(|&i| e.receipts[i] != a.receipts[i]) {
        diffs.push(format!("receipt of tx {i}: sequential {:?} parallel {:?}", e.receipts[i], a.receipts[i]));
    }
    if e.requests != a.requests {
        diffs.push("requests differ".into());
    }
    if expected.bundle != actual.bundle {
        let mut addresses: Vec<_> = expected.bundle.state.keys().chain(actual.bundle.state.keys()).copied().collect();
        addresses.sort();
        addresses.dedup();
        let first = addresses.into_iter().find(|a| expected.bundle.state.get(a) != actual.bundle.state.get(a));
        match first {
            Some(address) => diffs.push(format!(
                "state of {address}: sequential {:?} parallel {:?}",
                expected.bundle.state.get(&address),
                actual.bundle.state.get(&address)
            )),
            None => diffs.push("state changes differ (contracts or reverts)".into()),
        }
    }
    diffs
}

/// Replays one loaded block with `executor`; with `compare`, a parallel run is also compared
/// with a sequential one.
pub fn replay_block(chain: &ChainSpec, block: &MainnetBlock, executor: &Executor, compare: bool) -> BlockReport {
    let started = Instant::now();
    let outcome = executor.execute(chain, &block.block, &block.db);
    let millis = started.elapsed().as_secs_f64() * 1e3;
    let mut report = BlockReport {
        number: block.block.number(),
        txs: block.block.txs.len(),
        gas_used: 0,
        millis,
        ok: false,
        problems: Vec::new(),
        redos: None,
        executions: None,
    };
    match outcome {
        Err(error) => report.problems.push(format!("execution failed: {error}")),
        Ok(output) => {
            report.gas_used = output.result.gas_used;
            if let Some(stats) = &output.stats {
                report.redos = Some(stats.merge.total_redos());
                report.executions = Some(stats.executions);
            }
            let mismatches = check_header(&block.block.header, &output.result, header_checks(chain, block));
            report.problems.extend(mismatches.iter().map(Mismatch::to_string));
            if compare && !matches!(executor, Executor::Sequential) {
                match Executor::Sequential.execute(chain, &block.block, &block.db) {
                    Ok(sequential) => report.problems.extend(compare_outputs(&sequential, &output)),
                    Err(error) => report.problems.push(format!("sequential execution failed: {error}")),
                }
            }
        }
    }
    report.ok = report.problems.is_empty();
    report
}

/// Loads and replays every block under `paths`, calling `progress` after each.
pub fn replay_all(
    chain: &ChainSpec,
    paths: &[PathBuf],
    executor: &Executor,
    compare: bool,
    mut progress: impl FnMut(usize, usize, &BlockReport),
) -> Result<Vec<BlockReport>, crate::LoadError> {
    let dirs = crate::mainnet::discover(paths)?;
    let mut reports = Vec::with_capacity(dirs.len());
    for (i, dir) in dirs.iter().enumerate() {
        let block = load_block(dir)?;
        let report = replay_block(chain, &block, executor, compare);
        progress(i + 1, dirs.len(), &report);
        reports.push(report);
    }
    Ok(reports)
}
