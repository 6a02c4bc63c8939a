//! `POST /admin/regulations` and `GET /admin/regulations[/{id}]`: privacy
//! regulations, and their records as the audit log.
//!
//! Where it sits: on the admin side, over `crate::privacy` (which records and
//! folds them); `switchyard regulate` and the status page's privacy page are
//! its other callers.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;

use super::{AdminError, AdminState};
use crate::privacy::{PrivacyError, Regulation, Request, Shown, Summary};

/// The header the command line's admin calls carry (`cli`), so a record says
/// who asked.
pub const CLIENT_HEADER: &str = "x-switchyard-client";

impl From<PrivacyError> for AdminError {
    fn from(e: PrivacyError) -> Self {
        match e {
            PrivacyError::Refused(m) => AdminError::BadRequest(m),
            PrivacyError::NotFound(_) => AdminError::Missing(e.to_string()),
            PrivacyError::Unreadable(m) => AdminError::Unavailable(m),
            PrivacyError::Store(e) => e.into(),
        }
    }
}

pub(super) async fn submit(
    State(state): State<AdminState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Regulation>), AdminError> {
    let request: Request = serde_json::from_slice(&body)
        .map_err(|e| AdminError::BadRequest(format!("the regulation: {e}")))?;
    let by = match headers.get(CLIENT_HEADER).and_then(|v| v.to_str().ok()) {
        Some("cli") => "switchyard regulate (the admin token)",
        _ => "the admin API (the admin token)",
    };
    let r = state.privacy.submit(&request, by).await?;
    Ok((StatusCode::CREATED, Json(r)))
}

pub(super) async fn list(State(state): State<AdminState>) -> Json<Vec<Summary>> {
    Json(state.privacy.list().await)
}

pub(super) async fn show(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<Shown>, AdminError> {
    Ok(Json(state.privacy.get(&id).await?))
}
