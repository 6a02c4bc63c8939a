//! Validation of `[[transforms]]` and of each destination's `transforms`
//! list (the chain of transformations applied before its `deliver`); called
//! from `validate.rs`, whose helpers it shares.

use std::collections::HashSet;

use super::raw::RawTransform;
use super::table::{limits, valid_name, At};
use super::{DestinationConfig, Invalid, TransformConfig};
use crate::allowlist::Allowlist;

/// A destination's `transforms`: names, each once.
pub(super) fn chain(at: &str, names: Vec<String>) -> Result<Vec<String>, Invalid> {
    let at = At(at.to_string());
    let mut seen = HashSet::new();
    for (j, name) in names.iter().enumerate() {
        if !seen.insert(name.as_str()) {
            return Err(at.err(
                &format!("transforms[{j}]"),
                format!("`{name}` is listed twice"),
            ));
        }
    }
    Ok(names)
}

/// `[[transforms]]`, in file order: unique names, plugins that no destination
/// delivers with, and every name a destination lists defined.
pub(super) fn transforms(
    raw: Vec<RawTransform>,
    destinations: &[DestinationConfig],
) -> Result<Vec<TransformConfig>, Invalid> {
    let mut names = HashSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, t) in raw.into_iter().enumerate() {
        let at = At(format!("transforms[{i}]"));
        if !valid_name(&t.name) || !names.insert(t.name.clone()) {
            return Err(at.err(
                "name",
                format!(
                    "`{}` is empty, used twice, or not made of letters, digits, `-` and `_`",
                    t.name
                ),
            ));
        }
        if !valid_name(&t.plugin) {
            return Err(at.err("plugin", format!("`{}` is not a plugin name", t.plugin)));
        }
        if let Some(d) = destinations.iter().find(|d| d.plugin == t.plugin) {
            return Err(at.err(
                "plugin",
                format!(
                    "`{}` is the destination plugin of `{}`; a component is either a destination or a transformation",
                    t.plugin, d.name
                ),
            ));
        }
        let settings =
            serde_json::to_value(&t.settings).map_err(|e| at.err("settings", e.to_string()))?;
        if !settings.is_object() {
            return Err(at.err("settings", "must be a table"));
        }
        out.push(TransformConfig {
            allowed_hosts: Allowlist::parse(&t.allowed_hosts)
                .map_err(|(j, m)| at.err(&format!("allowed_hosts[{j}]"), m))?,
            settings,
            limits: limits(&at, &t.limits)?,
            name: t.name,
            plugin: t.plugin,
        });
    }
    for (i, d) in destinations.iter().enumerate() {
        for (j, name) in d.transforms.iter().enumerate() {
            if !names.contains(name) {
                return Err((
                    format!("destinations[{i}].transforms[{j}]"),
                    format!("no `[[transforms]]` is named `{name}`"),
                ));
            }
        }
    }
    Ok(out)
}
