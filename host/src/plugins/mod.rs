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

mod checks;
mod slot;
mod trials;

pub use self::checks::{check_settings, check_transform_settings};
pub use self::slot::{PluginSlot, Swap, SWAPS_KEPT};
pub mod watch;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{DestinationConfig, TransformConfig};
use crate::runtime::{CallError, Kind, Runtime, Version};

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
    /// A plugin implements the other world than the one its users need.
    #[error("plugin `{plugin}` is a {has} component; its users need a {needs} component")]
    WrongWorld {
        /// The plugin.
        plugin: String,
        /// The world it implements.
        has: &'static str,
        /// The world its users need.
        needs: &'static str,
    },
    /// Promote or discard with no version on trial.
    #[error("plugin `{0}` has no version on trial")]
    NoTrial(String),
    /// A trial asked of a plugin that cannot have one.
    #[error("plugin `{plugin}` cannot take a trial version: {why}")]
    NoTrialHere {
        /// The plugin.
        plugin: String,
        /// Why.
        why: &'static str,
    },
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

/// All plugins in use, by name.
#[derive(Debug)]
pub struct Catalog {
    /// Compiles and checks new versions.
    runtime: Runtime,
    /// The plugins directory.
    dir: PathBuf,
    /// Who uses the plugins, for `check` of their settings on a new version;
    /// replaced by a reload.
    users: std::sync::RwLock<Users>,
    /// Slots by plugin name: one per plugin in use, or dropped in the plugins
    /// directory under a new name; a reload adds those its new users need.
    slots: std::sync::RwLock<HashMap<String, Arc<PluginSlot>>>,
}

/// The destinations and transformations whose plugins the catalog serves.
#[derive(Debug, Clone, Default)]
pub struct Users {
    /// Every destination.
    pub destinations: Vec<DestinationConfig>,
    /// Every transformation.
    pub transforms: Vec<TransformConfig>,
}

impl Users {
    /// The world the users of plugin `name` need, if it has any: a
    /// transformation's plugin implements `transform`; a destination's, `destination`.
    fn kind_of(&self, name: &str) -> Option<Kind> {
        if self.transforms.iter().any(|t| t.plugin == name) {
            Some(Kind::Transform)
        } else if self.destinations.iter().any(|d| d.plugin == name) {
            Some(Kind::Destination)
        } else {
            None
        }
    }

