//! The configuration file as written: one struct per table, `deny_unknown_fields`,
//! one doc comment per key (the key names are a contract: the book's
//! `operating/configuration.md` documents them, checked by `docs/check.mjs`), and the defaults.
//! [`super::Config::parse`] validates these into runtime types.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::Ordering;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    /// Where ingest, admin and health listen.
    #[serde(default)]
    pub(super) server: RawServer,
    /// The durable store.
    #[serde(default)]
    pub(super) store: RawStore,
    /// Where destination components are found.
    #[serde(default)]
    pub(super) plugins: RawPlugins,
    /// Write keys that may send events.
    #[serde(default)]
    pub(super) sources: Vec<RawSource>,
    /// Where events go.
    #[serde(default)]
    pub(super) destinations: Vec<RawDestination>,
    /// Sandboxed functions that change or drop events before a destination
    /// (each destination lists the ones it applies, in order).
    #[serde(default)]
    pub(super) transforms: Vec<RawTransform>,
    /// How the host logs.
    #[serde(default)]
    pub(super) log: RawLog,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    /// `text` (the default: one human-readable line per event) or `json`
    /// (one JSON object per line, for a log pipeline).
    #[serde(default)]
    pub(super) format: Option<String>,
    /// The least severe level logged (`error`, `warn`, `info`, `debug`, `trace`),
    /// or a filter in `RUST_LOG` syntax (`info,switchyard::dispatch=debug`).
    /// `RUST_LOG`, when set, wins. Default: `info`.
    #[serde(default)]
    pub(super) level: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    /// `host:port` of the HTTP listener (ingest, admin, health).
    #[serde(default = "default_listen")]
    pub(super) listen: String,
    /// Bearer token of the `/admin/` API and the status page: at least 16
    /// characters, or `"generate"` (a random one made at first start, kept in
    /// the store's directory as `admin-token` and printed once); empty
    /// disables the admin API.
    #[serde(default)]
    pub(super) admin_token: String,
    /// Host names (besides IP addresses and `localhost`) under which the admin
    /// API, the status page and `/metrics` answer: a request naming another
    /// `Host` is refused, so a web page cannot reach them by rebinding its own
    /// name to this address.
    #[serde(default)]
    pub(super) admin_hosts: Vec<String>,
    /// Proxies (addresses or CIDR ranges) whose `X-Forwarded-For` and
    /// `X-Forwarded-Proto` are believed; empty trusts none.
    #[serde(default)]
    pub(super) trusted_proxies: Vec<String>,
    /// Longest wait for a request's headers, and between requests on a kept-alive
    /// connection (`"10s"`).
    #[serde(default)]
    pub(super) header_timeout: Option<String>,
    /// Longest time to read and answer one request, body included (`"30s"`).
    #[serde(default)]
    pub(super) request_timeout: Option<String>,
    /// Most open connections (1,024); more are closed as soon as accepted.
    #[serde(default)]
    pub(super) max_connections: Option<usize>,
    /// Most open connections from one client address (256); more are closed
    /// as soon as accepted. Trusted proxies are not limited.
    #[serde(default)]
    pub(super) max_connections_per_ip: Option<usize>,
    /// `host:port` of a second listener serving `/metrics` (and the probes)
    /// without the admin token, for a private network; unset: `/metrics` is on
    /// the main listener only, with the admin token.
    #[serde(default)]
    pub(super) metrics_listen: Option<String>,
    /// Apply the config file again whenever it changes, as SIGHUP does.
    #[serde(default)]
    pub(super) watch_config: bool,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            admin_token: String::new(),
            admin_hosts: Vec::new(),
            trusted_proxies: Vec::new(),
            header_timeout: None,
            request_timeout: None,
            max_connections: None,
            max_connections_per_ip: None,
            metrics_listen: None,
            watch_config: false,
        }
    }
}

fn default_dead_letter_retention() -> String {
    "30d".into()
}

