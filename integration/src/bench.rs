//! `parevm bench`: wall time of the sequential baseline and the parallel engine on the same
//! historical blocks, side by side.
//!
//! What is measured is one call of [`Executor::execute`] per sample: the whole block as reth
//! would run it (pre-block system calls, every transaction, post-block steps, the bundle with
//! reverts), with the pre-state already in memory. Loading the blocks, building the engines
//! (their worker threads are created once and reused for every block) and dropping the output
//! are outside the timed region, so the numbers compare execution and nothing else.
//!
//! How it is measured, and why:
//!
//! - **Verification first.** Every parallel configuration runs each block once and its output
//!   is compared field by field with the sequential one ([`compare_outputs`]). A mismatch aborts
//!   the benchmark: the speed of a wrong result means nothing. The redo rate reported is that
//!   verification run's.
//! - **Warm-up.** A few untimed runs per executor fill the caches, the allocator's pools and the
//!   branch predictors, so the first timed sample is not an outlier by construction.
//! - **Alternating rounds.** Each round runs the sequential executor and every parallel
//!   configuration once, one after the other (the starting executor rotates from round to
//!   round), instead of all sequential runs and then all parallel ones. Frequency scaling, other
//!   processes and thermal drift then hit every executor alike, and the ratio between them stays
//!   meaningful even on a noisy machine.
//! - **Medians.** A block's time per executor is the median of its rounds: a preempted run or a
//!   page-fault storm moves the mean a lot and the median hardly at all.
//! - **Paired speedups.** A block's speedup is the median over the rounds of the sequential
//!   sample divided by the configuration's sample of the same round ([`paired_speedup`]), not
//!   the ratio of the two medians. When the host changes pace part way through a block's rounds
//!   (a neighbour starts, the cores' shared line slows), the two medians can fall on different
//!   sides of the change: the sequential executor against itself once read 1.31x that way
//!   (fifteen rounds of 14396881, the host slowing from ~2.3 to ~3.8 ms in the eighth), while
//!   the median of the rounds' ratios read 1.03x.
//! - **Summary.** Per configuration: the sum of the block medians and their ratio (what a node
//!   replaying exactly these blocks would gain), and the geometric mean of the per-block
//!   speedups (every block weighs the same whatever its size; the right mean for ratios). Blocks
//!   without transactions have nothing to parallelize and are left out of the geometric mean.
//! - **Limit and bound.** One more sequential pass per block ([`crate::limit`]) gives what the
//!   block allows: the *limit*, its critical path against its execution time, capped by the slot
//!   count, and the *bound*, which also counts what every executor committing into revm's
//!   `State` runs on one thread (each transaction's commit, in order; the setup and the finish).
//!   A speedup is read against both: the gap to the bound is the engine's; where the bound is
//!   under the limit (cheap transactions), the difference is `State`'s serial part. On a chain
//!   the bound reads above the limit, the commits overlapping the chain's executions.
//!
//! The blocks are historical mainnet blocks (PATHs), or with `--workload` synthetic blocks
//! generated in-process from a seed ([`crate::workloads`]); either way they become a list of
//! [`BenchCase`]s and go through the same procedure.

use std::{
    io::IsTerminal,
    path::{Path, PathBuf},
    process::ExitCode,
    time::Instant,
};

use indicatif::{ProgressBar, ProgressStyle};
use parevm_dispatcher::{Engine, EngineConfig};
use serde::Serialize;

use parevm_statedb::{InMemoryDb, ParentState, SharedParent};

use crate::{
    BlockInput, ChainSpec, Executor, LoadError, alloc_count, host,
    limit::{BlockLimit, block_limit},
    mainnet::{MainnetBlock, default_data_dir, discover, load_block},
    replay::compare_outputs,
    workloads::{self, Erc20Code, GeneratedBlock, WorkloadSet},
};

/// Arguments of `parevm bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Block folders, or folders of block folders. Default: $PAREVM_DATA, else ../shared/data/mainnet.
    pub paths: Vec<PathBuf>,
    /// Slot counts of the parallel configurations to time, e.g. `--slots 1,2,4` or `--slots 1
    /// --slots 2`. Slots count the threads executing, the merger's included: `--slots 1` is the
    /// sequential executor reached through the engine's entry. Default: the engine's default
    /// (cores, 1 to 8).
    #[arg(long, value_name = "N", value_delimiter = ',')]
    pub slots: Vec<usize>,
    /// Timed repetitions per block and executor; a block's time is their median.
    #[arg(long, value_name = "R", default_value_t = 7)]
    pub runs: usize,
    /// Untimed runs per block and executor before the timed ones.
    #[arg(long, value_name = "W", default_value_t = 2)]
    pub warmup: usize,
    /// Only benchmark blocks with at least N transactions.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub min_txs: usize,
    /// Disable shadow workers in every parallel configuration.
    #[arg(long)]
    pub no_shadow: bool,
    /// Disable work stealing in every parallel configuration.
    #[arg(long)]
    pub no_steal: bool,
    /// Drive every parallel configuration through ParallelBlockExecutorFactory, as reth would
    /// (transactions handed in one at a time, database reads served by the calling thread).
    #[arg(long)]
    pub drop_in: bool,
    /// With --drop-in: give the executors a shareable view of each block's pre-state
    /// (ParallelBlockExecutorFactory::with_parent_states, which reth could provide), so that the
    /// slots read it directly instead of asking the calling thread.
    #[arg(long, requires = "drop_in")]
    pub parent_state: bool,
    /// Run blocks with fewer than N transactions sequentially in every parallel configuration
    /// (the small-block rule; 0 = off), to measure the rule's effect.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub sequential_below: usize,
    /// Disable the chain rule (a block whose merged transactions mostly need redos is handed to
    /// the sequential executor), to measure the rule's effect.
    #[arg(long)]
    pub no_chain_rule: bool,
    /// Disable the cheap-block rule (a block of mostly plain transfers, by its transactions' gas
    /// limits, is handed to the sequential executor), to measure the rule's effect.
    #[arg(long)]
    pub no_cheap_rule: bool,
    /// Also write the per-block results and the summary to FILE as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Draw the speedup of every block, per configuration, against the block's limit, as SVG.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Benchmark synthetic blocks generated in-process instead of PATHs (which are then
    /// ignored): transfers, erc20, amm, hot, or all (a comma-separated list is accepted).
    #[arg(long, value_name = "transfers|erc20|amm|hot|all", value_parser = workloads::parse_workloads)]
    pub workload: Option<WorkloadSet>,
    /// Target gas of each synthetic block (with --workload), at most 1000000000 (one gigagas).
    #[arg(long, value_name = "GAS", default_value_t = workloads::DEFAULT_GAS, value_parser = workloads::parse_gas)]
    pub gas: u64,
    /// Seed of the synthetic blocks' generator (with --workload).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,
}

/// One block to benchmark, whatever its source: a row label, the chain, the block and the state
/// before it.
#[derive(Debug, Clone, Copy)]
pub struct BenchCase<'a> {
    /// The row label: the block number, or the workload's name.
    pub label: &'a str,
    /// The chain the block is executed on.
    pub chain: &'a ChainSpec,
    /// The block.
    pub block: &'a BlockInput,
    /// Its pre-state.
    pub db: &'a InMemoryDb,
    /// What the block is made of, for synthetic blocks (e.g. which token code).
    pub note: Option<&'a str>,
}

/// How many samples to take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BenchOptions {
    /// Timed rounds per block (each round times every executor once). At least 1.
    pub runs: usize,
    /// Untimed rounds per block before the timed ones.
    pub warmup: usize,
    /// Drive the engines through the drop-in executor factory ([`Executor::DropIn`]).
    pub drop_in: bool,
    /// Give the drop-in each block's pre-state as its parent state
    /// ([`Executor::execute_with_parent`]).
    pub parent_state: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self { runs: 7, warmup: 2, drop_in: false, parent_state: false }
    }
}

