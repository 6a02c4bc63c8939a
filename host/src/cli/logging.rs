//! The process's log output: `[log] format` and `level` for `switchyard run`,
//! the default (text, `info`) for the other subcommands. `RUST_LOG`, when set,
//! wins over `level`. Lines go to stderr; wasmtime's and cranelift's own
//! chatter is kept at `warn` unless the filter names them.

use crate::config::LogConfig;

/// Install the subscriber for `log` (once per process; later calls do nothing).
pub fn init(log: &LogConfig) {
    let mut filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|f| !f.trim().is_empty())
        .unwrap_or_else(|| log.level.clone());
    for quiet in ["wasmtime", "cranelift"] {
        if !filter.contains(quiet) {
            filter.push_str(&format!(",{quiet}=warn"));
        }
    }
    let filter = tracing_subscriber::EnvFilter::builder()
        .parse(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // Ignored when a subscriber is already installed (tests, a second call).
    let _ = if log.json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init()
    };
}
