//! Trying a plugin version on real traffic before it serves, and recording
//! real deliveries to try versions offline.
//!
//! Where it sits: beside the plugin catalog (`plugins/mod.rs`). A version
//! staged with `PUT /admin/plugins/{name}?stage=shadow|canary` becomes the
//! slot's [`Trial`]; each batch in flight (`dispatch/flight.rs`,
//! `dispatch/versions.rs`) takes it with the serving version:
//! - a **shadow** runs on the same batch after the serving version, its
//!   network answered from the serving call's exchanges ([`answers`]); the
//!   two are compared ([`compare`]) and the newest differences kept;
//! - a **canary** delivers, for real, the events of a share of users (a hash
//!   of `userId`, else `anonymousId`, so a user sticks); its failure rate is
//!   compared with the serving version's over the same period, and it is
//!   rolled back when worse by the margin, or promoted after a clean period.
//!
//! The exchanges of a call are captured whole ([`capture`]); a recording
//! ([`recording`]) holds them with the events and outcomes, for
//! `switchyard replay` (`cli/replay.rs`).

pub mod answers;
pub mod capture;
pub mod compare;
pub mod recording;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::imports::http::Response;
use crate::runtime::Version;
use compare::Difference;

/// Differences kept per trial (the newest).
pub const DIFFS_KEPT: usize = 20;

/// How a trial version takes part in delivery.
#[derive(Debug, Clone)]
pub enum Stage {
    /// Runs after the serving version on the same batches; never reaches the network.
    Shadow {
        /// The answer to a request the serving version did not send.
        default: Response,
    },
    /// Delivers a share of users for real.
    Canary(Canary),
}

/// The policy of a canary.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Canary {
    /// Share of users, 1 to 100.
    pub percent: u8,
    /// Rolled back when its failure rate passes the serving one's by more than this (0 to 1).
    pub margin: f64,
    /// Events it must have delivered or failed before it is judged.
    pub min_events: u64,
    /// Promoted once it has run this long, judged and clean (`None`: by hand only).
    pub promote_after: Option<Duration>,
}

impl Default for Canary {
    fn default() -> Self {
        Canary {
            percent: 10,
            margin: 0.05,
            min_events: 20,
            promote_after: None,
        }
    }
}

/// A version on trial for one plugin.
#[derive(Debug)]
pub struct Trial {
    /// The version tried.
    pub version: Arc<Version>,
    /// Shadow or canary.
    pub stage: Stage,
    /// When it was staged (RFC 3339).
    pub started_at: String,
    /// The same, for the clean period.
    started: Instant,
    /// The plugins directory, where a promotion writes the version.
    pub dir: PathBuf,
    /// Its own sandbox violations (they are not the serving version's).
    pub sandbox: Arc<crate::runtime::SandboxCounters>,
    /// Shadow batches compared, matched, differed, skipped.
    compared: AtomicU64,
    matched: AtomicU64,
    differed: AtomicU64,
    skipped: AtomicU64,
    /// The newest differences, oldest first.
    diffs: Mutex<VecDeque<DiffRecord>>,
    /// Canary events delivered or failed, by each version, since it was staged.
    canary: Tally,
    serving: Tally,
}

/// Events settled by one version: all of them, and those that failed.
#[derive(Debug, Default)]
struct Tally {
    events: AtomicU64,
    failed: AtomicU64,
}

impl Tally {
    fn add(&self, events: u64, failed: u64) {
        self.events.fetch_add(events, Relaxed);
        self.failed.fetch_add(failed, Relaxed);
    }

    fn now(&self) -> (u64, u64) {
        (self.events.load(Relaxed), self.failed.load(Relaxed))
    }
}

fn rate(events: u64, failed: u64) -> f64 {
    if events == 0 {
        0.0
    } else {
        failed as f64 / events as f64
    }
}

/// One batch on which a shadow did otherwise.
#[derive(Debug, Clone, Serialize)]
pub struct DiffRecord {
    /// When (RFC 3339).
    pub at: String,
    /// The destination of the batch.
    pub destination: String,
    /// The batch's events.
    #[serde(rename = "messageIds")]
    pub message_ids: Vec<String>,
    /// What differed.
    pub differences: Vec<Difference>,
}

/// What a trial's figures call for.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Worse than the serving version: roll back, for this reason.
    RollBack(String),
    /// Clean for the period: promote, for this reason.
    Promote(String),
}

/// How a trial ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// It serves now.
    Promoted,
    /// Dropped by an operator.
    Discarded,
    /// Dropped automatically: worse than the serving version.
    RolledBack,
}

impl Ending {
    /// As the admin API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Ending::Promoted => "promoted",
            Ending::Discarded => "discarded",
            Ending::RolledBack => "rolled_back",
        }
    }
}

