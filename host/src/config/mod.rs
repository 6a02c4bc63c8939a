//! Configuration: TOML text → validated [`Config`].
//!
//! Where it sits: read once by the CLI before anything starts. The structs of
//! [`raw`] mirror the file exactly (`deny_unknown_fields`, one doc comment per
//! key: the key names are a contract, see DESIGN §8); [`Config::parse`] expands
//! `${ENV}` in string values and validates every value into runtime types
//! (durations, allowlists, limits), so the rest of the host never sees raw text.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::imports::http::Allowlist;

/// Anything wrong with a configuration file, with where it is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Syntax { file: String, message: String },
    #[error("{file}: `{path}`: {message}")]
    Invalid {
        file: String,
        path: String,
        message: String,
    },
}

mod raw;
#[cfg(test)]
mod tests;

use self::raw::*;

/// The largest linear memory a destination may ask for (the pooling allocator's slot size).
pub const MAX_MEMORY_MB: u64 = 512;

/// Event types of the Segment spec.
pub const EVENT_TYPES: [&str; 6] = ["track", "identify", "page", "screen", "group", "alias"];

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listener address (`[server] listen`).
    pub listen: String,
    /// Admin bearer token; `None` disables `/admin/`.
    pub admin_token: Option<String>,
    /// The store.
    pub store: StoreConfig,
    /// Directory of destination components.
    pub plugins_dir: PathBuf,
    /// Write key → source name.
    pub sources: BTreeMap<String, String>,
    /// Destinations in file order.
    pub destinations: Vec<DestinationConfig>,
}

/// Which store, where.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Which backend.
    pub kind: StoreKind,
    /// Directory of the embedded store (and the compiled-component cache).
    pub path: PathBuf,
    /// How long a `messageId` is remembered per source.
    pub dedup_window: Duration,
    /// NATS credentials file.
    pub credentials_file: Option<PathBuf>,
    /// How long delivered events stay in the log (embedded store only).
    pub retention: Duration,
}

/// The store backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreKind {
    /// SQLite in `path`.
    Embedded,
    /// NATS JetStream at this URL.
    Nats(String),
}

/// One destination, ready to run.
#[derive(Debug, Clone)]
pub struct DestinationConfig {
    /// Unique name.
    pub name: String,
    /// Plugin name (component file stem).
    pub plugin: String,
    /// Outbound HTTP allowlist.
    pub allowed_hosts: Allowlist,
    /// Settings as a JSON object, handed to the plugin.
    pub settings: serde_json::Value,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Batching.
    pub batch: BatchPolicy,
    /// Rate limit.
    pub rate: Option<RatePolicy>,
    /// Sandbox limits.
    pub limits: Limits,
    /// Per-user ordering.
    pub ordering: Ordering,
    /// Routing filter.
    pub filter: Filter,
}

/// Backoff and give-up window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// First backoff.
    pub initial: Duration,
    /// Largest backoff.
    pub max: Duration,
    /// Give up this long after the first attempt.
    pub window: Duration,
}

/// Batching policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPolicy {
    /// Most events per call.
    pub max_events: u32,
    /// Most bytes of event JSON per call.
    pub max_bytes: u64,
    /// How long a partial batch may wait.
    pub linger: Duration,
}

/// Token bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RatePolicy {
    /// Sustained rate.
    pub per_second: f64,
    /// Bucket size.
    pub burst: u32,
}

/// Sandbox limits of one destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory cap, in bytes.
    pub memory_bytes: usize,
    /// Deadline of one call.
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: (default_memory_mb() as usize) << 20,
            timeout: Duration::from_millis(default_timeout_ms()),
        }
    }
}

/// Per-user ordering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ordering {
    /// Events flow independently.
    None,
    /// A user's later events wait while an earlier one awaits retry.
    User,
}

/// Routing filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Types kept; empty keeps all.
    pub types: Vec<String>,
    /// `track` event names kept; empty keeps all.
    pub events: Vec<String>,
}

impl Config {
    /// Destinations with default policies, for store tests and benchmarks: each
    /// `(name, ordered)` delivers through a plugin named `webhook`.
    pub fn plain_destinations(specs: &[(&str, bool)]) -> Vec<DestinationConfig> {
        let mut text = String::new();
        for (name, ordered) in specs {
            let ordering = if *ordered { "user" } else { "none" };
            text.push_str(&format!(
                "[[destinations]]\nname = \"{name}\"\nplugin = \"webhook\"\nordering = \"{ordering}\"\n"
            ));
        }
        Config::parse(&text, "plain_destinations", Path::new("."))
            .expect("plain destinations are valid")
            .destinations
    }

