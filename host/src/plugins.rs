//! Loading destination components from the plugins directory.
//!
//! Where it sits: at start-up, between the config and the dispatcher. For each
//! plugin that a destination names, `<plugins.dir>/<plugin>.wasm` is compiled
//! and described once; then every destination's settings are `check`ed by its
//! plugin, so a bad setting stops the start with a message naming the
//! destination rather than dead-lettering its first events.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::DestinationConfig;
use crate::imports::http::Egress;
use crate::runtime::{CallContext, CallError, Plugin, Runtime};

/// Why plugins could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The component file is missing or unreadable.
    #[error("destination `{destination}`: cannot read plugin {path}")]
    Read {
        destination: String,
        path: String,
        source: std::io::Error,
    },
    /// The component does not compile, link or describe itself.
    #[error("plugin {path}")]
    Load { path: String, source: CallError },
    /// The plugin refused the destination's settings.
    #[error("destination `{destination}`: settings refused by plugin `{plugin}`: {message}")]
    Settings {
        destination: String,
        plugin: String,
        message: String,
    },
}

/// The file of plugin `name` in `dir`.
pub fn plugin_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.wasm"))
}

/// Load every plugin the destinations use, and check every destination's settings.
pub async fn load(
    runtime: &Runtime,
    dir: &Path,
    destinations: &[DestinationConfig],
) -> Result<HashMap<String, Plugin>, PluginError> {
    let mut plugins: HashMap<String, Plugin> = HashMap::new();
    for dest in destinations {
        if !plugins.contains_key(&dest.plugin) {
            let path = plugin_path(dir, &dest.plugin);
            let bytes = tokio::fs::read(&path)
                .await
                .map_err(|source| PluginError::Read {
                    destination: dest.name.clone(),
                    path: path.display().to_string(),
                    source,
                })?;
            let plugin =
                runtime
                    .load(&dest.plugin, &bytes)
                    .await
                    .map_err(|source| PluginError::Load {
                        path: path.display().to_string(),
                        source,
                    })?;
            tracing::info!(
                plugin = %plugin.name,
                version = %plugin.metadata.version,
                sha256 = %plugin.sha256,
                max_batch = plugin.metadata.max_batch,
                "plugin loaded"
            );
            plugins.insert(dest.plugin.clone(), plugin);
        }
        check_settings(&plugins[&dest.plugin], dest).await?;
    }
    Ok(plugins)
}

/// Run the plugin's `check` on a destination's settings (no network).
pub async fn check_settings(plugin: &Plugin, dest: &DestinationConfig) -> Result<(), PluginError> {
    let ctx = CallContext {
        destination: Arc::from(dest.name.as_str()),
        limits: dest.limits,
        egress: Egress::DryRun(Default::default()),
    };
    let refused = |message: String| PluginError::Settings {
        destination: dest.name.clone(),
        plugin: dest.plugin.clone(),
        message,
    };
    match plugin.check(&ctx, &dest.settings.to_string()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(message)) => Err(refused(message)),
        Err(e) => Err(refused(e.to_string())),
    }
}
