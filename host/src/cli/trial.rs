//! `switchyard trial ...`: a plugin version on trial in the running host,
//! through its admin API (`admin/trials.rs`):
//! - `trial shadow NAME FILE [--default-status S --default-body B]`
//! - `trial canary NAME FILE --percent P [--margin M --min-events N --promote-after D]`
//! - `trial show NAME`, `trial promote NAME`, `trial discard NAME`

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::Value;

/// The subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum TrialCommand {
    /// Run FILE after the serving version on the same batches, answered from its exchanges, and compare.
    Shadow {
        /// The plugin.
        name: String,
        /// The new component.
        file: PathBuf,
        /// Status answered to a request the serving version did not send.
        #[arg(long)]
        default_status: Option<u16>,
        /// Body of that answer.
        #[arg(long)]
        default_body: Option<String>,
        #[command(flatten)]
        host: Host,
    },
    /// Deliver a share of users with FILE for real; rolled back when it fails more.
    Canary {
        /// The plugin.
        name: String,
        /// The new component.
        file: PathBuf,
        /// Share of users, 1 to 100.
        #[arg(long)]
        percent: u8,
        /// Rollback when its failure rate passes the serving one's by more than this (0 to 1).
        #[arg(long)]
        margin: Option<f64>,
        /// Events before it is judged.
        #[arg(long)]
        min_events: Option<u64>,
        /// Promote after this clean period (e.g. `10m`).
        #[arg(long)]
        promote_after: Option<String>,
        #[command(flatten)]
        host: Host,
    },
    /// The version on trial, its figures and newest differences, and how the last one ended.
    Show {
        /// The plugin.
        name: String,
        #[command(flatten)]
        host: Host,
    },
    /// Make the version on trial serve.
    Promote {
        /// The plugin.
        name: String,
        #[command(flatten)]
        host: Host,
    },
    /// Drop the version on trial.
    Discard {
        /// The plugin.
        name: String,
        #[command(flatten)]
        host: Host,
    },
}

/// Which host.
#[derive(Debug, clap::Args)]
pub struct Host {
    /// Configuration file of the host (its `listen` and `admin_token`).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub async fn trial(command: TrialCommand) -> anyhow::Result<ExitCode> {
    use reqwest::Method;
    let (method, name, suffix, mut query, body, host) = match command {
        TrialCommand::Shadow {
            name,
            file,
            default_status,
            default_body,
            host,
        } => {
            let mut q = vec![("stage", "shadow".to_string())];
            q.extend(default_status.map(|s| ("default_status", s.to_string())));
            q.extend(default_body.map(|b| ("default_body", b)));
            (Method::PUT, name, "", q, Some(read(&file)?), host)
        }
        TrialCommand::Canary {
            name,
            file,
            percent,
            margin,
            min_events,
            promote_after,
            host,
        } => {
            let mut q = vec![
                ("stage", "canary".to_string()),
                ("percent", percent.to_string()),
            ];
            q.extend(margin.map(|m| ("margin", m.to_string())));
            q.extend(min_events.map(|n| ("min_events", n.to_string())));
            q.extend(promote_after.map(|d| ("promote_after", d)));
            (Method::PUT, name, "", q, Some(read(&file)?), host)
        }
        TrialCommand::Show { name, host } => (Method::GET, name, "/trial", vec![], None, host),
        TrialCommand::Promote { name, host } => {
            (Method::POST, name, "/promote", vec![], None, host)
        }
        TrialCommand::Discard { name, host } => {
            (Method::POST, name, "/discard", vec![], None, host)
        }
    };
    query.retain(|(_, v)| !v.is_empty());
    let config = super::admin_client::host_config(host.config.as_deref())?;
    let path = format!("/admin/plugins/{name}{suffix}");
    let (status, answer) = super::admin_client::call(&config, method, &path, &query, body)
        .await
        .context("trial needs the running host")?;
    if !status.is_success() {
        eprintln!(
            "refused ({status}): {}",
            super::admin_client::message(&answer)
        );
        return Ok(ExitCode::FAILURE);
    }
    print_answer(&answer);
    Ok(ExitCode::SUCCESS)
}

fn read(file: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(file).with_context(|| format!("{}: cannot read", file.display()))
}

/// The answer as a person reads it: the trial's figures and its differences.
fn print_answer(answer: &Value) {
    let trial = if answer.get("trial").is_some() {
        &answer["trial"]
    } else {
        answer
    };
    if let Some(stage) = trial["stage"].as_str() {
        println!(
            "{stage} {} (sha256 {}) since {}",
            trial["version"].as_str().unwrap_or(""),
            trial["sha256"].as_str().unwrap_or(""),
            trial["started_at"].as_str().unwrap_or("")
        );
        let s = &trial["shadow"];
        if s.is_object() {
            println!(
                "  batches compared {}, matched {}, differed {}, skipped {}",
                s["compared"], s["matched"], s["differed"], s["skipped"]
            );
            for d in s["differences"].as_array().into_iter().flatten() {
                println!(
                    "  {} {}:",
                    d["at"].as_str().unwrap_or(""),
                    d["destination"].as_str().unwrap_or("")
                );
                for x in d["differences"].as_array().into_iter().flatten() {
                    println!("    {}", x["what"].as_str().unwrap_or(""));
                    println!("      - serving: {}", x["expected"].as_str().unwrap_or(""));
                    println!("      + shadow:  {}", x["got"].as_str().unwrap_or(""));
                }
            }
        }
        let c = &trial["canary"];
        if c.is_object() {
            println!(
                "  {}% of users; canary failed {} of {} events, serving {} of {}",
                trial["percent"],
                c["failed"],
                c["events"],
                c["serving_failed"],
                c["serving_events"]
            );
        }
    } else if answer.get("sha256").is_some() {
        println!(
            "serving {} (sha256 {})",
            answer["version"].as_str().unwrap_or(""),
            answer["sha256"].as_str().unwrap_or("")
        );
    } else if answer.get("trial").is_some() {
        println!("no version on trial");
    }
    if let Some(ended) = answer.get("ended").filter(|e| e.is_object()) {
        println!(
            "last trial: {} at {}: {}",
            ended["ending"].as_str().unwrap_or(""),
            ended["at"].as_str().unwrap_or(""),
            ended["reason"].as_str().unwrap_or("")
        );
    }
}
