//! `/admin/destinations` and what an operator does to one: pause, resume,
//! retry now, backfill, forget; and `POST /admin/reload`.

use std::sync::atomic::Ordering::Relaxed;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;

use super::answers::{DestinationRow, Done, HealthNow};
use super::{answers, query_error, AdminError, AdminState, DestinationInfo, Range};
use crate::dispatch::health::Health;
use crate::dispatch::DeliveryStats;

pub(super) fn find(state: &AdminState, name: &str) -> Result<DestinationInfo, AdminError> {
    state
        .destinations
        .load()
        .iter()
        .find(|d| d.name == name)
        .cloned()
        .ok_or_else(|| AdminError::NotFound(name.to_string()))
}

pub(super) async fn destinations(
    State(state): State<AdminState>,
) -> Result<Json<Vec<DestinationRow>>, AdminError> {
    let mut out = Vec::new();
    for d in state.destinations.load().iter() {
        out.push(destination_row(&state, d).await);
    }
    Ok(Json(out))
}

/// The store's figures of `d`'s queue. While the store cannot answer (a full
/// disk, NATS away), the last figures it gave, and why they may be stale.
pub(super) async fn queue_stats(
    state: &AdminState,
    d: &DestinationInfo,
) -> (crate::store::QueueStats, Option<String>) {
    match state.store.stats(&d.name).await {
        Ok(q) => {
            *d.last_queue.lock().expect("last queue lock") = q;
            (q, None)
        }
        Err(e) => (
            *d.last_queue.lock().expect("last queue lock"),
            Some(e.to_string()),
        ),
    }
}

/// One destination's row of `GET /admin/destinations` (and of the status page).
pub(super) async fn destination_row(state: &AdminState, d: &DestinationInfo) -> DestinationRow {
    // While the store cannot answer (a full disk, NATS away), the row still
    // shows the last figures it gave, and why they may be stale.
    let (q, store_error) = queue_stats(state, d).await;
    let health = d.live.health();
    let serving = d.plugin.current();
    let (version, sha256) = serving.as_ref().map_or_else(Default::default, |v| {
        (v.plugin.metadata.version.clone(), v.plugin.sha256.clone())
    });
    let concurrency = d.live.limiter.lock().expect("limiter lock").report();
    let now = crate::store::now_ms();
    let (last_error, last_error_at, last_error_resolved) = last_error(&d.live.stats);
    DestinationRow {
        name: d.name.clone(),
        plugin: d.plugin.name.clone(),
        retired: d.retired,
        version,
        sha256,
        plugin_error: serving.is_none().then(|| d.plugin.last_error()).flatten(),
        health: health.state,
        health_reason: health.reason,
        queued: q.queued,
        in_flight: d.live.stats.in_flight.load(Relaxed),
        batches_in_flight: concurrency.in_flight,
        concurrency,
        delivered: d.live.stats.delivered.load(Relaxed),
        retried: d.live.stats.retried.load(Relaxed),
        dead_letters: q.dead_letters,
        retrying: q.retrying,
        next_retry_at: q.next_retry_at.map(crate::store::view::iso),
        next_retry_in_ms: q
            .next_retry_at
            .map(|at| at.saturating_sub(now).max(0) as u64),
        oldest_queued_age_ms: q.oldest_at.map(|at| now.saturating_sub(at).max(0) as u64),
        attention: match (q.dead_letters, q.retrying) {
            (1.., _) => Some("dead-lettering"),
            (0, 1..) => Some("retrying"),
            _ => None,
        },
        filtered: state.store.filtered(&d.name) + d.live.stats.filtered.load(Relaxed),
        store_error,
        violations: d.live.stats.sandbox.violations(),
        memory_peak_bytes: d.live.stats.sandbox.memory_peak_bytes.load(Relaxed),
        delivered_per_second: d.live.stats.history.ok_per_second(crate::store::now_ms()),
        latency_p50_ms: d.live.stats.history.latency_quantile(0.5),
        latency_p99_ms: d.live.stats.history.latency_quantile(0.99),
        last_error,
        last_error_at,
        last_error_resolved,
        transforms: d
            .live
            .chain
            .iter()
            .map(|l| {
                let serving = l.slot.current();
                let (version, sha256) = serving.as_ref().map_or_else(Default::default, |v| {
                    (v.plugin.metadata.version.clone(), v.plugin.sha256.clone())
                });
                answers::TransformRow {
                    name: l.config.name.clone(),
                    plugin: l.config.plugin.clone(),
                    version,
                    sha256,
                    plugin_error: serving.is_none().then(|| l.slot.last_error()).flatten(),
                    filtered: l.stats.filtered.load(Relaxed),
                    violations: l.stats.sandbox.violations(),
                }
            })
            .collect(),
    }
}

/// The reason of the newest failed attempt (its call error, else its first
/// event that was not delivered), when it was, and whether a later attempt
/// delivered everything.
pub(super) fn last_error(stats: &DeliveryStats) -> (Option<String>, Option<String>, bool) {
    let Some(newest) = stats.attempts.newest(true).into_iter().next() else {
        return (None, None, false);
    };
    let reason = newest
        .error
        .clone()
        .or_else(|| newest.events.iter().find_map(|e| e.reason.clone()));
    let resolved = stats
        .attempts
        .newest(false)
        .first()
        .is_some_and(|a| a.id > newest.id && !a.failed());
    (reason, Some(newest.at.clone()), resolved)
}