    /// Read and validate a file.
    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
            file: file.display().to_string(),
            source,
        })?;
        let base = file.parent().unwrap_or(Path::new("."));
        Self::parse(&text, &file.display().to_string(), base)
    }

    /// Validate TOML text; `file` names it in errors, relative paths resolve against `base`.
    pub fn parse(text: &str, file: &str, base: &Path) -> Result<Config, ConfigError> {
        let mut value: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            file: file.into(),
            message: e.to_string().trim_end().replace('\n', " | "),
        })?;
        expand_env_table(&mut value, "").map_err(|(path, message)| ConfigError::Invalid {
            file: file.into(),
            path,
            message,
        })?;
        let raw: RawConfig =
            serde_path_to_error::deserialize(toml::Value::Table(value)).map_err(|e| {
                ConfigError::Invalid {
                    file: file.into(),
                    path: e.path().to_string(),
                    message: e.inner().to_string(),
                }
            })?;
        validate(raw, base).map_err(|(path, message)| ConfigError::Invalid {
            file: file.into(),
            path,
            message,
        })
    }

    /// The destination of this name.
    pub fn destination(&self, name: &str) -> Option<&DestinationConfig> {
        self.destinations.iter().find(|d| d.name == name)
    }
}

type Invalid = (String, String);

/// Replace `${NAME}` in every string value with the environment variable's value.
fn expand_env_table(table: &mut toml::Table, path: &str) -> Result<(), Invalid> {
    for (key, value) in table.iter_mut() {
        let here = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        expand_env_value(value, &here)?;
    }
    Ok(())
}

fn expand_env_value(value: &mut toml::Value, path: &str) -> Result<(), Invalid> {
    match value {
        toml::Value::String(s) => *s = expand_env(s).map_err(|m| (path.to_string(), m))?,
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_env_value(item, &format!("{path}[{i}]"))?;
            }
        }
        toml::Value::Table(t) => expand_env_table(t, path)?,
        _ => {}
    }
    Ok(())
}

