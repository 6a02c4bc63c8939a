//! The bodies of the admin API's answers, as typed structs (their keys are the
//! the book, `operating/admin-api.md`).

use serde::Serialize;

use crate::dispatch::concurrency::LimitReport;

use crate::dispatch::health::Health;
use crate::plugins::PluginSlot;
use crate::runtime::Version;
use crate::runtime::Violations;

/// `GET /healthz`.
#[derive(Debug, Serialize)]
pub struct Healthz {
    /// Always `ok`.
    pub status: &'static str,
}

/// An error: `{"success": false, "message": ...}`.
#[derive(Debug, Serialize)]
pub struct Failure {
    /// Always `false`.
    pub success: bool,
    /// What went wrong.
    pub message: String,
}

/// A success with its details: `{"success": true, ...}`.
#[derive(Debug, Serialize)]
pub struct Done<T> {
    /// Always `true`.
    pub success: bool,
    /// The details, flattened beside `success`.
    #[serde(flatten)]
    pub details: T,
}

impl<T> Done<T> {
    /// A success with these details.
    pub fn with(details: T) -> Done<T> {
        Done {
            success: true,
            details,
        }
    }
}

/// One element of `GET /admin/destinations`.
#[derive(Debug, Serialize)]
pub struct DestinationRow {
    /// Destination name.
    pub name: String,
    /// Its plugin.
    pub plugin: String,
    /// A reload removed it: it receives no new events and its queue drains
    /// until it is deleted (`DELETE /admin/destinations/{name}`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub retired: bool,
    /// The serving version (from `describe`).
    pub version: String,
    /// sha256 of the serving component.
    pub sha256: String,
    /// Set while its plugin has not loaded (`version` and `sha256` are then
    /// empty, and nothing is delivered): why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin_error: Option<String>,
    /// `healthy`, `degraded` or `paused`.
    pub health: Health,
    /// Why it is not healthy.
    pub health_reason: Option<String>,
    /// Jobs waiting, from the store.
    pub queued: u64,
    /// Events in the batches in flight now.
    pub in_flight: u64,
    /// Batches in flight now (a claimed batch counts from its claim).
    pub batches_in_flight: u32,
    /// The concurrency limit: mode, current limit, ceiling, reference round trip.
    pub concurrency: LimitReport,
    /// Events delivered since start.
    pub delivered: u64,
    /// Events scheduled for another attempt since start.
    pub retried: u64,
    /// Dead letters kept, from the store.
    pub dead_letters: u64,
    /// Of `queued`, the events waiting for their retry's time.
    pub retrying: u64,
    /// When the next retry is due (RFC 3339), and in how long.
    pub next_retry_at: Option<String>,
    /// Milliseconds until then.
    pub next_retry_in_ms: Option<u64>,
    /// How long the oldest event not yet settled has waited, in ms (embedded
    /// store; `null` on NATS).
    pub oldest_queued_age_ms: Option<u64>,
    /// What needs a person beside the health: `dead-lettering` while dead
    /// letters are kept, else `retrying` while retries wait for their time.
    pub attention: Option<&'static str>,
    /// Events its filter, their `integrations` object or its transformations
    /// kept from it, since start.
    pub filtered: u64,
    /// Set when the store could not answer just now: `queued` and
    /// `dead_letters` are then its last answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_error: Option<String>,
    /// Sandbox violations since start.
    pub violations: Violations,
    /// The most linear memory one instance has held.
    pub memory_peak_bytes: u64,
    /// Events delivered per second over the last minute or two.
    pub delivered_per_second: f64,
    /// Median latency (receipt to delivery) of the newest 1,024 deliveries, in ms.
    pub latency_p50_ms: Option<u64>,
    /// 99th percentile of the same.
    pub latency_p99_ms: Option<u64>,
    /// Why the newest attempt that did not deliver everything failed.
    pub last_error: Option<String>,
    /// When that attempt was (RFC 3339).
    pub last_error_at: Option<String>,
    /// A later attempt delivered everything it carried: the error is history.
    pub last_error_resolved: bool,
    /// Its transformations, in the order they run (`[[destinations]] transforms`).
    pub transforms: Vec<TransformRow>,
}

