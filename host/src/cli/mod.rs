//! The `switchyard` command line: one file per subcommand.
//!
//! Where it sits: the outermost edge. `main.rs` parses arguments into [`Cli`]
//! and calls [`Cli::execute`]; each subcommand reads files, builds what it
//! needs from the library, and turns errors into messages that name the file.

mod admin_client;
mod backfill;
mod catalog;
mod check;
mod dev;
mod dlq;
pub mod logging;
mod new;
mod record;
mod regulate;
mod reload;
mod replay;
mod respond;
mod run;
mod status;
mod trial;
mod try_run;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub use try_run::user_cache_dir;

/// An error for a terminal, on one line: the cause chain is already joined by
/// `{:#}`; a cause that prints itself over several lines (a parser's
/// pretty-printed bytes) is folded, its indentation and brackets closed up.
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let glue = !(out.is_empty()
            || out.ends_with(['[', '(', '{'])
            || line.starts_with([']', ')', '}']));
        if glue {
            out.push(' ');
        }
        out.push_str(line);
    }
    out
}

/// Segment-compatible event router; destinations are WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands (their names and flags are a contract: the the book, `operating/command-line.md`).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve ingest, delivery and admin (default config: bundled destinations, store in ./data).
    Run {
        /// Configuration file (TOML).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Ask the host running with this config file to apply it again (as SIGHUP does): destinations
    /// added, changed and removed without a restart, or the reason nothing changed.
    Reload {
        /// Configuration file the host was started with (TOML).
        #[arg(long)]
        config: PathBuf,
    },
    /// Queue again, for one destination, the events the running host's log still holds from a
    /// range of time (`[store] retention`), marked `context.is_backfill`.
    Backfill(backfill::BackfillArgs),
    /// Capture the next deliveries of a destination of the running host (events, settings with
    /// credentials redacted, every request and answer) into a recording file.
    Record(record::RecordArgs),
    /// Run a recording offline against another version of its destination, its requests
    /// answered from the recording; print the differences, exit 1 on any.
    Replay(replay::ReplayArgs),
    /// A version on trial in the running host: shadow, canary, show, promote, discard.
    Trial {
        /// What to do.
        #[command(subcommand)]
        command: trial::TrialCommand,
    },
    /// Validate the config and every destination's settings, then exit.
    Check {
        /// Configuration file (TOML).
        #[arg(long)]
        config: PathBuf,
    },
    /// Run one delivery with no network: print each HTTP request the destination would send, the
    /// scripted answer it gets (`--respond`, else 200) and each event's outcome, retries included
    /// (after the transformations given, printing each event after every step; PLUGIN may be a
    /// transformation too).
    Try(try_run::TryArgs),
    /// The inner loop of writing a destination: rebuild on save, a host on a generated config, a
    /// loopback receiver that prints each request and answers from a script, the samples sent
    /// (again on Enter), and every build hot-swapped in.
    Dev(dev::DevArgs),
    /// Scaffold a destination or a transformation: source, kit, samples and a Makefile that builds NAME.wasm.
    New {
        /// Destination or transformation name (lower-case letters, digits, `-`, `_`).
        name: String,
        /// What to scaffold: a destination (the default) or a transformation.
        #[arg(long, value_enum, default_value = "destination")]
        kind: new::Kind,
        /// Language of the component.
        #[arg(long, value_enum)]
        lang: new::Lang,
        /// Parent folder (default: the current directory).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// The overview of a running host (sources, destinations) as tables, through its admin API.
    Status {
        /// Configuration file of the host (its `listen` and `admin_token`).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print reasons whole rather than cut at 60 characters.
        #[arg(long)]
        wide: bool,
        /// `text` (two tables) or `json` (the admin API's figures).
        #[arg(long, value_enum, default_value = "text")]
        format: status::Format,
    },
    /// Make every retry of a destination of the running host that waits for its time due now
    /// (and send a paused breaker's probe at once); the rate and concurrency limits still apply.
    RetryNow {
        /// The destination.
        destination: String,
        /// Configuration file of the host (its `listen` and `admin_token`).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Segment's action destinations, each a plugin `catalog:NAME`: list, show, build.
    Catalog {
        /// `list`, `show` or `build`.
        #[command(subcommand)]
        command: catalog::CatalogCommand,
    },
    /// Privacy regulations on the running host: suppress or unsuppress users, list the records.
    Regulate {
        /// `suppress`, `unsuppress`, `list` or `show`.
        #[command(subcommand)]
        command: regulate::RegulateCommand,
    },
    /// Dead letters: list or replay, against a running host or a stopped host's store.
    Dlq {
        /// `list` or `replay`.
        #[command(subcommand)]
        command: dlq::DlqCommand,
    },
}

impl Cli {
    /// Run the subcommand; the exit code is the result.
    pub async fn execute(self) -> anyhow::Result<std::process::ExitCode> {
        if !matches!(self.command, Command::Run { .. } | Command::Dev(_)) {
            logging::init(&crate::config::LogConfig::default());
        }
        match self.command {
            Command::Run { config } => run::run(config).await,
            Command::Check { config } => check::check(&config).await,
            Command::Reload { config } => reload::reload(&config).await,
            Command::Backfill(a) => {
                backfill::backfill(
                    &a.destination,
                    &a.since,
                    a.until.as_deref(),
                    a.config.as_deref(),
                )
                .await
            }
            Command::Record(args) => record::record(args).await,
            Command::Replay(args) => replay::replay(args).await,
            Command::Trial { command } => trial::trial(command).await,
            Command::Try(args) => try_run::try_run(args).await,
            Command::Dev(args) => dev::dev(args).await,
            Command::Dlq { command } => dlq::dlq(command).await,
            Command::Regulate { command } => regulate::regulate(command).await,
            Command::Catalog { command } => catalog::catalog(command).await,
            Command::Status {
                config,
                wide,
                format,
            } => status::status(config, wide, format).await,
            Command::RetryNow {
                destination,
                config,
            } => status::retry_now(&destination, config.as_deref()).await,
            Command::New {
                name,
                kind,
                lang,
                dir,
            } => new::new(&name, kind, lang, dir),
        }
    }
}

/// The configuration `switchyard run` serves without `--config`.
pub const DEFAULT_CONFIG: &str = include_str!("../../../config/default.toml");

/// Read a JSON file; errors name the file and the line.
fn read_json(path: &std::path::Path) -> anyhow::Result<serde_json::Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "{}:{}:{}: invalid JSON: {e}",
            path.display(),
            e.line(),
            e.column()
        )
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_error_printed_over_several_lines_is_one_line() {
        let text = "plugin `bad` is not valid: bad magic number - expected=[\n    0x0,\n    0x61,\n] actual=[\n    0x6e,\n] (at offset 0x0)";
        assert_eq!(
            super::one_line(text),
            "plugin `bad` is not valid: bad magic number - expected=[0x0, 0x61,] actual=[0x6e,] (at offset 0x0)"
        );
        assert_eq!(super::one_line("one: two"), "one: two");
    }
}