/// `${NAME}` → the value of `NAME`; `$${` escapes a literal `${`.
pub fn expand_env(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let end = after
                .find('}')
                .ok_or_else(|| "unterminated `${` in value".to_string())?;
            let name = &after[..end];
            let value = std::env::var(name)
                .map_err(|_| format!("environment variable `{name}` is not set"))?;
            out.push_str(&value);
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Parse `"500ms"`, `"30s"`, `"10m"`, `"4h"`, `"1d"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("`{s}` is not a duration (e.g. \"500ms\", \"30s\", \"4h\"): {e}"))
}

fn validate(raw: RawConfig, base: &Path) -> Result<Config, Invalid> {
    let resolve = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
    let listen = raw.server.listen.clone();
    if listen.parse::<std::net::SocketAddr>().is_err() && !listen.contains(':') {
        return Err((
            "server.listen".into(),
            format!("`{listen}` is not host:port"),
        ));
    }
    let kind = match raw.store.kind.as_str() {
        "embedded" => StoreKind::Embedded,
        "nats" => StoreKind::Nats(raw.store.url.clone().ok_or_else(|| {
            (
                "store.url".to_string(),
                "required when kind = \"nats\"".to_string(),
            )
        })?),
        other => {
            return Err((
                "store.kind".into(),
                format!("`{other}`: expected \"embedded\" or \"nats\""),
            ))
        }
    };
    let dedup_window =
        parse_duration(&raw.store.dedup_window).map_err(|m| ("store.dedup_window".into(), m))?;
    let retention =
        parse_duration(&raw.store.retention).map_err(|m| ("store.retention".into(), m))?;
    if !retention.is_zero() && matches!(kind, StoreKind::Nats(_)) {
        return Err((
            "store.retention".into(),
            "is kept by the embedded store only; on NATS, set the stream's limits instead".into(),
        ));
    }

    let mut sources = BTreeMap::new();
    let mut source_names = HashSet::new();
    for (i, s) in raw.sources.iter().enumerate() {
        if s.name.is_empty() || !source_names.insert(s.name.clone()) {
            return Err((
                format!("sources[{i}].name"),
                format!("`{}` is empty or used twice", s.name),
            ));
        }
        if s.write_key.is_empty() {
            return Err((
                format!("sources[{i}].write_key"),
                "must not be empty".into(),
            ));
        }
        if sources
            .insert(s.write_key.clone(), s.name.clone())
            .is_some()
        {
            return Err((
                format!("sources[{i}].write_key"),
                "the same write key names two sources".into(),
            ));
        }
    }

    let mut destinations = Vec::new();
    let mut names = HashSet::new();
    for (i, d) in raw.destinations.into_iter().enumerate() {
        let at = |field: &str| format!("destinations[{i}].{field}");
        if !valid_name(&d.name) || !names.insert(d.name.clone()) {
            return Err((
                at("name"),
                format!(
                    "`{}` is empty, used twice, or not made of letters, digits, `-` and `_`",
                    d.name
                ),
            ));
        }
        if !valid_name(&d.plugin) {
            return Err((at("plugin"), format!("`{}` is not a plugin name", d.plugin)));
        }
        let allowed_hosts = Allowlist::parse(&d.allowed_hosts)
            .map_err(|(j, m)| (at(&format!("allowed_hosts[{j}]")), m))?;
        let settings =
            serde_json::to_value(&d.settings).map_err(|e| (at("settings"), e.to_string()))?;
        if !settings.is_object() {
            return Err((at("settings"), "must be a table".into()));
        }
        if d.retry.initial_ms == 0 || d.retry.max_ms < d.retry.initial_ms {
            return Err((
                at("retry"),
                "initial_ms must be > 0 and max_ms >= initial_ms".into(),
            ));
        }
        let retry = RetryPolicy {
            initial: Duration::from_millis(d.retry.initial_ms),
            max: Duration::from_millis(d.retry.max_ms),
            window: parse_duration(&d.retry.window).map_err(|m| (at("retry.window"), m))?,
        };
        if d.batch.max_events == 0 || d.batch.max_bytes == 0 {
            return Err((at("batch"), "max_events and max_bytes must be > 0".into()));
        }
        let batch = BatchPolicy {
            max_events: d.batch.max_events,
            max_bytes: d.batch.max_bytes,
            linger: Duration::from_millis(d.batch.linger_ms),
        };
        let rate = match d.rate {
            Some(r) if !(r.per_second > 0.0 && r.per_second.is_finite()) || r.burst == 0 => {
                return Err((at("rate"), "per_second and burst must be > 0".into()))
            }
            Some(r) => Some(RatePolicy {
                per_second: r.per_second,
                burst: r.burst,
            }),
            None => None,
        };
        if d.limits.memory_mb == 0 || d.limits.memory_mb > MAX_MEMORY_MB {
            return Err((
                at("limits.memory_mb"),
                format!("must be between 1 and {MAX_MEMORY_MB}"),
            ));
        }
        if d.limits.timeout_ms == 0 {
            return Err((at("limits.timeout_ms"), "must be > 0".into()));
        }
        let limits = Limits {
            memory_bytes: (d.limits.memory_mb as usize) << 20,
            timeout: Duration::from_millis(d.limits.timeout_ms),
        };
        let ordering = match d.ordering.as_str() {
            "none" => Ordering::None,
            "user" => Ordering::User,
            other => {
                return Err((
                    at("ordering"),
                    format!("`{other}`: expected \"none\" or \"user\""),
                ))
            }
        };
        for (j, t) in d.filter.types.iter().enumerate() {
            if !EVENT_TYPES.contains(&t.as_str()) {
                return Err((
                    at(&format!("filter.types[{j}]")),
                    format!("`{t}` is not one of {}", EVENT_TYPES.join(", ")),
                ));
            }
        }
        destinations.push(DestinationConfig {
            name: d.name,
            plugin: d.plugin,
            allowed_hosts,
            settings,
            retry,
            batch,
            rate,
            limits,
            ordering,
            filter: Filter {
                types: d.filter.types,
                events: d.filter.events,
            },
        });
    }

    Ok(Config {
        listen,
        admin_token: Some(raw.server.admin_token).filter(|t| !t.is_empty()),
        store: StoreConfig {
            kind,
            path: resolve(raw.store.path),
            dedup_window,
            credentials_file: raw.store.credentials_file.map(resolve),
            retention,
        },
        plugins_dir: resolve(raw.plugins.dir),
        sources,
        destinations,
    })
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}
