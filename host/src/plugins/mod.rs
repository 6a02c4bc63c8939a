//! The plugin catalog: which component version serves each plugin, and hot-loading.
//!
//! Where it sits: between the plugins directory (and `PUT /admin/plugins/{name}`)
//! and the dispatcher. At start-up every plugin a destination or a
//! transformation names is loaded from `<plugins.dir>/<plugin>.wasm`; a plugin
//! is either kind of component, checked against the world its users need. Later a new version, from the directory
//! watcher ([`watch`]) or an upload, is compiled, type-checked against the
//! world, `describe`d and `check`ed against the settings of every destination
//! or transformation that uses it *before* it serves; then it is swapped in atomically. A worker
//! takes the current version at the start of each batch, so a batch in flight
//! finishes on the version it started with, and the queue is untouched by a
//! swap: nothing is lost or delivered twice because of it. A version that fails
//! any step is refused with the reason (log line, admin API, HTTP answer) and
//! the old one keeps serving. The previous version is kept for rollback.

pub mod watch;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;

use crate::config::{DestinationConfig, Limits, TransformConfig};
use crate::imports::http::Egress;
use crate::runtime::{CallContext, CallError, Kind, Plugin, Runtime};

/// Why a plugin version could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The component file is missing or unreadable.
    #[error("cannot read plugin {path}")]
    Read {
        /// The component file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The component does not compile, link or describe itself, or implements
    /// the other world.
    #[error("plugin `{plugin}` ({file}) is not a valid {kind} component")]
    Load {
        /// The plugin.
        plugin: String,
        /// Where its bytes came from: the file's path, or "uploaded".
        file: String,
        /// The world its users need (`destination` or `transform`).
        kind: &'static str,
        /// Why.
        source: CallError,
    },
    /// The plugin refused a destination's or a transformation's settings.
    #[error("{user}: settings refused by plugin `{plugin}`: {message}")]
    Settings {
        /// Whose settings were refused: "destination `name`" or "transform `name`".
        user: String,
        /// The plugin.
        plugin: String,
        /// The plugin's message.
        message: String,
    },
    /// No such plugin in the catalog.
    #[error("no destination or transform uses a plugin named `{0}`")]
    Unknown(String),
    /// Rollback with nothing to roll back to.
    #[error("plugin `{0}` has no previous version")]
    NoPrevious(String),
    /// The new version could not be written to the plugins directory.
    #[error("cannot write plugin {path}")]
    Write {
        /// The component file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// One loaded version of a plugin.
#[derive(Debug)]
pub struct Version {
    /// The compiled component.
    pub plugin: Plugin,
    /// Its bytes, kept to write back on rollback.
    bytes: Arc<Vec<u8>>,
}

/// The serving version of one plugin, and its history.
#[derive(Debug)]
pub struct PluginSlot {
    /// Plugin name.
    pub name: String,
    /// The world its users need: every version must implement it.
    pub kind: Kind,
    /// What serves now; swapped atomically. Empty while the plugin has not
    /// loaded (its file was missing or invalid at start): its destinations
    /// wait, `/readyz` says why, and the first valid file loads it.
    current: ArcSwapOption<Version>,
    /// What served before, for rollback.
    previous: Mutex<Option<Arc<Version>>>,
    /// Why the last attempt to load a new version failed, if it did.
    last_error: Mutex<Option<String>>,
    /// One install or rollback at a time.
    installing: tokio::sync::Mutex<()>,
    /// Swaps and rollbacks since the host started (`switchyard_plugin_swaps_total`).
    pub swaps: std::sync::atomic::AtomicU64,
    /// The newest swaps and rollbacks, oldest first, at most [`SWAPS_KEPT`].
    history: Mutex<std::collections::VecDeque<Swap>>,
}

/// Swaps kept per plugin for the status page and `GET /admin/plugins`.
pub const SWAPS_KEPT: usize = 20;

/// One change of the serving version.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Swap {
    /// When (RFC 3339).
    pub at: String,
    /// `swap` (a new version) or `rollback`.
    pub kind: &'static str,
    /// sha256 of the version that served before (`None`: the plugin had not loaded).
    pub from_sha256: Option<String>,
    /// sha256 of the version that serves since.
    pub to_sha256: String,
    /// Its version (from `describe`).
    pub to_version: String,
}

impl PluginSlot {
    /// The serving version; `None` while the plugin has not loaded.
    pub fn current(&self) -> Option<Arc<Version>> {
        self.current.load_full()
    }

    /// sha256 of the previous version, if any.
    pub fn previous_sha256(&self) -> Option<String> {
        self.previous
            .lock()
            .expect("previous lock")
            .as_ref()
            .map(|v| v.plugin.sha256.clone())
    }

    /// Why the last new version was refused.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().expect("error lock").clone()
    }

    /// The newest swaps and rollbacks, newest first.
    pub fn swap_history(&self) -> Vec<Swap> {
        let h = self.history.lock().expect("history lock");
        h.iter().rev().cloned().collect()
    }

    /// Serve `to` instead of `from`; counted and kept in the history.
    fn swap(&self, kind: &'static str, from: Option<&Version>, to: Arc<Version>) {
        let swap = Swap {
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            kind,
            from_sha256: from.map(|f| f.plugin.sha256.clone()),
            to_sha256: to.plugin.sha256.clone(),
            to_version: to.plugin.metadata.version.clone(),
        };
        self.current.store(Some(to));
        self.swaps
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut h = self.history.lock().expect("history lock");
        if h.len() == SWAPS_KEPT {
            h.pop_front();
        }
        h.push_back(swap);
    }
}

