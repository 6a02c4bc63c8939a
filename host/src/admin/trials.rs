//! The admin API of versions on trial and of recordings ([`crate::trial`]):
//! - `PUT /admin/plugins/{name}?stage=shadow[&default_status=S&default_body=B]`
//! - `PUT /admin/plugins/{name}?stage=canary&percent=P[&margin=M&min_events=N&promote_after=D]`
//! - `GET /admin/plugins/{name}/trial`, `POST .../promote`, `POST .../discard`
//! - `POST /admin/destinations/{name}/record?count=N&timeout=D`: waits until
//!   the destination has made N deliveries (or `timeout`, 30 s by default,
//!   passes), and answers the recording.

use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::answers::{Done, VersionRow};
use super::{find, plugin_error, AdminError, AdminState};
use crate::config::parse_duration;
use crate::trial::answers::default_answer;
use crate::trial::recording::{Recorder, Recording, FORMAT, MAX_DELIVERIES};
use crate::trial::{Canary, Ended, Stage, TrialReport};

/// The parameters of a staged upload, for error messages.
pub const STAGE_PARAMS: &str = "the parameters are `stage` (shadow or canary), and with it \
    `default_status` and `default_body` (shadow), `percent`, `margin`, `min_events` and \
    `promote_after` (canary)";

/// How an uploaded version is staged (no `stage`: it serves at once).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageQuery {
    /// `shadow` or `canary`.
    pub stage: Option<String>,
    /// Shadow: status of the answer to a request the serving version did not send (200).
    default_status: Option<u16>,
    /// Shadow: its body (`{}`).
    default_body: Option<String>,
    /// Canary: share of users, 1 to 100.
    percent: Option<u8>,
    /// Canary: the rollback margin of the failure rate, 0 to 1 (0.05).
    margin: Option<f64>,
    /// Canary: events before it is judged (20).
    min_events: Option<u64>,
    /// Canary: promoted after this clean period (`10m`); by hand when absent.
    promote_after: Option<String>,
}

impl StageQuery {
    /// Refuse trial parameters sent without a `stage`.
    pub fn only_with_a_stage(&self) -> Result<(), AdminError> {
        let any = self.default_status.is_some()
            || self.default_body.is_some()
            || self.percent.is_some()
            || self.margin.is_some()
            || self.min_events.is_some()
            || self.promote_after.is_some();
        match any {
            true => Err(AdminError::BadRequest(format!(
                "trial parameters need `stage`; {STAGE_PARAMS}"
            ))),
            false => Ok(()),
        }
    }

    /// The stage asked for, checked.
    fn stage(self) -> Result<Stage, AdminError> {
        let bad = |m: String| Err(AdminError::BadRequest(m));
        match self.stage.as_deref() {
            Some("shadow") => {
                if self.percent.is_some()
                    || self.margin.is_some()
                    || self.min_events.is_some()
                    || self.promote_after.is_some()
                {
                    return bad(
                        "`percent`, `margin`, `min_events` and `promote_after` are for a canary"
                            .into(),
                    );
                }
                let mut default = default_answer();
                if let Some(status) = self.default_status {
                    if !(100..=599).contains(&status) {
                        return bad(format!("`default_status` {status} is not an HTTP status"));
                    }
                    default.status = status;
                }
                if let Some(body) = self.default_body {
                    default.body = body.into_bytes();
                }
                Ok(Stage::Shadow { default })
            }
            Some("canary") => {
                if self.default_status.is_some() || self.default_body.is_some() {
                    return bad("`default_status` and `default_body` are for a shadow".into());
                }
                let mut c = Canary::default();
                match self.percent {
                    Some(p @ 1..=100) => c.percent = p,
                    Some(p) => return bad(format!("`percent` {p}: give 1 to 100")),
                    None => return bad("a canary needs `percent` (1 to 100)".into()),
                }
                if let Some(m) = self.margin {
                    if !(0.0..=1.0).contains(&m) {
                        return bad(format!("`margin` {m}: give 0 to 1 (0.05 is 5 points)"));
                    }
                    c.margin = m;
                }
                if let Some(n) = self.min_events {
                    c.min_events = n.max(1);
                }
                if let Some(d) = self.promote_after {
                    c.promote_after =
                        Some(parse_duration(&d).map_err(|e| {
                            AdminError::BadRequest(format!("`promote_after`: {e}"))
                        })?);
                }
                Ok(Stage::Canary(c))
            }
            Some(other) => bad(format!("`stage` is `shadow` or `canary`, not `{other}`")),
            None => bad(format!("no `stage`; {STAGE_PARAMS}")),
        }
    }
}

