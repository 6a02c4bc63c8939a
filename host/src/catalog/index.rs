//! What the catalog offers: every entry with its settings, actions, fields
//! and presets, and whether it is verified against Segment's own runtime.
//!
//! Where it sits: read by `switchyard catalog` and `switchyard new
//! --from-catalog`. The file is written by the catalog's `index.mjs`
//! ([`super::Source::write_index`]) from the entries' definitions.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::CatalogError;

/// The whole index.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Index {
    /// The npm package the entries come from.
    pub package: String,
    /// Its pinned version.
    pub version: String,
    /// One per entry, by name.
    pub entries: Vec<Entry>,
}

/// One entry of Segment's catalog.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// Segment's directory name (`braze`): the `NAME` of `catalog:NAME`.
    pub name: String,
    /// Segment's title (`Braze Cloud Mode (Actions)`).
    pub title: String,
    /// Segment's slug, when it has one.
    #[serde(default)]
    pub slug: Option<String>,
    /// `cloud` or `device` (a device-mode entry has nothing to run here).
    #[serde(default)]
    pub mode: Option<String>,
    /// What it is.
    #[serde(default)]
    pub description: String,
    /// Its authentication scheme (`custom`, `oauth2`, `basic`, `none`).
    #[serde(default)]
    pub authentication: Option<String>,
    /// Whether it refreshes an OAuth2 access token.
    #[serde(default)]
    pub oauth_refresh: bool,
    /// Whether it defines `onDelete`: its component then deletes users at the
    /// vendor for privacy regulations (`wit/deletion.wit`).
    #[serde(default)]
    pub deletion: bool,
    /// Its settings, under Segment's names.
    #[serde(default)]
    pub settings: Vec<Field>,
    /// Its actions.
    #[serde(default)]
    pub actions: Vec<Action>,
    /// The subscriptions Segment offers by default.
    #[serde(default)]
    pub presets: Vec<Preset>,
    /// Whether the differential check matched Segment's own runtime.
    #[serde(default)]
    pub verified: bool,
    /// Why it is not verified, when it is not.
    #[serde(default)]
    pub reason: Option<String>,
    /// Why its definition could not be read, when it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A setting of an entry, or a field of an action.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Field {
    /// Its key.
    pub name: String,
    /// Segment's label.
    #[serde(default)]
    pub label: String,
    /// Segment's field type (`string`, `password`, `boolean`, `object`, ...).
    #[serde(default, rename = "type")]
    pub kind: String,
    /// Whether it must be given.
    #[serde(default)]
    pub required: bool,
    /// Whether it is a list.
    #[serde(default)]
    pub multiple: bool,
    /// Segment's description.
    #[serde(default)]
    pub description: String,
    /// Its default (a value or a mapping directive), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    /// The values it may take, when it is a choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<serde_json::Value>>,
}

/// An action of an entry (`trackEvent`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Action {
    /// Its key: a subscription's `partnerAction`.
    pub name: String,
    /// Segment's title.
    #[serde(default)]
    pub title: String,
    /// Segment's description.
    #[serde(default)]
    pub description: String,
    /// Whether it sends many events in one request (`performBatch`).
    #[serde(default)]
    pub batching: bool,
    /// The FQL Segment suggests for it.
    #[serde(default)]
    pub default_subscription: Option<String>,
    /// Its fields: a subscription's `mapping` keys.
    #[serde(default)]
    pub fields: Vec<Field>,
}

/// A subscription Segment offers with the entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Preset {
    /// Its name.
    pub name: String,
    /// Its trigger (FQL).
    pub subscribe: String,
    /// The action it runs.
    #[serde(rename = "partnerAction")]
    pub partner_action: String,
    /// How the action's fields are filled.
    #[serde(default)]
    pub mapping: serde_json::Value,
    /// `automatic` (on by default) or another of Segment's kinds.
    #[serde(default, rename = "type")]
    pub kind: String,
}

impl Index {
    /// Read the index file.
    pub fn read(path: &Path) -> Result<Index, CatalogError> {
        let err = |message: String| CatalogError::Index {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| err(format!("line {}: {e}", e.line())))
    }

    /// The entry named `name`.
    pub fn entry(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// Entry names closest to `name`, for a "did you mean" line.
    pub fn near(&self, name: &str) -> Vec<&str> {
        let mut near: Vec<&str> = self
            .entries
            .iter()
            .map(|e| e.name.as_str())
            .filter(|n| n.contains(name) || name.contains(*n))
            .collect();
        near.truncate(5);
        near
    }
}

impl Entry {
    /// The presets on by default (the subscriptions a destination without
    /// `subscriptions` runs).
    pub fn automatic_presets(&self) -> impl Iterator<Item = &Preset> {
        self.presets.iter().filter(|p| p.kind == "automatic")
    }
}
