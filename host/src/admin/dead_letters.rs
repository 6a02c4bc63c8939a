//! A destination's dead letters: `GET` a page, `DELETE` (purge) and
//! `POST .../replay`, each over a time range.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::answers::{Done, Replayed};
use super::{answers, find, query_error, AdminError, AdminState};
use crate::store::view::{parse_time, DeadLetterView};
use crate::store::Millis;

/// `?since=T&until=T`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Range {
    pub(super) since: Option<String>,
    pub(super) until: Option<String>,
}

impl Range {
    pub(super) fn millis(&self) -> Result<(Option<Millis>, Option<Millis>), AdminError> {
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
pub(super) struct Page {
    pub(super) since: Option<String>,
    pub(super) until: Option<String>,
    pub(super) after: Option<i64>,
    pub(super) limit: Option<usize>,
}

pub(super) async fn list_dead_letters(
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

pub(super) async fn purge_dead_letters(
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

pub(super) async fn replay_dead_letters(
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
