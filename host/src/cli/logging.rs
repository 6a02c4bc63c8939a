//! The process's log output: `[log] format` and `level` for `switchyard run`,
//! the default (text, `info`) for the other subcommands. `RUST_LOG`, when set,
//! wins over `level`. Lines go to stderr; wasmtime's and cranelift's own
//! chatter is kept at `warn` unless the filter names them.
//!
//! Log lines carry text that clients, vendors and guests chose (ids, reasons,
//! a guest's own log lines). In the text format every control character in a
//! line is written escaped (`\n` as the two characters `\n`), so no one can
//! start a line of their own or drive the terminal; the JSON format escapes
//! them as JSON does.

use std::io::Write;

use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogConfig;
use crate::imports::log::escape_line;

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
    // Its debug lines print server addresses with their user and password.
    if !filter.contains("async_nats") {
        filter.push_str(",async_nats=info");
    }
    let filter = tracing_subscriber::EnvFilter::builder()
        .parse(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    // Ignored when a subscriber is already installed (tests, a second call).
    let _ = if log.json {
        builder
            .with_writer(std::io::stderr)
            .json()
            .flatten_event(true)
            .try_init()
    } else {
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
        builder
            .with_writer(OneLine { ansi })
            .with_ansi(ansi)
            .try_init()
    };
}

/// Stderr, one escaped line per event (see the module's doc).
#[derive(Debug, Clone, Copy)]
pub struct OneLine {
    /// The formatter colours its own output: escape sequences are let through
    /// (a guest's own are escaped where its lines are written, `imports/log.rs`).
    pub ansi: bool,
}

impl<'a> MakeWriter<'a> for OneLine {
    type Writer = OneLineWriter;

    fn make_writer(&'a self) -> OneLineWriter {
        OneLineWriter {
            line: Vec::new(),
            ansi: self.ansi,
        }
    }
}

/// One event's text, written escaped to stderr when dropped.
#[derive(Debug)]
pub struct OneLineWriter {
    /// What the formatter wrote so far.
    line: Vec<u8>,
    /// Whether escape sequences pass.
    ansi: bool,
}

impl Write for OneLineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for OneLineWriter {
    fn drop(&mut self) {
        if self.line.is_empty() {
            return;
        }
        let text = escape_line(&String::from_utf8_lossy(&self.line), self.ansi);
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_cannot_start_another() {
        let forged = "INFO guest: ok\nERROR switchyard: admin token leaked\r\n";
        let out = escape_line(forged, false);
        assert_eq!(out.matches('\n').count(), 1, "{out:?}");
        assert!(out.ends_with('\n'));
        assert!(out.contains("ok\\nERROR"), "{out:?}");
        assert_eq!(escape_line("\u{1b}[2Jclear\n", false), "\\u{1b}[2Jclear\n");
        assert_eq!(
            escape_line("\u{1b}[32mINFO\u{1b}[0m x\n", true),
            "\u{1b}[32mINFO\u{1b}[0m x\n"
        );
        assert_eq!(escape_line("plain\tline\n", false), "plain\tline\n");
    }
}
