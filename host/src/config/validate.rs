//! Validation: the file as written (`raw.rs`) into the runtime types of
//! [`super::Config`], one function per section. Every error is the key's path
//! and a message; [`super::Config::parse`] adds the file.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::{
    default_initial_ms, default_linger_ms, default_max_ms, either, RawBatch, RawConfig,
    RawDestination, RawFilter, RawLog, RawRate, RawRetry, RawServer, RawSource, RawStore,
    RawStoreKind,
};
use super::table::{limits, valid_name, At};
use super::{
    parse_duration, AllowedOrigins, BatchPolicy, Concurrency, Config, DestinationConfig, Filter,
    Invalid, RatePolicy, RetryPolicy, StoreConfig, StoreKind, DEFAULT_MAX_INSTANCES,
    MAX_CONCURRENCY,
};
use crate::allowlist::Allowlist;
use crate::event_type::EventType;

/// The whole file; relative paths resolve against `base`.
pub(super) fn validate(raw: RawConfig, base: &Path) -> Result<Config, Invalid> {
    let resolve = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
    let listen = listen(&raw.server)?;
    let store = store(raw.store, resolve)?;
    let sources = sources(&raw.sources)?;
    let allowed_origins = allowed_origins(&raw.sources)?;
    let trusted_proxies = trusted_proxies(&raw.server.trusted_proxies)?;
    let server_limits = server_limits(&raw.server, &trusted_proxies)?;
    let destinations = destinations(raw.destinations, base)?;
    // On NATS the stream drops an event at `max_age` whether delivered or not.
    if matches!(store.kind, StoreKind::Nats(_)) && !store.retention.is_zero() {
        if let Some(d) = destinations
            .iter()
            .find(|d| d.retry.window > store.retention)
        {
            return Err((
                "store.retention".into(),
                format!(
                    "on NATS the stream removes an event once it is this old, delivered or not: \
                     give at least the longest retry window (destination `{}`: {})",
                    d.name,
                    humantime::format_duration(d.retry.window)
                ),
            ));
        }
    }
    // Refreshed OAuth2 tokens are kept in the store's folder across restarts.
    for d in &destinations {
        d.secrets
            .keep_refreshed_in(&store.path.join("oauth").join(&d.name));
    }
    let transforms = super::transforms::transforms(raw.transforms, &destinations)?;
    let max_instances = max_instances(raw.plugins.max_instances, &destinations)?;
    let metrics_listen = match &raw.server.metrics_listen {
        Some(addr) => Some(host_port("server.metrics_listen", addr)?),
        None => None,
    };
    let log = log(&raw.log)?;
    let (admin_token, admin_token_file) = admin_token(&raw.server.admin_token, &store.path)?;
    let admin_hosts = admin_hosts(&raw.server.admin_hosts)?;
    Ok(Config {
        listen,
        admin_token,
        admin_token_file,
        admin_hosts,
        store,
        plugins_dir: resolve(raw.plugins.dir),
        max_instances,
        sources,
        allowed_origins,
        trusted_proxies,
        server_limits,
        destinations,
        transforms,
        metrics_listen,
        watch_config: raw.server.watch_config,
        log,
    })
}

/// Shortest admin token taken: a guessable one would open everything.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 16;

