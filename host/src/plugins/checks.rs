//! A version checked against its users before it serves: every destination's
//! or transformation's settings, through the component's own `check`.

use super::PluginError;
use crate::config::{DestinationConfig, Limits, TransformConfig};
use crate::runtime::{CallContext, Plugin};

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
        limits,
        secrets,
        ..CallContext::dry_run(name, Default::default())
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
