//! `GET /admin/sources` and `GET /admin/sources/{name}/rejected`: each source's
//! figures, and the events refused inside accepted batches.

use super::{answers, AdminError, AdminState};
use axum::extract::{Path, State};
use axum::Json;

pub(super) async fn list_sources(State(state): State<AdminState>) -> Json<Vec<answers::SourceRow>> {
    Json(source_rows(&state))
}

/// `GET /admin/sources` (and the status page's sources).
pub(super) fn source_rows(state: &AdminState) -> Vec<answers::SourceRow> {
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

pub(super) async fn source_rejected(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> Result<Json<crate::ingest::rejections::SourceRejections>, AdminError> {
    if !state.sources.contains(&name) {
        return Err(AdminError::NoSource(name));
    }
    Ok(Json(state.rejections.report(&name)))
}