/// The file `admin_token = "generate"` keeps its token in, in the store's directory.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// `[server] admin_token`: the token, and where a generated one is kept.
fn admin_token(raw: &str, store: &Path) -> Result<(Option<String>, Option<PathBuf>), Invalid> {
    let at = || "server.admin_token".to_string();
    match raw {
        "" => Ok((None, None)),
        "generate" => {
            let file = store.join(ADMIN_TOKEN_FILE);
            match std::fs::read_to_string(&file) {
                Ok(text) => {
                    let token = text.trim().to_string();
                    if token.chars().count() < MIN_ADMIN_TOKEN_CHARS {
                        return Err((
                            at(),
                            format!(
                                "{} holds fewer than {MIN_ADMIN_TOKEN_CHARS} characters: \
                                 delete it, and a new token is made at the next start",
                                file.display()
                            ),
                        ));
                    }
                    Ok((Some(token), Some(file)))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((None, Some(file))),
                Err(e) => Err((at(), format!("cannot read {}: {e}", file.display()))),
            }
        }
        token if token.chars().count() < MIN_ADMIN_TOKEN_CHARS => Err((
            at(),
            format!(
                "is {} characters; give at least {MIN_ADMIN_TOKEN_CHARS} (`openssl rand -hex 16` \
                 makes one), or \"generate\" to have one made at first start",
                token.chars().count()
            ),
        )),
        token => Ok((Some(token.to_string()), None)),
    }
}

/// `[server] admin_hosts`: plain host names, kept in lower case.
fn admin_hosts(raw: &[String]) -> Result<Vec<String>, Invalid> {
    raw.iter()
        .enumerate()
        .map(|(i, h)| {
            let name = h.trim_end_matches('.').to_ascii_lowercase();
            let plain = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
            if plain {
                Ok(name)
            } else {
                Err((
                    format!("server.admin_hosts[{i}]"),
                    format!("`{h}` is not a host name (no scheme, port or path)"),
                ))
            }
        })
        .collect()
}

/// `[log]`: the format and the level filter.
fn log(raw: &RawLog) -> Result<super::LogConfig, Invalid> {
    let json = match raw.format.as_deref() {
        None | Some("text") => false,
        Some("json") => true,
        Some(other) => {
            return Err((
                "log.format".into(),
                format!("`{other}` is not a log format: expected \"text\" or \"json\""),
            ))
        }
    };
    let level = raw.level.clone().unwrap_or_else(|| "info".into());
    if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&level) {
        return Err((
            "log.level".into(),
            format!("`{level}` is not a level (error, warn, info, debug, trace) or a filter: {e}"),
        ));
    }
    Ok(super::LogConfig { json, level })
}

/// `[server] header_timeout`, `request_timeout`, `max_connections`.
fn server_limits(
    raw: &RawServer,
    trusted_proxies: &[ipnet::IpNet],
) -> Result<crate::server::ServerLimits, Invalid> {
    let defaults = crate::server::ServerLimits::default();
    let duration =
        |key: &str, v: &Option<String>, default: Duration| -> Result<Duration, Invalid> {
            match v {
                None => Ok(default),
                Some(text) => {
                    let d = parse_duration(text).map_err(|m| (format!("server.{key}"), m))?;
                    if d.is_zero() {
                        return Err((format!("server.{key}"), "must be more than 0s".into()));
                    }
                    Ok(d)
                }
            }
        };
    let max_connections = match raw.max_connections {
        Some(0) => return Err(("server.max_connections".into(), "must be > 0".into())),
        Some(n) => n,
        None => defaults.max_connections,
    };
    let max_connections_per_ip = match raw.max_connections_per_ip {
        Some(0) => return Err(("server.max_connections_per_ip".into(), "must be > 0".into())),
        Some(n) => n,
        None => defaults.max_connections_per_ip,
    };
    Ok(crate::server::ServerLimits {
        header_timeout: duration(
            "header_timeout",
            &raw.header_timeout,
            defaults.header_timeout,
        )?,
        request_timeout: duration(
            "request_timeout",
            &raw.request_timeout,
            defaults.request_timeout,
        )?,
        max_connections,
        max_connections_per_ip,
        unlimited_peers: trusted_proxies.to_vec(),
    })
}

