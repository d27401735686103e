//! `parevm ethtest` (being written).
use crate::Executor;
use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};
/// Runs the suite and prints the summary.
pub fn run_cli(_paths: &[PathBuf], _executor: &Executor, _json: Option<&Path>) -> Result<ExitCode, String> {
    Err("ethtest: not written yet".into())
}
