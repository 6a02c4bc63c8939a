//! `switchyard regulate`: privacy regulations on the running host, through its
//! admin API (`POST /admin/regulations`, `GET /admin/regulations[/{id}]`):
//! - `regulate suppress|unsuppress|delete|suppress-with-delete --user-id ID...
//!   --anonymous-id ID... [--source S]... [--wait]` (and `--user-ids-from FILE`,
//!   one id a line, sent 10,000 at a time)
//! - `regulate list [--json]`, `regulate show ID`

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::Value;

use super::admin_client::{call, host_config, message};
use crate::privacy::regulation::MAX_SUBJECTS;
use crate::privacy::{Kind, Request, Subjects};

/// Whom a regulation is about, and where.
#[derive(Debug, clap::Args)]
pub struct Who {
    /// A user by `userId` (repeat for several).
    #[arg(long = "user-id")]
    pub user_ids: Vec<String>,
    /// A user by `anonymousId` (repeat for several).
    #[arg(long = "anonymous-id")]
    pub anonymous_ids: Vec<String>,
    /// A file of userIds, one a line (blank lines skipped).
    #[arg(long)]
    pub user_ids_from: Option<PathBuf>,
    /// A source it applies to (repeat for several; default: every source).
    #[arg(long = "source")]
    pub sources: Vec<String>,
    /// A deletion: wait until it is done, then print what was removed where.
    #[arg(long)]
    pub wait: bool,
    /// Configuration file of the host (its `listen` and `admin_token`).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// The subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum RegulateCommand {
    /// Stop collecting these users: their events are accepted and dropped at ingest.
    Suppress(Who),
    /// Collect these users again.
    Unsuppress(Who),
    /// Delete what is stored of these users: their events in the log, retries,
    /// dead letters and every in-memory copy.
    Delete(Who),
    /// Both: stop collecting these users, and delete what is stored of them.
    SuppressWithDelete(Who),
    /// The regulations recorded, oldest first (the audit log).
    List {
        /// Print the admin API's JSON.
        #[arg(long)]
        json: bool,
        /// Configuration file of the host.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// One regulation's record, with its subjects' keyed hashes.
    Show {
        /// The regulation's id.
        id: String,
        /// Configuration file of the host.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// Run a `regulate` subcommand.
pub async fn regulate(cmd: RegulateCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        RegulateCommand::Suppress(who) => submit(Kind::Suppress, who).await,
        RegulateCommand::Unsuppress(who) => submit(Kind::Unsuppress, who).await,
        RegulateCommand::Delete(who) => submit(Kind::Delete, who).await,
        RegulateCommand::SuppressWithDelete(who) => submit(Kind::SuppressWithDelete, who).await,
        RegulateCommand::List { json, config } => {
            let body = get(config.as_deref(), "/admin/regulations").await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&body)?);
            } else {
                let rows = body.as_array().map(Vec::as_slice).unwrap_or_default();
                println!("{} regulation(s)", rows.len());
                for r in rows {
                    println!(
                        "{}  {}  {}  subjects={}  sources={}  {}  by {}",
                        r["id"].as_str().unwrap_or(""),
                        r["type"].as_str().unwrap_or(""),
                        r["state"].as_str().unwrap_or(""),
                        r["subjects"],
                        sources_text(&r["sources"]),
                        r["requested_at"].as_str().unwrap_or(""),
                        r["requested_by"].as_str().unwrap_or(""),
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        RegulateCommand::Show { id, config } => {
            let body = get(config.as_deref(), &format!("/admin/regulations/{id}")).await?;
            println!("{}", serde_json::to_string_pretty(&body)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn sources_text(v: &Value) -> String {
    match v.as_array() {
        Some(list) => list
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(","),
        None => "all".into(),
    }
}

async fn get(config: Option<&Path>, path: &str) -> anyhow::Result<Value> {
    let config = host_config(config)?;
    let (status, body) = call(&config, reqwest::Method::GET, path, &[], None).await?;
    if !status.is_success() {
        anyhow::bail!("{path}: {status}: {}", message(&body));
    }
    Ok(body)
}

/// The userIds of `file`, one a line, exactly as written (ingest matches ids
/// exactly: a space is part of an id); empty lines are skipped.
fn read_ids(file: &Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", file.display()))?;
    Ok(text
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

/// Send the regulation, [`MAX_SUBJECTS`] subjects a request.
async fn submit(kind: Kind, who: Who) -> anyhow::Result<ExitCode> {
    let config = host_config(who.config.as_deref())?;
    let mut user_ids = who.user_ids;
    if let Some(file) = &who.user_ids_from {
        user_ids.extend(read_ids(file)?);
    }
    let subjects: Vec<(bool, String)> = user_ids
        .into_iter()
        .map(|id| (true, id))
        .chain(who.anonymous_ids.into_iter().map(|id| (false, id)))
        .collect();
    if subjects.is_empty() {
        anyhow::bail!("name someone: --user-id, --anonymous-id or --user-ids-from");
    }
    let sources = (!who.sources.is_empty()).then_some(who.sources);
    for part in subjects.chunks(MAX_SUBJECTS) {
        let mut s = Subjects::default();
        for (is_user, id) in part {
            if *is_user {
                s.user_id.push(id.clone());
            } else {
                s.anonymous_id.push(id.clone());
            }
        }
        let request = Request {
            kind,
            subjects: s,
            sources: sources.clone(),
        };
        let (status, body) = call(
            &config,
            reqwest::Method::POST,
            "/admin/regulations",
            &[],
            Some(serde_json::to_vec(&request)?),
        )
        .await?;
        if !status.is_success() {
            anyhow::bail!("{}: {status}: {}", kind.as_str(), message(&body));
        }
        let id = body["id"].as_str().unwrap_or("");
        println!(
            "{id}  {}  {} subject(s)  {}",
            kind.as_str(),
            part.len(),
            body["state"].as_str().unwrap_or("")
        );
        if who.wait && body["state"] == "pending" {
            let done = wait_done(who.config.as_deref(), id).await?;
            println!("{id}  {}", removed_text(&done));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Poll regulation `id` until it is no longer pending.
async fn wait_done(config: Option<&Path>, id: &str) -> anyhow::Result<Value> {
    loop {
        let body = get(config, &format!("/admin/regulations/{id}")).await?;
        if body["state"] != "pending" {
            return Ok(body);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// What a deletion removed, on one line: `done  log=3 retries=0 ...`.
fn removed_text(r: &Value) -> String {
    let p = &r["progress"];
    let mut parts = vec![r["state"].as_str().unwrap_or("").to_string()];
    for (key, v) in p["erased"].as_object().into_iter().flatten() {
        parts.push(format!("{key}={v}"));
    }
    for (key, v) in p["memory"].as_object().into_iter().flatten() {
        parts.push(format!("{key}={v}"));
    }
    for (name, d) in p["destinations"].as_object().into_iter().flatten() {
        parts.push(format!("{name}:{}", d["state"].as_str().unwrap_or("")));
    }
    parts.join("  ")
}
