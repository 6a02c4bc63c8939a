//! The call of a destination's component on one batch, with a failed call
//! turned into one outcome for every event.
//!
//! Where it sits: below the version choice ([`super::versions`]), which calls
//! the serving version, a shadow or a canary through [`call`].

use super::shared::Shared;
use crate::runtime::Version;
use crate::runtime::{CallContext, CallError, Event, Outcome};

/// Run `deliver` of `version` in a fresh instance with `ctx` (its tape and
/// capture record the exchanges); a failed call gives every event the same
/// outcome, and says why.
pub async fn call(
    shared: &Shared,
    ctx: &CallContext,
    version: &Version,
    events: &[Event],
) -> (Vec<Outcome>, Option<String>) {
    // This batch runs to the end on its version, whatever swaps meanwhile.
    match version.plugin.deliver(ctx, &shared.settings, events).await {
        Ok(outcomes) => (outcomes, None),
        Err(e) => {
            tracing::warn!(
                destination = shared.dest.name.as_str(),
                batch = events.len(),
                "delivery failed: {e}"
            );
            let reason = e.to_string();
            let outcome = match e {
                CallError::Invalid(_) => Outcome::Reject(reason.clone()),
                _ => Outcome::Retry {
                    reason: reason.clone(),
                    after: None,
                },
            };
            (vec![outcome; events.len()], Some(reason))
        }
    }
}