/// One parallel configuration, as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigInfo {
    /// `parallel(N)`.
    pub name: String,
    /// Slots (primary workers).
    pub slots: usize,
    /// Shadow workers on.
    pub shadows: bool,
    /// Work stealing on.
    pub steal: bool,
}

/// One parallel configuration's result on one block.
#[derive(Debug, Clone, Serialize)]
pub struct ParallelResult {
    /// Slots of the configuration.
    pub slots: usize,
    /// Median wall time, in milliseconds.
    pub median_ms: f64,
    /// The median over the timed rounds of the sequential sample divided by this
    /// configuration's sample of the same round (above 1: faster than sequential); see
    /// [`paired_speedup`].
    pub speedup: f64,
    /// Redos per transaction in the verification run.
    pub redo_rate: f64,
    /// The best speedup this many slots could reach on the block (see [`crate::limit`]).
    pub limit: f64,
    /// The best speedup this many threads could reach on the block in an executor that commits
    /// into revm's `State` ([`BlockLimit::bound`]).
    pub bound: f64,
    /// Redos in the verification run.
    pub redos: u64,
    /// Executions (first runs and redos) in the verification run.
    pub executions: u64,
    /// First executions the caller's thread ran itself at their turn in the verification run,
    /// the block's first, before the warm-up (`BlockStats::owner_turn_executions`): a session's
    /// (the drop-in's) only, 0 otherwise.
    pub owner_turn_executions: u64,
    /// Of those, the ones static dispatch had sent to a worker (`BlockStats::owner_overtook`).
    pub owner_overtook: u64,
    /// Where a rule (chain, cheap block) handed the block to the sequential executor in the verification
    /// run, if it did.
    pub sequential_from: Option<usize>,
    /// Heap allocations of one run (see [`crate::alloc_count`]); `None` if not counted.
    pub allocations: Option<u64>,
    /// Time the engine's EVMs spent executing, all threads together, in one more run with the
    /// engine's execution timer on, in milliseconds (`BlockStats::execution_time`; 0 for the
    /// drop-in, which does not measure it).
    pub timed_execution_ms: f64,
    /// Executions in that run.
    pub timed_executions: u64,
    /// Every timed sample, in milliseconds, in run order.
    pub samples_ms: Vec<f64>,
}

/// One block's results.
#[derive(Debug, Clone, Serialize)]
pub struct BlockBench {
    /// Row label: the block number for mainnet blocks, the workload's name for synthetic ones.
    pub label: String,
    /// Block number.
    pub number: u64,
    /// What the block is made of, for synthetic blocks (e.g. which token code).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Transactions.
    pub txs: usize,
    /// Gas used.
    pub gas_used: u64,
    /// Median wall time of the sequential executor, in milliseconds.
    pub sequential_ms: f64,
    /// Every timed sequential sample, in milliseconds, in run order.
    pub sequential_samples_ms: Vec<f64>,
    /// Heap allocations of one sequential run (see [`crate::alloc_count`]); `None` if not
    /// counted.
    pub sequential_allocations: Option<u64>,
    /// The block's critical path, from one sequential pass.
    pub limit: BlockLimit,
    /// One entry per parallel configuration, in [`BenchReport::configs`] order.
    pub parallel: Vec<ParallelResult>,
    /// The host's cross-core round trip, in nanoseconds, probed just before and just after the
    /// block's timed runs ([`crate::host`]); a probe that could not be made is left out.
    pub cross_core_ns: Vec<f64>,
}

/// One parallel configuration over all blocks.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigSummary {
    /// Slots of the configuration.
    pub slots: usize,
    /// Sum of the block medians, in milliseconds.
    pub total_ms: f64,
    /// Sequential total divided by this total.
    pub overall_speedup: f64,
    /// Geometric mean of the per-block speedups over blocks with transactions (NaN if none).
    pub geomean_speedup: f64,
    /// Geometric mean of the per-block limits for this slot count, over the same blocks.
    pub geomean_limit: f64,
    /// Geometric mean of the per-block bounds for this slot count, over the same blocks.
    pub geomean_bound: f64,
    /// All redos of the verification runs divided by all transactions.
    pub redo_rate: f64,
    /// Heap allocations per transaction, over all blocks; `None` if not counted.
    pub allocations_per_tx: Option<f64>,
    /// Mean time of one execution on the engine's EVMs in the timed runs, in microseconds, over
    /// the blocks this configuration ran on the engine to the end; `None` if not measured
    /// (drop-in) or there are none.
    pub execution_us: Option<f64>,
    /// The sequential executor's mean time per transaction over the same blocks, from the
    /// limit's pass (each transaction timed alone, commit excluded), to set `execution_us`
    /// against: over all blocks, the cheap transactions of the blocks the rules hand back would
    /// weigh on one side only.
    pub sequential_execution_us: Option<f64>,
    /// Of the transactions of the blocks this configuration ran in a session to the end, the
    /// share whose first execution the caller's thread ran itself at its turn: its own lane's,
    /// and those no worker had started (`BlockStats::owner_turn_executions`); `None` outside the
    /// drop-in. A session is known by that count: one whose caller ran none at its turn counts
    /// as none, and a probe's transactions before the session count in the block's.
    pub owner_turn_share: Option<f64>,
    /// Of the same transactions, the share the caller ran at its turn though dispatch had sent
    /// them to a worker, which had not started them (`BlockStats::owner_overtook`): the part of
    /// `owner_turn_share` that is the worker falling behind rather than the dispatch's choice.
    pub owner_overtook_share: Option<f64>,
}

/// Totals over all blocks.
#[derive(Debug, Clone, Serialize)]
pub struct BenchSummary {
    /// Blocks benchmarked.
    pub blocks: usize,
    /// Transactions in them.
    pub txs: usize,
    /// Gas used by them.
    pub gas_used: u64,
    /// Sum of the sequential block medians, in milliseconds.
    pub sequential_total_ms: f64,
    /// Blocks the geometric means are over (those with transactions).
    pub geomean_blocks: usize,
    /// Blocks left out of the geometric means because they have no transactions.
    pub geomean_skipped_empty: usize,
    /// Heap allocations per transaction of the sequential executor; `None` if not counted.
    pub sequential_allocations_per_tx: Option<f64>,
    /// One entry per parallel configuration, in [`BenchReport::configs`] order.
    pub parallel: Vec<ConfigSummary>,
    /// The host's cross-core round trip over every block's probes, in nanoseconds: median,
    /// lowest and highest; `None` if no probe could be made.
    pub cross_core_ns: Option<ProbeSummary>,
    /// How many times longer a core's work took while the other core worked too
    /// ([`crate::host::shared_core_slowdown`]), probed before the first block and after the
    /// last (a ratio); `None` if no probe could be made.
    pub shared_core: Option<ProbeSummary>,
}

/// Summary of one host probe over a run (see [`crate::host`]), in the probe's unit (which the
/// field holding it names: nanoseconds for `cross_core_ns`, a ratio for `shared_core`).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ProbeSummary {
    /// Probes made.
    pub probes: usize,
    /// Their median.
    pub median: f64,
    /// The lowest.
    pub min: f64,
    /// The highest.
    pub max: f64,
}

/// Everything `parevm bench` measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Samples taken.
    pub options: BenchOptions,
    /// Threads the machine offers.
    pub cores: usize,
    /// The parallel configurations, in column order.
    pub configs: Vec<ConfigInfo>,
    /// One entry per block, in the order given.
    pub blocks: Vec<BlockBench>,
    /// Totals and means.
    pub summary: BenchSummary,
}

