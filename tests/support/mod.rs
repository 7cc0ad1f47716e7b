//! What the integration suite and the benchmark share (each includes this file): the repository's
//! root, the `ventanilla` command, and waiting for a condition that says what it waits for.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The repository's root: configuration, schemas and examples are read from here.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `ventanilla` binary Cargo built for this run.
pub const VENTANILLA: &str = env!("CARGO_BIN_EXE_ventanilla");

/// `ventanilla`, to be given its arguments, run from the repository's root.
pub fn cli() -> Command {
    let mut command = Command::new(VENTANILLA);
    command.current_dir(repo());
    command
}

/// Runs `ventanilla ARGS` to its end (warnings only in its log): what it printed, and its
/// exit status.
pub fn run_cli<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    cli().args(args).env("RUST_LOG", "warn").output().expect("the ventanilla binary runs")
}

/// Asks `probe` every 100 ms until it gives a value, which is returned; past `timeout`, fails
/// naming `what` was waited for. The way to wait: for a positive sign, never for a while.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(start.elapsed() < timeout, "waited {timeout:?} for {what}, in vain");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