/// `[[sources]] allowed_origins`: `*` or `scheme://host[:port]`, per write key.
fn allowed_origins(raw: &[RawSource]) -> Result<BTreeMap<String, AllowedOrigins>, Invalid> {
    let mut out = BTreeMap::new();
    for (i, s) in raw.iter().enumerate() {
        let mut origins = AllowedOrigins::default();
        for (j, o) in s.allowed_origins.iter().enumerate() {
            let o = o.trim().trim_end_matches('/');
            if o == "*" {
                origins.any = true;
                continue;
            }
            let valid = o.split_once("://").is_some_and(|(scheme, rest)| {
                matches!(scheme, "http" | "https")
                    && !rest.is_empty()
                    && !rest.contains(['/', '?', '#', '*', ' '])
            });
            if !valid {
                return Err((
                    format!("sources[{i}].allowed_origins[{j}]"),
                    format!("`{o}` is not an origin: expected \"*\" or scheme://host[:port], e.g. \"https://app.example.com\""),
                ));
            }
            origins.exact.push(o.to_ascii_lowercase());
        }
        out.insert(s.write_key.clone(), origins);
    }
    Ok(out)
}

/// `[server] trusted_proxies`: addresses or CIDR ranges.
fn trusted_proxies(raw: &[String]) -> Result<Vec<ipnet::IpNet>, Invalid> {
    raw.iter()
        .enumerate()
        .map(|(i, p)| {
            let p = p.trim();
            p.parse::<ipnet::IpNet>()
                .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    (
                        format!("server.trusted_proxies[{i}]"),
                        format!("`{p}` is not an address or a CIDR range (e.g. \"10.0.0.0/8\")"),
                    )
                })
        })
        .collect()
}

/// `[server] listen`: `host:port`.
fn listen(server: &RawServer) -> Result<String, Invalid> {
    host_port("server.listen", &server.listen)
}

/// A listener address.
fn host_port(key: &str, listen: &str) -> Result<String, Invalid> {
    if listen.parse::<std::net::SocketAddr>().is_err() && !listen.contains(':') {
        return Err((key.into(), format!("`{listen}` is not host:port")));
    }
    Ok(listen.to_string())
}

/// `[store]`: the backend (a NATS store needs its `url`), paths, the dedup window
/// and the retention (on NATS, the events stream's `max_age`).
fn store(raw: RawStore, resolve: impl Fn(PathBuf) -> PathBuf) -> Result<StoreConfig, Invalid> {
    let kind = match raw.kind {
        RawStoreKind::Embedded => StoreKind::Embedded,
        RawStoreKind::Nats => StoreKind::Nats(raw.url.ok_or_else(|| {
            (
                "store.url".to_string(),
                "required when kind = \"nats\"".to_string(),
            )
        })?),
    };
    let dedup_window =
        parse_duration(&raw.dedup_window).map_err(|m| ("store.dedup_window".into(), m))?;
    let retention = parse_duration(&raw.retention).map_err(|m| ("store.retention".into(), m))?;
    let dead_letter_retention = parse_duration(&raw.dead_letter_retention)
        .map_err(|m| ("store.dead_letter_retention".to_string(), m))?;
    let dead_letter_retention = Some(dead_letter_retention).filter(|d| !d.is_zero());
    let ack_wait = raw
        .ack_wait
        .map(|t| parse_duration(&t).map_err(|m| ("store.ack_wait".to_string(), m)))
        .transpose()?;
    match ack_wait {
        Some(_) if kind == StoreKind::Embedded => {
            return Err((
                "store.ack_wait".into(),
                "is the lease of a NATS job; the embedded store has none".into(),
            ))
        }
        Some(d) if d < Duration::from_secs(1) => {
            return Err(("store.ack_wait".into(), "must be at least 1s".into()))
        }
        _ => {}
    }
    let replicas = match raw.replicas {
        Some(_) if kind == StoreKind::Embedded => {
            return Err((
                "store.replicas".into(),
                "is the replica count of the NATS streams; the embedded store has none".into(),
            ))
        }
        Some(n) if !(1..=5).contains(&n) => {
            return Err(("store.replicas".into(), "must be 1 to 5".into()))
        }
        Some(n) => n,
        None => 1,
    };
    Ok(StoreConfig {
        kind,
        replicas,
        path: resolve(raw.path),
        dedup_window,
        credentials_file: raw.credentials_file.map(resolve),
        retention,
        dead_letter_retention,
        ack_wait,
    })
}

