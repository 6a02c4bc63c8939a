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
//! - `POST /admin/regulations`, `GET /admin/regulations[/{id}]`: privacy
//!   regulations and their audit records ([`privacy`])
//! - `GET  /admin/plugins`
//! - `PUT  /admin/plugins/{name}` (body: the component) and `POST /admin/plugins/{name}/rollback`
//! - `PUT  /admin/plugins/{name}?stage=shadow|canary&...`, `GET .../trial`,
//!   `POST .../promote`, `POST .../discard`: a version on trial ([`trials`])
//! - `POST /admin/destinations/{name}/record?count=N&timeout=D`: a recording ([`trials`])
//!
//! `T` is RFC 3339 (`2026-11-26T12:00:00Z`) or milliseconds since the epoch.
//! Every answer is a typed struct of [`answers`]; dead letters are
//! [`DeadLetterView`](crate::store::view::DeadLetterView)s.

pub mod answers;
mod auth;
mod dead_letters;
mod debugger;
mod destinations;
pub mod funnel;
pub mod guard;
pub mod links;
pub mod page;
mod plugins;
mod privacy;
pub mod probes;
pub mod ready;
pub mod scrape;
mod sources;
pub mod token;
mod trials;

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Json;

use self::answers::Failure;
use crate::plugins::Catalog;
use crate::store::Store;

pub use self::privacy::CLIENT_HEADER;
pub use crate::registry::DestinationInfo;

use self::auth::{authorize, bearer_is, constant_time_eq};
use self::dead_letters::{list_dead_letters, purge_dead_letters, replay_dead_letters, Range};
use self::destinations::{
    backfill, destination_row, destinations, find, forget_destination, pause, queue_stats, reload,
    resume, retry_now,
};
use self::plugins::{list_plugins, plugin_error, rollback_plugin, upload_plugin};
use self::sources::{list_sources, source_rejected, source_rows};

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
    pub metrics: Arc<scrape::Metrics>,
    /// Browsers logged in to the status page.
    pub sessions: Arc<page::session::Sessions>,
    /// The `Host` check, body bounds and login pace of these routes.
    pub guard: Arc<guard::Guard>,
    /// `/readyz`'s last checks for callers without the token.
    pub ready: Arc<probes::ReadyCache>,
    /// The privacy regulations (`/admin/regulations`).
    pub privacy: Arc<crate::privacy::Privacy>,
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
        .route(
            "/admin/regulations",
            get(privacy::list).post(privacy::submit),
        )
        .route("/admin/regulations/{id}", get(privacy::show))
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

/// A query string that does not parse (an unknown parameter, say), as JSON.
fn query_error(e: QueryRejection) -> AdminError {
    AdminError::BadRequest(format!(
        "{}; the parameters are `since` and `until`",
        e.body_text()
    ))
}
