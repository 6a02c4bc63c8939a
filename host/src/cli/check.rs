//! `switchyard check --config FILE`: validate everything a start would (the
//! config, every plugin and every destination's and transformation's settings), then exit.

use std::path::Path;
use std::process::ExitCode;

use crate::config::Config;
use crate::plugins::Catalog;
use crate::runtime::Runtime;

pub async fn check(file: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::load(file)?;
    let runtime = Runtime::new(None, 4)?;
    let catalog = Catalog::load(
        &runtime,
        &config.plugins_dir,
        &config.destinations,
        &config.transforms,
    )
    .await
    .map_err(|e| anyhow::Error::new(e).context(file.display().to_string()))?;
    let transforms = match config.transforms.len() {
        0 => String::new(),
        n => format!(", {n} transforms"),
    };
    println!(
        "{}: ok ({} sources, {} destinations{transforms}, {} plugins)",
        file.display(),
        config.sources.len(),
        config.destinations.len(),
        catalog.names().len()
    );
    Ok(ExitCode::SUCCESS)
}
