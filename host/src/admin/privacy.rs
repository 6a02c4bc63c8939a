//! `POST /admin/regulations` and `GET /admin/regulations[/{id}]`: privacy
//! regulations (`crate::privacy`), and their records as the audit log.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Serialize;

use super::{AdminError, AdminState};
use crate::privacy::{Kind, PrivacyError, Regulation, Request, State as RegulationState};

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

/// One element of `GET /admin/regulations`: the record without its subjects'
/// hashes (`GET /admin/regulations/{id}` has them).
#[derive(Debug, Serialize)]
pub struct RegulationRow {
    /// Its id.
    pub id: String,
    /// What it asked for.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// The sources; `null`: every source.
    pub sources: Option<Vec<String>>,
    /// How many subjects it names.
    pub subjects: usize,
    /// When it was asked.
    pub requested_at: String,
    /// Who asked.
    pub requested_by: String,
    /// Where it stands.
    pub state: RegulationState,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it was carried out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub done_at: Option<String>,
}

impl From<Regulation> for RegulationRow {
    fn from(r: Regulation) -> Self {
        RegulationRow {
            subjects: r.subjects.len(),
            id: r.id,
            kind: r.kind,
            sources: r.sources,
            requested_at: r.requested_at,
            requested_by: r.requested_by,
            state: r.state,
            reason: r.reason,
            done_at: r.done_at,
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

pub(super) async fn list(
    State(state): State<AdminState>,
) -> Result<Json<Vec<RegulationRow>>, AdminError> {
    let all = state.privacy.list().await?;
    Ok(Json(all.into_iter().map(RegulationRow::from).collect()))
}

pub(super) async fn show(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<Regulation>, AdminError> {
    Ok(Json(state.privacy.get(&id).await?))
}
