//! The delivery debugger in the admin API:
//! - `GET /admin/destinations/{name}/attempts?failed=true&limit=N`: the newest
//!   attempts first (only those that did not deliver everything with `failed`);
//! - `GET /admin/destinations/{name}/attempts/{id}`: one of them;
//! - `GET /admin/sources/{name}/events?limit=N`: the source debugger, the
//!   newest events the source sent (as stored) and the newest it had refused.
//!
//! Each is an [`Attempt`]: its events and
//! their outcomes, every HTTP exchange (credentials redacted, body excerpts),
//! the duration and the version that ran it. Kept in memory, bounded
//! (`observe/attempts.rs`), since the host started.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;

use super::{find, AdminError, AdminState};
use crate::observe::attempts::Attempt;

/// `?failed=true&limit=N`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Which {
    /// Only attempts that did not deliver every event.
    #[serde(default)]
    failed: bool,
    /// At most this many.
    limit: Option<usize>,
}

pub(super) async fn attempts(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    which: Result<Query<Which>, QueryRejection>,
) -> Result<Json<Vec<Attempt>>, AdminError> {
    let Query(which) = which.map_err(|e| {
        AdminError::BadRequest(format!(
            "{}; the parameters are `failed` (true or false) and `limit`",
            e.body_text()
        ))
    })?;
    let d = find(&state, &name)?;
    let mut list = d.live.stats.attempts.newest(which.failed);
    if let Some(limit) = which.limit {
        list.truncate(limit);
    }
    Ok(Json(list.iter().map(|a| Attempt::clone(a)).collect()))
}

pub(super) async fn attempt(
    State(state): State<AdminState>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<Attempt>, AdminError> {
    let d = find(&state, &name)?;
    let id: u64 = id
        .parse()
        .map_err(|_| AdminError::BadRequest(format!("`{id}` is not an attempt id")))?;
    d.live
        .stats
        .attempts
        .get(id)
        .map(|a| Json(Attempt::clone(&a)))
        .ok_or_else(|| {
            AdminError::Missing(format!(
                "destination `{name}` keeps no attempt {id} (only the newest are kept)"
            ))
        })
}

/// `?limit=N`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Limit {
    /// At most this many of each.
    limit: Option<usize>,
}

/// The source debugger's answer.
#[derive(Debug, serde::Serialize)]
pub(super) struct SourceEvents {
    /// The newest accepted events, newest first.
    events: Vec<crate::ingest::recent::ReceivedEvent>,
    /// The newest refused events, newest first, each with why.
    rejected: Vec<crate::ingest::rejections::RejectedRecord>,
}

pub(super) async fn source_events(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    limit: Result<Query<Limit>, QueryRejection>,
) -> Result<Json<SourceEvents>, AdminError> {
    let Query(limit) = limit.map_err(|e| {
        AdminError::BadRequest(format!("{}; the parameter is `limit`", e.body_text()))
    })?;
    if !state.sources.contains(&name) {
        return Err(AdminError::NoSource(name));
    }
    let limit = limit.limit.unwrap_or(usize::MAX);
    let mut rejected = state.rejections.report(&name).recent;
    rejected.truncate(limit);
    Ok(Json(SourceEvents {
        events: state.recent.newest(&name, limit),
        rejected,
    }))
}