/// Why a benchmark could not be completed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// No timed runs asked for.
    #[error("--runs must be at least 1")]
    NoRuns,
    /// An engine configuration was refused.
    #[error("engine with {slots} slots: {message}")]
    Config {
        /// The slot count asked for.
        slots: usize,
        /// The engine's complaint.
        message: String,
    },
    /// An executor failed on a block.
    #[error("block {block}: {executor} failed: {message}")]
    Execution {
        /// The block's label (its number, or the workload's name).
        block: String,
        /// The executor's name.
        executor: String,
        /// The error.
        message: String,
    },
    /// A parallel output differs from the sequential one.
    #[error("block {block}: {executor} differs from sequential, refusing to time a wrong result: {}", diffs.join("; "))]
    Mismatch {
        /// The block's label (its number, or the workload's name).
        block: String,
        /// The executor's name.
        executor: String,
        /// The differences found.
        diffs: Vec<String>,
    },
}

/// The median of `values` (the mean of the two middle ones for an even count); NaN if empty.
/// Sorts `values` in place.
pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 { values[mid] } else { (values[mid - 1] + values[mid]) / 2.0 }
}

/// The speedup of one executor over another from samples taken in the same rounds, `baseline[r]`
/// and `candidate[r]` in round `r`: the median of the rounds' ratios `baseline[r] /
/// candidate[r]`. A change of the host's pace between rounds then moves both samples of a
/// round alike and the ratio hardly at all. Rounds beyond the shorter list are ignored; NaN if
/// there are none.
pub fn paired_speedup(baseline: &[f64], candidate: &[f64]) -> f64 {
    let mut ratios: Vec<f64> = baseline.iter().zip(candidate).map(|(b, c)| b / c).collect();
    median(&mut ratios)
}

/// The geometric mean of `values`, computed through logarithms (no overflow on long inputs);
/// NaN if `values` is empty or holds a value that is not positive.
pub fn geometric_mean(values: &[f64]) -> f64 {
    if values.is_empty() || values.iter().any(|v| v.is_nan() || *v <= 0.0) {
        return f64::NAN;
    }
    (values.iter().map(|v| v.ln()).sum::<f64>() / values.len() as f64).exp()
}

/// Loads every block under `paths` (see [`discover`]) with at least `min_txs` transactions.
/// Returns the blocks and how many were left out for having fewer.
pub fn load_blocks(paths: &[PathBuf], min_txs: usize) -> Result<(Vec<MainnetBlock>, usize), LoadError> {
    let mut blocks = Vec::new();
    let mut skipped = 0;
    for dir in discover(paths)? {
        let block = load_block(&dir)?;
        if block.block.txs.len() >= min_txs {
            blocks.push(block);
        } else {
            skipped += 1;
        }
    }
    Ok((blocks, skipped))
}

/// Builds one engine per configuration (once: their threads serve every block).
pub fn build_engines(configs: &[EngineConfig], drop_in: bool) -> Result<Vec<Executor>, BenchError> {
    configs
        .iter()
        .map(|config| {
            let engine = Engine::new(config.clone())
                .map_err(|e| BenchError::Config { slots: config.slots, message: e.to_string() })?;
            Ok(if drop_in { Executor::DropIn(engine.into()) } else { Executor::Parallel(engine) })
        })
        .collect()
}

/// Times the sequential executor and one engine per configuration in `configs` on every
/// mainnet block, labelled by number (see [`bench_cases`]).
pub fn bench_blocks(
    chain: &ChainSpec,
    blocks: &[MainnetBlock],
    configs: &[EngineConfig],
    options: BenchOptions,
    progress: impl FnMut(usize, usize, &BlockBench),
) -> Result<BenchReport, BenchError> {
    let labels: Vec<String> = blocks.iter().map(|b| b.block.number().to_string()).collect();
    let cases: Vec<BenchCase<'_>> = blocks
        .iter()
        .zip(&labels)
        .map(|(b, label)| BenchCase { label, chain, block: &b.block, db: &b.db, note: None })
        .collect();
    bench_cases(&cases, configs, options, progress)
}

/// Times the sequential executor and one engine per configuration in `configs` on every
/// generated block, labelled by workload (see [`bench_cases`]).
pub fn bench_generated(
    blocks: &[GeneratedBlock],
    configs: &[EngineConfig],
    options: BenchOptions,
    progress: impl FnMut(usize, usize, &BlockBench),
) -> Result<BenchReport, BenchError> {
    let cases: Vec<BenchCase<'_>> = blocks
        .iter()
        .map(|b| BenchCase {
            label: b.workload.name(),
            chain: &b.chain,
            block: &b.block,
            db: &b.db,
            note: Some(&b.note),
        })
        .collect();
    bench_cases(&cases, configs, options, progress)
}

