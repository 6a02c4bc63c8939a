//! A plugin's version on trial: staged beside the serving one, then promoted
//! or dropped ([`crate::trial`] has what a trial does while it runs).
//!
//! Where it sits: `PUT /admin/plugins/{name}?stage=...`,
//! `POST /admin/plugins/{name}/promote` and `.../discard` call the
//! [`Catalog`] methods here; a batch in flight whose canary's figures call for
//! it calls [`PluginSlot::conclude`]. A staged version passes the same checks as
//! an install (world, `describe`, `check` of every user's settings) before it
//! takes any traffic.

use std::sync::Arc;

use super::{error_text, write_plugin, Catalog, PluginError, PluginSlot};
use crate::runtime::Kind;
use crate::runtime::Version;
use crate::trial::{Ended, Ending, Stage, Trial, TrialReport, Verdict};

impl PluginSlot {
    /// The version on trial, if any.
    pub fn trial(&self) -> Option<Arc<Trial>> {
        self.trial.load_full()
    }

    /// How the last trial ended.
    pub fn ended_trial(&self) -> Option<Ended> {
        self.ended.lock().expect("ended lock").clone()
    }

    /// Act on a canary's verdict, found by a batch: roll it back, or promote
    /// it. Nothing happens when `trial` no longer runs, or while an install or
    /// a rollback of the plugin is under way (the next batch finds it again).
    pub fn conclude(&self, trial: &Arc<Trial>, verdict: Verdict) {
        let Ok(_one_at_a_time) = self.installing.try_lock() else {
            return;
        };
        match verdict {
            Verdict::RollBack(why) => {
                if self.end(trial, Ending::RolledBack, &why) {
                    tracing::error!(plugin = %self.name, sha256 = %trial.version.plugin.sha256, "canary rolled back: {why}");
                }
            }
            Verdict::Promote(why) => {
                if let Err(e) = self.promote(trial, &why) {
                    tracing::error!(plugin = %self.name, "canary not promoted: {}", error_text(&e));
                }
            }
        }
    }

    /// Stop `trial` if it still runs; `false` if another took its place.
    pub(super) fn end(&self, trial: &Arc<Trial>, ending: Ending, reason: &str) -> bool {
        let was = self.trial.compare_and_swap(trial, None::<Arc<Trial>>);
        if !was.as_ref().is_some_and(|w| Arc::ptr_eq(w, trial)) {
            return false;
        }
        *self.ended.lock().expect("ended lock") = Some(Ended {
            ending,
            reason: reason.to_string(),
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            trial: trial.report(),
        });
        true
    }

    /// Make `trial` the serving version (written to the plugins directory so a
    /// restart serves it); the one it replaces is kept for rollback. The
    /// caller holds `installing`.
    fn promote(&self, trial: &Arc<Trial>, reason: &str) -> Result<Arc<Version>, PluginError> {
        if !self.trial().is_some_and(|t| Arc::ptr_eq(&t, trial)) {
            return Err(PluginError::NoTrial(self.name.clone()));
        }
        write_plugin(&trial.dir, &self.name, &trial.version.bytes)?;
        if !self.end(trial, Ending::Promoted, reason) {
            return Err(PluginError::NoTrial(self.name.clone()));
        }
        let current = self.current();
        if let Some(c) = &current {
            *self.previous.lock().expect("previous lock") = Some(c.clone());
        }
        self.swap("promote", current.as_deref(), trial.version.clone());
        tracing::info!(
            plugin = %self.name,
            to = %trial.version.plugin.sha256,
            version = %trial.version.plugin.metadata.version,
            "trial version promoted: {reason}"
        );
        Ok(trial.version.clone())
    }
}

impl Catalog {
    /// Stage `bytes` as plugin `name`'s version on trial, once it passes every
    /// check an install makes. A trial already running is replaced.
    pub async fn start_trial(
        &self,
        name: &str,
        bytes: Vec<u8>,
        stage: Stage,
    ) -> Result<Arc<Trial>, PluginError> {
        let slot = self.known(name)?;
        let no = |why| PluginError::NoTrialHere {
            plugin: name.to_string(),
            why,
        };
        if slot.kind != Kind::Destination {
            return Err(no(
                "only a destination's plugin can (a transformation's cannot)",
            ));
        }
        let _one_at_a_time = slot.installing.lock().await;
        let Some(current) = slot.current() else {
            return Err(no("it has no serving version to compare with"));
        };
        if current.bytes.as_slice() == bytes.as_slice() {
            return Err(no("these bytes are its serving version"));
        }
        let version = self.prepare(name, bytes, "uploaded", &self.users()).await;
        let version = match version {
            Ok(v) if v.plugin.kind() != slot.kind => Err(PluginError::WrongWorld {
                plugin: name.to_string(),
                has: v.plugin.kind().as_str(),
                needs: slot.kind.as_str(),
            }),
            other => other,
        }?;
        let trial = Arc::new(Trial::new(Arc::new(version), stage, self.dir.clone()));
        if let Some(old) = slot.trial() {
            slot.end(&old, Ending::Discarded, "replaced by a new trial version");
        }
        slot.trial.store(Some(trial.clone()));
        let report = trial.report();
        tracing::info!(
            plugin = name,
            stage = report.stage,
            percent = report.percent,
            sha256 = %report.sha256,
            version = %report.version,
            "trial version staged"
        );
        Ok(trial)
    }

    /// Make the version on trial serve.
    pub async fn promote_trial(&self, name: &str) -> Result<Arc<Version>, PluginError> {
        let slot = self.known(name)?;
        let _one_at_a_time = slot.installing.lock().await;
        let trial = slot
            .trial()
            .ok_or_else(|| PluginError::NoTrial(name.to_string()))?;
        slot.promote(&trial, "by an operator")
    }

    /// Drop the version on trial; its figures, as they were.
    pub async fn discard_trial(&self, name: &str) -> Result<TrialReport, PluginError> {
        let slot = self.known(name)?;
        let _one_at_a_time = slot.installing.lock().await;
        let trial = slot
            .trial()
            .ok_or_else(|| PluginError::NoTrial(name.to_string()))?;
        slot.end(&trial, Ending::Discarded, "by an operator");
        tracing::info!(plugin = name, sha256 = %trial.version.plugin.sha256, "trial version discarded");
        Ok(trial.report())
    }
}
