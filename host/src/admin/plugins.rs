//! `GET /admin/plugins`, `PUT /admin/plugins/{name}` (a new version) and
//! `POST /admin/plugins/{name}/rollback`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::answers::{Done, PluginRow, VersionRow};
use super::{trials, AdminError, AdminState};
use crate::plugins::{error_text, PluginError};

pub(super) async fn list_plugins(State(state): State<AdminState>) -> Json<Vec<PluginRow>> {
    let list = state
        .catalog
        .names()
        .iter()
        .filter_map(|n| state.catalog.slot(n))
        .map(|s| PluginRow::from(&*s))
        .collect();
    Json(list)
}

pub(super) fn plugin_error(e: PluginError) -> AdminError {
    match e {
        PluginError::Unknown(_) | PluginError::NoPrevious(_) | PluginError::NoTrial(_) => {
            AdminError::Missing(error_text(&e))
        }
        _ => AdminError::Refused(error_text(&e)),
    }
}

pub(super) async fn upload_plugin(
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

pub(super) async fn rollback_plugin(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> Result<Json<Done<VersionRow>>, AdminError> {
    let version = state.catalog.rollback(&name).await.map_err(plugin_error)?;
    Ok(Json(Done::with(VersionRow::from(&*version))))
}