pub(super) fn default_listen() -> String {
    "127.0.0.1:8088".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    /// `embedded` (the default) or `nats`.
    #[serde(default)]
    pub(super) kind: RawStoreKind,
    /// Directory of the embedded store.
    #[serde(default = "default_store_path")]
    pub(super) path: PathBuf,
    /// NATS server URL, for `kind = "nats"` (user and password may be in the URL).
    #[serde(default)]
    pub(super) url: Option<String>,
    /// NATS credentials (`.creds`) file, for `kind = "nats"`.
    #[serde(default)]
    pub(super) credentials_file: Option<PathBuf>,
    /// How long a `messageId` is remembered for deduplication.
    #[serde(default = "default_dedup_window")]
    pub(super) dedup_window: String,
    /// How long delivered events stay in the embedded store's log for later
    /// replays (`"0s"`, the default: reclaimed once every destination passed them).
    #[serde(default = "default_retention")]
    pub(super) retention: String,
    /// How long dead letters are kept before they are deleted (`"30d"`, the
    /// default; `"0s"`: until purged or replayed), so they cannot fill the disk.
    #[serde(default = "default_dead_letter_retention")]
    pub(super) dead_letter_retention: String,
    /// How long a host holds a NATS job it took without a sign of life before
    /// the server hands it to another host (`kind = "nats"` only); by default
    /// twice the longest destination timeout plus 30 s. While a batch lingers,
    /// waits for rate tokens or is in flight, the host renews the lease.
    #[serde(default)]
    pub(super) ack_wait: Option<String>,
    /// Replicas of the NATS streams (`kind = "nats"` only; 1 to 5, default 1).
    /// On a JetStream cluster, 3 keeps every acknowledged event through the
    /// loss of a server (the book, `operating/choosing-a-store.md`).
    #[serde(default)]
    pub(super) replicas: Option<usize>,
}

impl Default for RawStore {
    fn default() -> Self {
        Self {
            kind: RawStoreKind::default(),
            path: default_store_path(),
            url: None,
            credentials_file: None,
            dedup_window: default_dedup_window(),
            retention: default_retention(),
            dead_letter_retention: default_dead_letter_retention(),
            ack_wait: None,
            replicas: None,
        }
    }
}

/// `[store] kind`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawStoreKind {
    /// SQLite under `path`.
    #[default]
    Embedded,
    /// NATS JetStream at `url`.
    Nats,
}