/// All plugins in use, by name.
#[derive(Debug)]
pub struct Catalog {
    /// Compiles and checks new versions.
    runtime: Runtime,
    /// The plugins directory.
    dir: PathBuf,
    /// Every destination, for `check` of its settings on a new version.
    destinations: Vec<DestinationConfig>,
    /// Every transformation, likewise.
    transforms: Vec<TransformConfig>,
    /// Slots by plugin name.
    slots: HashMap<String, Arc<PluginSlot>>,
}

/// The file of plugin `name` in `dir`.
pub fn plugin_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.wasm"))
}

impl Catalog {
    /// Load every plugin the destinations and transformations use, and check
    /// all their settings; any failure is an error (`switchyard check`).
    pub async fn load(
        runtime: &Runtime,
        dir: &Path,
        destinations: &[DestinationConfig],
        transforms: &[TransformConfig],
    ) -> Result<Catalog, PluginError> {
        Self::load_with(runtime, dir, destinations, transforms, false).await
    }

    /// The same for a host about to serve: a plugin whose file is missing or
    /// not a valid component is left unloaded (logged, and shown by `/readyz`)
    /// instead of stopping the start; settings a plugin refuses still stop it.
    pub async fn load_serving(
        runtime: &Runtime,
        dir: &Path,
        destinations: &[DestinationConfig],
        transforms: &[TransformConfig],
    ) -> Result<Catalog, PluginError> {
        Self::load_with(runtime, dir, destinations, transforms, true).await
    }