/// `PUT /admin/plugins/{name}?stage=...`: stage `bytes` as the version on trial.
pub async fn stage(
    state: &AdminState,
    name: &str,
    query: StageQuery,
    bytes: Vec<u8>,
) -> Result<Response, AdminError> {
    let stage = query.stage()?;
    let trial = state
        .catalog
        .start_trial(name, bytes, stage)
        .await
        .map_err(plugin_error)?;
    Ok(Json(Done::with(trial.report())).into_response())
}

/// `GET /admin/plugins/{name}/trial`.
#[derive(Debug, Serialize)]
pub struct TrialView {
    /// The plugin.
    pub plugin: String,
    /// Its version on trial and the figures so far (`null`: none).
    pub trial: Option<TrialReport>,
    /// How the last trial ended (`null`: none has).
    pub ended: Option<Ended>,
}

pub async fn show(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> Result<Json<TrialView>, AdminError> {
    let slot = state
        .catalog
        .slot(&name)
        .ok_or_else(|| AdminError::Missing(format!("no plugin named `{name}`")))?;
    Ok(Json(TrialView {
        plugin: name,
        trial: slot.trial().map(|t| t.report()),
        ended: slot.ended_trial(),
    }))
}

pub async fn promote(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> Result<Json<Done<VersionRow>>, AdminError> {
    let version = state
        .catalog
        .promote_trial(&name)
        .await
        .map_err(plugin_error)?;
    Ok(Json(Done::with(VersionRow::from(&*version))))
}

pub async fn discard(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> Result<Json<Done<TrialReport>>, AdminError> {
    let report = state
        .catalog
        .discard_trial(&name)
        .await
        .map_err(plugin_error)?;
    Ok(Json(Done::with(report)))
}

/// The parameters of `POST /admin/destinations/{name}/record`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordQuery {
    /// Deliveries (calls of the destination, a batch each) to record.
    count: usize,
    /// Longest wait for them (`30s`); what was recorded by then is answered.
    timeout: Option<String>,
}

/// Longest `timeout` of a recording.
const MAX_RECORD_WAIT: Duration = Duration::from_secs(600);

pub async fn record(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    query: Result<Query<RecordQuery>, QueryRejection>,
) -> Result<Json<Recording>, AdminError> {
    let Query(q) = query.map_err(|e| {
        AdminError::BadRequest(format!(
            "{}; the parameters are `count` (1 to {MAX_DELIVERIES}) and `timeout` (30s)",
            e.body_text()
        ))
    })?;
    if !(1..=MAX_DELIVERIES).contains(&q.count) {
        return Err(AdminError::BadRequest(format!(
            "`count` {}: give 1 to {MAX_DELIVERIES}",
            q.count
        )));
    }
    let wait = match q.timeout.as_deref() {
        None => Duration::from_secs(30),
        Some(t) => parse_duration(t)
            .map_err(|e| AdminError::BadRequest(format!("`timeout`: {e}")))?
            .min(MAX_RECORD_WAIT),
    };
    let d = find(&state, &name)?;
    if d.retired {
        return Err(AdminError::Refused(format!(
            "destination `{name}` was removed by a reload: it delivers only what its queue still holds"
        )));
    }
    let recorder = std::sync::Arc::new(Recorder::new(q.count));
    {
        let mut slot = d.live.recorder.lock().expect("recorder lock");
        if slot.is_some() {
            return Err(AdminError::Refused(format!(
                "a recording of destination `{name}` is under way; wait for it to end"
            )));
        }
        *slot = Some(recorder.clone());
    }
    // Disarmed however this ends, the client hanging up included.
    struct Disarm<'a>(&'a std::sync::Mutex<Option<std::sync::Arc<Recorder>>>);
    impl Drop for Disarm<'_> {
        fn drop(&mut self) {
            *self.0.lock().expect("recorder lock") = None;
        }
    }
    let disarm = Disarm(&d.live.recorder);
    tokio::select! {
        _ = recorder.full.notified() => {}
        _ = tokio::time::sleep(wait) => {}
    }
    drop(disarm);
    let (deliveries, about) = recorder.take();
    let plugin = d.plugin.name.clone();
    let serving = d.plugin.current();
    let about = about.unwrap_or_else(|| crate::trial::recording::About {
        settings: serde_json::Value::Null,
        plugin_sha256: serving
            .as_ref()
            .map(|v| v.plugin.sha256.clone())
            .unwrap_or_default(),
        plugin_version: serving
            .as_ref()
            .map(|v| v.plugin.metadata.version.clone())
            .unwrap_or_default(),
    });
    Ok(Json(Recording {
        format: FORMAT,
        destination: name,
        plugin,
        plugin_sha256: about.plugin_sha256,
        plugin_version: about.plugin_version,
        recorded_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        settings: about.settings,
        deliveries,
    }))
}
