//! One plugin's slot: the version serving now, the one before it (for
//! rollback), the last refusal, and the newest swaps.

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;

use crate::runtime::Kind;
use crate::runtime::Version;

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
    pub(super) current: ArcSwapOption<Version>,
    /// What served before, for rollback.
    pub(super) previous: Mutex<Option<Arc<Version>>>,
    /// Why the last attempt to load a new version failed, if it did.
    pub(super) last_error: Mutex<Option<String>>,
    /// One install or rollback at a time.
    pub(super) installing: tokio::sync::Mutex<()>,
    /// Swaps and rollbacks since the host started (`switchyard_plugin_swaps_total`).
    pub swaps: std::sync::atomic::AtomicU64,
    /// The newest swaps and rollbacks, oldest first, at most [`SWAPS_KEPT`].
    pub(super) history: Mutex<std::collections::VecDeque<Swap>>,
    /// A version on trial (shadow or canary), taken by each batch with `current`.
    pub(super) trial: ArcSwapOption<crate::trial::Trial>,
    /// How the last trial ended, for the admin API.
    pub(super) ended: Mutex<Option<crate::trial::Ended>>,
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
    /// A slot serving `current` (`None`: not loaded, `last_error` says why).
    pub(super) fn new(
        name: &str,
        kind: Kind,
        current: Option<Arc<Version>>,
        last_error: Option<String>,
    ) -> PluginSlot {
        PluginSlot {
            name: name.to_string(),
            kind,
            current: ArcSwapOption::new(current),
            previous: Mutex::new(None),
            last_error: Mutex::new(last_error),
            installing: tokio::sync::Mutex::new(()),
            swaps: Default::default(),
            history: Default::default(),
            trial: ArcSwapOption::empty(),
            ended: Mutex::new(None),
        }
    }

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
    pub(super) fn swap(&self, kind: &'static str, from: Option<&Version>, to: Arc<Version>) {
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
