//! The `--parallel*` flags of `parevm-reth node`, and how they combine with `--parallel.config`.
//!
//! reth flattens the `Ext` arguments of its `Cli` into the `node` subcommand, so these flags show
//! up in `parevm-reth node --help` under their own heading. Every argument has an explicit `id`
//! (`parevm_*`): clap ids come from field names, and reth's own node command already has fields
//! such as `config`, which would otherwise collide.

use std::path::PathBuf;

use clap::ArgAction;
use eyre::WrapErr;
use parevm::config::ParevmConfig;
use parevm_dispatcher::EngineConfig;

/// parevm's flags for `parevm-reth node`.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Parallel execution (parevm)")]
pub struct ParevmArgs {
    /// Execute blocks with parevm's parallel engine: the engine API's payload validation and the
    /// pipeline's execution stage. Payload building always stays sequential. Without this flag
    /// the node is stock reth.
    #[arg(id = "parevm_parallel", long = "parallel", action = ArgAction::SetTrue)]
    pub parallel: bool,

    /// Number of slots (primary worker threads), 1 to 8. Default: the number of cores minus one,
    /// clamped to 1..=8.
    #[arg(id = "parevm_slots", long = "parallel.slots", value_name = "N")]
    pub slots: Option<usize>,

    /// Give every slot a shadow worker that takes redos while the slot's primary is busy.
    /// `--parallel.shadow` alone means true; `--parallel.shadow=false` turns it off.
    /// [default: true]
    #[arg(
        id = "parevm_shadow",
        long = "parallel.shadow",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        action = ArgAction::Set
    )]
    pub shadow: Option<bool>,

    /// Let a slot whose queue is empty steal queued transactions from the other slots.
    /// `--parallel.steal` alone means true; `--parallel.steal=false` turns it off.
    /// [default: true]
    #[arg(
        id = "parevm_steal",
        long = "parallel.steal",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        action = ArgAction::Set
    )]
    pub steal: Option<bool>,

    /// Install the `parevm-verify` ExEx: re-execute every committed block with the parallel engine
    /// on the parent block's state and compare receipts, gas and state changes with what the node
    /// committed. Mismatches are logged and counted (`reth_parevm_verify_mismatches_total`).
    /// Most useful without `--parallel`: the node stays sequential and parevm is checked against it.
    #[arg(id = "parevm_verify", long = "parallel.verify", action = ArgAction::SetTrue)]
    pub verify: bool,

    /// TOML file with the same settings (`parallel`, `slots`, `shadow`, `steal`, `verify`).
    /// Flags given on the command line override the file.
    #[arg(id = "parevm_config", long = "parallel.config", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// The settings in force: the file (if any), overridden by the flags.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Execute blocks with the parallel engine.
    pub parallel: bool,
    /// Install the verifying ExEx.
    pub verify: bool,
    /// The engine's configuration (validated).
    pub engine: EngineConfig,
}

impl Settings {
    /// Reads `--parallel.config` if given and applies the flags on top.
    pub fn resolve(args: &ParevmArgs) -> eyre::Result<Self> {
        let file = match &args.config {
            Some(path) => Some(
                ParevmConfig::load(path).wrap_err_with(|| format!("reading --parallel.config {}", path.display()))?,
            ),
            None => None,
        };

        let parallel = args.parallel || file.as_ref().is_some_and(|f| f.parallel);
        let verify = args.verify || file.as_ref().is_some_and(|f| f.verify);

        let mut engine = match &file {
            Some(f) => f.engine_config().wrap_err("invalid engine settings in --parallel.config")?,
            None => EngineConfig::default(),
        };
        if let Some(slots) = args.slots {
            engine.slots = slots;
        }
        if let Some(shadow) = args.shadow {
            engine.shadows = shadow;
        }
        if let Some(steal) = args.steal {
            engine.steal = steal;
        }
        engine.validate().wrap_err("invalid --parallel.* settings")?;

        Ok(Self { parallel, verify, engine })
    }

    /// True if any `--parallel.*` engine flag was given although neither the parallel node nor
    /// the verifying ExEx will use the engine.
    pub fn unused_engine_flags(&self, args: &ParevmArgs) -> bool {
        !self.parallel && !self.verify && (args.slots.is_some() || args.shadow.is_some() || args.steal.is_some())
    }
}
