//! `switchyard backfill --destination D --since T [--until T] [--config FILE]`:
//! ask the running host to queue the events its log still holds from that range
//! again for one destination (`POST /admin/destinations/{name}/backfill`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::Value;

use crate::config::Config;

pub async fn backfill(
    destination: &str,
    since: &str,
    until: Option<&str>,
    file: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let config = match file {
        Some(file) => Config::load(file)?,
        None => Config::parse(super::DEFAULT_CONFIG, "<default config>", Path::new("."))?,
    };
    let base = super::dlq::admin_base(&config).with_context(|| {
        format!(
            "[server] listen is `{}`: no fixed port to reach the host at",
            config.listen
        )
    })?;
    let url = format!("{base}/admin/destinations/{destination}/backfill");
    let mut query = vec![("since", since.to_string())];
    if let Some(u) = until {
        query.push(("until", u.to_string()));
    }
    let client = reqwest::Client::builder().no_proxy().build()?;
    let mut req = client.post(&url).query(&query);
    if let Some(token) = &config.admin_token {
        req = req.bearer_auth(token);
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("{url}: no host answers (backfill needs the running host)"))?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        eprintln!(
            "backfill refused ({status}): {}",
            body["message"].as_str().unwrap_or("no reason given")
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
