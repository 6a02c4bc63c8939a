//! Calling a destination's optional `deletion` export (`wit/deletion.wit`):
//! `delete-subjects` in a fresh instance, and its outcomes in the host's terms.
//!
//! Where it sits: the dispatcher's forwarding of a privacy deletion
//! (`dispatch/deletion.rs`) calls [`Plugin::delete_subjects`] with the
//! destination's settings and egress, as a delivery would; retries and the
//! retry window are decided there.

use std::sync::atomic::Ordering::Relaxed;

pub use super::bindings::deleting::exports::switchyard::destination::deletion::Subject;
use super::warm::Instance;
use super::{CallContext, CallError, Outcome, Plugin};

impl Plugin {
    /// Whether its component exports `deletion`.
    pub fn supports_deletion(&self) -> bool {
        self.deletion.is_some()
    }

    /// Run `delete-subjects` in a fresh instance: one outcome per subject
    /// (`Delivered` when the vendor took the request). A component without
    /// the export is a contract error.
    pub async fn delete_subjects(
        &self,
        ctx: &CallContext,
        settings: &str,
        subjects: &[Subject],
    ) -> Result<Vec<Outcome>, CallError> {
        if self.deletion.is_none() {
            return Err(CallError::Invalid(format!(
                "plugin `{}` does not export `deletion`",
                self.name
            )));
        }
        let (outcomes, _) = self
            .with_instance_of(ctx, false, true, async |store, instance| {
                let Instance::Deleting(d) = instance else {
                    unreachable!("a deletion instantiates the deleting world");
                };
                let settings = store.data().seal_settings(settings);
                d.switchyard_destination_deletion()
                    .call_delete_subjects(store, &settings, subjects)
                    .await
            })
            .await;
        let outcomes = outcomes?;
        if outcomes.len() != subjects.len() {
            ctx.counters.contract.fetch_add(1, Relaxed);
            return Err(CallError::Contract(format!(
                "delete-subjects returned {} outcomes for {} subjects",
                outcomes.len(),
                subjects.len()
            )));
        }
        Ok(outcomes
            .into_iter()
            .map(|o| match o {
                Ok(()) => Outcome::Delivered,
                Err(failure) => failure.into(),
            })
            .collect())
    }
}
