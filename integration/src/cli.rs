//! Argument parsing and output for the `parevm` binary; the work itself lives in the library.

use std::{io::IsTerminal, path::PathBuf, process::ExitCode};

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use parevm::{ChainSpec, Executor, config::ParevmConfig, replay::BlockReport};
use parevm_dispatcher::Engine;

/// parevm: a parallel block executor for Ethereum clients, checked against the sequential one.
#[derive(Debug, Parser)]
#[command(
    name = "parevm",
    version,
    about = "parevm: a parallel block executor for Ethereum clients, checked against the sequential one"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Execute historical mainnet blocks; check gas used, logs bloom and receipts root against
    /// each header and, in parallel mode, every output against the sequential executor.
    Replay(ReplayArgs),
    /// Run the consensus suite's BlockchainTests (state root after every block, final state,
    /// and rejection of invalid blocks).
    Ethtest(EthtestArgs),
    /// Time the sequential baseline and the parallel engine side by side on the same blocks.
    Bench(parevm::bench::BenchArgs),
}

/// How to execute: sequentially, or with the engine and its options.
#[derive(Debug, Clone, Args)]
pub struct EngineArgs {
    /// Read these settings from a TOML file (keys: parallel, slots, shadow, steal); flags given
    /// on the command line take precedence.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Use the sequential executor (alloy-evm's EthBlockExecutor) instead of the parallel engine.
    #[arg(long, conflicts_with = "slots")]
    sequential: bool,
    /// Number of slots of the parallel engine, 1 to 8: threads executing transactions, the
    /// merger's thread included (1: the merger alone, so blocks run sequentially). Default: cores.
    #[arg(long, value_name = "N")]
    slots: Option<usize>,
    /// Disable shadow workers (redos then wait for an idle primary).
    #[arg(long)]
    no_shadow: bool,
    /// Disable work stealing (each slot runs only what static dispatch gave it, plus redos).
    #[arg(long)]
    no_steal: bool,
    /// Drive the engine through ParallelBlockExecutorFactory, the alloy-evm executor reth
    /// uses: transactions handed in one call at a time, and every database read served by the
    /// calling thread. Without it the engine gets the whole block and reads the database from
    /// its slots directly.
    #[arg(long)]
    drop_in: bool,
}

impl EngineArgs {
    /// The executor these arguments ask for.
    pub fn executor(&self) -> Result<Executor, String> {
        let file = match &self.config {
            Some(path) => ParevmConfig::load(path).map_err(|e| e.to_string())?,
            None => ParevmConfig::default(),
        };
        if self.sequential || (!file.parallel && self.slots.is_none()) {
            return Ok(Executor::Sequential);
        }
        let mut config = file.engine_config().map_err(|e| e.to_string())?;
        if let Some(slots) = self.slots {
            config.slots = slots;
        }
        config.shadows &= !self.no_shadow;
        config.steal &= !self.no_steal;
        let engine = Engine::new(config).map_err(|e| e.to_string())?;
        Ok(if self.drop_in { Executor::DropIn(engine.into()) } else { Executor::Parallel(engine) })
    }
}

#[derive(Debug, Args)]
struct ReplayArgs {
    /// Block folders, or folders of block folders. Default: $PAREVM_DATA, else ../shared/data/mainnet.
    paths: Vec<PathBuf>,
    #[command(flatten)]
    engine: EngineArgs,
    /// In parallel mode, skip the comparison with a sequential run (header checks only).
    #[arg(long)]
    no_compare: bool,
    /// Write per-block results to FILE as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Print the engine's metrics (executions, redos by cause, steals, shadow takeovers, merge wait).
    #[arg(long)]
    stats: bool,
}

#[derive(Debug, Args)]
struct EthtestArgs {
    /// BlockchainTests JSON files or folders (searched recursively). Default:
    /// ../shared/data/ethereum-tests.
    paths: Vec<PathBuf>,
    #[command(flatten)]
    engine: EngineArgs,
    /// Write per-test results to FILE as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

pub fn main() -> ExitCode {
    end_quietly_on_a_closed_pipe();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Replay(args) => replay(args),
        Command::Ethtest(args) => ethtest(args),
        Command::Bench(args) => parevm::bench::run(args),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn progress_bar(len: u64) -> Option<ProgressBar> {
    std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(len);
        bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}").expect("valid template"));
        bar
    })
}

fn replay(args: ReplayArgs) -> Result<ExitCode, String> {
    let executor = args.engine.executor()?;
    let recorder = args.stats.then(parevm::stats::install_recorder);
    let paths = if args.paths.is_empty() { vec![parevm::mainnet::default_data_dir()] } else { args.paths };
    let chain = ChainSpec::mainnet();
    let mut bar = None;
    let compare = !args.no_compare;
    println!(
        "replaying with {}{}",
        executor.name(),
        if compare && !matches!(executor, Executor::Sequential) { ", compared with sequential" } else { "" }
    );
    let reports = parevm::replay::replay_all(&chain, &paths, &executor, compare, |done, total, report| {
        let bar = bar.get_or_insert_with(|| progress_bar(total as u64));
        let line = report_line(report);
        match bar {
            Some(bar) => {
                bar.set_position(done as u64);
                if !report.ok {
                    bar.println(line);
                }
            }
            None => println!("{line}"),
        }
    })
    .map_err(|e| e.to_string())?;
    if let Some(Some(bar)) = bar {
        bar.finish_and_clear();
    }
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&reports).map_err(|e| e.to_string())?;
        std::fs::write(path, json).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let matched = reports.iter().filter(|r| r.ok).count();
    if let Some(recorder) = recorder {
        print!("{}", parevm::stats::render(&recorder));
        let (txs, executions) = reports.iter().fold((0, 0), |(t, e), r| (t + r.txs, e + r.executions.unwrap_or(0)));
        if txs > 0 && executions > 0 {
            println!("executions per tx {:.3}", executions as f64 / txs as f64);
        }
    }
    println!("{matched}/{} blocks match", reports.len());
    Ok(if matched == reports.len() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// `parevm replay | head` should end quietly once `head` has read enough, as Unix tools do. Rust
/// starts programs with SIGPIPE ignored, so a write to the closed pipe fails instead and
/// `println!` panics ("failed printing to stdout: Broken pipe", exit code 101).
fn end_quietly_on_a_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: `signal` only sets how the process reacts to SIGPIPE. It runs first in `main`,
    // before any thread of ours exists, and touches no Rust-managed state.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn report_line(report: &BlockReport) -> String {
    let status = if report.ok { "ok".to_string() } else { format!("MISMATCH: {}", report.problems.join("; ")) };
    let engine = match (report.executions, report.redos) {
        (Some(e), Some(r)) => format!(" executions {e} redos {r}"),
        _ => String::new(),
    };
    format!(
        "block {:>9}  txs {:>4}  gas {:>9}  {:>8.2} ms{engine}  {status}",
        report.number, report.txs, report.gas_used, report.millis
    )
}

fn ethtest(args: EthtestArgs) -> Result<ExitCode, String> {
    let executor = args.engine.executor()?;
    let paths = if args.paths.is_empty() { vec![PathBuf::from("../shared/data/ethereum-tests")] } else { args.paths };
    parevm::ethtest::run_cli(&paths, &executor, args.json.as_deref())
}