/// `[[sources]]`: write key → source name; names and keys are unique and not empty.
fn sources(raw: &[RawSource]) -> Result<BTreeMap<String, String>, Invalid> {
    let mut sources = BTreeMap::new();
    let mut names = HashSet::new();
    for (i, s) in raw.iter().enumerate() {
        // The name is half of a NATS message id (`source/messageId`) and a path
        // segment of the admin API: a `/` would make both ambiguous.
        if !valid_source_name(&s.name) || !names.insert(s.name.clone()) {
            return Err((
                format!("sources[{i}].name"),
                format!(
                    "`{}` is empty, used twice, longer than 64 characters, or holds a `/` or a control character",
                    s.name
                ),
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
    Ok(sources)
}

/// `[[destinations]]`, in file order; names are unique.
fn destinations(raw: Vec<RawDestination>, base: &Path) -> Result<Vec<DestinationConfig>, Invalid> {
    let mut names = HashSet::new();
    raw.into_iter()
        .enumerate()
        .map(|(i, d)| {
            let at = At(format!("destinations[{i}]"));
            if !valid_name(&d.name) || !names.insert(d.name.clone()) {
                return Err(at.err(
                    "name",
                    format!(
                        "`{}` is empty, used twice, or not made of letters, digits, `-` and `_`",
                        d.name
                    ),
                ));
            }
            destination(&at, d, base)
        })
        .collect()
}

/// One `[[destinations]]` table.
fn destination(at: &At, d: RawDestination, base: &Path) -> Result<DestinationConfig, Invalid> {
    let plugin_name = super::catalog_entry(&d.plugin).unwrap_or(&d.plugin);
    if !valid_name(plugin_name) {
        return Err(at.err("plugin", format!("`{}` is not a plugin name", d.plugin)));
    }
    let allowed_hosts = Allowlist::parse(&d.allowed_hosts)
        .map_err(|(j, m)| at.err(&format!("allowed_hosts[{j}]"), m))?;
    let settings =
        serde_json::to_value(&d.settings).map_err(|e| at.err("settings", e.to_string()))?;
    if !settings.is_object() {
        return Err(at.err("settings", "must be a table"));
    }
    let secrets = super::secrets::secrets(at, d.secrets, &settings, base)?;
    let vendor_origins = crate::imports::reroute::Reroute::parse(&d.vendor_origins)
        .map_err(|(key, why)| at.err(&format!("vendor_origins.\"{key}\""), why))?;
    Ok(DestinationConfig {
        secrets,
        vendor_origins,
        allowed_hosts,
        settings,
        retry: retry(at, &d.retry)?,
        batch: batch(at, &d.batch)?,
        rate: d.rate.as_ref().map(|r| rate(at, r)).transpose()?,
        concurrency: d
            .concurrency
            .as_ref()
            .map(|c| concurrency(at, c))
            .transpose()?
            .unwrap_or_default(),
        limits: limits(at, &d.limits)?,
        ordering: d.ordering,
        filter: filter(at, d.filter)?,
        transforms: super::transforms::chain(&at.0, d.transforms)?,
        name: d.name,
        plugin: d.plugin,
    })
}

/// `retry = { initial_ms, max_ms, window }` (or `initial`, `max`).
fn retry(at: &At, r: &RawRetry) -> Result<RetryPolicy, Invalid> {
    let initial = either(r.initial_ms, r.initial, default_initial_ms())
        .map_err(|m| at.err("retry.initial", m))?;
    let max = either(r.max_ms, r.max, default_max_ms()).map_err(|m| at.err("retry.max", m))?;
    if initial.is_zero() || max < initial {
        return Err(at.err(
            "retry",
            "initial_ms (or initial) must be > 0 and max_ms (or max) >= initial_ms",
        ));
    }
    Ok(RetryPolicy {
        initial,
        max,
        window: parse_duration(&r.window).map_err(|m| at.err("retry.window", m))?,
    })
}

/// `batch = { max_events, max_bytes, linger_ms }`.
fn batch(at: &At, b: &RawBatch) -> Result<BatchPolicy, Invalid> {
    if b.max_events == 0 || b.max_bytes == 0 {
        return Err(at.err("batch", "max_events and max_bytes must be > 0"));
    }
    Ok(BatchPolicy {
        max_events: b.max_events,
        max_bytes: b.max_bytes,
        linger: either(b.linger_ms, b.linger, default_linger_ms())
            .map_err(|m| at.err("batch.linger", m))?,
    })
}

/// `concurrency = N` or `concurrency = { adaptive = true, max = N }`.
fn concurrency(at: &At, value: &toml::Value) -> Result<Concurrency, Invalid> {
    let in_range = |key: &str, n: i64| -> Result<u32, Invalid> {
        if (1..=i64::from(MAX_CONCURRENCY)).contains(&n) {
            Ok(n as u32)
        } else {
            Err(at.err(
                key,
                format!("must be between 1 and {MAX_CONCURRENCY}, not {n}"),
            ))
        }
    };
    match value {
        toml::Value::Integer(n) => Ok(Concurrency::Fixed(in_range("concurrency", *n)?)),
        toml::Value::Table(t) => {
            if let Some(key) = t.keys().find(|k| *k != "adaptive" && *k != "max") {
                return Err(at.err(
                    &format!("concurrency.{key}"),
                    "unknown key; expected `adaptive` or `max`",
                ));
            }
            let adaptive = match t.get("adaptive") {
                None => true,
                Some(toml::Value::Boolean(b)) => *b,
                Some(_) => return Err(at.err("concurrency.adaptive", "must be true or false")),
            };
            let max = match t.get("max") {
                None => super::DEFAULT_MAX_CONCURRENCY,
                Some(toml::Value::Integer(n)) => in_range("concurrency.max", *n)?,
                Some(_) => return Err(at.err("concurrency.max", "must be a number")),
            };
            Ok(if adaptive {
                Concurrency::Adaptive { max }
            } else {
                Concurrency::Fixed(max)
            })
        }
        _ => Err(at.err(
            "concurrency",
            "must be a number (batches in flight) or a table `{ adaptive = true, max = N }`",
        )),
    }
}

/// `[plugins] max_instances`, or the sum of the destinations' largest
/// concurrency (at least 1, at most [`DEFAULT_MAX_INSTANCES`]).
fn max_instances(raw: Option<u32>, destinations: &[DestinationConfig]) -> Result<u32, Invalid> {
    match raw {
        Some(0) => Err(("plugins.max_instances".into(), "must be > 0".into())),
        Some(n) => Ok(n),
        None => Ok(destinations
            .iter()
            .map(|d| d.concurrency.max())
            .sum::<u32>()
            .clamp(1, DEFAULT_MAX_INSTANCES)),
    }
}

/// `rate = { per_second, burst }`.
fn rate(at: &At, r: &RawRate) -> Result<RatePolicy, Invalid> {
    if !(r.per_second > 0.0 && r.per_second.is_finite()) || r.burst == 0 {
        return Err(at.err("rate", "per_second and burst must be > 0"));
    }
    Ok(RatePolicy {
        per_second: r.per_second,
        burst: r.burst,
    })
}

/// `[destinations.filter]`: `types` must be Segment types.
fn filter(at: &At, f: RawFilter) -> Result<Filter, Invalid> {
    for (j, t) in f.types.iter().enumerate() {
        t.parse::<EventType>()
            .map_err(|e| at.err(&format!("filter.types[{j}]"), e.to_string()))?;
    }
    Ok(Filter {
        types: f.types,
        events: f.events,
    })
}

/// A source name: 1 to 64 characters, no `/` and no control character.
fn valid_source_name(s: &str) -> bool {
    !s.is_empty() && s.chars().count() <= 64 && !s.chars().any(|c| c == '/' || c.is_control())
}