/// `POST /admin/destinations/{name}/backfill?since=T&until=T`: queue the
/// retained events of the range again for one destination ([`Reconfigure::backfill`](crate::store::Reconfigure::backfill)).
pub(super) async fn backfill(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    range: Result<Query<Range>, QueryRejection>,
) -> Result<Json<Done<Backfilled>>, AdminError> {
    let Query(range) = range.map_err(query_error)?;
    let d = find(&state, &name)?;
    if d.retired {
        return Err(AdminError::Refused(format!(
            "destination `{name}` is retired: it receives no events"
        )));
    }
    let (since, until) = range.millis()?;
    let since = since.ok_or_else(|| {
        AdminError::BadRequest("give `since`: where in the log the backfill starts".into())
    })?;
    let until = until.unwrap_or_else(crate::store::now_ms);
    let enqueued = state
        .store
        .reconfigurable()?
        .backfill(&name, since, until)
        .await?;
    tracing::info!(
        destination = name.as_str(),
        enqueued,
        since,
        until,
        "backfill queued"
    );
    Ok(Json(Done::with(Backfilled { enqueued })))
}

/// The answer of a backfill.
#[derive(Debug, serde::Serialize)]
pub(super) struct Backfilled {
    /// Events queued again.
    enqueued: u64,
}

/// `POST /admin/reload`: apply the config file again (`crate::reload`).
pub(super) async fn reload(
    State(state): State<AdminState>,
) -> Result<Json<Done<crate::reload::Summary>>, AdminError> {
    let reloader = state
        .reloader
        .as_ref()
        .ok_or_else(|| AdminError::Refused(crate::reload::ReloadError::NoFile.to_string()))?;
    match reloader.reload().await {
        Ok(summary) => Ok(Json(Done::with(summary))),
        Err(e @ crate::reload::ReloadError::Stopping) => {
            Err(AdminError::Unavailable(e.to_string()))
        }
        Err(crate::reload::ReloadError::Store(e)) => Err(AdminError::Unavailable(e.to_string())),
        Err(e) => Err(AdminError::Refused(e.to_string())),
    }
}

/// `DELETE /admin/destinations/{name}`: delete a retired destination's queue.
pub(super) async fn forget_destination(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> Result<Json<Done<Forgotten>>, AdminError> {
    let reloader = state
        .reloader
        .as_ref()
        .ok_or_else(|| AdminError::NotFound(name.clone()))?;
    use crate::reload::ReloadError;
    match reloader.forget(&name).await {
        Ok(dropped) => Ok(Json(Done::with(Forgotten {
            destination: name,
            dropped,
        }))),
        Err(ReloadError::Unknown(n)) => Err(AdminError::NotFound(n)),
        Err(ReloadError::Store(e)) => Err(AdminError::Unavailable(e.to_string())),
        Err(e) => Err(AdminError::Refused(e.to_string())),
    }
}

/// The answer of `DELETE /admin/destinations/{name}`.
#[derive(Debug, serde::Serialize)]
pub(super) struct Forgotten {
    /// The destination whose queue is gone.
    destination: String,
    /// Events that were still waiting in it.
    dropped: u64,
}

pub(super) async fn pause(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> Result<Json<Done<HealthNow>>, AdminError> {
    let d = find(&state, &name)?;
    // Recorded first: it outlives a restart, and on NATS every host follows it.
    state.store.set_paused(&name, true).await?;
    d.live.operator_changes.fetch_add(1, Relaxed);
    d.live.set_operator_paused(true);
    Ok(Json(Done::with(HealthNow {
        health: Health::Paused,
    })))
}

/// What `POST /admin/destinations/{name}/retry-now` did.
#[derive(Debug, serde::Serialize)]
pub struct RetriedNow {
    /// Retries that waited for their time and are due now.
    pub moved: u64,
}

/// Every waiting retry of a destination made due now, and an open breaker's
/// probe sent at once. The rate limit and the concurrency limit still apply:
/// the jobs go out through the worker's usual claims.
pub(super) async fn retry_now(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> Result<Json<Done<RetriedNow>>, AdminError> {
    let d = find(&state, &name)?;
    let moved = state.store.retry_now(&name).await?;
    d.live.probe_now.store(true, Relaxed);
    d.live.control.notify_one();
    state.store.wakeup(&name).notify_one();
    tracing::warn!(
        destination = name.as_str(),
        moved,
        "retry now by an operator: {moved} waiting retries made due"
    );
    Ok(Json(Done::with(RetriedNow { moved })))
}

pub(super) async fn resume(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> Result<Json<Done<HealthNow>>, AdminError> {
    let d = find(&state, &name)?;
    state.store.set_paused(&name, false).await?;
    d.live.operator_changes.fetch_add(1, Relaxed);
    d.live.set_operator_paused(false);
    Ok(Json(Done::with(HealthNow {
        health: d.live.health().state,
    })))
}
