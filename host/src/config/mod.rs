//! Configuration: TOML text → validated [`Config`].
//!
//! Where it sits: read once by the CLI before anything starts. The structs of
//! `raw.rs` mirror the file exactly (`deny_unknown_fields`, one doc comment per
//! key: the key names are a contract, documented in the book's
//! `operating/configuration.md`, which `docs/check.mjs` holds to `raw.rs`); [`Config::parse`] expands `${ENV}` in string
//! values, and `validate.rs` turns every value into runtime types (durations,
//! allowlists, limits), one function per section, so the rest of the host never
//! sees raw text.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::allowlist::Allowlist;

/// Anything wrong with a configuration file, with where it is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{file}: cannot read")]
    Read {
        /// The file.
        file: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not TOML.
    #[error("{file}: {message}")]
    Syntax {
        /// The file.
        file: String,
        /// The parser's message, with the line.
        message: String,
    },
    /// A key is unknown, or a value is wrong.
    #[error("{file}{}: `{path}`: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        /// The file.
        file: String,
        /// The line of the key (or of the nearest table that holds it).
        line: Option<usize>,
        /// The key's path, e.g. `destinations[0].retry.window`.
        path: String,
        /// What is wrong, on one line.
        message: String,
    },
}

mod lines;
mod raw;
mod secrets;
mod table;
#[cfg(test)]
mod tests;
mod transforms;
mod validate;

use self::raw::{default_memory_mb, default_timeout_ms, RawConfig};

/// The largest linear memory a destination may ask for (the pooling allocator's slot size).
pub const MAX_MEMORY_MB: u64 = 512;

/// The prefix of a plugin name that names an entry of Segment's catalog
/// (`catalog:braze`, built on demand by `catalog/`).
pub const CATALOG_PREFIX: &str = "catalog:";

/// The file of plugin `name` in the plugins folder `dir` (`NAME.wasm`).
pub fn plugin_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.wasm"))
}

/// The catalog entry a plugin name names, if it names one (`catalog:braze` → `braze`).
pub fn catalog_entry(plugin: &str) -> Option<&str> {
    plugin.strip_prefix(CATALOG_PREFIX)
}

pub use self::validate::{ADMIN_TOKEN_FILE, MIN_ADMIN_TOKEN_CHARS};

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listener address (`[server] listen`).
    pub listen: String,
    /// Admin bearer token; `None` disables `/admin/`, unless
    /// `admin_token_file` says where to make one.
    pub admin_token: Option<String>,
    /// `admin_token = "generate"`: where the token is kept (made at first start
    /// when missing; read into `admin_token` when present).
    pub admin_token_file: Option<PathBuf>,
    /// Host names, besides IP addresses and `localhost`, that the admin API
    /// and the status page answer under (`[server] admin_hosts`), lower case.
    pub admin_hosts: Vec<String>,
    /// The store.
    pub store: StoreConfig,
    /// Directory of destination components.
    pub plugins_dir: PathBuf,
    /// Most component instances alive at once (`[plugins] max_instances`, or
    /// the sum of the destinations' largest concurrency, at most
    /// [`DEFAULT_MAX_INSTANCES`]).
    pub max_instances: u32,
    /// Write key → source name.
    pub sources: BTreeMap<String, String>,
    /// Write key → the origins whose pages may send with it (CORS).
    pub allowed_origins: BTreeMap<String, AllowedOrigins>,
    /// Proxies whose `X-Forwarded-*` headers are believed (`[server] trusted_proxies`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The listener's timeouts and connection limit (`[server]`).
    pub server_limits: crate::server::ServerLimits,
    /// Destinations in file order.
    pub destinations: Vec<DestinationConfig>,
    /// Transformations in file order (`[[transforms]]`).
    pub transforms: Vec<TransformConfig>,
    /// The unauthenticated `/metrics` listener (`[server] metrics_listen`).
    pub metrics_listen: Option<String>,
    /// Reload when the config file changes (`[server] watch_config`).
    pub watch_config: bool,
    /// How the host logs (`[log]`).
    pub log: LogConfig,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// One JSON object per line instead of text.
    pub json: bool,
    /// The filter (`info`, or `RUST_LOG` syntax).
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            json: false,
            level: "info".into(),
        }
    }
}