/// One transformation of a destination, in its row.
#[derive(Debug, Serialize)]
pub struct TransformRow {
    /// The `[[transforms]]` name.
    pub name: String,
    /// Its plugin.
    pub plugin: String,
    /// The serving version (from `describe`); empty while it has not loaded.
    pub version: String,
    /// sha256 of the serving component.
    pub sha256: String,
    /// Set while its plugin has not loaded: why (the destination waits meanwhile).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin_error: Option<String>,
    /// Events it dropped for this destination since start (settled as filtered).
    pub filtered: u64,
    /// Its sandbox violations serving this destination since start.
    pub violations: Violations,
}

/// A plugin version: the answer to an upload or a rollback (with `success`).
#[derive(Debug, Serialize)]
pub struct VersionRow {
    /// The version from `describe`.
    pub version: String,
    /// sha256 of the component.
    pub sha256: String,
    /// Largest batch it accepts.
    pub max_batch: u32,
    /// Whether its compiled code came from the cache.
    pub from_cache: bool,
}

impl From<&Version> for VersionRow {
    fn from(v: &Version) -> Self {
        VersionRow {
            version: v.plugin.metadata.version.clone(),
            sha256: v.plugin.sha256.clone(),
            max_batch: v.plugin.metadata.max_batch,
            from_cache: v.plugin.from_cache,
        }
    }
}

/// One element of `GET /admin/plugins`.
#[derive(Debug, Serialize)]
pub struct PluginRow {
    /// Plugin name.
    pub name: String,
    /// `destination` or `transform`: the world it implements.
    pub kind: crate::runtime::Kind,
    /// The serving version (absent while the plugin has not loaded).
    #[serde(flatten)]
    pub serving: Option<VersionRow>,
    /// Whether a version serves (`false`: the plugin did not load; `last_error` says why).
    pub loaded: bool,
    /// sha256 of the version a rollback goes back to.
    pub previous_sha256: Option<String>,
    /// Why the last new version was refused.
    pub last_error: Option<String>,
    /// The newest swaps and rollbacks since start, newest first.
    pub swaps: Vec<crate::plugins::Swap>,
    /// Its version on trial (shadow or canary) and its figures, if any.
    pub trial: Option<crate::trial::TrialReport>,
    /// How its last trial ended, if one did.
    pub trial_ended: Option<crate::trial::Ended>,
}

impl From<&PluginSlot> for PluginRow {
    fn from(slot: &PluginSlot) -> Self {
        PluginRow {
            name: slot.name.clone(),
            kind: slot.kind,
            serving: slot.current().map(|v| VersionRow::from(&*v)),
            loaded: slot.current().is_some(),
            previous_sha256: slot.previous_sha256(),
            last_error: slot.last_error(),
            swaps: slot.swap_history(),
            trial: slot.trial().map(|t| t.report()),
            trial_ended: slot.ended_trial(),
        }
    }
}

/// The details of a replay: how many dead letters went back into the queue.
#[derive(Debug, Serialize)]
pub struct Replayed {
    /// How many.
    pub replayed: u64,
}

/// The details of a pause or resume: the destination's health now.
#[derive(Debug, Serialize)]
pub struct HealthNow {
    /// `healthy`, `degraded` or `paused`.
    pub health: Health,
}

/// One element of `GET /admin/sources`.
#[derive(Debug, Serialize)]
pub struct SourceRow {
    /// Source name.
    pub name: String,
    /// Events refused inside accepted batches (or in batches with no valid event) since start.
    pub rejected: u64,
    /// The same, per reason code.
    pub rejected_by_code: std::collections::BTreeMap<&'static str, u64>,
    /// Events accepted per second over the last minute or two.
    pub accepted_per_second: f64,
}

/// `DELETE …/dead-letters`: how many were deleted.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Purged {
    /// Dead letters deleted.
    pub purged: u64,
}
