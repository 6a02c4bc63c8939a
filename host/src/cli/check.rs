//! `switchyard check --config FILE`: validate everything a start would (the
//! config, every plugin and every destination's and transformation's settings), then exit.
//! A config with errors gets every error that can be found, one line each
//! ([`Config::load_all`]).
//!
//! It warns (and still succeeds) when a URL in a destination's or
//! transformation's settings is not covered by its `allowed_hosts`: the first
//! real delivery would be denied. Compiled components are cached where the
//! host caches them (`[store] path`/compiled) when that store exists, otherwise
//! in the user's cache directory, so a second check does not compile again.

use std::path::Path;
use std::process::ExitCode;

use crate::allowlist::uncovered_urls;
use crate::config::Config;
use crate::plugins::Catalog;
use crate::runtime::Runtime;

pub async fn check(file: &Path) -> anyhow::Result<ExitCode> {
    let config = match Config::load_all(file) {
        Ok(config) => config,
        Err(errors) => {
            // Every error found, one line each.
            for e in &errors {
                eprintln!("error: {}", super::one_line(&e.to_string()));
            }
            eprintln!("{}: {} error(s)", file.display(), errors.len());
            return Ok(ExitCode::FAILURE);
        }
    };
    let cache = match config.store.path.is_dir() {
        true => Some(config.store.path.join("compiled")),
        false => super::try_run::user_cache_dir(),
    };
    let runtime = Runtime::new(cache, 4)?;
    let catalog = Catalog::load(
        &runtime,
        &config.plugins_dir,
        &config.destinations,
        &config.transforms,
    )
    .await
    .map_err(|e| anyhow::Error::new(e).context(file.display().to_string()))?;
    let mut warnings = 0;
    let users = config
        .destinations
        .iter()
        .map(|d| {
            (
                format!("destination `{}`", d.name),
                &d.settings,
                &d.allowed_hosts,
            )
        })
        .chain(config.transforms.iter().map(|t| {
            (
                format!("transform `{}`", t.name),
                &t.settings,
                &t.allowed_hosts,
            )
        }));
    for (user, settings, allowed) in users {
        for (path, url) in uncovered_urls(settings, allowed) {
            warnings += 1;
            eprintln!(
                "warning: {}: {user}: settings.{path} = {url} is not covered by its allowed_hosts: requests there would be denied",
                file.display()
            );
        }
    }
    let warned = match warnings {
        0 => String::new(),
        n => format!(", {n} warning(s)"),
    };
    let transforms = match config.transforms.len() {
        0 => String::new(),
        n => format!(", {n} transforms"),
    };
    println!(
        "{}: ok ({} sources, {} destinations{transforms}, {} plugins{warned})",
        file.display(),
        config.sources.len(),
        config.destinations.len(),
        catalog.names().len()
    );
    Ok(ExitCode::SUCCESS)
}
