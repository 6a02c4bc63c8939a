//! `switchyard backfill --destination D --since T [--until T] [--config FILE]`:
//! ask the running host to queue the events its log still holds from that range
//! again for one destination (`POST /admin/destinations/{name}/backfill`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

pub async fn backfill(
    destination: &str,
    since: &str,
    until: Option<&str>,
    file: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let config = super::admin_client::host_config(file)?;
    let mut query = vec![("since", since.to_string())];
    if let Some(u) = until {
        query.push(("until", u.to_string()));
    }
    let path = format!("/admin/destinations/{destination}/backfill");
    let (status, body) = super::admin_client::post(&config, &path, &query)
        .await
        .context("backfill needs the running host")?;
    if !status.is_success() {
        eprintln!(
            "backfill refused ({status}): {}",
            super::admin_client::message(&body)
        );
        return Ok(ExitCode::FAILURE);
    }
    println!(
        "{} event(s) queued again for {destination}",
        body["enqueued"]
    );
    Ok(ExitCode::SUCCESS)
}

/// The flags, for the `Command` enum.
#[derive(Debug, clap::Args)]
pub struct BackfillArgs {
    /// The destination to deliver them to.
    #[arg(long)]
    pub destination: String,
    /// Where the range starts: RFC 3339, ms since the epoch, or an age such as `2d`.
    #[arg(long)]
    pub since: String,
    /// Where it ends (default: now).
    #[arg(long)]
    pub until: Option<String>,
    /// Configuration file of the host (its `listen` and `admin_token`).
    #[arg(long)]
    pub config: Option<PathBuf>,
}
