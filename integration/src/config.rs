//! The parevm configuration file (`--config FILE`, TOML): the same keys as the command-line
//! flags, validated up front with errors that name the file, the key and what is wrong.
//!
//! ```toml
//! parallel = true   # false: the sequential executor
//! slots = 4         # 1 to 8, the merger's thread included; default cores
//! shadow = true     # shadow workers take redos while a slot is busy
//! steal = true      # idle slots steal queued transactions
//! verify = false    # (reth node) re-execute committed blocks with parevm and compare
//! ```

use std::path::{Path, PathBuf};

use parevm_dispatcher::{ConfigError, EngineConfig};
use serde::Deserialize;

/// The keys of a parevm configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ParevmConfig {
    /// Use the parallel engine (`false`: the sequential executor).
    pub parallel: bool,
    /// Number of slots; `None` for the default (cores, 1 to 8).
    pub slots: Option<usize>,
    /// Shadow workers on.
    pub shadow: bool,
    /// Work stealing on.
    pub steal: bool,
    /// Verify committed blocks by re-executing them (reth node only).
    pub verify: bool,
}

impl Default for ParevmConfig {
    fn default() -> Self {
        Self { parallel: true, slots: None, shadow: true, steal: true, verify: false }
    }
}

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// The file cannot be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid TOML, an unknown key, or a value of the wrong type.
    #[error("{}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (names the key, line and column).
        message: String,
    },
    /// A value out of range.
    #[error("{}: {source}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: ConfigError,
    },
}

impl ParevmConfig {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigFileError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigFileError::Io { path: path.to_owned(), source })?;
        let config = Self::parse(&text).map_err(|message| ConfigFileError::Parse { path: path.to_owned(), message })?;
        config.engine_config().map_err(|source| ConfigFileError::Invalid { path: path.to_owned(), source })?;
        Ok(config)
    }

    /// Parses TOML text (no range checks; see [`ParevmConfig::engine_config`]).
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())
    }

    /// The engine configuration these keys describe, validated.
    pub fn engine_config(&self) -> Result<EngineConfig, ConfigError> {
        let mut config = EngineConfig { shadows: self.shadow, steal: self.steal, ..EngineConfig::default() };
        if let Some(slots) = self.slots {
            config.slots = slots;
        }
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<ParevmConfig, ConfigFileError> {
        // One file per call: the tests run in parallel, and texts of the same length once shared
        // a name (`slots = 0` and `slotz = 4`), so one test removed the other's file.
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        // Relaxed: only uniqueness matters.
        let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("parevm-config-{}-{call}.toml", std::process::id()));
        std::fs::write(&path, text).unwrap();
        let result = ParevmConfig::load(&path);
        std::fs::remove_file(&path).unwrap();
        result
    }

    #[test]
    fn a_full_file_is_read() {
        let config = load_text("parallel = true\nslots = 4\nshadow = false\nsteal = true\nverify = true\n").unwrap();
        assert_eq!(config, ParevmConfig { parallel: true, slots: Some(4), shadow: false, steal: true, verify: true });
        let engine = config.engine_config().unwrap();
        assert_eq!((engine.slots, engine.shadows, engine.steal), (4, false, true));
    }

    #[test]
    fn missing_keys_take_defaults() {
        assert_eq!(load_text("").unwrap(), ParevmConfig::default());
    }

    #[test]
    fn zero_slots_is_refused() {
        let err = load_text("slots = 0\n").unwrap_err().to_string();
        assert!(err.contains("slot count must be between 1 and 8, got 0"), "{err}");
    }

    #[test]
    fn an_unknown_key_is_named() {
        let err = load_text("slotz = 4\n").unwrap_err().to_string();
        assert!(err.contains("unknown field `slotz`"), "{err}");
    }

    #[test]
    fn a_bad_type_is_named() {
        let err = load_text("shadow = \"yes\"\n").unwrap_err().to_string();
        assert!(err.contains("shadow") && err.contains("invalid type"), "{err}");
    }

    #[test]
    fn a_missing_file_is_named() {
        let err = ParevmConfig::load(Path::new("/nonexistent/parevm.toml")).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/parevm.toml: cannot read"), "{err}");
    }
}
