//! The `--parallel*` flags of `parevm-reth node`, and how they combine with `--parallel.config`.
//!
//! reth flattens the `Ext` arguments of its `Cli` into the `node` subcommand, so these flags show
//! up in `parevm-reth node --help` under their own heading. Every argument has an explicit `id`
//! (`parevm_*`): clap ids come from field names, and reth's own node command already has fields
//! such as `config`, which would otherwise collide. They need nothing from reth, so they live
//! here, where CI tests them; `integration/reth/` only flattens them into reth's CLI.

use std::path::PathBuf;

use clap::ArgAction;
use parevm_dispatcher::{ConfigError, EngineConfig};

use crate::config::{ConfigFileError, ParevmConfig};

/// parevm's flags for `parevm-reth node`.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Parallel execution (parevm)")]
pub struct ParevmArgs {
    /// Execute blocks with parevm's parallel engine: the engine API's payload validation and the
    /// pipeline's execution stage. Payload building always stays sequential. Without this flag
    /// the node is stock reth. Measured on 2 cores, this is no faster than sequential (0.94-0.99x
    /// geomean on mainnet blocks of 100+ transactions, single blocks down to 0.59x): reth does
    /// not yet hand the executor a shareable view of the parent state, so the slots wait on the
    /// caller's thread for every database read (docs/reth.md, "The parent state").
    #[arg(id = "parevm_parallel", long = "parallel", action = ArgAction::SetTrue)]
    pub parallel: bool,

    /// Number of slots, 1 to 8: threads executing a block's transactions, the merger's thread
    /// included, so N slots keep N cores busy (1: the merger alone, so blocks are executed
    /// sequentially). Default: the number of cores, clamped to 1..=8.
    #[arg(id = "parevm_slots", long = "parallel.slots", value_name = "N")]
    pub slots: Option<usize>,

    /// Give every slot a shadow worker that takes redos while the slot's primary is busy. The
    /// engine starts them only on a machine with a core for each beyond the slots': without
    /// one, a shadow only takes time from the threads it should help.
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

/// Settings that cannot be used; the node does not start.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// `--parallel.config` cannot be read or parsed.
    #[error("reading --parallel.config: {0}")]
    File(#[from] ConfigFileError),
    /// The file's engine settings are out of range.
    #[error("invalid engine settings in --parallel.config: {0}")]
    FileEngine(ConfigError),
    /// The flags (over the file) give an unusable engine configuration.
    #[error("invalid --parallel.* settings: {0}")]
    Flags(ConfigError),
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
    pub fn resolve(args: &ParevmArgs) -> Result<Self, SettingsError> {
        let file = args.config.as_deref().map(ParevmConfig::load).transpose()?;

        let parallel = args.parallel || file.as_ref().is_some_and(|f| f.parallel);
        let verify = args.verify || file.as_ref().is_some_and(|f| f.verify);

        let mut engine = match &file {
            Some(f) => f.engine_config().map_err(SettingsError::FileEngine)?,
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
        engine.validate().map_err(SettingsError::Flags)?;

        Ok(Self { parallel, verify, engine })
    }

    /// True if any `--parallel.*` engine flag was given although neither the parallel node nor
    /// the verifying ExEx will use the engine.
    pub fn unused_engine_flags(&self, args: &ParevmArgs) -> bool {
        !self.parallel && !self.verify && (args.slots.is_some() || args.shadow.is_some() || args.steal.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    /// Stands in for reth's `node` command, which flattens the same struct.
    #[derive(Debug, Parser)]
    struct Node {
        #[command(flatten)]
        parevm: ParevmArgs,
    }

    fn settings(argv: &[&str]) -> Result<Settings, SettingsError> {
        let node = Node::try_parse_from(std::iter::once("node").chain(argv.iter().copied())).unwrap();
        Settings::resolve(&node.parevm)
    }

    #[test]
    fn flags_set_the_engine_and_bare_booleans_mean_true() {
        let s =
            settings(&["--parallel", "--parallel.slots", "3", "--parallel.shadow=false", "--parallel.steal"]).unwrap();
        assert!(s.parallel && !s.verify);
        assert_eq!((s.engine.slots, s.engine.shadows, s.engine.steal), (3, false, true));
        let s = settings(&[]).unwrap();
        assert!(!s.parallel);
        assert_eq!(s.engine.slots, EngineConfig::default().slots);
    }

    #[test]
    fn flags_override_the_file_and_either_can_enable() {
        let path = std::env::temp_dir().join(format!("parevm-node-args-{}.toml", std::process::id()));
        std::fs::write(&path, "parallel = false\nverify = true\nslots = 5\nsteal = false\n").unwrap();
        let file = path.to_str().unwrap();
        let s = settings(&["--parallel.config", file, "--parallel", "--parallel.slots", "2"]).unwrap();
        assert!(s.parallel && s.verify);
        assert_eq!((s.engine.slots, s.engine.steal), (2, false));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn unusable_settings_are_errors_that_say_where_they_come_from() {
        let error = settings(&["--parallel", "--parallel.slots", "9"]).unwrap_err();
        assert!(matches!(error, SettingsError::Flags(_)), "{error}");
        assert!(error.to_string().contains("--parallel.*"), "{error}");
        let error = settings(&["--parallel.config", "/nonexistent/parevm.toml"]).unwrap_err();
        assert!(matches!(error, SettingsError::File(_)), "{error}");
        let unused = Node::try_parse_from(["node", "--parallel.slots", "2"]).unwrap();
        assert!(Settings::resolve(&unused.parevm).unwrap().unused_engine_flags(&unused.parevm));
    }

    #[test]
    fn every_flag_is_documented_under_its_own_heading() {
        let help = Node::command().render_long_help().to_string();
        assert!(help.contains("Parallel execution (parevm)"), "{help}");
        for flag in [
            "--parallel\n",
            "--parallel.slots <N>",
            "--parallel.shadow[=<BOOL>]",
            "--parallel.steal[=<BOOL>]",
            "--parallel.verify",
            "--parallel.config <FILE>",
        ] {
            assert!(help.contains(flag), "{flag} missing from:\n{help}");
        }
    }
}