/// The origins a source accepts browser requests from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedOrigins {
    /// `*`: any origin.
    pub any: bool,
    /// Exact origins (`scheme://host[:port]`, lower case).
    pub exact: Vec<String>,
}

impl AllowedOrigins {
    /// Whether a page of `origin` may send.
    pub fn allows(&self, origin: &str) -> bool {
        self.any || self.exact.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }

    /// Whether any origin is allowed at all.
    pub fn is_empty(&self) -> bool {
        !self.any && self.exact.is_empty()
    }
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
    /// How long dead letters are kept (`None`: until purged or replayed).
    pub dead_letter_retention: Option<Duration>,
    /// The lease of a job taken from NATS (`None`: derived from the timeouts).
    pub ack_wait: Option<Duration>,
    /// Replicas of the NATS streams (1 on the embedded store).
    pub replicas: usize,
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
    /// Batches in flight.
    pub concurrency: Concurrency,
    /// Sandbox limits.
    pub limits: Limits,
    /// Per-user ordering.
    pub ordering: Ordering,
    /// Routing filter.
    pub filter: Filter,
    /// Names of the transformations applied before `deliver`, in order; each
    /// names one of [`Config::transforms`].
    pub transforms: Vec<String>,
    /// Secrets the settings name as `${secret:NAME}`, kept from the guest.
    pub secrets: crate::imports::secrets::Secrets,
    /// Vendor origins sent to loopback instead (`vendor_origins`; tests and
    /// dry runs only, empty by default).
    pub vendor_origins: crate::imports::reroute::Reroute,
}

/// One transformation (`[[transforms]]`), ready to run.
#[derive(Debug, Clone)]
pub struct TransformConfig {
    /// Unique name.
    pub name: String,
    /// Plugin name (component file stem).
    pub plugin: String,
    /// Settings as a JSON object, handed to the plugin.
    pub settings: serde_json::Value,
    /// Sandbox limits of one call.
    pub limits: Limits,
    /// Outbound HTTP allowlist (empty: every request denied).
    pub allowed_hosts: Allowlist,
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

/// The largest adaptive concurrency when `max` is not given.
pub const DEFAULT_MAX_CONCURRENCY: u32 = 16;

/// The most batches in flight that `concurrency` may ask for.
pub const MAX_CONCURRENCY: u32 = 1_024;

/// The cap of the default `[plugins] max_instances`.
pub const DEFAULT_MAX_INSTANCES: u32 = 1_024;

/// How many batches of one destination may be in flight at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    /// `concurrency = N`: always up to N.
    Fixed(u32),
    /// `concurrency = { adaptive = true, max = N }` (the default): the limit
    /// follows the destination's round-trip times and back-pressure, between 1
    /// and `max` (see `dispatch/concurrency.rs`).
    Adaptive {
        /// The ceiling.
        max: u32,
    },
}

impl Default for Concurrency {
    fn default() -> Self {
        Concurrency::Adaptive {
            max: DEFAULT_MAX_CONCURRENCY,
        }
    }
}

impl Concurrency {
    /// The most batches that can ever be in flight.
    pub fn max(&self) -> u32 {
        match *self {
            Concurrency::Fixed(n) | Concurrency::Adaptive { max: n } => n,
        }
    }
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
            timeout: default_timeout_ms().0,
        }
    }
}