    async fn load_with(
        runtime: &Runtime,
        dir: &Path,
        destinations: &[DestinationConfig],
        transforms: &[TransformConfig],
        tolerate_missing: bool,
    ) -> Result<Catalog, PluginError> {
        let mut catalog = Catalog {
            runtime: runtime.clone(),
            dir: dir.to_path_buf(),
            destinations: destinations.to_vec(),
            transforms: transforms.to_vec(),
            slots: HashMap::new(),
        };
        let names: Vec<String> = destinations
            .iter()
            .map(|d| d.plugin.clone())
            .chain(transforms.iter().map(|t| t.plugin.clone()))
            .collect();
        for plugin in names {
            if catalog.slots.contains_key(&plugin) {
                continue;
            }
            let path = plugin_path(dir, &plugin);
            let loaded = match tokio::fs::read(&path).await {
                Ok(bytes) => {
                    catalog
                        .prepare(&plugin, bytes, &path.display().to_string())
                        .await
                }
                Err(source) => Err(PluginError::Read {
                    path: path.display().to_string(),
                    source,
                }),
            };
            let (current, last_error) = match loaded {
                Ok(version) => {
                    tracing::info!(
                        plugin = %plugin,
                        version = %version.plugin.metadata.version,
                        sha256 = %version.plugin.sha256,
                        from_cache = version.plugin.from_cache,
                        "plugin ready"
                    );
                    (Some(Arc::new(version)), None)
                }
                Err(e @ (PluginError::Read { .. } | PluginError::Load { .. }))
                    if tolerate_missing =>
                {
                    let reason = error_text(&e);
                    tracing::error!(
                        plugin = %plugin,
                        file = %path.display(),
                        "plugin did not load; its destinations wait (and /readyz says so) \
                         until a valid file is put in its place: {reason}"
                    );
                    (None, Some(reason))
                }
                Err(e) => return Err(e),
            };
            catalog.slots.insert(
                plugin.clone(),
                Arc::new(PluginSlot {
                    name: plugin.clone(),
                    kind: catalog.kind_of(&plugin),
                    current: ArcSwapOption::new(current),
                    previous: Mutex::new(None),
                    last_error: Mutex::new(last_error),
                    installing: tokio::sync::Mutex::new(()),
                    swaps: Default::default(),
                    history: Default::default(),
                }),
            );
        }
        Ok(catalog)
    }

    /// The slot of a plugin.
    pub fn slot(&self, name: &str) -> Option<Arc<PluginSlot>> {
        self.slots.get(name).cloned()
    }

    /// Plugin names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.slots.keys().cloned().collect();
        names.sort();
        names
    }

    /// The plugins directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The world the users of plugin `name` need: a transformation's plugin
    /// implements `transform`; any other, `destination`.
    pub fn kind_of(&self, name: &str) -> Kind {
        if self.transforms.iter().any(|t| t.plugin == name) {
            Kind::Transform
        } else {
            Kind::Destination
        }
    }

    /// Compile, describe, and check the settings of every destination or
    /// transformation using `name`.
    /// `file` says where the bytes came from, for messages.
    async fn prepare(
        &self,
        name: &str,
        bytes: Vec<u8>,
        file: &str,
    ) -> Result<Version, PluginError> {
        let kind = self.kind_of(name);
        let invalid = |source| PluginError::Load {
            plugin: name.to_string(),
            file: file.to_string(),
            kind: kind.as_str(),
            source,
        };
        let plugin = self.runtime.load(name, &bytes).await.map_err(invalid)?;
        if plugin.kind() != kind {
            return Err(invalid(CallError::Invalid(format!(
                "it implements the {} world; its users need the {} world",
                plugin.kind().as_str(),
                kind.as_str()
            ))));
        }
        for dest in self.destinations.iter().filter(|d| d.plugin == name) {
            check_settings(&plugin, dest).await?;
        }
        for t in self.transforms.iter().filter(|t| t.plugin == name) {
            check_transform_settings(&plugin, t).await?;
        }
        Ok(Version {
            plugin,
            bytes: Arc::new(bytes),
        })
    }

    /// Make `bytes` the serving version of `name` once it passes every check.
    /// With `persist`, the bytes are also written to the plugins directory so a
    /// restart serves them. Installing the serving version again does nothing.
    pub async fn install(
        &self,
        name: &str,
        bytes: Vec<u8>,
        persist: bool,
    ) -> Result<Arc<Version>, PluginError> {
        let slot = self
            .slot(name)
            .ok_or_else(|| PluginError::Unknown(name.to_string()))?;
        let _one_at_a_time = slot.installing.lock().await;
        let current = slot.current();
        if let Some(c) = current
            .as_ref()
            .filter(|c| c.bytes.as_slice() == bytes.as_slice())
        {
            return Ok(c.clone());
        }
        let file = match persist {
            true => "uploaded".to_string(),
            false => plugin_path(&self.dir, name).display().to_string(),
        };
        let version = match self.prepare(name, bytes, &file).await {
            Ok(v) => Arc::new(v),
            Err(e) => {
                let reason = error_text(&e);
                if current.is_some() {
                    tracing::error!(
                        plugin = name,
                        "new version refused; the old one keeps serving: {reason}"
                    );
                } else {
                    tracing::error!(plugin = name, "plugin still not loaded: {reason}");
                }
                *slot.last_error.lock().expect("error lock") = Some(reason);
                return Err(e);
            }
        };
        if persist {
            self.persist(name, &version.bytes)?;
        }
        if let Some(c) = &current {
            *slot.previous.lock().expect("previous lock") = Some(c.clone());
        }
        slot.swap("swap", current.as_deref(), version.clone());
        *slot.last_error.lock().expect("error lock") = None;
        tracing::info!(
            plugin = name,
            from = current.as_ref().map_or("(not loaded)", |c| c.plugin.sha256.as_str()),
            to = %version.plugin.sha256,
            version = %version.plugin.metadata.version,
            "plugin swapped"
        );
        Ok(version)
    }

    /// Serve the previous version again (and write it back to the plugins directory).
    pub async fn rollback(&self, name: &str) -> Result<Arc<Version>, PluginError> {
        let slot = self
            .slot(name)
            .ok_or_else(|| PluginError::Unknown(name.to_string()))?;
        let _one_at_a_time = slot.installing.lock().await;
        let previous = slot
            .previous
            .lock()
            .expect("previous lock")
            .take()
            .ok_or_else(|| PluginError::NoPrevious(name.to_string()))?;
        self.persist(name, &previous.bytes)?;
        let current = slot.current();
        slot.swap("rollback", current.as_deref(), previous.clone());
        *slot.previous.lock().expect("previous lock") = current.clone();
        tracing::info!(
            plugin = name,
            from = current.as_ref().map_or("(not loaded)", |c| c.plugin.sha256.as_str()),
            to = %previous.plugin.sha256,
            "plugin rolled back"
        );
        Ok(previous)
    }

    /// Write bytes to `<dir>/<name>.wasm` atomically.
    fn persist(&self, name: &str, bytes: &[u8]) -> Result<(), PluginError> {
        let path = plugin_path(&self.dir, name);
        let tmp = self.dir.join(format!(".{name}.wasm.upload"));
        let write = |source| PluginError::Write {
            path: path.display().to_string(),
            source,
        };
        std::fs::write(&tmp, bytes).map_err(write)?;
        std::fs::rename(&tmp, &path).map_err(write)
    }
}