    /// Every plugin name they use, in config order, once each.
    pub fn plugins(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        let all = self.destinations.iter().map(|d| &d.plugin);
        for name in all.chain(self.transforms.iter().map(|t| &t.plugin)) {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        names
    }
}

/// What a reload's plugins need, checked and compiled, not yet serving
/// ([`Catalog::stage`], then [`Catalog::apply`]).
#[derive(Debug)]
pub struct Staged {
    /// The new users.
    users: Users,
    /// Slots for plugins no one used before.
    slots: Vec<Arc<PluginSlot>>,
}

pub use crate::config::plugin_path;

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
        let users = Users {
            destinations: destinations.to_vec(),
            transforms: transforms.to_vec(),
        };
        let catalog = Catalog {
            runtime: runtime.clone(),
            dir: dir.to_path_buf(),
            users: std::sync::RwLock::new(users.clone()),
            slots: Default::default(),
        };
        for plugin in users.plugins() {
            let slot = catalog.load_slot(&plugin, &users, tolerate_missing).await?;
            catalog.slots_mut().insert(plugin, slot);
        }
        Ok(catalog)
    }

    /// A slot for `plugin` with the version in its file, checked for `users`
    /// (with `tolerate_missing`, a missing or invalid file leaves it unloaded).
    async fn load_slot(
        &self,
        plugin: &str,
        users: &Users,
        tolerate_missing: bool,
    ) -> Result<Arc<PluginSlot>, PluginError> {
        let path = plugin_path(&self.dir, plugin);
        // A catalog entry named for the first time is built now (cached after).
        if let Err(e) = crate::catalog::build_if_missing(plugin, &self.dir).await {
            tracing::error!(plugin = %plugin, "cannot build the catalog entry: {e}");
        }
        let loaded = match tokio::fs::read(&path).await {
            Ok(bytes) => {
                self.prepare(plugin, bytes, &path.display().to_string(), users)
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
            Err(e @ (PluginError::Read { .. } | PluginError::Load { .. })) if tolerate_missing => {
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
        let kind = match (&current, users.kind_of(plugin)) {
            (_, Some(kind)) => kind,
            (Some(v), None) => v.plugin.kind(),
            (None, None) => Kind::Destination,
        };
        Ok(Arc::new(PluginSlot::new(plugin, kind, current, last_error)))
    }

    fn slots_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<PluginSlot>>> {
        self.slots.write().expect("slots lock")
    }

    /// Who uses the plugins now.
    pub fn users(&self) -> Users {
        self.users.read().expect("users lock").clone()
    }

    /// Check that every plugin the new `destinations` and `transforms` use
    /// serves them: the serving version checks their settings, and a plugin
    /// no one used before is compiled from its file (which must exist and be
    /// valid). Nothing changes until [`Catalog::apply`].
    pub async fn stage(
        &self,
        destinations: &[DestinationConfig],
        transforms: &[TransformConfig],
    ) -> Result<Staged, PluginError> {
        let users = Users {
            destinations: destinations.to_vec(),
            transforms: transforms.to_vec(),
        };
        let mut slots = Vec::new();
        for plugin in users.plugins() {
            let kind = users.kind_of(&plugin).unwrap_or(Kind::Destination);
            let Some(slot) = self.slot(&plugin) else {
                slots.push(self.load_slot(&plugin, &users, false).await?);
                continue;
            };
            if slot.kind != kind {
                return Err(PluginError::WrongWorld {
                    plugin: plugin.clone(),
                    has: slot.kind.as_str(),
                    needs: kind.as_str(),
                });
            }
            // Not loaded yet: its users wait for a valid file, as at start.
            let Some(version) = slot.current() else {
                continue;
            };
            for dest in users.destinations.iter().filter(|d| d.plugin == plugin) {
                check_settings(&version.plugin, dest).await?;
            }
            for t in users.transforms.iter().filter(|t| t.plugin == plugin) {
                check_transform_settings(&version.plugin, t).await?;
            }
            // A version on trial must take the new settings too, or it ends.
            if let Some(trial) = slot.trial() {
                for dest in users.destinations.iter().filter(|d| d.plugin == plugin) {
                    if let Err(e) = check_settings(&trial.version.plugin, dest).await {
                        let why =
                            format!("a reload's settings are refused by it: {}", error_text(&e));
                        if slot.end(&trial, crate::trial::Ending::Discarded, &why) {
                            tracing::warn!(plugin = %plugin, "trial version discarded: {why}");
                        }
                        break;
                    }
                }
            }
        }
        Ok(Staged { users, slots })
    }

    /// Serve what [`Catalog::stage`] checked: its new slots, and its users for
    /// the checks of later versions.
    pub fn apply(&self, staged: Staged) {
        let mut slots = self.slots_mut();
        for slot in staged.slots {
            slots.insert(slot.name.clone(), slot);
        }
        *self.users.write().expect("users lock") = staged.users;
    }

    /// The slot of a plugin, or why there is none.
    fn known(&self, name: &str) -> Result<Arc<PluginSlot>, PluginError> {
        self.slot(name)
            .ok_or_else(|| PluginError::Unknown(name.to_string()))
    }

    /// The slot of a plugin.
    pub fn slot(&self, name: &str) -> Option<Arc<PluginSlot>> {
        self.slots.read().expect("slots lock").get(name).cloned()
    }

    /// Plugin names, sorted.
    pub fn names(&self) -> Vec<String> {
        let slots = self.slots.read().expect("slots lock");
        let mut names: Vec<String> = slots.keys().cloned().collect();
        names.sort();
        names
    }

    /// The runtime every plugin here was loaded with.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The plugins directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The world the users of plugin `name` need: a transformation's plugin
    /// implements `transform`; any other, `destination`.
    pub fn kind_of(&self, name: &str) -> Kind {
        let used = self.users.read().expect("users lock").kind_of(name);
        used.or_else(|| self.slot(name).map(|s| s.kind))
            .unwrap_or(Kind::Destination)
    }

    /// Compile, describe, and check the settings of every destination or
    /// transformation using `name`.
    /// `file` says where the bytes came from, for messages.
    async fn prepare(
        &self,
        name: &str,
        bytes: Vec<u8>,
        file: &str,
        users: &Users,
    ) -> Result<Version, PluginError> {
        // A plugin no one uses may implement either world; once used, its users' one.
        let wanted = users.kind_of(name);
        let kind = wanted.unwrap_or(Kind::Destination);
        let invalid = |source| PluginError::Load {
            plugin: name.to_string(),
            file: file.to_string(),
            kind: kind.as_str(),
            source,
        };
        let plugin = self.runtime.load(name, &bytes).await.map_err(invalid)?;
        let kind = wanted.unwrap_or(plugin.kind());
        if plugin.kind() != kind {
            return Err(invalid(CallError::Invalid(format!(
                "it implements the {} world; its users need the {} world",
                plugin.kind().as_str(),
                kind.as_str()
            ))));
        }
        for dest in users.destinations.iter().filter(|d| d.plugin == name) {
            check_settings(&plugin, dest).await?;
        }
        for t in users.transforms.iter().filter(|t| t.plugin == name) {
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
        let slot = self.known(name)?;
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
        let users = match self.users().kind_of(name) {
            Some(_) => self.users(),
            // Unused: a new version must implement the same world as the one it replaces.
            None => Users::default(),
        };
        let version = match self.prepare(name, bytes, &file, &users).await {
            Ok(v) if v.plugin.kind() != slot.kind => Err(PluginError::WrongWorld {
                plugin: name.to_string(),
                has: v.plugin.kind().as_str(),
                needs: slot.kind.as_str(),
            }),
            other => other,
        };
        let version = match version {
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
        let slot = self.known(name)?;
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
        write_plugin(&self.dir, name, bytes)
    }
}

/// Write bytes to `<dir>/<name>.wasm` atomically.
fn write_plugin(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), PluginError> {
    let path = plugin_path(dir, name);
    let tmp = dir.join(format!(".{name}.wasm.upload"));
    let write = |source| PluginError::Write {
        path: path.display().to_string(),
        source,
    };
    std::fs::write(&tmp, bytes).map_err(write)?;
    std::fs::rename(&tmp, &path).map_err(write)
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