/// Times the sequential executor and one engine per configuration in `configs` on every case
/// (see the module documentation for the procedure). `progress` is called after each case
/// with the number of cases done, the total, and the case's results.
pub fn bench_cases(
    cases: &[BenchCase<'_>],
    configs: &[EngineConfig],
    options: BenchOptions,
    mut progress: impl FnMut(usize, usize, &BlockBench),
) -> Result<BenchReport, BenchError> {
    if options.runs == 0 {
        return Err(BenchError::NoRuns);
    }
    // Index 0 is the sequential baseline, then the parallel configurations in order.
    let mut executors = vec![Executor::Sequential];
    executors.extend(build_engines(configs, options.drop_in)?);

    // The shared-core probe works ~18 ms, the last 6 on both cores. Probed before and after
    // every block, it cost the timed runs 3% of the mainnet geomean (five alternating pairs)
    // and some blocks a quarter: the scheduler, judging the cores by their recent load, seems
    // to have placed the engine's woken worker beside the caller for a while. So it runs once
    // before the first block, with a pause for that judgement to fade, and once after the last.
    let mut shared_core: Vec<f64> = host::shared_core_slowdown().into_iter().collect();
    if !shared_core.is_empty() {
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let mut results = Vec::with_capacity(cases.len());
    for (i, case) in cases.iter().enumerate() {
        let result = bench_block(case, &executors, options)?;
        progress(i + 1, cases.len(), &result);
        results.push(result);
    }
    shared_core.extend(host::shared_core_slowdown());

    // As the engines run them: without shadows where the machine has no cores for them.
    let configs = executors[1..]
        .iter()
        .map(|executor| executor.engine().expect("executors after the first are parallel").config())
        .map(|c| ConfigInfo {
            name: format!("parallel({})", c.slots),
            slots: c.slots,
            shadows: c.shadows,
            steal: c.steal,
        })
        .collect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let summary = BenchSummary { shared_core: probes(shared_core), ..summarize(&results) };
    Ok(BenchReport { options, cores, configs, summary, blocks: results })
}

/// One timed execution: the wall time of `Executor::execute_with_parent` in milliseconds, and
/// the output.
fn timed(
    case: &BenchCase<'_>,
    executor: &Executor,
    parent: Option<&ParentState>,
) -> Result<(f64, crate::BlockOutput), BenchError> {
    let started = Instant::now();
    let outcome = executor.execute_with_parent(case.chain, case.block, case.db, parent);
    let millis = started.elapsed().as_secs_f64() * 1e3;
    let output = outcome.map_err(|e| BenchError::Execution {
        block: case.label.to_string(),
        executor: executor.name(),
        message: e.to_string(),
    })?;
    Ok((millis, output))
}

fn bench_block(case: &BenchCase<'_>, executors: &[Executor], options: BenchOptions) -> Result<BlockBench, BenchError> {
    // A copy of the pre-state the drop-in's slots may share, made before anything is timed.
    let parent = options.parent_state.then(|| SharedParent::view(case.db.clone()));
    let timed = |case: &BenchCase<'_>, executor: &Executor| timed(case, executor, parent.as_ref());
    // Verification: every parallel output must equal the sequential one.
    let (_, reference) = timed(case, &executors[0])?;
    let mut stats = Vec::with_capacity(executors.len() - 1);
    for executor in &executors[1..] {
        let (_, output) = timed(case, executor)?;
        let diffs = compare_outputs(&reference, &output);
        if !diffs.is_empty() {
            return Err(BenchError::Mismatch { block: case.label.to_string(), executor: executor.name(), diffs });
        }
        stats.push(output.stats.unwrap_or_default());
    }
    let gas_used = reference.result.gas_used;
    drop(reference);
    let limit = block_limit(case.chain, case.block, case.db).map_err(|e| BenchError::Execution {
        block: case.label.to_string(),
        executor: "limit".into(),
        message: e.to_string(),
    })?;

    let mut cross_core_ns: Vec<f64> = host::cross_core_round_trip_ns().into_iter().collect();
    // Warm-up, then alternating timed rounds, each starting with the next executor in turn.
    let mut samples = vec![Vec::with_capacity(options.runs); executors.len()];
    let mut executing = vec![(0.0, 0u64); executors.len()];
    for round in 0..options.warmup + options.runs {
        for k in 0..executors.len() {
            let index = (round + k) % executors.len();
            let (millis, output) = timed(case, &executors[index])?;
            if round >= options.warmup {
                samples[index].push(millis);
            }
            drop(output);
        }
    }

    cross_core_ns.extend(host::cross_core_round_trip_ns());

    // One more, untimed, run of each engine with its execution timer on (off in the timed
    // rounds: it costs the engine a few percent on cheap transactions).
    for (index, executor) in executors.iter().enumerate() {
        let Some(engine) = executor.engine() else { continue };
        engine.time_executions(true);
        let run = timed(case, executor);
        engine.time_executions(false);
        if let Some(stats) = run?.1.stats {
            executing[index] = (stats.execution_time.as_secs_f64() * 1e3, stats.executions);
        }
    }

    // One more, untimed, run of each executor with allocations counted.
    let mut allocations = Vec::with_capacity(executors.len());
    for executor in executors {
        let (run, counted) = alloc_count::count(|| timed(case, executor));
        drop(run?);
        allocations.push(counted);
    }

    let medians: Vec<f64> = samples.iter().map(|s| median(&mut s.clone())).collect();
    let sequential_ms = medians[0];
    let parallel = stats
        .iter()
        .enumerate()
        .map(|(j, stats)| {
            let executor = &executors[j + 1];
            let engine = executor.engine().expect("executors after the first are parallel");
            ParallelResult {
                slots: engine.config().slots,
                median_ms: medians[j + 1],
                speedup: paired_speedup(&samples[0], &samples[j + 1]),
                redo_rate: stats.redo_rate(),
                limit: limit.speedup(engine.config().slots),
                bound: limit.bound(engine.config().slots),
                redos: stats.merge.total_redos(),
                executions: stats.executions,
                owner_turn_executions: stats.owner_turn_executions,
                owner_overtook: stats.owner_overtook,
                sequential_from: stats.sequential_from,
                allocations: allocations[j + 1],
                timed_execution_ms: executing[j + 1].0,
                timed_executions: executing[j + 1].1,
                samples_ms: samples[j + 1].clone(),
            }
        })
        .collect();
    Ok(BlockBench {
        label: case.label.to_string(),
        number: case.block.number(),
        note: case.note.map(str::to_string),
        txs: case.block.txs.len(),
        gas_used,
        sequential_ms,
        sequential_samples_ms: samples.swap_remove(0),
        sequential_allocations: allocations[0],
        limit,
        parallel,
        cross_core_ns,
    })
}

/// `name value, name value, ...` over the parallel configurations, `-` where `value` is `None`.
fn per_config(report: &BenchReport, value: impl Fn(&ConfigSummary) -> Option<f64>) -> String {
    let parts: Vec<String> = report
        .configs
        .iter()
        .zip(&report.summary.parallel)
        .map(|(config, c)| format!("{} {}", config.name, value(c).map_or("-".into(), |v| format!("{v:.1}"))))
        .collect();
    parts.join(", ")
}

/// Totals, overall ratios and geometric means of per-block results.
pub fn summarize(blocks: &[BlockBench]) -> BenchSummary {
    let configs = blocks.first().map_or(0, |b| b.parallel.len());
    let sequential_total_ms: f64 = blocks.iter().map(|b| b.sequential_ms).sum();
    let txs: usize = blocks.iter().map(|b| b.txs).sum();
    let with_txs: Vec<&BlockBench> = blocks.iter().filter(|b| b.txs > 0).collect();
    let parallel = (0..configs)
        .map(|j| {
            let total_ms: f64 = blocks.iter().map(|b| b.parallel[j].median_ms).sum();
            let speedups: Vec<f64> = with_txs.iter().map(|b| b.parallel[j].speedup).collect();
            let limits: Vec<f64> = with_txs.iter().map(|b| b.parallel[j].limit).collect();
            let bounds: Vec<f64> = with_txs.iter().map(|b| b.parallel[j].bound).collect();
            let redos: u64 = blocks.iter().map(|b| b.parallel[j].redos).sum();
            let allocations: Option<u64> = blocks.iter().map(|b| b.parallel[j].allocations).sum();
            // The blocks this configuration ran to the end (no rule handed them back) with `count`
            // above zero.
            let ran_to_the_end = |count: fn(&ParallelResult) -> u64| -> Vec<&BlockBench> {
                blocks.iter().filter(|b| b.parallel[j].sequential_from.is_none() && count(&b.parallel[j]) > 0).collect()
            };
            // Executions against sequential transactions, over the same blocks: those this
            // configuration ran on the engine to the end.
            let engine_run = ran_to_the_end(|p| p.timed_executions);
            let executing_ms: f64 = engine_run.iter().map(|b| b.parallel[j].timed_execution_ms).sum();
            let executions: u64 = engine_run.iter().map(|b| b.parallel[j].timed_executions).sum();
            let engine_txs: usize = engine_run.iter().map(|b| b.txs).sum();
            let sequential_ms: f64 = engine_run.iter().map(|b| b.limit.total_ms).sum();
            // A session is known by its caller's turn executions (see `owner_turn_share`).
            let sessions = ran_to_the_end(|p| p.owner_turn_executions);
            let turn_executions: u64 = sessions.iter().map(|b| b.parallel[j].owner_turn_executions).sum();
            let overtook: u64 = sessions.iter().map(|b| b.parallel[j].owner_overtook).sum();
            let session_txs: usize = sessions.iter().map(|b| b.txs).sum();
            ConfigSummary {
                slots: blocks[0].parallel[j].slots,
                total_ms,
                overall_speedup: sequential_total_ms / total_ms,
                geomean_speedup: geometric_mean(&speedups),
                geomean_limit: geometric_mean(&limits),
                geomean_bound: geometric_mean(&bounds),
                redo_rate: if txs == 0 { 0.0 } else { redos as f64 / txs as f64 },
                allocations_per_tx: per_tx(allocations, txs),
                execution_us: (executing_ms > 0.0 && executions > 0).then(|| executing_ms * 1e3 / executions as f64),
                sequential_execution_us: (engine_txs > 0).then(|| sequential_ms * 1e3 / engine_txs as f64),
                owner_turn_share: (session_txs > 0).then(|| turn_executions as f64 / session_txs as f64),
                owner_overtook_share: (session_txs > 0).then(|| overtook as f64 / session_txs as f64),
            }
        })
        .collect();
    BenchSummary {
        blocks: blocks.len(),
        txs,
        gas_used: blocks.iter().map(|b| b.gas_used).sum(),
        sequential_total_ms,
        geomean_blocks: with_txs.len(),
        geomean_skipped_empty: blocks.len() - with_txs.len(),
        sequential_allocations_per_tx: per_tx(blocks.iter().map(|b| b.sequential_allocations).sum(), txs),
        parallel,
        cross_core_ns: probes(blocks.iter().flat_map(|b| b.cross_core_ns.iter().copied()).collect()),
        shared_core: None,
    }
}

/// Probes of one kind, summarised; `None` if there are none.
fn probes(mut probes: Vec<f64>) -> Option<ProbeSummary> {
    if probes.is_empty() {
        return None;
    }
    let median = median(&mut probes);
    Some(ProbeSummary { probes: probes.len(), median, min: probes[0], max: probes[probes.len() - 1] })
}

/// `count / txs`, if counted and there are transactions.
fn per_tx(count: Option<u64>, txs: usize) -> Option<f64> {
    count.filter(|_| txs > 0).map(|count| count as f64 / txs as f64)
}

/// A cross-core round trip above this, at the median, means another process is slowing the
/// engine's threads (docs/benchmarks.md, "Machine"): ~40-50 ns on a quiet host here.
const QUIET_ROUND_TRIP_NS: f64 = 100.0;

/// A shared-core slowdown above this, at the median, means the engine's two threads would not
/// have two whole cores: one core's units shared, or a neighbour taking turns on one
/// (docs/benchmarks.md, "Machine"); 1.00-1.03x here when they would.
const MAX_OWN_CORES_SLOWDOWN: f64 = 1.15;

/// The results as an aligned text table (labels left, numbers right): one row per block, a
/// totals row (sums of medians, overall ratio, overall redo rate) and a geometric-mean row, then
/// two lines saying what those are and which blocks the geometric means leave out.
pub fn render_table(report: &BenchReport) -> String {
    let synthetic = report.blocks.iter().any(|b| b.label != b.number.to_string());
    let first = if synthetic { "workload" } else { "block" };
    let mut header = vec![first.to_string(), "txs".into(), "Mgas".into(), "seq ms".into()];
    for config in &report.configs {
        let name = format!("par{}", config.slots);
        header.extend([
            format!("{name} ms"),
            format!("{name} x"),
            format!("{name} limit"),
            format!("{name} bound"),
            format!("{name} redo/tx"),
        ]);
    }
    let mgas = |gas: u64| format!("{:.2}", gas as f64 / 1e6);
    let mut rows = Vec::with_capacity(report.blocks.len() + 2);
    for block in &report.blocks {
        let mut row = vec![block.label.clone(), block.txs.to_string(), mgas(block.gas_used), ms(block.sequential_ms)];
        for p in &block.parallel {
            let chain = if p.sequential_from.is_some() { " s" } else { "" };
            row.extend([
                ms(p.median_ms),
                ratio(p.speedup),
                ratio(p.limit),
                ratio(p.bound),
                format!("{:.2}{chain}", p.redo_rate),
            ]);
        }
        rows.push(row);
    }
    let summary = &report.summary;
    let mut total =
        vec!["total".to_string(), summary.txs.to_string(), mgas(summary.gas_used), ms(summary.sequential_total_ms)];
    let mut geomean = vec!["geomean".to_string(), String::new(), String::new(), String::new()];
    for config in &summary.parallel {
        total.extend([
            ms(config.total_ms),
            ratio(config.overall_speedup),
            String::new(),
            String::new(),
            format!("{:.2}", config.redo_rate),
        ]);
        geomean.extend([
            String::new(),
            ratio(config.geomean_speedup),
            ratio(config.geomean_limit),
            ratio(config.geomean_bound),
            String::new(),
        ]);
    }

    let widths: Vec<usize> = (0..header.len())
        .map(|c| std::iter::once(&header).chain(&rows).chain([&total, &geomean]).map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let line = |row: &[String]| {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, w))| if c == 0 { format!("{cell:<w$}") } else { format!("{cell:>w$}") })
            .collect();
        cells.join("  ").trim_end().to_string() + "\n"
    };
    let rule = "-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1)) + "\n";

    let mut out = line(&header);
    out += &rule;
    for row in &rows {
        out += &line(row);
    }
    out += &rule;
    out += &line(&total);
    out += &line(&geomean);
    out += &format!(
        "total: sums of block medians; speedup = sequential total / parallel total\n\
         limit: the block's critical path (longest chain of dependent txs, by execution time) divided\n\
         into its total execution time, capped by the slot count: no scheduler can do better\n\
         bound: the same for an executor that commits into revm's State, as reth's must: each tx's commit\n\
         in order on one thread, the setup and finish (post-block steps, bundle merge) alone (examples/phases)\n\
         geomean: of the per-block speedups (a block's: the median of its rounds' sequential / parallel),\n\
         over {} block(s) with transactions",
        summary.geomean_blocks
    );
    if summary.geomean_skipped_empty > 0 {
        out += &format!(" ({} block(s) with 0 txs skipped)", summary.geomean_skipped_empty);
    }
    out += "\n";
    if let Some(sequential) = summary.sequential_allocations_per_tx {
        out += &format!(
            "heap allocations per tx (one more run of each, counted): sequential {sequential:.1}, {}\n",
            per_config(report, |c| c.allocations_per_tx)
        );
    }
    let timed: Vec<String> = report
        .configs
        .iter()
        .zip(&summary.parallel)
        .filter_map(|(config, c)| {
            let (engine, sequential) = (c.execution_us?, c.sequential_execution_us?);
            Some(format!("{} {engine:.1} against {sequential:.1} ({:.2}x)", config.name, engine / sequential))
        })
        .collect();
    if !timed.is_empty() {
        out += &format!(
            "execution time, us, over the blocks each ran on the engine to the end: one execution (all threads) \
             against one sequential transaction (the limit's pass): {}\n",
            timed.join(", ")
        );
    }
    if summary.parallel.iter().any(|c| c.owner_turn_share.is_some()) {
        out += &format!(
            "transactions whose first execution the caller's thread ran itself at their turn (its own lane, and \
             those no worker had started), over the blocks run in a session to the end, first run, %: {} \
             (docs/benchmarks.md, What eats the time, The drop-in)\n",
            per_config(report, |c| c.owner_turn_share.map(|share| 100.0 * share))
        );
        out += &format!(
            "  of those, the ones dispatch had sent to a worker that had not started them by their turn, % of the \
             same transactions: {}\n",
            per_config(report, |c| c.owner_overtook_share.map(|share| 100.0 * share))
        );
    }
    out += &match summary.cross_core_ns {
        Some(c) => format!(
            "host: a cache line's round trip between two cores, median {:.0} ns ({:.0}-{:.0} ns over {} probes, \
             one before and one after each block's timed runs); the engine's threads pay it at every \
             transaction, the sequential executor never: {} (docs/benchmarks.md, Machine)\n",
            c.median,
            c.min,
            c.max,
            c.probes,
            if c.median > QUIET_ROUND_TRIP_NS {
                format!("above ~{QUIET_ROUND_TRIP_NS} ns, the host is slowing the parallel columns")
            } else {
                format!(
                    "under ~{QUIET_ROUND_TRIP_NS} ns, a quick line (the next line says whether the cores are whole)"
                )
            }
        ),
        None => "host: the cross-core round trip could not be probed here\n".to_string(),
    };
    out += &match summary.shared_core {
        Some(c) => format!(
            "host: a core's work while the other core works too took {:.2}x its time alone (median, {:.2}-{:.2}x \
             over {} probes): {}\n",
            c.median,
            c.min,
            c.max,
            c.probes,
            if c.median > MAX_OWN_CORES_SLOWDOWN {
                format!(
                    "above {MAX_OWN_CORES_SLOWDOWN}x, the engine's threads do not get two whole cores (one core's units \
                     shared, or a neighbour taking turns on one), slowing the parallel columns"
                )
            } else {
                format!("under {MAX_OWN_CORES_SLOWDOWN}x, each thread has a core of its own")
            }
        ),
        None => "host: whether the two cores work as two could not be probed here\n".to_string(),
    };
    if report.blocks.iter().flat_map(|b| &b.parallel).any(|p| p.sequential_from.is_some()) {
        out +=
            "s (after redo/tx): a rule (chain, cheap block) handed the rest of the block to the sequential executor\n";
    }
    if summary.parallel.iter().any(|c| c.slots == 1) {
        out += "parallel(1): one slot is the merger's thread alone; every block runs on the sequential executor\n";
    }
    out
}

