//! Forwarding a privacy deletion to one destination: its component's
//! `deletion` export (`wit/deletion.wit`) called with the destination's
//! settings, egress and limits, as a delivery is, and tried again as a
//! delivery is.
//!
//! Where it sits: beside the worker, over the same [`Shared`] state. The
//! privacy module's job asks through the host's `Reach` (`host.rs`), which
//! finds each destination's [`Deletions`] in the registry. A `retry` outcome
//! (a 429 or 5xx, with the vendor's `Retry-After`) waits the destination's
//! backoff, or the vendor's delay when longer, and gives up once the next try
//! would fall outside its retry window: the deletion's dead letter is the
//! regulation's `failed` state for this destination, with the reason.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::retry::{backoff, jitter};
use super::shared::Shared;
use crate::plugins::PluginSlot;
use crate::runtime::{CallError, Outcome, Subject};

/// What became of a deletion at one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forwarded {
    /// The vendor took it for every subject.
    Done,
    /// The destination's component has no `deletion` export.
    NotSupported,
    /// Refused, or still failing when the retry window closed: why.
    Failed(String),
    /// The host is stopping: it stays pending, and the next start goes on.
    Interrupted,
}

/// One destination's way to forward deletions.
#[derive(Clone)]
pub struct Deletions {
    /// The destination's settings, call context, retry policy and shutdown.
    pub(super) shared: Arc<Shared>,
    /// Its plugin's slot: the serving version is the one asked.
    pub(super) slot: Arc<PluginSlot>,
}

impl std::fmt::Debug for Deletions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deletions")
            .field("destination", &self.shared.dest.name)
            .finish()
    }
}

impl Deletions {
    /// Whether the serving version can delete.
    pub fn supported(&self) -> bool {
        self.slot
            .current()
            .is_some_and(|v| v.plugin.supports_deletion())
    }

    /// Ask the destination to delete `subjects`, trying again as a delivery
    /// would, until it is done, refused or out of its retry window.
    pub async fn forward(&self, subjects: Vec<Subject>) -> Forwarded {
        let name = self.shared.dest.name.as_str();
        let Some(version) = self.slot.current() else {
            return Forwarded::Failed("no version of its plugin serves".into());
        };
        if !version.plugin.supports_deletion() {
            return Forwarded::NotSupported;
        }
        let policy = self.shared.dest.retry;
        let started = Instant::now();
        let mut ctx = self.shared.ctx.clone();
        ctx.warm = false;
        let mut pending = subjects;
        let mut shutdown = self.shared.shutdown.clone();
        for attempts in 1u32.. {
            let (reason, after) = match version
                .plugin
                .delete_subjects(&ctx, &self.shared.settings, &pending)
                .await
            {
                Ok(outcomes) => {
                    let mut again = Vec::new();
                    let (mut reason, mut after) = (String::new(), Duration::ZERO);
                    for (subject, outcome) in pending.into_iter().zip(outcomes) {
                        match outcome {
                            Outcome::Delivered | Outcome::Filtered(_) => {}
                            Outcome::Reject(why) => return Forwarded::Failed(why),
                            Outcome::Retry {
                                reason: why,
                                after: a,
                            } => {
                                again.push(subject);
                                reason = why;
                                after = after.max(a.unwrap_or_default());
                            }
                        }
                    }
                    if again.is_empty() {
                        return Forwarded::Done;
                    }
                    pending = again;
                    (reason, after)
                }
                Err(CallError::Invalid(why)) => return Forwarded::Failed(why),
                Err(e) => (e.to_string(), Duration::ZERO),
            };
            let delay = backoff(&policy, attempts, jitter(&mut rand::rng())).max(after);
            if started.elapsed() + delay >= policy.window {
                return Forwarded::Failed(format!(
                    "gave up after {attempts} attempts (retry window {}): {reason}",
                    humantime::format_duration(policy.window)
                ));
            }
            tracing::warn!(
                destination = name,
                attempts,
                "privacy: a deletion will be tried again in {delay:?}: {reason}"
            );
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.wait_for(|down| *down) => return Forwarded::Interrupted,
            }
        }
        unreachable!("the loop returns")
    }
}
