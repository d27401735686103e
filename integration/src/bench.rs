//! `parevm bench` (being written).
use std::process::ExitCode;
/// Arguments of `parevm bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {}
/// Runs the benchmark.
pub fn run(_args: BenchArgs) -> Result<ExitCode, String> {
    Err("bench: not written yet".into())
}