/// A plot of the report: one column per block (in order), the limit of the widest configuration
/// as a grey bar and its bound as a black stroke across it, each configuration's speedup as a
/// coloured dot, and a line at 1x.
pub fn render_svg(report: &BenchReport) -> String {
    const COLOURS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
    let (width, height, left, bottom, top) = (960.0, 420.0, 50.0, 60.0, 30.0);
    let blocks = &report.blocks;
    let max = blocks
        .iter()
        .flat_map(|b| b.parallel.iter().flat_map(|p| [p.speedup, p.limit, p.bound]))
        .filter(|v| v.is_finite())
        .fold(2.0_f64, f64::max)
        .ceil();
    let column = (width - left - 10.0) / blocks.len().max(1) as f64;
    let y = |v: f64| top + (height - top - bottom) * (1.0 - v.min(max) / max);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{left}\" y=\"18\" font-size=\"13\">parevm: speedup over sequential per block (dots), the block's limit (grey) and bound (black) on {} cores</text>\n",
        report.cores
    );
    for tick in 0..=max as usize {
        let ty = y(tick as f64);
        svg += &format!(
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{ty}\" y2=\"{ty}\" stroke=\"{}\"/><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{tick}x</text>\n",
            width - 10.0,
            if tick == 1 { "#444" } else { "#ddd" },
            left - 5.0,
            ty + 4.0
        );
    }
    for (i, block) in blocks.iter().enumerate() {
        let x = left + column * i as f64;
        if let Some(widest) = block.parallel.iter().max_by_key(|p| p.slots) {
            let top_y = y(widest.limit);
            svg += &format!(
                "<rect x=\"{:.1}\" y=\"{top_y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#ccc\"/>\n",
                x + column * 0.15,
                column * 0.7,
                y(0.0) - top_y
            );
            let bound_y = y(widest.bound);
            svg += &format!(
                "<line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{bound_y:.1}\" y2=\"{bound_y:.1}\" stroke=\"#222\" stroke-width=\"2\"/>\n",
                x + column * 0.15,
                x + column * 0.85
            );
        }
        for (j, p) in block.parallel.iter().enumerate() {
            if p.speedup.is_finite() {
                svg += &format!(
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{}\"/>\n",
                    x + column * 0.5,
                    y(p.speedup),
                    COLOURS[j % COLOURS.len()]
                );
            }
        }
        svg += &format!(
            "<text transform=\"translate({:.1},{:.1}) rotate(60)\" font-size=\"8\">{}</text>\n",
            x + column * 0.3,
            y(0.0) + 6.0,
            block.label
        );
    }
    for (j, config) in report.configs.iter().enumerate() {
        svg += &format!(
            "<circle cx=\"{}\" cy=\"{}\" r=\"4\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{}</text>\n",
            width - 150.0,
            top + 12.0 + 16.0 * j as f64,
            COLOURS[j % COLOURS.len()],
            width - 140.0,
            top + 16.0 + 16.0 * j as f64,
            config.name
        );
    }
    svg + "</svg>\n"
}

