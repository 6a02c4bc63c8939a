//! Config reload without a restart: SIGHUP, `switchyard reload`, `POST /admin/reload`,
//! and a change of the file with `[server] watch_config` ([`watch`]).
//!
//! Where it sits: beside the running host (`crate::start` builds the
//! [`Reloader`]), over the parts a destination lives in. A reload reads the
//! config file again and validates it whole, plugins included ([`Catalog::stage`]),
//! before anything changes; a bad file is refused with the reason `switchyard
//! check` would give, and the old config serves on. Then, in this order:
//! 1. the store makes queues for added destinations and keeps those of removed
//!    ones, and routes new events by the new filters ([`Reconfigure::reconfigure`](crate::store::Reconfigure::reconfigure));
//! 2. the catalog serves the plugins the new config uses;
//! 3. the dispatcher starts workers for added destinations, and replaces the
//!    worker of a changed one once its batches in flight have settled;
//! 4. the admin API lists the new destinations, then the retired ones.
//!
//! A removed destination is retired: it receives no new events, its worker
//! drains its queue, and the queue is kept until an operator deletes it
//! ([`Reloader::forget`], `DELETE /admin/destinations/{name}`). Nothing acknowledged
//! is lost or delivered twice: every event stays in the queue it was routed
//! to, and a queue is served by one worker at a time.

pub mod follow;
pub mod watch;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{Config, DestinationConfig};
use crate::dispatch::Dispatcher;
use crate::plugins::{error_text, Catalog};
use crate::registry::DestinationInfo;
use crate::store::{Store, StoreError};

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The host was started without a config file.
    #[error("this host was started without a config file (switchyard run --config FILE): there is nothing to reload")]
    NoFile,
    /// The new config is not valid, or a plugin refuses it.
    #[error("{0}")]
    Invalid(String),
    /// It changes what only a restart applies.
    #[error("the new config changes what only a restart applies: {}; the old config serves on", .0.join(", "))]
    NeedsRestart(Vec<String>),
    /// The store could not make or keep the queues.
    #[error("the store could not change its queues: {0}")]
    Store(#[from] StoreError),
    /// No such destination.
    #[error("no destination named `{0}`")]
    Unknown(String),
    /// Only a retired destination's queue can be deleted.
    #[error("destination `{0}` is in the config: remove it from the file and reload first")]
    NotRetired(String),
    /// The host is shutting down.
    #[error("the host is shutting down")]
    Stopping,
}

/// What a reload did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    /// Destinations added, now delivering.
    pub added: Vec<String>,
    /// Destinations removed: retired, their queues draining.
    pub removed: Vec<String>,
    /// Destinations whose entry (or one of their transformations) changed.
    pub changed: Vec<String>,
    /// Destinations left as they were.
    pub unchanged: Vec<String>,
    /// How long the reload took, checks included.
    pub took_ms: u64,
    /// What applied but may not behave as the file says until a restart.
    pub warnings: Vec<String>,
}

/// Applies a changed config file to the running host, one reload at a time.
pub struct Reloader {
    /// The config file (`None`: started from text, nothing to reload).
    file: Option<PathBuf>,
    /// The queues.
    store: Arc<dyn Store>,
    /// The plugins.
    catalog: Arc<Catalog>,
    /// What the admin API lists (shared with it).
    listed: Arc<arc_swap::ArcSwap<Vec<DestinationInfo>>>,
    /// Longest call a destination may make: a claimed batch's lease must outlast it.
    longest_call: Duration,
    /// Instance slots of the wasm pool, sized at start.
    pool: u32,
    /// What serves now; the lock makes reloads run one at a time.
    live: tokio::sync::Mutex<Live>,
    /// The newest reload generation this host announced or followed ([`follow`]).
    generation: std::sync::Mutex<Option<String>>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

/// The config serving now and the workers.
struct Live {
    /// The validated config.
    config: Config,
    /// Its file as TOML, before `${VAR}` expansion: what a reload compares.
    table: toml::Table,
    /// Destinations a reload removed, whose queues are kept.
    retired: Vec<DestinationConfig>,
    /// The workers (`None` once the host stops).
    dispatcher: Option<Dispatcher>,
}

impl Reloader {
    /// A reloader for the host serving `config` (read from `file`) with these parts.
    pub fn new(
        file: Option<PathBuf>,
        config: Config,
        store: Arc<dyn Store>,
        catalog: Arc<Catalog>,
        dispatcher: Dispatcher,
        listed: Arc<arc_swap::ArcSwap<Vec<DestinationInfo>>>,
        longest_call: Duration,
    ) -> Reloader {
        let pool = config.max_instances;
        let table = file
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|text| toml::from_str(&text).ok())
            .unwrap_or_default();
        Reloader {
            file,
            store,
            catalog,
            listed,
            longest_call,
            pool,
            live: tokio::sync::Mutex::new(Live {
                config,
                table,
                retired: Vec::new(),
                dispatcher: Some(dispatcher),
            }),
            generation: std::sync::Mutex::new(None),
        }
    }

