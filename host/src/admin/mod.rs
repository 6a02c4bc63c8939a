//! Operations endpoints: `GET /healthz` and `GET /readyz` (open), `GET /metrics`
//! and `/admin/*` (bearer token); the probes and metrics are in [`probes`].
//!
//! Where it sits: beside ingest on the same listener. It reads the
//! dispatcher's counters and health, and the store's queue sizes and dead
//! letters; it can replay dead letters and pause or resume a destination.
//!
//! - `GET  /admin/destinations`
//! - `GET  /admin/destinations/{name}/dead-letters?since=T&until=T&after=ID&limit=N`
//!   (a page; `X-Next-After` names where the next one starts) and `DELETE` (purge)
//! - `POST /admin/destinations/{name}/dead-letters/replay?since=T&until=T`
//! - `GET  /admin/destinations/{name}/attempts[/{id}]`: the delivery debugger ([`debugger`])
//! - `POST /admin/destinations/{name}/pause`, `POST /admin/destinations/{name}/resume`
//! - `GET  /admin/sources`, `GET /admin/sources/{name}/rejected`: events refused
//!   inside accepted batches, per source and reason, and the newest of them
//! - `GET  /admin/sources/{name}/events`: the source debugger ([`debugger`])
//! - `GET  /admin/plugins`
//! - `PUT  /admin/plugins/{name}` (body: the component) and `POST /admin/plugins/{name}/rollback`
//! - `PUT  /admin/plugins/{name}?stage=shadow|canary&...`, `GET .../trial`,
//!   `POST .../promote`, `POST .../discard`: a version on trial ([`trials`])
//! - `POST /admin/destinations/{name}/record?count=N&timeout=D`: a recording ([`trials`])
//!
//! `T` is RFC 3339 (`2026-11-26T12:00:00Z`) or milliseconds since the epoch.
//! Every answer is a typed struct of [`answers`]; dead letters are
//! [`DeadLetterView`]s.

pub mod answers;
mod debugger;
pub mod funnel;
pub mod guard;
pub mod links;
pub mod page;
pub mod probes;
pub mod token;
mod trials;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::DefaultBodyLimit;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Json;
use serde::Deserialize;

use self::answers::{DestinationRow, Done, Failure, HealthNow, PluginRow, Replayed, VersionRow};
use crate::dispatch::health::Health;
use crate::dispatch::DeliveryStats;
use crate::plugins::{error_text, Catalog, PluginError};
use crate::store::view::{parse_time, DeadLetterView};
use crate::store::{Millis, Store};

pub use crate::registry::DestinationInfo;

/// Largest component accepted by `PUT /admin/plugins/{name}`.
pub const MAX_UPLOAD_BYTES: usize = 64 << 20;

/// What the admin routes need.
#[derive(Clone)]
pub struct AdminState {
    /// The bearer token; `None` disables `/admin/`.
    pub token: Option<Arc<str>>,
    /// Destinations in config order, then those a reload retired while their
    /// queues drain; replaced by a reload.
    pub destinations: Arc<arc_swap::ArcSwap<Vec<DestinationInfo>>>,
    /// Applies a changed config file (`POST /admin/reload`); `None` when the
    /// host was started without one.
    pub reloader: Option<Arc<crate::reload::Reloader>>,
    /// Queue sizes and dead letters.
    pub store: Arc<dyn Store>,
    /// Plugin versions: uploads and rollbacks.
    pub catalog: Arc<Catalog>,
    /// Source names in config order.
    pub sources: Arc<Vec<String>>,
    /// Accepted and refused events per minute, per source.
    pub source_history:
        Arc<std::collections::HashMap<String, Arc<crate::observe::history::History>>>,
    /// Events refused at ingest, per source.
    pub rejections: Arc<crate::ingest::rejections::Rejections>,
    /// The newest events per source.
    pub recent: Arc<crate::ingest::recent::Recent>,
    /// This host's metrics registry (`/metrics`).
    pub metrics: Arc<crate::observe::metrics::Metrics>,
    /// Browsers logged in to the status page.
    pub sessions: Arc<page::session::Sessions>,
    /// The `Host` check, body bounds and login pace of these routes.
    pub guard: Arc<guard::Guard>,
    /// `/readyz`'s last checks for callers without the token.
    pub ready: Arc<probes::ReadyCache>,
}

