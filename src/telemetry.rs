//! Structured logging set-up: `tracing` to standard error, filtered by `RUST_LOG`
//! (default `info`, with librdkafka's chatter kept at `warn`); colours only on a terminal, so
//! logs collected by a supervisor are plain text.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// An error and its causes, as one line: `error: cause: cause of the cause`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut chain = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        // Many errors end with their cause in their own words (`cannot read X: No such file`):
        // a cause the chain has just told is not told again. Only at the end: a short cause
        // whose words happen to be inside a message is still told.
        let cause = s.to_string();
        if !chain.ends_with(&cause) {
            chain.push_str(": ");
            chain.push_str(&cause);
        }
        src = s.source();
    }
    chain
}

/// Installs the global subscriber once; later calls (from tests) are harmless.
pub fn init() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_target(true)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_writer(std::io::stderr)
        .try_init();
}

/// The same for the test suites: through the test harness's capture, so a passing test's logs
/// (a test of an outage logs the outage) stay out of the run's output, and a failing test's are
/// printed with its failure. Once per process; later calls are harmless.
pub fn init_for_tests() {
    let _ = tracing_subscriber::fmt().with_env_filter(filter()).with_target(true).with_ansi(false).with_test_writer().try_init();
}

/// `RUST_LOG`, else `info` with librdkafka's chatter kept at `warn`.
fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rdkafka=warn,actix_server=warn"))
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("cannot read {0}: {1}")]
    struct Read(&'static str, #[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("the region file")]
    struct Region(#[source] Read);

    #[test]
    fn a_cause_is_told_once() {
        let io = || std::io::Error::from(std::io::ErrorKind::NotFound);
        let told = super::error_chain(&Read("x.json", io()));
        assert_eq!(told.matches("entity not found").count(), 1, "{told}");
        let told = super::error_chain(&Region(Read("x.json", io())));
        assert_eq!(told, format!("the region file: cannot read x.json: {}", io()));
        let denied = || std::io::Error::other("denied");
        let told = super::error_chain(&Read("denied.json", denied()));
        assert_eq!(told, "cannot read denied.json: denied", "a cause in the middle of a message is not its cause told");
        #[derive(Debug, thiserror::Error)]
        #[error("access denied for the key file")]
        struct Key(#[source] std::io::Error);
        assert_eq!(super::error_chain(&Key(denied())), "access denied for the key file: denied");
    }
}
