//! The `parevm` binary as a shell runs it.

mod common;

use std::process::{Command, Stdio};

/// `parevm replay | head -1`: once the reader has gone, the replay ends quietly, killed by
/// SIGPIPE as Unix tools are, instead of panicking on its next line ("failed printing to
/// stdout", exit code 101).
#[test]
fn a_reader_that_stops_early_ends_the_replay_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_parevm"))
        .arg("replay")
        .arg(common::mainnet_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Gone before the replay's first line: every line it prints meets a closed pipe.
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(output.status.signal(), Some(libc::SIGPIPE), "{:?}: {stderr}", output.status);
    }
}