    /// Forget the newest reload noted, so that the next look applies it again.
    pub fn forget_generation(&self) {
        *self.generation.lock().expect("generation lock") = None;
    }

    /// Remember `generation` as the newest reload; whether it was new to this host.
    pub fn note_generation(&self, generation: &str) -> bool {
        let mut g = self.generation.lock().expect("generation lock");
        if g.as_deref() == Some(generation) {
            return false;
        }
        *g = Some(generation.to_string());
        true
    }

    /// The workers, for shutdown; a reload after this is refused.
    pub async fn take_dispatcher(&self) -> Option<Dispatcher> {
        self.live.lock().await.dispatcher.take()
    }

    /// Read the config file again and apply it, or change nothing and say why.
    /// It runs to the end in a task of its own: a caller that goes away (an
    /// HTTP client that disconnects) never leaves it half applied.
    /// On a shared store, every other host then reloads its own file ([`follow`]).
    pub async fn reload(self: &Arc<Self>) -> Result<Summary, ReloadError> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut summary = me.apply().await?;
            let generation = format!("{}-{:016x}", crate::store::now_ms(), rand::random::<u64>());
            me.note_generation(&generation);
            if let Err(e) = me.store.announce_reload(&generation).await {
                let warning = format!("reloaded here, but the other hosts were not told: {e}");
                tracing::warn!("{warning}");
                summary.warnings.push(warning);
            }
            Ok(summary)
        })
        .await
        .unwrap_or(Err(ReloadError::Stopping))
    }

    /// [`Reloader::reload`] on this host alone.
    pub async fn apply_here(self: &Arc<Self>) -> Result<Summary, ReloadError> {
        let me = self.clone();
        tokio::spawn(async move { me.apply().await })
            .await
            .unwrap_or(Err(ReloadError::Stopping))
    }

    async fn apply(&self) -> Result<Summary, ReloadError> {
        let started = Instant::now();
        let file = self.file.as_ref().ok_or(ReloadError::NoFile)?;
        let mut live = self.live.lock().await;
        let live = &mut *live;
        let Some(dispatcher) = live.dispatcher.as_mut() else {
            return Err(ReloadError::Stopping);
        };
        // Read once: what is validated is what is compared.
        let text = std::fs::read_to_string(file)
            .map_err(|e| ReloadError::Invalid(format!("{}: {e}", file.display())))?;
        let base = file.parent().unwrap_or(std::path::Path::new("."));
        let new = Config::parse(&text, &file.display().to_string(), base)
            .map_err(|e| ReloadError::Invalid(e.to_string()))?;
        let table: toml::Table =
            toml::from_str(&text).map_err(|e| ReloadError::Invalid(e.to_string()))?;
        let plan = Plan::of(&live.table, &table, &live.config, &new, &live.retired)?;
        for d in new.destinations.iter().filter(|d| plan.starts(&d.name)) {
            if d.limits.timeout > self.longest_call {
                return Err(ReloadError::NeedsRestart(vec![format!(
                    "destinations.{}.limits.timeout above {} ms (the longest at start sets the store's leases)",
                    d.name,
                    self.longest_call.as_millis()
                )]));
            }
        }
        if plan.touches_routes && self.store.reconfiguration().is_none() {
            return Err(ReloadError::NeedsRestart(vec![
                "destinations added, removed or with a new filter (this store changes its queues only at a restart)".into(),
            ]));
        }
        let staged = self
            .catalog
            .stage(&new.destinations, &new.transforms)
            .await
            .map_err(|e| ReloadError::Invalid(error_text(&e)))?;

        // Checked: from here on it applies.
        let retired: Vec<DestinationConfig> = live
            .retired
            .iter()
            .filter(|r| !plan.revived.contains(&r.name))
            .cloned()
            .chain(
                live.config
                    .destinations
                    .iter()
                    .filter(|d| plan.removed.contains(&d.name))
                    .cloned(),
            )
            .collect();
        if plan.touches_routes {
            let names: Vec<String> = retired.iter().map(|d| d.name.clone()).collect();
            self.store
                .reconfigurable()?
                .reconfigure(&new.destinations, &names)
                .await?;
        }
        self.catalog.apply(staged);
        for d in &new.destinations {
            if plan.added.contains(&d.name) && !plan.revived.contains(&d.name) {
                dispatcher.add(d, &new.transforms, &self.catalog);
            } else if plan.changed.contains(&d.name) || plan.revived.contains(&d.name) {
                dispatcher.replace(d, &new.transforms, &self.catalog).await;
            }
        }
        let listed = new
            .destinations
            .iter()
            .map(|d| (d, false))
            .chain(retired.iter().map(|d| (d, true)))
            .filter_map(|(d, retired)| DestinationInfo::of(dispatcher, &self.catalog, d, retired))
            .collect();
        self.listed.store(Arc::new(listed));
        live.config = new;
        live.table = table;
        live.retired = retired;
        let mut warnings = Vec::new();
        if live.config.max_instances > self.pool {
            warnings.push(format!(
                "the destinations can have {} batches in flight but the instance pool has {} slots \
                 (sized at start): calls wait for a free slot until a restart",
                live.config.max_instances, self.pool
            ));
        }
        for w in &warnings {
            tracing::warn!("reload: {w}");
        }
        let summary = Summary {
            took_ms: started.elapsed().as_millis() as u64,
            warnings,
            ..plan.summary()
        };
        tracing::info!(
            added = ?summary.added,
            removed = ?summary.removed,
            changed = ?summary.changed,
            took_ms = summary.took_ms,
            "config reloaded"
        );
        Ok(summary)
    }

    /// Delete the queue of a retired destination once its worker has stopped.
    /// Returns the events that were still waiting in it. Runs to the end in a
    /// task of its own, as [`Reloader::reload`] does.
    pub async fn forget(self: &Arc<Self>, name: &str) -> Result<u64, ReloadError> {
        let (me, name) = (self.clone(), name.to_string());
        tokio::spawn(async move { me.forget_now(&name).await })
            .await
            .unwrap_or(Err(ReloadError::Stopping))
    }

    /// Delete the queue `name` in the store, where the store can.
    async fn forget_queue(&self, name: &str) -> Result<u64, crate::store::StoreError> {
        self.store.reconfigurable()?.forget(name).await
    }

    async fn forget_now(&self, name: &str) -> Result<u64, ReloadError> {
        let mut live = self.live.lock().await;
        let live = &mut *live;
        if live.config.destinations.iter().any(|d| d.name == name) {
            return Err(ReloadError::NotRetired(name.to_string()));
        }
        if !live.retired.iter().any(|d| d.name == name) {
            // A queue kept from before a restart, that nothing serves now.
            return match self.forget_queue(name).await {
                Ok(dropped) => {
                    tracing::info!(
                        destination = name,
                        "queue kept from before a restart deleted"
                    );
                    Ok(dropped)
                }
                Err(_) => Err(ReloadError::Unknown(name.to_string())),
            };
        }
        let dispatcher = live.dispatcher.as_mut().ok_or(ReloadError::Stopping)?;
        dispatcher.stop(name).await;
        let dropped = match self.forget_queue(name).await {
            Ok(n) => n,
            // Deleted already, through another host of a shared store.
            Err(e) if e.to_string().contains("no queue named") => 0,
            Err(e) => return Err(e.into()),
        };
        dispatcher.forget(name);
        live.retired.retain(|d| d.name != name);
        let listed = self
            .listed
            .load()
            .iter()
            .filter(|d| d.name != name)
            .cloned()
            .collect();
        self.listed.store(Arc::new(listed));
        tracing::info!(
            destination = name,
            dropped,
            "retired destination's queue deleted"
        );
        Ok(dropped)
    }
}