pub(super) fn default_store_path() -> PathBuf {
    "./data".into()
}
pub(super) fn default_dedup_window() -> String {
    "24h".into()
}
pub(super) fn default_retention() -> String {
    "0s".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPlugins {
    /// Directory of `*.wasm` destination components; the file stem is the plugin name.
    #[serde(default = "default_plugins_dir")]
    pub(super) dir: PathBuf,
    /// Most component instances alive at once, across all destinations (each
    /// batch in flight is one); by default the sum of the destinations' largest
    /// concurrency, at most 1,024.
    #[serde(default)]
    pub(super) max_instances: Option<u32>,
}

impl Default for RawPlugins {
    fn default() -> Self {
        Self {
            dir: default_plugins_dir(),
            max_instances: None,
        }
    }
}

pub(super) fn default_plugins_dir() -> PathBuf {
    "./plugins".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    /// Name of the source, stored with each event.
    pub(super) name: String,
    /// The write key SDKs send (HTTP Basic user name, or `writeKey` in the body).
    pub(super) write_key: String,
    /// Origins whose pages may send this source's events from a browser
    /// (`https://app.example.com`, or `*` for any); empty allows none.
    #[serde(default)]
    pub(super) allowed_origins: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDestination {
    /// Unique name; also the key honoured in an event's `integrations` object.
    pub(super) name: String,
    /// Plugin (component file stem in the plugins directory) that delivers.
    pub(super) plugin: String,
    /// Outbound HTTP allowlist: `scheme://host[:port]`, `*.` wildcards.
    #[serde(default)]
    pub(super) allowed_hosts: Vec<String>,
    /// Settings handed to the plugin as JSON.
    #[serde(default = "empty_table")]
    pub(super) settings: toml::Value,
    /// Retry policy.
    #[serde(default)]
    pub(super) retry: RawRetry,
    /// Batching.
    #[serde(default)]
    pub(super) batch: RawBatch,
    /// Token-bucket rate limit; none = unlimited.
    #[serde(default)]
    pub(super) rate: Option<RawRate>,
    /// Batches in flight: a number (fixed) or `{ adaptive = true, max = N }`
    /// (the default, with `max` 16). Read as TOML so that `validate.rs` can name
    /// what is wrong with either form.
    #[serde(default)]
    pub(super) concurrency: Option<toml::Value>,
    /// Sandbox limits.
    #[serde(default)]
    pub(super) limits: RawLimits,
    /// `none` or `user`.
    #[serde(default)]
    pub(super) ordering: Ordering,
    /// Which events this destination receives.
    #[serde(default)]
    pub(super) filter: RawFilter,
    /// Names of `[[transforms]]` applied to each event, in this order, before
    /// `deliver`; empty (the default) applies none.
    #[serde(default)]
    pub(super) transforms: Vec<String>,
    /// Secrets its settings name as `"${secret:NAME}"`: the guest reads an
    /// opaque token, and the host puts the value into requests to the
    /// secret's `hosts` only (the book, `concepts/secrets.md`).
    #[serde(default)]
    pub(super) secrets: std::collections::BTreeMap<String, RawSecret>,
    /// For tests and dry runs only: vendor origins (or `*`) whose requests go
    /// to a receiver on loopback instead, after the allowlist checked them as
    /// written. Off unless given; the host warns at start.
    #[serde(default)]
    pub(super) vendor_origins: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTransform {
    /// Unique name; what a destination's `transforms` lists.
    pub(super) name: String,
    /// Plugin (component file stem in the plugins directory) implementing the
    /// `transform` world.
    pub(super) plugin: String,
    /// Settings handed to the plugin as JSON.
    #[serde(default = "empty_table")]
    pub(super) settings: toml::Value,
    /// Sandbox limits of one call.
    #[serde(default)]
    pub(super) limits: RawLimits,
    /// Hosts its `http` import may reach, for lookups (`scheme://host[:port]`,
    /// `*.` wildcards); empty (the default) denies every request.
    #[serde(default)]
    pub(super) allowed_hosts: Vec<String>,
}

fn empty_table() -> toml::Value {
    toml::Value::Table(Default::default())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetry {
    /// First backoff in milliseconds (`initial_ms = 1000`, or a string).
    #[serde(default)]
    pub(super) initial_ms: Option<Millis>,
    /// The same as a duration string (`initial = "1s"`).
    #[serde(default)]
    pub(super) initial: Option<Spelled>,
    /// Largest backoff in milliseconds (`max_ms = 600000`, or a string).
    #[serde(default)]
    pub(super) max_ms: Option<Millis>,
    /// The same as a duration string (`max = "10m"`).
    #[serde(default)]
    pub(super) max: Option<Spelled>,
    /// How long after its first attempt an event is given up into dead letters.
    #[serde(default = "default_window")]
    pub(super) window: String,
}

impl Default for RawRetry {
    fn default() -> Self {
        Self {
            initial_ms: None,
            initial: None,
            max_ms: None,
            max: None,
            window: default_window(),
        }
    }
}
pub(super) fn default_initial_ms() -> Millis {
    Millis(Duration::from_secs(1))
}
pub(super) fn default_max_ms() -> Millis {
    Millis(Duration::from_secs(600))
}
pub(super) fn default_window() -> String {
    "4h".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBatch {
    /// Most events per `deliver` call (also capped by the plugin's `max-batch`).
    #[serde(default = "default_max_events")]
    pub(super) max_events: u32,
    /// Most bytes of event JSON per call.
    #[serde(default = "default_max_bytes")]
    pub(super) max_bytes: u64,
    /// How long a partial batch may wait for more events, in milliseconds
    /// (`linger_ms = 200`, or a string).
    #[serde(default)]
    pub(super) linger_ms: Option<Millis>,
    /// The same as a duration string (`linger = "200ms"`).
    #[serde(default)]
    pub(super) linger: Option<Spelled>,
}

impl Default for RawBatch {
    fn default() -> Self {
        Self {
            max_events: default_max_events(),
            max_bytes: default_max_bytes(),
            linger_ms: None,
            linger: None,
        }
    }
}
pub(super) fn default_max_events() -> u32 {
    100
}
pub(super) fn default_max_bytes() -> u64 {
    512_000
}
pub(super) fn default_linger_ms() -> Millis {
    Millis(Duration::from_millis(200))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRate {
    /// Sustained events per second.
    pub(super) per_second: f64,
    /// Largest burst, in events.
    pub(super) burst: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    /// Linear memory cap of one instance, in MiB.
    #[serde(default = "default_memory_mb")]
    pub(super) memory_mb: u64,
    /// Wall-clock deadline of one call into the component, in milliseconds
    /// (`timeout_ms = 10000`, or a string).
    #[serde(default)]
    pub(super) timeout_ms: Option<Millis>,
    /// The same as a duration string (`timeout = "10s"`).
    #[serde(default)]
    pub(super) timeout: Option<Spelled>,
}

impl Default for RawLimits {
    fn default() -> Self {
        Self {
            memory_mb: default_memory_mb(),
            timeout_ms: None,
            timeout: None,
        }
    }
}
pub(super) fn default_memory_mb() -> u64 {
    64
}
pub(super) fn default_timeout_ms() -> Millis {
    Millis(Duration::from_secs(10))
}

/// A duration under a key without a unit (`initial`, `max`, `linger`,
/// `timeout`): a string only. A bare number there is refused rather than read
/// as milliseconds, since `initial = 3` most likely meant three seconds.
#[derive(Debug, Clone, Copy)]
pub(super) struct Spelled(pub(super) Duration);

impl<'de> Deserialize<'de> for Spelled {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Spelled;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a duration string such as \"500ms\" or \"3s\"")
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Spelled, E> {
                Err(E::custom(format!(
                    "a bare number ({n}) has no unit here: write a duration string such as \"{n}s\" or \"{n}ms\", or use the key ending in _ms for milliseconds"
                )))
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Spelled, E> {
                self.visit_i64(n as i64)
            }
            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Spelled, E> {
                Err(E::custom(format!(
                    "a bare number ({n}) has no unit here: write a duration string such as \"{n}s\""
                )))
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Spelled, E> {
                super::parse_duration(text).map(Spelled).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// The duration of a key given as `NAME_ms` or as `NAME` (not both), else `default`.
pub(super) fn either(
    ms: Option<Millis>,
    spelled: Option<Spelled>,
    default: Millis,
) -> Result<Duration, &'static str> {
    match (ms, spelled) {
        (Some(_), Some(_)) => {
            Err("given twice: use the key ending in _ms or the one without, not both")
        }
        (Some(m), None) => Ok(m.0),
        (None, Some(s)) => Ok(s.0),
        (None, None) => Ok(default.0),
    }
}

/// A duration written as an integer of milliseconds (the `_ms` keys) or as a
/// string (`"500ms"`, `"2s"`, `"10m"`), so every duration of the file can be a
/// string while the integer keys keep working.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Millis(pub(super) Duration);

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Millis;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "milliseconds (an integer) or a duration string such as \"500ms\" or \"2s\"",
                )
            }
            fn visit_u64<E: serde::de::Error>(self, ms: u64) -> Result<Millis, E> {
                Ok(Millis(Duration::from_millis(ms)))
            }
            fn visit_i64<E: serde::de::Error>(self, ms: i64) -> Result<Millis, E> {
                u64::try_from(ms)
                    .map(|ms| Millis(Duration::from_millis(ms)))
                    .map_err(|_| E::custom(format!("{ms} is negative: a duration is 0 or more")))
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Millis, E> {
                super::parse_duration(text).map(Millis).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFilter {
    /// Event types to keep (`track`, `identify`, ...); empty keeps all.
    #[serde(default)]
    pub(super) types: Vec<String>,
    /// `track` event names to keep; empty keeps all. Other types are unaffected.
    #[serde(default)]
    pub(super) events: Vec<String>,
}

/// One secret as written: `api_key = { from = "env:AMP_KEY", hosts = ["https://api2.amplitude.com"] }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSecret {
    /// Where the value is: `env:NAME` (an environment variable) or `file:PATH`
    /// (a file, relative to the config's folder; one trailing line break is
    /// dropped). Optional for a secret `refreshed_by` another: its first value
    /// then comes from the first refresh.
    #[serde(default)]
    pub(super) from: Option<String>,
    /// An OAuth2 access token: the secret (the refresh token) whose requests'
    /// answers give it new values (`imports/oauth.rs`).
    #[serde(default)]
    pub(super) refreshed_by: Option<String>,
    /// Where a request carrying the value may go (`scheme://host[:port]`, each
    /// named exactly); a request elsewhere that carries it is denied, and so is
    /// a redirect elsewhere.
    pub(super) hosts: Vec<String>,
}
