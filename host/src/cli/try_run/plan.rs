//! What a `switchyard try` runs, from its flags: the components, their
//! settings, allowlists and limits, the retry policy and the compiled cache,
//! taken from the files given or from a host's config (`--config`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use super::TryArgs;
use crate::config::{Config, DestinationConfig, Limits, RetryPolicy};
use crate::imports::http::Allowlist;

/// One component of the run, before it is loaded.
#[derive(Debug)]
pub(super) struct Part {
    /// The component file.
    pub(super) plugin: PathBuf,
    /// Its settings, and where they come from (for messages).
    pub(super) settings: (Value, String),
    /// What its `http` import may reach (`None`: anything, recorded only).
    pub(super) allowlist: Option<Allowlist>,
    /// Its sandbox limits.
    pub(super) limits: Limits,
    /// Its secrets (with `--config`: the destination's).
    pub(super) secrets: crate::imports::secrets::Secrets,
}

/// What the run does: the chain, the destination (or a last transformation), and how retries are scheduled.
pub(super) struct Plan {
    /// The transformations, in order.
    pub(super) chain: Vec<Part>,
    /// The destination (or a transformation tried alone).
    pub(super) last: Part,
    /// How the printed retries are scheduled.
    pub(super) retry: RetryPolicy,
    /// Where compiled components are cached.
    pub(super) cache: Option<PathBuf>,
}

/// The default retry policy (the book, `concepts/delivery.md`), for a run without `--config`.
fn default_retry() -> RetryPolicy {
    RetryPolicy {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(600),
        window: Duration::from_secs(4 * 3600),
    }
}

pub use crate::runtime::user_cache_dir;

/// Read a settings file (`None`: `{}`) as a JSON object, with its name for messages.
fn read_settings(settings: Option<&Path>) -> anyhow::Result<(Value, String)> {
    let value = match settings {
        Some(file) => super::super::read_json(file)?,
        None => Value::Object(Map::new()),
    };
    let name = settings.map_or("{}".into(), |f| f.display().to_string());
    if !value.is_object() {
        anyhow::bail!("{name}:1:1: settings must be a JSON object");
    }
    Ok((value, name))
}

/// The plan of a run from its flags.
pub(super) fn plan(args: &TryArgs) -> anyhow::Result<Plan> {
    if args.transform_settings.len() > args.transforms.len() {
        anyhow::bail!(
            "{} --transform-settings for {} --transform: each applies to the --transform at its position",
            args.transform_settings.len(),
            args.transforms.len()
        );
    }
    let given_chain = || -> anyhow::Result<Vec<Part>> {
        args.transforms
            .iter()
            .enumerate()
            .map(|(i, p)| {
                Ok(Part {
                    plugin: p.clone(),
                    settings: read_settings(args.transform_settings.get(i).map(PathBuf::as_path))?,
                    allowlist: None,
                    limits: Limits::default(),
                    secrets: Default::default(),
                })
            })
            .collect()
    };
    let Some(file) = &args.config else {
        let plugin = args.plugin.clone().ok_or_else(|| {
            anyhow::anyhow!(
                "name the component (`switchyard try PLUGIN.wasm ...`), or give --config"
            )
        })?;
        let settings = args
            .settings
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("--settings FILE is needed without --config"))?;
        return Ok(Plan {
            chain: given_chain()?,
            last: Part {
                plugin,
                settings: read_settings(Some(settings))?,
                allowlist: None,
                limits: Limits::default(),
                secrets: Default::default(),
            },
            retry: default_retry(),
            cache: user_cache_dir(),
        });
    };
    let config = Config::load(file)?;
    let dest = pick(&config, file, args.destination.as_deref())?;
    let settings = match &args.settings {
        Some(f) => read_settings(Some(f))?,
        None => (
            dest.settings.clone(),
            format!("{}: destination `{}`", file.display(), dest.name),
        ),
    };
    let component = |plugin: &str| config.plugins_dir.join(format!("{plugin}.wasm"));
    let chain = if args.transforms.is_empty() {
        dest.transforms
            .iter()
            .filter_map(|name| config.transforms.iter().find(|t| &t.name == name))
            .map(|t| Part {
                plugin: component(&t.plugin),
                settings: (
                    t.settings.clone(),
                    format!("{}: transform `{}`", file.display(), t.name),
                ),
                allowlist: Some(t.allowed_hosts.clone()),
                limits: t.limits,
                secrets: Default::default(),
            })
            .collect()
    } else {
        given_chain()?
    };
    for (path, url) in crate::allowlist::uncovered_urls(&settings.0, &dest.allowed_hosts) {
        eprintln!(
            "warning: {}: settings.{path} = {url} is not covered by the allowed_hosts of destination `{}` in {}: requests there are denied",
            settings.1,
            dest.name,
            file.display()
        );
    }
    Ok(Plan {
        chain,
        last: Part {
            plugin: args
                .plugin
                .clone()
                .unwrap_or_else(|| component(&dest.plugin)),
            settings,
            allowlist: Some(dest.allowed_hosts.clone()),
            limits: dest.limits,
            secrets: dest.secrets.clone(),
        },
        retry: dest.retry,
        cache: Some(config.store.path.join("compiled")),
    })
}

/// The destination `name` of `config` (or its only one).
fn pick<'a>(
    config: &'a Config,
    file: &Path,
    name: Option<&str>,
) -> anyhow::Result<&'a DestinationConfig> {
    let names = || {
        config
            .destinations
            .iter()
            .map(|d| format!("`{}`", d.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match name {
        Some(name) => config
            .destinations
            .iter()
            .find(|d| d.name == name)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: no destination `{name}` (it has {})",
                    file.display(),
                    names()
                )
            }),
        None => match config.destinations.as_slice() {
            [only] => Ok(only),
            [] => anyhow::bail!("{}: the config has no destination", file.display()),
            _ => anyhow::bail!(
                "{}: several destinations ({}): say which with --destination",
                file.display(),
                names()
            ),
        },
    }
}
