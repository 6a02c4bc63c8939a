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
    let (status, body) = super::admin_client::post(&config, "/admin/reload", &[])
        .await
        .with_context(|| format!("reloading the host of {}", file.display()))?;
    if !status.is_success() {
        eprintln!(
            "reload refused ({status}): {}",
            super::admin_client::message(&body)
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
