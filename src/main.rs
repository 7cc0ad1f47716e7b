//! The `ventanilla` command: the runtime, the exit codes, and the subcommands of `cli`, each a
//! file there. Configuration, start-up and every rule live in the library.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    limit_malloc_arenas();
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(async_main()),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// glibc gives each thread that allocates an arena of its own, up to eight per core, and
/// keeps what each has freed: with the HTTP workers, the runtime's and the blocking pool's, the
/// store's and librdkafka's threads, the gateway's peak memory under load reached 241 MiB.
/// Four arenas brought it to 174 MiB, with batches 2 to 12% slower; two, to 159 MiB, with
/// batches 14 to 34% slower on the allocator's locks (BENCHMARKS.md). Set before any thread
/// starts; an operator's `MALLOC_ARENA_MAX` or `GLIBC_TUNABLES=glibc.malloc.arena_max` wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none()
        && !std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("malloc.arena_max"))
    {
        // SAFETY: mallopt only sets a tunable of the allocator; no thread has started yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 4);
        }
    }
}

async fn async_main() -> ExitCode {
    ventanilla::telemetry::init();
    match cli::run(cli::Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Once, on standard error: the log's line would say it a second time.
            eprintln!("ventanilla: {}", ventanilla::telemetry::error_chain(e.as_ref()));
            if e.is::<cli::Verdict>() { ExitCode::from(1) } else { ExitCode::from(2) }
        }
    }
}
