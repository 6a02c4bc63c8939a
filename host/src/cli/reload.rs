//! `switchyard reload --config FILE`: ask the running host to apply its config
//! file again (`POST /admin/reload`, `crate::reload`), and print what changed.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::Value;

use crate::config::Config;

pub async fn reload(file: &Path) -> anyhow::Result<ExitCode> {
    // The file as it is now: its `listen` and `admin_token` reach the host, and
    // a file that does not validate is refused here, with the same message.
    let config = Config::load(file)?;
    let base = super::dlq::admin_base(&config).with_context(|| {
        format!(
            "{}: [server] listen is `{}`: no fixed port to reach the host at",
            file.display(),
            config.listen
        )
    })?;
    let client = reqwest::Client::builder().no_proxy().build()?;
    let url = format!("{base}/admin/reload");
    let mut req = client.post(&url);
    if let Some(token) = &config.admin_token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.with_context(|| {
        format!(
            "{url}: no host answers (is it running with --config {}?)",
            file.display()
        )
    })?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        eprintln!(
            "reload refused ({status}): {}",
            body["message"].as_str().unwrap_or("no reason given")
        );
        return Ok(ExitCode::FAILURE);
    }
    let list = |key: &str| {
        let names: Vec<&str> = body[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if names.is_empty() {
            "-".to_string()
        } else {
            names.join(", ")
        }
    };
    println!("reloaded in {} ms", body["took_ms"]);
    println!("  added:     {}", list("added"));
    println!("  changed:   {}", list("changed"));
    println!(
        "  removed:   {} (their queues drain; delete one with DELETE /admin/destinations/NAME)",
        list("removed")
    );
    println!("  unchanged: {}", list("unchanged"));
    for w in body["warnings"].as_array().into_iter().flatten() {
        println!("warning: {}", w.as_str().unwrap_or_default());
    }
    Ok(ExitCode::SUCCESS)
}