/// A trial that ended, as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Ended {
    /// How.
    pub ending: Ending,
    /// Why, with the figures.
    pub reason: String,
    /// When (RFC 3339).
    pub at: String,
    /// The trial's figures then.
    pub trial: TrialReport,
}

impl Trial {
    /// A trial of `version` as `stage`, starting now.
    pub fn new(version: Arc<Version>, stage: Stage, dir: PathBuf) -> Trial {
        Trial {
            version,
            stage,
            started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            started: Instant::now(),
            dir,
            sandbox: Arc::default(),
            compared: AtomicU64::new(0),
            matched: AtomicU64::new(0),
            differed: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            diffs: Mutex::default(),
            canary: Tally::default(),
            serving: Tally::default(),
        }
    }

    /// The canary policy, when it is one.
    pub fn canary(&self) -> Option<&Canary> {
        match &self.stage {
            Stage::Canary(c) => Some(c),
            Stage::Shadow { .. } => None,
        }
    }

    /// Count one shadow comparison (`None`: the batch could not be compared).
    pub fn compared(
        &self,
        destination: &str,
        message_ids: Vec<String>,
        diffs: Option<Vec<Difference>>,
    ) {
        let Some(diffs) = diffs else {
            self.skipped.fetch_add(1, Relaxed);
            return;
        };
        self.compared.fetch_add(1, Relaxed);
        if diffs.is_empty() {
            self.matched.fetch_add(1, Relaxed);
            return;
        }
        self.differed.fetch_add(1, Relaxed);
        let mut kept = self.diffs.lock().expect("diffs lock");
        if kept.len() == DIFFS_KEPT {
            kept.pop_front();
        }
        kept.push_back(DiffRecord {
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            destination: destination.to_string(),
            message_ids,
            differences: diffs,
        });
    }

    /// Count events settled during a canary: `canary` says by which version.
    pub fn settled(&self, canary: bool, events: u64, failed: u64) {
        match canary {
            true => self.canary.add(events, failed),
            false => self.serving.add(events, failed),
        }
    }

    /// What the canary's figures call for now, if anything.
    pub fn verdict(&self) -> Option<Verdict> {
        judge(
            self.canary()?,
            self.canary.now(),
            self.serving.now(),
            self.started.elapsed(),
        )
    }

    /// Forget the differences kept (a privacy deletion: they quote the
    /// requests a batch made); how many were kept.
    pub fn forget_samples(&self) -> u64 {
        let mut diffs = self.diffs.lock().expect("diffs lock");
        let n = diffs.len() as u64;
        diffs.clear();
        n
    }

    /// Its figures for the admin API and the status page.
    pub fn report(&self) -> TrialReport {
        let (stage, percent) = match &self.stage {
            Stage::Shadow { .. } => ("shadow", None),
            Stage::Canary(c) => ("canary", Some(c.percent)),
        };
        let canary = self.canary().map(|c| {
            let (events, failed) = self.canary.now();
            let (s_events, s_failed) = self.serving.now();
            CanaryReport {
                events,
                failed,
                failure_rate: rate(events, failed),
                serving_events: s_events,
                serving_failed: s_failed,
                serving_failure_rate: rate(s_events, s_failed),
                margin: c.margin,
                min_events: c.min_events,
                promote_after_s: c.promote_after.map(|d| d.as_secs()),
            }
        });
        let shadow = matches!(self.stage, Stage::Shadow { .. }).then(|| ShadowReport {
            compared: self.compared.load(Relaxed),
            matched: self.matched.load(Relaxed),
            differed: self.differed.load(Relaxed),
            skipped: self.skipped.load(Relaxed),
            differences: self
                .diffs
                .lock()
                .expect("diffs lock")
                .iter()
                .rev()
                .cloned()
                .collect(),
        });
        TrialReport {
            stage,
            percent,
            sha256: self.version.plugin.sha256.clone(),
            version: self.version.plugin.metadata.version.clone(),
            started_at: self.started_at.clone(),
            shadow,
            canary,
        }
    }
}

/// A trial's figures.
#[derive(Debug, Clone, Serialize)]
pub struct TrialReport {
    /// `shadow` or `canary`.
    pub stage: &'static str,
    /// A canary's share of users.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent: Option<u8>,
    /// sha256 of the version tried.
    pub sha256: String,
    /// Its version (from `describe`).
    pub version: String,
    /// When it was staged.
    pub started_at: String,
    /// A shadow's comparisons.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowReport>,
    /// A canary's failure rates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryReport>,
}

/// A shadow's comparisons.
#[derive(Debug, Clone, Serialize)]
pub struct ShadowReport {
    /// Batches compared.
    pub compared: u64,
    /// Of those, the same in requests and outcomes.
    pub matched: u64,
    /// Of those, different.
    pub differed: u64,
    /// Batches not compared (the serving call sent too many requests to keep,
    /// or the batch was larger than the shadow accepts).
    pub skipped: u64,
    /// The newest differing batches, newest first (at most [`DIFFS_KEPT`]).
    pub differences: Vec<DiffRecord>,
}