/// Errors of the admin API, as JSON.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Missing or wrong token, or admin disabled.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// No such destination.
    #[error("no destination named `{0}`")]
    NotFound(String),
    /// An unknown source.
    #[error("no source named `{0}`")]
    NoSource(String),
    /// Something else that is not there, said in full.
    #[error("{0}")]
    Missing(String),
    /// A bad query parameter.
    #[error("{0}")]
    BadRequest(String),
    /// A plugin version was refused; the old one serves on.
    #[error("{0}")]
    Refused(String),
    /// The store did not answer.
    #[error("{0}")]
    Unavailable(String),
    /// The request named a `Host` these routes do not answer under ([`guard`]).
    #[error("{0}")]
    WrongHost(String),
    /// The body is larger than the route takes.
    #[error("{0}")]
    TooLarge(String),
    /// The body did not arrive in time.
    #[error("{0}")]
    TooSlow(String),
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let status = match self {
            AdminError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AdminError::NotFound(_) | AdminError::NoSource(_) | AdminError::Missing(_) => {
                StatusCode::NOT_FOUND
            }
            AdminError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AdminError::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AdminError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AdminError::WrongHost(_) => StatusCode::MISDIRECTED_REQUEST,
            AdminError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AdminError::TooSlow(_) => StatusCode::REQUEST_TIMEOUT,
        };
        let body = Failure {
            success: false,
            message: self.to_string(),
        };
        (status, Json(body)).into_response()
    }
}

impl From<crate::store::StoreError> for AdminError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Unsupported(why) => AdminError::Refused(why.into()),
            e => AdminError::Unavailable(e.to_string()),
        }
    }
}

/// The health and admin routes.
pub fn app(state: AdminState) -> axum::Router {
    let admin = axum::Router::new()
        .route("/metrics", get(probes::metrics))
        .route("/admin/destinations", get(destinations))
        .route("/admin/destinations/{name}", delete(forget_destination))
        .route("/admin/reload", post(reload))
        .route("/admin/destinations/{name}/backfill", post(backfill))
        .route(
            "/admin/destinations/{name}/dead-letters",
            get(list_dead_letters).delete(purge_dead_letters),
        )
        .route(
            "/admin/destinations/{name}/dead-letters/replay",
            post(replay_dead_letters),
        )
        .route(
            "/admin/destinations/{name}/attempts",
            get(debugger::attempts),
        )
        .route(
            "/admin/destinations/{name}/attempts/{id}",
            get(debugger::attempt),
        )
        .route("/admin/destinations/{name}/pause", post(pause))
        .route("/admin/destinations/{name}/resume", post(resume))
        .route("/admin/destinations/{name}/retry-now", post(retry_now))
        .route("/admin/sources", get(list_sources))
        .route("/admin/sources/{name}/rejected", get(source_rejected))
        .route("/admin/sources/{name}/funnel", get(funnel::source))
        .route(
            "/admin/destinations/{name}/funnel",
            get(funnel::destination),
        )
        .route("/admin/sources/{name}/events", get(debugger::source_events))
        .route("/admin/plugins", get(list_plugins))
        .route(
            "/admin/plugins/{name}",
            put(upload_plugin).layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES)),
        )
        .route("/admin/plugins/{name}/rollback", post(rollback_plugin))
        .route("/admin/plugins/{name}/trial", get(trials::show))
        .route("/admin/plugins/{name}/promote", post(trials::promote))
        .route("/admin/plugins/{name}/discard", post(trials::discard))
        .route("/admin/destinations/{name}/record", post(trials::record))
        // A body is read only for a request with the token (a layer added
        // later runs first).
        .route_layer(axum::middleware::from_fn_with_state(
            state.guard.clone(),
            guard::bounded_body,
        ))
        // On the matched routes only: an unknown path is a 404, not a 401.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authorize,
        ))
        .with_state(state.clone());
    let page = page::routes(state.clone()).route_layer(axum::middleware::from_fn_with_state(
        state.guard.clone(),
        guard::bounded_body,
    ));
    // The host check before anything else.
    let guarded = admin
        .merge(page)
        .route_layer(axum::middleware::from_fn_with_state(
            state.guard.clone(),
            guard::check_host,
        ));
    probes::open_routes(state)
        .merge(guarded)
        .fallback(no_such_path)
}

/// Any path no route serves: a JSON 404.
async fn no_such_path(uri: axum::http::Uri) -> AdminError {
    AdminError::Missing(format!("no such path: {}", uri.path()))
}

async fn list_sources(State(state): State<AdminState>) -> Json<Vec<answers::SourceRow>> {
    Json(source_rows(&state))
}

/// `GET /admin/sources` (and the status page's sources).
fn source_rows(state: &AdminState) -> Vec<answers::SourceRow> {
    state
        .sources
        .iter()
        .map(|name| {
            let r = state.rejections.report(name);
            answers::SourceRow {
                name: name.clone(),
                rejected: r.total,
                rejected_by_code: r.counts,
                accepted_per_second: state
                    .source_history
                    .get(name)
                    .map_or(0.0, |h| h.ok_per_second(crate::store::now_ms())),
            }
        })
        .collect()
}

