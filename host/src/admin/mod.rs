//! Operations endpoints: `GET /healthz` (open) and `/admin/*` (bearer token).
//!
//! Where it sits: beside ingest on the same listener; reads the dispatcher's
//! counters and the store's queue sizes, never events themselves.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use serde_json::{json, Value};

use crate::dispatch::DeliveryStats;
use crate::store::Store;

/// One destination as the admin API shows it.
#[derive(Debug, Clone)]
pub struct DestinationInfo {
    /// Destination name.
    pub name: String,
    /// Plugin name.
    pub plugin: String,
    /// Plugin's own version.
    pub version: String,
    /// sha256 of the serving component.
    pub sha256: String,
    /// Live counters.
    pub stats: Arc<DeliveryStats>,
}

/// What the admin routes need.
#[derive(Clone)]
pub struct AdminState {
    /// The bearer token; `None` disables `/admin/`.
    pub token: Option<Arc<str>>,
    /// Destinations in config order.
    pub destinations: Arc<Vec<DestinationInfo>>,
    /// For queue sizes.
    pub store: Arc<dyn Store>,
}

/// Errors of the admin API, as JSON.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Missing or wrong token, or admin disabled.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The store did not answer.
    #[error("{0}")]
    Unavailable(String),
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let status = match self {
            AdminError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AdminError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        (
            status,
            Json(json!({"success": false, "message": self.to_string()})),
        )
            .into_response()
    }
}

/// The health and admin routes.
pub fn app(state: AdminState) -> axum::Router {
    axum::Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/admin/destinations", get(destinations))
        .with_state(state)
}

fn authorize(state: &AdminState, headers: &HeaderMap) -> Result<(), AdminError> {
    let Some(token) = &state.token else {
        return Err(AdminError::Unauthorized(
            "the admin API is disabled: set [server] admin_token",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(g) if constant_time_eq(g.as_bytes(), token.as_bytes()) => Ok(()),
        _ => Err(AdminError::Unauthorized(
            "Authorization: Bearer <admin_token> required",
        )),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn destinations(
    State(state): State<AdminState>,
    headers: HeaderMap,
) -> Result<Json<Value>, AdminError> {
    authorize(&state, &headers)?;
    let mut out = Vec::new();
    for d in state.destinations.iter() {
        let q = state
            .store
            .stats(&d.name)
            .await
            .map_err(|e| AdminError::Unavailable(e.to_string()))?;
        out.push(json!({
            "name": d.name,
            "plugin": d.plugin,
            "version": d.version,
            "sha256": d.sha256,
            "queued": q.queued,
            "in_flight": d.stats.in_flight.load(Relaxed),
            "delivered": d.stats.delivered.load(Relaxed),
            "retried": d.stats.retried.load(Relaxed),
            "dead_letters": q.dead_letters,
        }));
    }
    Ok(Json(Value::Array(out)))
}

/// Admin state from the dispatcher's counters.
pub fn state(
    token: Option<String>,
    infos: Vec<DestinationInfo>,
    store: Arc<dyn Store>,
) -> AdminState {
    AdminState {
        token: token.map(Arc::from),
        destinations: Arc::new(infos),
        store,
    }
}

/// Counters by destination name, for building [`DestinationInfo`]s.
pub type StatsByName = HashMap<String, Arc<DeliveryStats>>;