fn ms(millis: f64) -> String {
    format!("{millis:.3}")
}

fn ratio(value: f64) -> String {
    if value.is_finite() { format!("{value:.2}x") } else { "-".into() }
}

/// The engine configurations `args` ask for: one per distinct slot count, in the order given.
pub fn configs_from_args(args: &BenchArgs) -> Vec<EngineConfig> {
    let requested = if args.slots.is_empty() { vec![EngineConfig::default().slots] } else { args.slots.clone() };
    let mut slots: Vec<usize> = Vec::with_capacity(requested.len());
    for s in requested {
        if !slots.contains(&s) {
            slots.push(s);
        }
    }
    slots
        .into_iter()
        .map(|slots| EngineConfig {
            slots,
            shadows: !args.no_shadow,
            steal: !args.no_steal,
            sequential_below_txs: args.sequential_below,
            chain_rule: if args.no_chain_rule { None } else { EngineConfig::default().chain_rule },
            sequential_below_gas: if args.no_cheap_rule { 0 } else { EngineConfig::default().sequential_below_gas },
            ..EngineConfig::default()
        })
        .collect()
}

fn write_json(path: &Path, report: &BenchReport) -> Result<(), String> {
    let json = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    std::fs::write(path, json).map_err(|e| format!("{}: {e}", path.display()))
}

