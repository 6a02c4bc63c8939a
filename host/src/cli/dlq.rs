//! `switchyard dlq list|replay|purge --destination NAME [--since T] [--until T] [--json]`.
//!
//! Against a running host through its admin API (the config's `listen` and
//! `admin_token`), or, when nothing listens there, directly on the stopped
//! host's store.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::Value;

use crate::config::Config;
use crate::store::view::DeadLetterView;
use crate::store::{now_ms, Millis, Store};

/// Which dead letters.
#[derive(Debug, clap::Args)]
pub struct Selection {
    /// Destination name.
    #[arg(long)]
    pub destination: String,
    /// Dead-lettered at or after: RFC 3339, ms since the epoch, or an age like `2h`.
    #[arg(long)]
    pub since: Option<String>,
    /// Dead-lettered before: RFC 3339, ms since the epoch, or an age like `30m`.
    #[arg(long)]
    pub until: Option<String>,
    /// Configuration file (default: the built-in default config).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// `list` or `replay`.
#[derive(Debug, clap::Subcommand)]
pub enum DlqCommand {
    /// List dead letters.
    List {
        #[command(flatten)]
        selection: Selection,
        /// Print a JSON array (one object per dead letter: messageId, reason, attempts, ...).
        #[arg(long)]
        json: bool,
    },
    /// Move dead letters back into the destination's queue.
    Replay {
        #[command(flatten)]
        selection: Selection,
    },
    /// Delete dead letters (all of the destination's, or those of `--since`/`--until`).
    Purge {
        #[command(flatten)]
        selection: Selection,
    },
}

/// `T` as ms since the epoch: an age (`2h`) counts back from now.
fn when(t: &str) -> anyhow::Result<Millis> {
    crate::store::view::parse_time_or_age(t, now_ms()).map_err(|e| anyhow::anyhow!(e))
}

struct Target {
    config: Config,
    since: Option<Millis>,
    until: Option<Millis>,
    destination: String,
}

fn target(sel: &Selection) -> anyhow::Result<Target> {
    let config = match &sel.config {
        Some(file) => Config::load(file)?,
        None => Config::parse(super::DEFAULT_CONFIG, "<default config>", Path::new("."))?,
    };
    if config.destination(&sel.destination).is_none() {
        anyhow::bail!("no destination named `{}` in the config", sel.destination);
    }
    Ok(Target {
        since: sel.since.as_deref().map(when).transpose()?,
        until: sel.until.as_deref().map(when).transpose()?,
        destination: sel.destination.clone(),
        config,
    })
}

/// The admin base URL, when a host may be listening.
pub(super) fn admin_base(config: &Config) -> Option<String> {
    let addr: std::net::SocketAddr = config.listen.parse().ok()?;
    if addr.port() == 0 {
        return None;
    }
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    Some(format!("http://{host}:{}", addr.port()))
}

/// Ask the running host; `Ok(None)` when nothing listens.
async fn ask_host(
    t: &Target,
    method: reqwest::Method,
    path: &str,
) -> anyhow::Result<Option<Value>> {
    Ok(ask_host_page(t, method, path, None)
        .await?
        .map(|(body, _)| body))
}

/// [`ask_host`] for one page (from `after`); with where the next page starts.
async fn ask_host_page(
    t: &Target,
    method: reqwest::Method,
    path: &str,
    after: Option<i64>,
) -> anyhow::Result<Option<(Value, Option<i64>)>> {
    let Some(base) = admin_base(&t.config) else {
        return Ok(None);
    };
    let mut query = Vec::new();
    if let Some(s) = t.since {
        query.push(("since", s.to_string()));
    }
    if let Some(u) = t.until {
        query.push(("until", u.to_string()));
    }
    if let Some(a) = after {
        query.push(("after", a.to_string()));
    }
    let client = reqwest::Client::builder().no_proxy().build()?;
    let url = format!("{base}/admin/destinations/{}/{path}", t.destination);
    let mut req = client.request(method, &url).query(&query);
    if let Some(token) = &t.config.admin_token {
        req = req.bearer_auth(token);
    }
    let resp = match req.send().await {
        Ok(resp) => resp,
        Err(e) if e.is_connect() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let status = resp.status();
    let next = resp
        .headers()
        .get("x-next-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        anyhow::bail!(
            "{url}: {status}: {}",
            body["message"].as_str().unwrap_or("")
        );
    }
    Ok(Some((body, next)))
}

/// Every dead letter of the selection from the running host, page by page;
/// `None` when nothing listens.
async fn list_from_host(t: &Target) -> anyhow::Result<Option<Vec<DeadLetterView>>> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let Some((answer, next)) =
            ask_host_page(t, reqwest::Method::GET, "dead-letters", after).await?
        else {
            return Ok(None);
        };
        let page: Vec<DeadLetterView> = serde_json::from_value(answer.clone())
            .map_err(|e| anyhow::anyhow!("unexpected answer from the host: {e}: {answer}"))?;
        all.extend(page);
        match next {
            Some(n) => after = Some(n),
            None => return Ok(Some(all)),
        }
    }
}

async fn open_store(config: &Config) -> anyhow::Result<std::sync::Arc<dyn Store>> {
    crate::store::open(
        &config.store,
        std::time::Duration::from_secs(60),
        &config.destinations,
    )
    .await
}

/// Run a `dlq` subcommand.
pub async fn dlq(cmd: DlqCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DlqCommand::List { selection, json } => {
            let t = target(&selection)?;
            let list: Vec<DeadLetterView> = match list_from_host(&t).await? {
                Some(list) => list,
                None => open_store(&t.config)
                    .await?
                    .dead_letters(&t.destination, t.since, t.until)
                    .await?
                    .iter()
                    .map(DeadLetterView::from)
                    .collect(),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                println!("{} dead letter(s) of {}", list.len(), t.destination);
                for d in &list {
                    println!(
                        "{}  {}  attempts={}  {}",
                        d.dead_at, d.message_id, d.attempts, d.reason
                    );
                }
            }
        }
        DlqCommand::Replay { selection } => {
            let t = target(&selection)?;
            let replayed = match ask_host(&t, reqwest::Method::POST, "dead-letters/replay").await? {
                Some(body) => body["replayed"].as_u64().unwrap_or(0),
                None => {
                    open_store(&t.config)
                        .await?
                        .replay(&t.destination, t.since, t.until)
                        .await?
                }
            };
            println!("replayed {replayed} dead letter(s) of {}", t.destination);
        }
        DlqCommand::Purge { selection } => {
            let t = target(&selection)?;
            let purged = match ask_host(&t, reqwest::Method::DELETE, "dead-letters").await? {
                Some(body) => body["purged"].as_u64().unwrap_or(0),
                None => {
                    open_store(&t.config)
                        .await?
                        .purge(&t.destination, t.since, t.until)
                        .await?
                }
            };
            println!("purged {purged} dead letter(s) of {}", t.destination);
        }
    }
    Ok(ExitCode::SUCCESS)
}
