//! Calling a transformation component (`wit/transform.wit`): `transform` on a
//! batch in a fresh instance, and its verdicts in the host's terms.
//!
//! Where it sits: the dispatcher's chain of transformations
//! (`dispatch/transform.rs`) calls [`Plugin::transform`] before the
//! destination's `deliver`; what it does with a verdict (re-validating a kept
//! event, settling a dropped one as filtered) is decided there.

use std::sync::atomic::Ordering::Relaxed;

use super::bindings::transform::switchyard::destination::transform_types::Verdict as WitVerdict;
use super::limits::clip;
use super::plugin::{Kind, Pre};
use super::warm::Instance;
use super::{CallContext, CallError, Event, Outcome, Plugin};

/// What a transformation said about one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go on with this JSON (not yet checked: the dispatcher re-validates it).
    Keep(String),
    /// Leave the event out, for this reason: it settles as filtered.
    Drop(String),
    /// Retry or reject it, as a destination's failure would.
    Fail(Outcome),
}

impl Plugin {
    /// Run `transform` on a batch, in the instance its last batch left warm
    /// or a fresh one: one verdict per event.
    pub async fn transform(
        &self,
        ctx: &CallContext,
        settings: &str,
        events: &[Event],
    ) -> Result<Vec<Verdict>, CallError> {
        if !matches!(self.pre, Pre::Transform(_)) {
            return Err(self.wrong_kind(Kind::Transform));
        }
        let (verdicts, _) = self
            .with_instance(ctx, true, async |store, instance| {
                let Instance::Transform(t) = instance else {
                    unreachable!("a transformation's pre makes a transformation's instance");
                };
                let settings = store.data().seal_settings(settings);
                t.call_transform(store, &settings, events).await
            })
            .await;
        let verdicts = verdicts?;
        if verdicts.len() != events.len() {
            ctx.counters.contract.fetch_add(1, Relaxed);
            return Err(CallError::Contract(format!(
                "transform returned {} verdicts for {} events",
                verdicts.len(),
                events.len()
            )));
        }
        Ok(verdicts
            .into_iter()
            .map(|v| match v {
                WitVerdict::Keep(json) => Verdict::Keep(json),
                WitVerdict::Drop(reason) => Verdict::Drop(clip(reason)),
                WitVerdict::Fail(failure) => Verdict::Fail(failure.into()),
            })
            .collect())
    }
}