/// Runs `parevm bench`: loads the blocks, times them, prints the table (and writes the JSON).
pub fn run(args: BenchArgs) -> Result<ExitCode, String> {
    if args.runs == 0 {
        return Err(BenchError::NoRuns.to_string());
    }
    let configs = configs_from_args(&args);
    for config in &configs {
        config.validate().map_err(|e| format!("--slots: {e}"))?;
    }
    let chain = ChainSpec::mainnet();
    let (mainnet, generated, skipped) = match &args.workload {
        Some(WorkloadSet(chosen)) => {
            // The token code is looked up only if the erc20 workload is asked for.
            let erc20 = if chosen.contains(&workloads::Workload::Erc20) {
                Erc20Code::locate(&default_data_dir())
            } else {
                Erc20Code::Minimal { reason: "unused".into() }
            };
            let generated: Vec<GeneratedBlock> =
                chosen.iter().map(|&w| workloads::generate(w, args.gas, args.seed, &erc20)).collect();
            println!("synthetic blocks, seed {}, target {} gas each (Cancun):", args.seed, args.gas);
            for g in &generated {
                println!(
                    "  {:<9} {:>6} txs, ~{} gas/tx: {}",
                    g.workload.name(),
                    g.block.txs.len(),
                    g.gas_per_tx,
                    g.note
                );
            }
            (Vec::new(), generated, 0)
        }
        None => {
            let paths = if args.paths.is_empty() { vec![default_data_dir()] } else { args.paths.clone() };
            let (blocks, skipped) = load_blocks(&paths, args.min_txs).map_err(|e| e.to_string())?;
            if blocks.is_empty() {
                return Err(format!("no block has at least {} transactions", args.min_txs));
            }
            (blocks, Vec::new(), skipped)
        }
    };
    let labels: Vec<String> = mainnet.iter().map(|b| b.block.number().to_string()).collect();
    let cases: Vec<BenchCase<'_>> = mainnet
        .iter()
        .zip(&labels)
        .map(|(b, label)| BenchCase { label, chain: &chain, block: &b.block, db: &b.db, note: None })
        .chain(generated.iter().map(|g| BenchCase {
            label: g.workload.name(),
            chain: &g.chain,
            block: &g.block,
            db: &g.db,
            note: Some(&g.note),
        }))
        .collect();

    let drop_in = match (args.drop_in, args.parent_state) {
        (true, true) => ", drop-in, parent state",
        (true, false) => ", drop-in",
        _ => "",
    };
    let names: Vec<String> = configs.iter().map(|c| format!("parallel({}{drop_in})", c.slots)).collect();
    println!(
        "benchmarking {} block(s){}: sequential vs {} (shadows {}, steal {}, chain rule {}, cheap rule {}); \
         {} warm-up + {} timed run(s) each, median; {} core(s)",
        cases.len(),
        if skipped > 0 { format!(" ({skipped} with fewer than {} txs skipped)", args.min_txs) } else { String::new() },
        names.join(", "),
        if args.no_shadow { "off" } else { "on where each has a core" },
        if args.no_steal { "off" } else { "on" },
        if args.no_chain_rule { "off" } else { "on" },
        if args.no_cheap_rule { "off" } else { "on" },
        args.warmup,
        args.runs,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );

    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(cases.len() as u64);
        bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}").expect("valid template"));
        bar
    });
    let options =
        BenchOptions { runs: args.runs, warmup: args.warmup, drop_in: args.drop_in, parent_state: args.parent_state };
    let report = bench_cases(&cases, &configs, options, |done, _, result| {
        if let Some(bar) = &bar {
            bar.set_position(done as u64);
            bar.set_message(format!("block {}", result.label));
        }
    });
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let report = report.map_err(|e| e.to_string())?;

    // The files first: a reader of the table that stops early (`| head`) ends the program.
    if let Some(path) = &args.plot {
        std::fs::write(path, render_svg(&report)).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if let Some(path) = &args.json {
        write_json(path, &report)?;
    }
    print!("{}", render_table(&report));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_count_is_the_middle_value() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [5.0]), 5.0);
        assert_eq!(median(&mut [9.0, 1.0, 8.0, 2.0, 7.0]), 7.0);
    }

    #[test]
    fn median_of_even_count_averages_the_middle_pair() {
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&mut [1.0, 1.0]), 1.0);
    }

    #[test]
    fn median_ignores_outliers_and_sorts_in_place() {
        let mut values = [10.0, 1000.0, 11.0, 9.0, 10.5];
        assert_eq!(median(&mut values), 10.5);
        assert_eq!(values, [9.0, 10.0, 10.5, 11.0, 1000.0]);
    }

    #[test]
    fn median_of_nothing_is_nan() {
        assert!(median(&mut []).is_nan());
    }

    #[test]
    fn geometric_mean_of_known_values() {
        assert!((geometric_mean(&[2.0, 8.0]) - 4.0).abs() < 1e-12);
        assert!((geometric_mean(&[1.0, 3.0, 9.0]) - 3.0).abs() < 1e-12);
        assert!((geometric_mean(&[0.5, 2.0]) - 1.0).abs() < 1e-12);
        assert!((geometric_mean(&[7.0]) - 7.0).abs() < 1e-12);
    }

    #[test]
    fn geometric_mean_does_not_overflow() {
        let values = vec![1e300; 100];
        assert!((geometric_mean(&values) / 1e300 - 1.0).abs() < 1e-9);
    }

    #[test]
    fn a_paired_speedup_is_the_median_of_the_rounds_ratios() {
        assert_eq!(paired_speedup(&[4.0, 6.0, 9.0], &[2.0, 2.0, 3.0]), 3.0);
        // Rounds beyond the shorter list are ignored; no rounds at all give NaN.
        assert_eq!(paired_speedup(&[4.0, 6.0, 8.0], &[2.0]), 2.0);
        assert!(paired_speedup(&[], &[1.0]).is_nan());
    }

    #[test]
    fn a_change_of_pace_between_rounds_moves_the_ratio_of_medians_not_the_paired_speedup() {
        // Two equal executors; the host slows from 2 ms to 4 ms within round 3, between its
        // two samples, the sequential one taken after the change: the two medians fall on
        // either side of it.
        let sequential = [2.0, 2.0, 4.0, 4.0, 4.0];
        let parallel = [2.0, 2.0, 2.0, 4.0, 4.0];
        let of_medians = median(&mut sequential.to_vec()) / median(&mut parallel.to_vec());
        assert_eq!(of_medians, 2.0, "the medians straddle the change");
        // The paired ratio reads the change only in round 3.
        assert_eq!(paired_speedup(&sequential, &parallel), 1.0, "four of five rounds read 1");
    }

    #[test]
    fn geometric_mean_of_nothing_or_non_positive_is_nan() {
        assert!(geometric_mean(&[]).is_nan());
        assert!(geometric_mean(&[1.0, 0.0]).is_nan());
        assert!(geometric_mean(&[1.0, -2.0]).is_nan());
    }

    fn block(number: u64, txs: usize, seq: f64, par: f64) -> BlockBench {
        let limit = BlockLimit {
            txs,
            total_ms: seq,
            critical_path_ms: seq / 2.0,
            critical_path_txs: 1,
            commit_ms: seq * 0.1,
            setup_ms: seq * 0.05,
            finish_ms: seq * 0.05,
        };
        BlockBench {
            label: number.to_string(),
            number,
            note: None,
            txs,
            gas_used: 1_000_000,
            sequential_ms: seq,
            sequential_samples_ms: vec![seq],
            sequential_allocations: None,
            limit,
            parallel: vec![ParallelResult {
                slots: 2,
                median_ms: par,
                speedup: seq / par,
                redo_rate: 0.0,
                limit: 2.0,
                bound: limit.bound(2),
                redos: txs as u64 / 2,
                executions: txs as u64,
                owner_turn_executions: 0,
                owner_overtook: 0,
                sequential_from: None,
                allocations: None,
                timed_execution_ms: par / 2.0,
                timed_executions: txs as u64,
                samples_ms: vec![par],
            }],
            cross_core_ns: Vec::new(),
        }
    }

    #[test]
    fn summary_skips_empty_blocks_in_the_geomean_only() {
        let mut blocks = [block(1, 10, 4.0, 1.0), block(2, 10, 1.0, 1.0), block(3, 0, 1.0, 4.0)];
        blocks[2].parallel[0].bound = 1.0;
        let summary = summarize(&blocks);
        assert_eq!(summary.blocks, 3);
        assert_eq!(summary.txs, 20);
        assert_eq!(summary.geomean_blocks, 2);
        assert_eq!(summary.geomean_skipped_empty, 1);
        assert_eq!(summary.sequential_total_ms, 6.0);
        let p = &summary.parallel[0];
        assert_eq!(p.total_ms, 6.0);
        assert_eq!(p.overall_speedup, 1.0);
        assert!((p.geomean_speedup - 2.0).abs() < 1e-12);
        // Each block's own bound, 1.2 / 0.65 of its time (see `block`), the empty one's left out.
        assert!((p.geomean_bound - 1.2 / 0.65).abs() < 1e-12, "{}", p.geomean_bound);
        assert_eq!(p.redo_rate, 0.5);
        // Execution times: all blocks' time over all blocks' counts, not a mean of means.
        // The empty block has no executions. Parallel: (0.5 + 0.5) ms over 20 executions;
        // sequential: (4 + 1) ms over 20 txs.
        assert!((p.execution_us.unwrap() - 50.0).abs() < 1e-9, "{:?}", p.execution_us);
        assert!((p.sequential_execution_us.unwrap() - 250.0).abs() < 1e-9, "{:?}", p.sequential_execution_us);
    }

    #[test]
    fn execution_times_leave_out_the_blocks_handed_back() {
        let mut blocks = [block(1, 10, 4.0, 1.0), block(2, 10, 1.0, 1.0), block(3, 30, 3.0, 3.0)];
        // A block handed back up front (no executions) and one handed back midway: neither is
        // set against the sequential executor's time for the whole block.
        blocks[1].parallel[0].sequential_from = Some(0);
        blocks[1].parallel[0].timed_executions = 0;
        blocks[1].parallel[0].timed_execution_ms = 0.0;
        blocks[2].parallel[0].sequential_from = Some(16);
        let p = &summarize(&blocks).parallel[0];
        // Block 1 alone: 0.5 ms over 10 executions, 4 ms over 10 txs.
        assert!((p.execution_us.unwrap() - 50.0).abs() < 1e-9, "{:?}", p.execution_us);
        assert!((p.sequential_execution_us.unwrap() - 400.0).abs() < 1e-9, "{:?}", p.sequential_execution_us);
        blocks[0].parallel[0].sequential_from = Some(0);
        let p = &summarize(&blocks).parallel[0];
        assert_eq!((p.execution_us, p.sequential_execution_us), (None, None));
    }

    #[test]
    fn the_callers_share_counts_the_blocks_run_in_a_session_to_the_end() {
        let mut blocks = [block(1, 10, 4.0, 1.0), block(2, 30, 1.0, 1.0), block(3, 20, 3.0, 3.0)];
        assert_eq!(summarize(&blocks).parallel[0].owner_turn_share, None, "no session: the batch path");
        blocks[0].parallel[0].owner_turn_executions = 6;
        blocks[0].parallel[0].owner_overtook = 1;
        blocks[1].parallel[0].owner_turn_executions = 24;
        blocks[1].parallel[0].owner_overtook = 3;
        // Handed back midway: its transactions after that ran on no worker at all.
        blocks[2].parallel[0].owner_turn_executions = 5;
        blocks[2].parallel[0].owner_overtook = 5;
        blocks[2].parallel[0].sequential_from = Some(8);
        let summary = summarize(&blocks);
        let share = summary.parallel[0].owner_turn_share.unwrap();
        assert!((share - 30.0 / 40.0).abs() < 1e-12, "{share}");
        let overtook = summary.parallel[0].owner_overtook_share.unwrap();
        assert!((overtook - 4.0 / 40.0).abs() < 1e-12, "{overtook}");
    }

    /// A report of `blocks` for one 2-slot configuration.
    fn report(blocks: Vec<BlockBench>) -> BenchReport {
        BenchReport {
            options: BenchOptions::default(),
            cores: 2,
            configs: vec![ConfigInfo { name: "parallel(2)".into(), slots: 2, shadows: false, steal: true }],
            summary: summarize(&blocks),
            blocks,
        }
    }

    #[test]
    fn table_rows_are_aligned() {
        let blocks = vec![block(1, 10, 4.0, 1.0), block(12_345_678, 1000, 123.456, 61.0), block(3, 0, 1.0, 4.0)];
        let table = render_table(&report(blocks));
        let lines: Vec<&str> = table.lines().collect();
        // Header, rule, 3 blocks, rule, total, geomean, seven note lines (total, limit x2, bound
        // x2, geomean x2), execution times, the host's two lines.
        assert_eq!(lines.len(), 18);
        let width = lines[0].len();
        for line in [lines[2], lines[3], lines[4], lines[6]] {
            assert_eq!(line.len(), width, "{line:?}");
        }
        assert!(lines[7].starts_with("geomean"));
        // Each cell right-aligned under its heading: block 1's limit (2 slots, critical path half
        // the block) and bound (1.2 / 0.65, see `block`), then the bounds' geomean.
        let under = |line: &str, heading: &str| {
            let end = lines[0].find(heading).expect("heading") + heading.len();
            line[end - 5..end].to_string()
        };
        assert_eq!(under(lines[2], "par2 limit"), "2.00x");
        assert_eq!(under(lines[2], "par2 bound"), "1.85x");
        assert_eq!(under(lines[7], "par2 bound"), "1.85x");
        assert!(lines[8].starts_with("total: sums of block medians"));
        assert!(lines[9].starts_with("limit: "));
        assert!(lines[11].starts_with("bound: the same for an executor that commits into revm's State"));
        assert!(lines[13].starts_with("geomean: of the per-block speedups (a block's: the median"));
        assert!(lines[14].contains("over 2 block(s) with transactions (1 block(s) with 0 txs skipped)"));
        assert!(lines[15].starts_with("execution time, us, over the blocks"), "{}", lines[15]);
        assert_eq!(lines[16], "host: the cross-core round trip could not be probed here");
        assert_eq!(lines[17], "host: whether the two cores work as two could not be probed here");
        assert!(lines[15].ends_with("parallel(2) 30.7 against 126.2 (0.24x)"), "{}", lines[15]);
    }

    #[test]
    fn the_plot_draws_each_blocks_limit_bound_and_speedup() {
        let blocks = vec![block(1, 10, 4.0, 1.0), block(2, 10, 1.0, 1.0)];
        let svg = render_svg(&report(blocks));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        // Two blocks: two grey bars, two bound strokes, two dots and the legend's dot.
        assert_eq!(svg.matches("fill=\"#ccc\"").count(), 2);
        assert_eq!(svg.matches("stroke=\"#222\"").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 3);
        // The scale runs to 4x (block 1's 4x speedup): the bound, 1.2 / 0.65 of the block's
        // time (see `block`), sits that far up the 330 pixels between y = 360 (0x) and y = 30.
        let bound_y = 30.0 + 330.0 * (1.0 - 1.2 / 0.65 / 4.0);
        assert!(svg.contains(&format!("y1=\"{bound_y:.1}\"")), "{svg}");
    }

    #[test]
    fn the_host_line_gives_the_median_and_range_of_every_blocks_probes() {
        let mut blocks = vec![block(1, 10, 4.0, 1.0), block(2, 10, 4.0, 1.0), block(3, 10, 4.0, 1.0)];
        blocks[0].cross_core_ns = vec![90.0, 400.0];
        blocks[1].cross_core_ns = vec![80.0];
        blocks[2].cross_core_ns = vec![100.0, 85.0];
        let summary = summarize(&blocks).cross_core_ns.expect("five probes");
        assert_eq!((summary.probes, summary.median, summary.min, summary.max), (5, 90.0, 80.0, 400.0));
        let table = render_table(&report(blocks.clone()));
        assert!(table.contains("median 90 ns (80-400 ns over 5 probes"), "{table}");
        assert!(table.contains("under ~100 ns, a quick line"), "{table}");
        blocks[1].cross_core_ns = vec![380.0, 390.0, 395.0];
        let table = render_table(&report(blocks.clone()));
        assert!(table.contains("median 380 ns") && table.contains("above ~100 ns, the host is slowing"), "{table}");
        assert!(table.contains("whether the two cores work as two could not be probed here"), "{table}");
        let mut with_probes = report(blocks);
        with_probes.summary.shared_core = probes(vec![1.6, 1.02]);
        let table = render_table(&with_probes);
        assert!(table.contains("took 1.31x its time alone (median, 1.02-1.60x over 2 probes): above 1.15x"), "{table}");
        assert!(table.contains("do not get two whole cores"), "{table}");
        with_probes.summary.shared_core = probes(vec![1.01, 1.02, 1.6]);
        let table = render_table(&with_probes);
        assert!(table.contains("took 1.02x its time alone (median, 1.01-1.60x over 3 probes): under 1.15x"), "{table}");
    }

    #[test]
    fn a_block_handed_back_by_a_rule_is_marked_and_explained() {
        let mut blocks = vec![block(1, 10, 4.0, 1.0), block(2, 100, 2.0, 2.5)];
        blocks[1].parallel[0].sequential_from = Some(32);
        let table = render_table(&report(blocks));
        let lines: Vec<&str> = table.lines().collect();
        assert!(!lines[2].ends_with(" s"), "{}", lines[2]);
        assert!(lines[3].ends_with(" s"), "{}", lines[3]);
        assert!(lines.last().unwrap().starts_with("s (after redo/tx): a rule (chain, cheap block) handed"), "{table}");
    }
}
