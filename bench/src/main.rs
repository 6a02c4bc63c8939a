//! `switchyard-bench`: every scenario runs Switchyard and its baseline in the
//! same run, on the same machine, with the same load generator, and reports the
//! ratio. Results go to `bench/results/<scenario>.json`; `BENCHMARKS.md` holds
//! the table. Traffic stays on loopback; every loop is bounded by a duration.
//!
//! Subcommands other than `run` are the baselines' own processes, spawned by
//! the scenarios (a bare axum server, one native destination service, the
//! router in front of the destination services).

mod baseline;
mod events;
mod least_durable;
mod load;
mod procs;
mod receiver;
mod report;
mod scenarios;
mod wrk;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "switchyard-bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run scenarios and write bench/results/<scenario>.json.
    Run {
        /// Shorter runs (the whole suite in about 5 minutes).
        #[arg(long)]
        quick: bool,
        /// Only these scenarios (ingest, privacy, deletion, fanout, drain, log, candidates, dispatch, e2e,
        /// fleet, isolation, hotswap, reload, trial, slow, adaptive, vendors, fleet50, sustained, isolation80, stores).
        #[arg(long)]
        only: Vec<String>,
        /// Where results go.
        #[arg(long, default_value = "bench/results")]
        out: PathBuf,
    },
    /// Baseline: an axum server that reads the body and answers 200.
    BareServer {
        #[arg(long)]
        port: u16,
    },
    /// Baseline: the least durable ingest (parse, stamp, re-serialise, append, fdatasync per group).
    LeastDurable {
        #[arg(long)]
        port: u16,
        /// Where the log file goes.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Baseline: one destination as a native service (POST a JSON array; it signs and forwards).
    NativeDestination {
        #[arg(long)]
        port: u16,
        /// Where to forward.
        #[arg(long)]
        target: String,
        /// HMAC key.
        #[arg(long)]
        secret: String,
    },
    /// Baseline: the router in front of destination services (Segment-like ingest, fan-out).
    Router {
        #[arg(long)]
        port: u16,
        /// Ports of the destination services.
        #[arg(long, value_delimiter = ',')]
        services: Vec<u16>,
    },
}

/// Scale of a run.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    /// Length of one measured load phase.
    pub phase: Duration,
    /// Quick mode.
    pub quick: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cli.command {
            Command::Run { quick, only, out } => {
                let scale = Scale {
                    phase: if quick {
                        Duration::from_secs(3)
                    } else {
                        Duration::from_secs(10)
                    },
                    quick,
                };
                scenarios::run_all(scale, &only, &out).await
            }
            Command::BareServer { port } => baseline::bare_server(port).await,
            Command::LeastDurable { port, dir } => least_durable::serve(port, dir).await,
            Command::NativeDestination {
                port,
                target,
                secret,
            } => baseline::native_destination(port, target, secret).await,
            Command::Router { port, services } => baseline::router(port, services).await,
        }
    })
}
