//! The host's registry of live destinations: each one's name, plugin slot,
//! live state and the store's last answer about its queue, as the admin API,
//! the status page and a reload see them.
//!
//! Where it sits: above `dispatch/` (whose [`Dispatcher`] holds each
//! destination's live state) and `plugins/` (the slots), below `admin/` (which
//! shows it) and `reload` (which rebuilds it). [`DestinationInfo::of`] is its
//! one constructor, used at start and at every reload.

use std::sync::Arc;

use crate::config::DestinationConfig;
use crate::dispatch::{Dispatcher, LiveDestination};
use crate::plugins::{Catalog, PluginSlot};

/// One live destination.
#[derive(Debug, Clone)]
pub struct DestinationInfo {
    /// Destination name.
    pub name: String,
    /// Its plugin's slot (serving version, sha256).
    pub plugin: Arc<PluginSlot>,
    /// Live counters and health.
    pub live: Arc<LiveDestination>,
    /// The store's last answer about its queue, shown while the store cannot answer.
    pub last_queue: Arc<std::sync::Mutex<crate::store::QueueStats>>,
    /// A reload removed it from the config: it receives no new events, and its
    /// queue drains until it is deleted (`DELETE /admin/destinations/{name}`).
    pub retired: bool,
    /// How it forwards privacy deletions to its component.
    pub deletions: Option<crate::dispatch::deletion::Deletions>,
}

impl DestinationInfo {
    /// The entry of `d`, whose worker `dispatcher` runs with its plugin's slot
    /// in `catalog`; `None` when either does not know it.
    pub fn of(
        dispatcher: &Dispatcher,
        catalog: &Catalog,
        d: &DestinationConfig,
        retired: bool,
    ) -> Option<DestinationInfo> {
        Some(DestinationInfo {
            name: d.name.clone(),
            plugin: catalog.slot(&d.plugin)?,
            live: dispatcher.live.get(&d.name)?.clone(),
            last_queue: Default::default(),
            retired,
            deletions: dispatcher.deletions(&d.name),
        })
    }
}