/// What a reload changes, worked out before anything does.
#[derive(Debug, Default)]
struct Plan {
    added: Vec<String>,
    removed: Vec<String>,
    changed: Vec<String>,
    unchanged: Vec<String>,
    /// Added names that were retired: their draining worker is replaced.
    revived: Vec<String>,
    /// Whether the store must route differently (names or filters changed).
    touches_routes: bool,
}

/// Top-level keys a reload applies; a change anywhere else needs a restart.
const RELOADABLE: [&str; 2] = ["destinations", "transforms"];

impl Plan {
    fn of(
        old_table: &toml::Table,
        new_table: &toml::Table,
        old: &Config,
        new: &Config,
        retired: &[DestinationConfig],
    ) -> Result<Plan, ReloadError> {
        let mut restart: Vec<String> = Vec::new();
        let keys: std::collections::BTreeSet<&String> =
            old_table.keys().chain(new_table.keys()).collect();
        for key in keys {
            if !RELOADABLE.contains(&key.as_str()) && old_table.get(key) != new_table.get(key) {
                restart.push(format!("[{key}]"));
            }
        }
        let old_entries = entries(old_table, "destinations");
        let new_entries = entries(new_table, "destinations");
        let old_transforms = entries(old_table, "transforms");
        let new_transforms = entries(new_table, "transforms");
        let mut plan = Plan::default();
        for d in &new.destinations {
            let was = old.destinations.iter().find(|o| o.name == d.name);
            let Some(was) = was else {
                plan.added.push(d.name.clone());
                if let Some(r) = retired.iter().find(|r| r.name == d.name) {
                    plan.revived.push(d.name.clone());
                    if r.ordering != d.ordering {
                        restart.push(format!("destinations.{}.ordering", d.name));
                    }
                }
                plan.touches_routes = true;
                continue;
            };
            if was.ordering != d.ordering {
                restart.push(format!("destinations.{}.ordering", d.name));
            }
            let (before, after) = (old_entries.get(&d.name), new_entries.get(&d.name));
            let transforms_changed = d
                .transforms
                .iter()
                .chain(&was.transforms)
                .any(|t| old_transforms.get(t) != new_transforms.get(t));
            // A `${VAR}` or a secret's `env:`/`file:` that reads differently changes it too.
            let resolved_changed = was.settings != d.settings
                || was.secrets != d.secrets
                || d.transforms.iter().any(|t| {
                    let find = |c: &Config| {
                        c.transforms
                            .iter()
                            .find(|x| &x.name == t)
                            .map(|x| x.settings.clone())
                    };
                    find(old) != find(new)
                });
            if before != after || transforms_changed || resolved_changed {
                let filter = |e: Option<&&toml::Table>| e.and_then(|t| t.get("filter")).cloned();
                if filter(before) != filter(after) {
                    plan.touches_routes = true;
                }
                plan.changed.push(d.name.clone());
            } else {
                plan.unchanged.push(d.name.clone());
            }
        }
        for d in &old.destinations {
            if !new.destinations.iter().any(|n| n.name == d.name) {
                plan.removed.push(d.name.clone());
                plan.touches_routes = true;
            }
        }
        if !restart.is_empty() {
            return Err(ReloadError::NeedsRestart(restart));
        }
        Ok(plan)
    }

    /// Whether destination `name` gets a new worker.
    fn starts(&self, name: &str) -> bool {
        self.added.iter().chain(&self.changed).any(|n| n == name)
    }

    fn summary(&self) -> Summary {
        Summary {
            added: self.added.clone(),
            removed: self.removed.clone(),
            changed: self.changed.clone(),
            unchanged: self.unchanged.clone(),
            took_ms: 0,
            warnings: Vec::new(),
        }
    }
}

/// The entries of an array of tables (`[[destinations]]`) by their `name`.
fn entries<'a>(table: &'a toml::Table, key: &str) -> BTreeMap<String, &'a toml::Table> {
    table
        .get(key)
        .and_then(toml::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(toml::Value::as_table)
        .filter_map(|t| Some((t.get("name")?.as_str()?.to_string(), t)))
        .collect()
}