/// The whole chain of a plugin error, as one line (for the admin API and the log).
pub fn error_text(e: &PluginError) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Run the plugin's `check` on a destination's settings (no network).
pub async fn check_settings(plugin: &Plugin, dest: &DestinationConfig) -> Result<(), PluginError> {
    let user = format!("destination `{}`", dest.name);
    let secrets = dest.secrets.clone();
    check_as(
        plugin,
        &dest.name,
        user,
        dest.limits,
        &dest.settings,
        secrets,
    )
    .await
}

/// Run the plugin's `check` on a transformation's settings (no network).
pub async fn check_transform_settings(
    plugin: &Plugin,
    t: &TransformConfig,
) -> Result<(), PluginError> {
    let user = format!("transform `{}`", t.name);
    check_as(
        plugin,
        &t.name,
        user,
        t.limits,
        &t.settings,
        Default::default(),
    )
    .await
}

async fn check_as(
    plugin: &Plugin,
    name: &str,
    user: String,
    limits: Limits,
    settings: &serde_json::Value,
    secrets: crate::imports::secrets::Secrets,
) -> Result<(), PluginError> {
    let ctx = CallContext {
        destination: Arc::from(name),
        transform: None,
        limits,
        egress: Egress::DryRun(Default::default()),
        counters: Default::default(),
        tape: None,
        secrets,
    };
    let refused = |message: String| PluginError::Settings {
        user: user.clone(),
        plugin: plugin.name.clone(),
        message,
    };
    match plugin.check(&ctx, &settings.to_string()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(message)) => Err(refused(message)),
        Err(e) => Err(refused(e.to_string())),
    }
}
