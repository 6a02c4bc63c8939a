//! `switchyard record --destination D --count N --out FILE [--timeout D] [--config FILE]`:
//! capture the next N real deliveries of a destination of the running host
//! (`POST /admin/destinations/{name}/record`) into a recording file, for
//! `switchyard replay` (`cli/replay.rs`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::trial::recording::Recording;

/// The flags, for the `Command` enum.
#[derive(Debug, clap::Args)]
pub struct RecordArgs {
    /// The destination to record.
    #[arg(long)]
    pub destination: String,
    /// Deliveries to record (each is one call of the destination with a batch).
    #[arg(long, default_value_t = 10)]
    pub count: usize,
    /// The recording file to write (JSON).
    #[arg(long)]
    pub out: PathBuf,
    /// Longest wait for the deliveries (what was recorded by then is written).
    #[arg(long, default_value = "30s")]
    pub timeout: String,
    /// Configuration file of the host (its `listen` and `admin_token`).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub async fn record(args: RecordArgs) -> anyhow::Result<ExitCode> {
    let config = super::admin_client::host_config(args.config.as_deref())?;
    let path = format!("/admin/destinations/{}/record", args.destination);
    let query = [
        ("count", args.count.to_string()),
        ("timeout", args.timeout.clone()),
    ];
    let (status, body) = super::admin_client::post(&config, &path, &query)
        .await
        .context("record needs the running host")?;
    if !status.is_success() {
        eprintln!(
            "record refused ({status}): {}",
            super::admin_client::message(&body)
        );
        return Ok(ExitCode::FAILURE);
    }
    let recording: Recording =
        serde_json::from_value(body).context("the host's answer is not a recording")?;
    let got = recording.deliveries.len();
    let text = serde_json::to_string_pretty(&recording)?;
    std::fs::write(&args.out, text + "\n")
        .with_context(|| format!("{}: cannot write", args.out.display()))?;
    let events: usize = recording.deliveries.iter().map(|d| d.events.len()).sum();
    println!(
        "recorded {got} deliveries ({events} events) of {} (plugin {} {}) to {}",
        args.destination,
        recording.plugin,
        recording.plugin_version,
        args.out.display()
    );
    if got == 0 {
        eprintln!(
            "nothing was delivered within {}: is traffic reaching `{}`?",
            args.timeout, args.destination
        );
        return Ok(ExitCode::FAILURE);
    }
    if got < args.count {
        eprintln!(
            "only {got} of {} deliveries within {}",
            args.count, args.timeout
        );
    }
    Ok(ExitCode::SUCCESS)
}