/// Per-user ordering (`ordering = "none"` or `"user"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ordering {
    /// Events flow independently.
    #[default]
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

    /// [`Config::load`], finding every error it can ([`Config::parse_all`]).
    pub fn load_all(file: &Path) -> Result<Config, Vec<ConfigError>> {
        let text = std::fs::read_to_string(file).map_err(|source| {
            vec![ConfigError::Read {
                file: file.display().to_string(),
                source,
            }]
        })?;
        let base = file.parent().unwrap_or(Path::new("."));
        Self::parse_all(&text, &file.display().to_string(), base)
    }

    /// Validate TOML text; `file` names it in errors, relative paths resolve against `base`.
    pub fn parse(text: &str, file: &str, base: &Path) -> Result<Config, ConfigError> {
        let value: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            file: file.into(),
            message: e.to_string().trim_end().replace('\n', " | "),
        })?;
        Self::parse_table(value, text, file, base, None)
    }

    /// [`Config::parse`], and when the text is refused, every error that can be
    /// found: the sections besides `[[destinations]]` and each destination are
    /// checked on their own, so one bad table does not hide the others (`switchyard
    /// check`). Errors that only the whole file shows (a name used twice) come alone.
    pub fn parse_all(text: &str, file: &str, base: &Path) -> Result<Config, Vec<ConfigError>> {
        let first = match Self::parse(text, file, base) {
            Ok(config) => return Ok(config),
            Err(e) => e,
        };
        let Ok(table) = toml::from_str::<toml::Table>(text) else {
            return Err(vec![first]);
        };
        let mut errors: Vec<ConfigError> = Vec::new();
        let note = |errors: &mut Vec<ConfigError>, e: ConfigError| {
            if !errors.iter().any(|seen| seen.to_string() == e.to_string()) {
                errors.push(e);
            }
        };
        let mut rest = table.clone();
        let destinations = match rest.remove("destinations") {
            Some(toml::Value::Array(all)) => all,
            _ => Vec::new(),
        };
        if let Err(e) = Self::parse_table(rest, text, file, base, None) {
            note(&mut errors, e);
        }
        for (i, d) in destinations.into_iter().enumerate() {
            let mut one = table.clone();
            one.insert("destinations".into(), toml::Value::Array(vec![d]));
            if let Err(e) = Self::parse_table(one, text, file, base, Some(i)) {
                note(&mut errors, e);
            }
        }
        if errors.is_empty() {
            errors.push(first);
        }
        Err(errors)
    }

    /// Validate a parsed table of `text`; with `only`, the table holds that
    /// destination alone (as `destinations[0]`) and errors name it by its index.
    fn parse_table(
        mut value: toml::Table,
        text: &str,
        file: &str,
        base: &Path,
        only: Option<usize>,
    ) -> Result<Config, ConfigError> {
        let invalid = |path: String, message: String| {
            let path = match (only, path.strip_prefix("destinations[0]")) {
                (Some(i), Some(rest)) => format!("destinations[{i}]{rest}"),
                _ => path,
            };
            ConfigError::Invalid {
                file: file.into(),
                line: lines::line_of(text, &path),
                // The deserializer adds "in `a.b`", which the path already says.
                message: message
                    .split("\nin `")
                    .next()
                    .unwrap_or_default()
                    .trim_end()
                    .replace('\n', " | "),
                path,
            }
        };
        expand_env_table(&mut value, "").map_err(|(path, message)| invalid(path, message))?;
        let raw: RawConfig = serde_path_to_error::deserialize(toml::Value::Table(value))
            .map_err(|e| invalid(e.path().to_string(), e.inner().to_string()))?;
        validate::validate(raw, base).map_err(|(path, message)| invalid(path, message))
    }

    /// The destination of this name.
    pub fn destination(&self, name: &str) -> Option<&DestinationConfig> {
        self.destinations.iter().find(|d| d.name == name)
    }

    /// The transformation of this name.
    pub fn transform(&self, name: &str) -> Option<&TransformConfig> {
        self.transforms.iter().find(|t| t.name == name)
    }

    /// The transformations `dest` applies, in order.
    pub fn chain_of(&self, dest: &DestinationConfig) -> Vec<TransformConfig> {
        dest.transforms
            .iter()
            .filter_map(|name| self.transform(name).cloned())
            .collect()
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

/// `${NAME}` → the value of `NAME`; `$${` escapes a literal `${`; a
/// `${secret:NAME}` is left as it is (a destination's secret, see `secrets.rs`).
pub fn expand_env(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if tail.starts_with(crate::imports::secrets::PLACEHOLDER.0) {
            // `${secret:NAME}` is for the host to fill at send time, not from the environment.
            out.push_str("${");
            rest = &tail[2..];
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