async fn source_rejected(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> Result<Json<crate::ingest::rejections::SourceRejections>, AdminError> {
    if !state.sources.contains(&name) {
        return Err(AdminError::NoSource(name));
    }
    Ok(Json(state.rejections.report(&name)))
}

async fn authorize(
    State(state): State<AdminState>,
    request: Request,
    next: Next,
) -> Result<Response, AdminError> {
    let Some(token) = &state.token else {
        return Err(AdminError::Unauthorized(
            "the admin API is disabled: set [server] admin_token",
        ));
    };
    if bearer_is(request.headers(), token) {
        return Ok(next.run(request).await);
    }
    Err(AdminError::Unauthorized(
        "Authorization: Bearer <admin_token> required",
    ))
}

/// Whether a request carries `Authorization: Bearer <token>`.
fn bearer_is(headers: &axum::http::HeaderMap, token: &str) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes()))
}

/// Whether two secrets are equal, in time that depends on neither: their
/// SHA-256 digests are compared byte by byte, so not even the length leaks.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let (da, db) = (Sha256::digest(a), Sha256::digest(b));
    da.iter()
        .zip(db.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

fn find(state: &AdminState, name: &str) -> Result<DestinationInfo, AdminError> {
    state
        .destinations
        .load()
        .iter()
        .find(|d| d.name == name)
        .cloned()
        .ok_or_else(|| AdminError::NotFound(name.to_string()))
}

async fn destinations(
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
async fn queue_stats(
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
async fn destination_row(state: &AdminState, d: &DestinationInfo) -> DestinationRow {
    // While the store cannot answer (a full disk, NATS away), the row still
    // shows the last figures it gave, and why they may be stale.
    let (q, store_error) = queue_stats(state, d).await;
    let health = d.stats.health();
    let serving = d.plugin.current();
    let (version, sha256) = serving.as_ref().map_or_else(Default::default, |v| {
        (v.plugin.metadata.version.clone(), v.plugin.sha256.clone())
    });
    let concurrency = d.stats.limiter.lock().expect("limiter lock").report();
    let now = crate::store::now_ms();
    let (last_error, last_error_at, last_error_resolved) = last_error(&d.stats);
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
        in_flight: d.stats.in_flight.load(Relaxed),
        batches_in_flight: concurrency.in_flight,
        concurrency,
        delivered: d.stats.delivered.load(Relaxed),
        retried: d.stats.retried.load(Relaxed),
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
        filtered: state.store.filtered(&d.name) + d.stats.filtered.load(Relaxed),
        store_error,
        violations: d.stats.sandbox.violations(),
        memory_peak_bytes: d.stats.sandbox.memory_peak_bytes.load(Relaxed),
        delivered_per_second: d.stats.history.ok_per_second(crate::store::now_ms()),
        latency_p50_ms: d.stats.history.latency_quantile(0.5),
        latency_p99_ms: d.stats.history.latency_quantile(0.99),
        last_error,
        last_error_at,
        last_error_resolved,
        transforms: d
            .stats
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
fn last_error(stats: &DeliveryStats) -> (Option<String>, Option<String>, bool) {
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

/// `?since=T&until=T`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Range {
    since: Option<String>,
    until: Option<String>,
}

impl Range {
    fn millis(&self) -> Result<(Option<Millis>, Option<Millis>), AdminError> {
        let parse = |v: &Option<String>| {
            v.as_deref()
                .map(|t| parse_time(t).map_err(AdminError::BadRequest))
                .transpose()
        };
        Ok((parse(&self.since)?, parse(&self.until)?))
    }
}

/// Dead letters answered per page at most (and by default).
pub const DEAD_LETTER_PAGE: usize = 1_000;

/// `?since=T&until=T&after=ID&limit=N`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    since: Option<String>,
    until: Option<String>,
    after: Option<i64>,
    limit: Option<usize>,
}

async fn list_dead_letters(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    page: Result<Query<Page>, QueryRejection>,
) -> Result<Response, AdminError> {
    let Query(page) = page.map_err(|e| {
        AdminError::BadRequest(format!(
            "{}; the parameters are `since`, `until`, `after` (an id) and `limit`",
            e.body_text()
        ))
    })?;
    find(&state, &name)?;
    let (since, until) = Range {
        since: page.since,
        until: page.until,
    }
    .millis()?;
    let limit = page
        .limit
        .unwrap_or(DEAD_LETTER_PAGE)
        .clamp(1, DEAD_LETTER_PAGE);
    let list = state
        .store
        .dead_letter_page(&name, since, until, page.after, limit)
        .await?;
    // A full page may have a next one: where it starts.
    let next = (list.len() == limit)
        .then(|| list.last().map(|d| d.id))
        .flatten();
    let views: Vec<DeadLetterView> = list.iter().map(DeadLetterView::from).collect();
    let mut response = Json(views).into_response();
    if let Some(next) = next {
        response
            .headers_mut()
            .insert("x-next-after", axum::http::HeaderValue::from(next));
    }
    Ok(response)
}

async fn purge_dead_letters(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    range: Result<Query<Range>, QueryRejection>,
) -> Result<Json<Done<answers::Purged>>, AdminError> {
    let Query(range) = range.map_err(query_error)?;
    find(&state, &name)?;
    let (since, until) = range.millis()?;
    let purged = state.store.purge(&name, since, until).await?;
    tracing::info!(destination = name.as_str(), purged, "dead letters purged");
    Ok(Json(Done::with(answers::Purged { purged })))
}

async fn replay_dead_letters(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    range: Result<Query<Range>, QueryRejection>,
) -> Result<Json<Done<Replayed>>, AdminError> {
    let Query(range) = range.map_err(query_error)?;
    find(&state, &name)?;
    let (since, until) = range.millis()?;
    let replayed = state.store.replay(&name, since, until).await?;
    tracing::info!(
        destination = name.as_str(),
        replayed,
        "dead letters replayed"
    );
    Ok(Json(Done::with(Replayed { replayed })))
}

/// `POST /admin/destinations/{name}/backfill?since=T&until=T`: queue the
/// retained events of the range again for one destination ([`Reconfigure::backfill`](crate::store::Reconfigure::backfill)).
async fn backfill(
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
struct Backfilled {
    /// Events queued again.
    enqueued: u64,
}

/// `POST /admin/reload`: apply the config file again (`crate::reload`).
async fn reload(
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
async fn forget_destination(
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
struct Forgotten {
    /// The destination whose queue is gone.
    destination: String,
    /// Events that were still waiting in it.
    dropped: u64,
}

async fn pause(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> Result<Json<Done<HealthNow>>, AdminError> {
    let d = find(&state, &name)?;
    // Recorded first: it outlives a restart, and on NATS every host follows it.
    state.store.set_paused(&name, true).await?;
    d.stats.operator_changes.fetch_add(1, Relaxed);
    d.stats.set_operator_paused(true);
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
async fn retry_now(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> Result<Json<Done<RetriedNow>>, AdminError> {
    let d = find(&state, &name)?;
    let moved = state.store.retry_now(&name).await?;
    d.stats.probe_now.store(true, Relaxed);
    d.stats.control.notify_one();
    state.store.wakeup(&name).notify_one();
    tracing::warn!(
        destination = name.as_str(),
        moved,
        "retry now by an operator: {moved} waiting retries made due"
    );
    Ok(Json(Done::with(RetriedNow { moved })))
}

async fn resume(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> Result<Json<Done<HealthNow>>, AdminError> {
    let d = find(&state, &name)?;
    state.store.set_paused(&name, false).await?;
    d.stats.operator_changes.fetch_add(1, Relaxed);
    d.stats.set_operator_paused(false);
    Ok(Json(Done::with(HealthNow {
        health: d.stats.health().state,
    })))
}

async fn list_plugins(State(state): State<AdminState>) -> Json<Vec<PluginRow>> {
    let list = state
        .catalog
        .names()
        .iter()
        .filter_map(|n| state.catalog.slot(n))
        .map(|s| PluginRow::from(&*s))
        .collect();
    Json(list)
}

/// A query string that does not parse (an unknown parameter, say), as JSON.
fn query_error(e: QueryRejection) -> AdminError {
    AdminError::BadRequest(format!(
        "{}; the parameters are `since` and `until`",
        e.body_text()
    ))
}

fn plugin_error(e: PluginError) -> AdminError {
    match e {
        PluginError::Unknown(_) | PluginError::NoPrevious(_) | PluginError::NoTrial(_) => {
            AdminError::Missing(error_text(&e))
        }
        _ => AdminError::Refused(error_text(&e)),
    }
}

async fn upload_plugin(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    query: Result<axum::extract::Query<trials::StageQuery>, QueryRejection>,
    body: axum::body::Bytes,
) -> Result<Response, AdminError> {
    let query = query
        .map_err(|e| {
            AdminError::BadRequest(format!("{}; {}", e.body_text(), trials::STAGE_PARAMS))
        })?
        .0;
    if query.stage.is_some() {
        return trials::stage(&state, &name, query, body.to_vec()).await;
    }
    query.only_with_a_stage()?;
    let version = state
        .catalog
        .install(&name, body.to_vec(), true)
        .await
        .map_err(plugin_error)?;
    Ok(Json(Done::with(VersionRow::from(&*version))).into_response())
}

async fn rollback_plugin(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> Result<Json<Done<VersionRow>>, AdminError> {
    let version = state.catalog.rollback(&name).await.map_err(plugin_error)?;
    Ok(Json(Done::with(VersionRow::from(&*version))))
}
