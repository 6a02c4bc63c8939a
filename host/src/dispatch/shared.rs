//! What a destination's worker and its batches in flight share: the
//! destination's config and live state ([`Shared`]), the versions a batch runs
//! on ([`Versions`]), and the pause after a store error.
//!
//! Where it sits: at the bottom of `dispatch/`. The worker ([`super::worker`])
//! builds one `Shared` per destination and hands it, with a batch's `Versions`,
//! to the batch in flight ([`super::flight`]), which chooses the version that
//! serves ([`super::versions`]) and calls it ([`super::call`]). Each of those
//! imports this module, none imports one above it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::rate::TokenBucket;
use super::{Clock, LiveDestination};
use crate::config::DestinationConfig;
use crate::runtime::CallContext;
use crate::runtime::Version;
use crate::store::Store;

/// Pause after a store error.
pub const STORE_ERROR_PAUSE: Duration = Duration::from_millis(500);

/// What the worker and its batches in flight share.
pub struct Shared {
    /// The destination's configuration (policies, limits).
    pub dest: DestinationConfig,
    /// Its settings as JSON text, serialised once.
    pub settings: String,
    /// Hides its credentials in captured exchanges (shadow, recording).
    pub redactor: crate::trial::capture::Redactor,
    /// The store holding its queue.
    pub store: Arc<dyn Store>,
    /// What every call into the component runs with (limits, egress).
    pub ctx: CallContext,
    /// Counters, health and the concurrency limit, shared with the admin API.
    pub live: Arc<LiveDestination>,
    /// The rate limit, one for all batches in flight (`None`: unlimited).
    pub bucket: Option<Mutex<TokenBucket>>,
    /// Time, injected so the policies can be tested with paused time.
    pub clock: Arc<dyn Clock>,
    /// Turns true at shutdown: a batch stops retrying its settle then.
    pub shutdown: watch::Receiver<bool>,
}

/// The versions a batch runs on from start to end, whatever swaps meanwhile:
/// its destination's and those of its chain of transformations, in order.
pub struct Versions {
    /// The destination's component.
    pub destination: Arc<Version>,
    /// One per link of the chain.
    pub chain: Vec<Arc<Version>>,
    /// The destination plugin's version on trial, if any (`dispatch/versions.rs`).
    pub trial: Option<Arc<crate::trial::Trial>>,
    /// The destination plugin's slot, where a canary's verdict is acted on.
    pub slot: Arc<crate::plugins::PluginSlot>,
}