/// A canary's figures since it was staged.
#[derive(Debug, Clone, Serialize)]
pub struct CanaryReport {
    /// Events the canary settled.
    pub events: u64,
    /// Of those, to retry or rejected.
    pub failed: u64,
    /// `failed / events`.
    pub failure_rate: f64,
    /// Events the serving version settled meanwhile.
    pub serving_events: u64,
    /// Of those, failed.
    pub serving_failed: u64,
    /// Its failure rate.
    pub serving_failure_rate: f64,
    /// The margin of the automatic rollback.
    pub margin: f64,
    /// Events before it is judged.
    pub min_events: u64,
    /// The clean period before an automatic promotion, in seconds.
    pub promote_after_s: Option<u64>,
}

/// What a canary's figures call for: `(events, failed)` of the canary and of
/// the serving version, `elapsed` since it was staged.
fn judge(
    policy: &Canary,
    (events, failed): (u64, u64),
    (s_events, s_failed): (u64, u64),
    elapsed: Duration,
) -> Option<Verdict> {
    if events < policy.min_events {
        return None;
    }
    let (mine, theirs) = (rate(events, failed), rate(s_events, s_failed));
    let figures = format!(
        "canary failed {failed} of {events} events ({:.1}%), serving {s_failed} of {s_events} ({:.1}%) over {}s; margin {:.1} points",
        mine * 100.0,
        theirs * 100.0,
        elapsed.as_secs(),
        policy.margin * 100.0,
    );
    if mine > theirs + policy.margin {
        return Some(Verdict::RollBack(figures));
    }
    match policy.promote_after {
        Some(period) if elapsed >= period => Some(Verdict::Promote(format!(
            "clean for {}s: {figures}",
            period.as_secs()
        ))),
        _ => None,
    }
}

/// Whether an event goes to a canary of `percent`: a hash of its `userId`
/// (else `anonymousId`, else `messageId`), so each user sticks to one version.
pub fn in_canary(json: &str, message_id: &str, percent: u8) -> bool {
    #[derive(serde::Deserialize)]
    struct Who {
        #[serde(rename = "userId")]
        user_id: Option<serde_json::Value>,
        #[serde(rename = "anonymousId")]
        anonymous_id: Option<serde_json::Value>,
    }
    let id = |v: Option<serde_json::Value>| match v {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let key = match serde_json::from_str::<Who>(json) {
        Ok(w) => id(w.user_id)
            .or_else(|| id(w.anonymous_id))
            .unwrap_or_else(|| message_id.to_string()),
        Err(_) => message_id.to_string(),
    };
    let digest = Sha256::digest(key.as_bytes());
    let n = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    n % 100 < u64::from(percent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_canary_is_judged_after_min_events_against_the_serving_rate() {
        let policy = Canary {
            percent: 10,
            margin: 0.05,
            min_events: 20,
            promote_after: Some(Duration::from_secs(60)),
        };
        let s = Duration::from_secs(1);
        assert_eq!(judge(&policy, (19, 19), (100, 0), s), None);
        assert!(matches!(
            judge(&policy, (20, 20), (100, 0), s),
            Some(Verdict::RollBack(why)) if why.contains("canary failed 20 of 20 events (100.0%)")
        ));
        // Within the margin of a failing vendor: not the canary's fault.
        assert_eq!(judge(&policy, (20, 10), (100, 48), s), None);
        assert!(matches!(
            judge(&policy, (20, 0), (100, 0), Duration::from_secs(61)),
            Some(Verdict::Promote(_))
        ));
        let by_hand = Canary {
            promote_after: None,
            ..policy
        };
        assert_eq!(
            judge(&by_hand, (500, 0), (100, 0), Duration::from_secs(3600)),
            None
        );
    }

    #[test]
    fn a_user_sticks_to_one_side_and_the_share_is_near_the_percent() {
        let ev = |u: &str| format!(r#"{{"type":"track","userId":"{u}","anonymousId":"a"}}"#);
        let in10 = (0..2000)
            .filter(|i| in_canary(&ev(&format!("user-{i}")), "m", 10))
            .count();
        assert!((120..=280).contains(&in10), "{in10} of 2000 at 10%");
        for i in 0..50 {
            let u = format!("user-{i}");
            assert_eq!(in_canary(&ev(&u), "m1", 30), in_canary(&ev(&u), "m2", 30));
        }
        assert!((0..100).all(|i| in_canary(&ev(&i.to_string()), "m", 100)));
        // No userId: the anonymousId decides.
        let anon = |a: &str| format!(r#"{{"anonymousId":"{a}"}}"#);
        assert_eq!(
            in_canary(&anon("x"), "m1", 50),
            in_canary(&anon("x"), "m2", 50)
        );
    }
}
