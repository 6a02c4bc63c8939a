//! HTTP ingest: Segment's tracking API, so existing SDKs work unchanged.
//!
//! Where it sits: the front door. `POST /v1/{track,identify,page,screen,group,
//! alias,batch,import}` authenticates the write key, enforces Segment's limits,
//! validates and normalises every message ([`normalize::normalize_body`]), asks the
//! [`Router`](crate::route::Router) where each goes, appends the whole request
//! to the [`Store`] and answers `200 {"success":true}` only once the store says
//! it is durable. A request is all-or-nothing: any bad message rejects it whole,
//! and nothing of a rejected request is stored. Ingest never touches the runtime.

pub mod normalize;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Json;
use base64::Engine as _;
use serde_json::{json, Map, Value};

use self::normalize::{normalize_body, BodyKind};
use crate::route::RouteKeys;
use crate::store::{NewEvent, Store, StoreError};

pub use self::normalize::MAX_BATCH_EVENTS;

/// Most bytes of one request (Segment's limit).
pub const MAX_REQUEST_BYTES: usize = 500 * 1024;
/// Seconds a client is asked to wait when the store is overloaded.
const RETRY_AFTER_SECS: u64 = 1;

/// What ingest needs.
#[derive(Clone)]
pub struct IngestState {
    /// Write key → source name.
    pub sources: Arc<HashMap<String, String>>,
    /// Where events are kept.
    pub store: Arc<dyn Store>,
}

/// Everything ingest can answer besides success; each becomes a JSON body.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Malformed or invalid input.
    #[error("{0}")]
    BadRequest(String),
    /// Missing or unknown write key.
    #[error("{0}")]
    Unauthorized(String),
    /// Not one of the eight endpoints.
    #[error("unknown endpoint /v1/{0}")]
    NotFound(String),
    /// Not JSON.
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    /// The store is overloaded or unavailable.
    #[error("{0}")]
    Unavailable(String),
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            IngestError::BadRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            IngestError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            IngestError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            IngestError::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            IngestError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        };
        let body = Json(json!({"success": false, "code": code, "message": self.to_string()}));
        let mut resp = (status, body).into_response();
        match self {
            IngestError::Unavailable(_) => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
            }
            IngestError::Unauthorized(_) => {
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"switchyard\""),
                );
            }
            _ => {}
        }
        resp
    }
}

impl From<StoreError> for IngestError {
    fn from(e: StoreError) -> Self {
        IngestError::Unavailable(e.to_string())
    }
}

/// The ingest routes.
pub fn app(state: IngestState) -> axum::Router {
    axum::Router::new()
        .route("/v1/{kind}", post(ingest))
        .with_state(state)
}

async fn ingest(
    State(state): State<IngestState>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, IngestError> {
    let body_kind = BodyKind::of_endpoint(&kind).ok_or(IngestError::NotFound(kind))?;
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
        if !(ct.starts_with("application/json") || ct.starts_with("text/plain")) {
            return Err(IngestError::UnsupportedMediaType);
        }
    }
    let bytes = axum::body::to_bytes(body, MAX_REQUEST_BYTES)
        .await
        .map_err(|_| {
            IngestError::BadRequest(format!("request body exceeds {MAX_REQUEST_BYTES} bytes"))
        })?;
    let parsed: Value = serde_json::from_slice(&bytes)
        .map_err(|e| IngestError::BadRequest(format!("invalid JSON: {e}")))?;
    let Value::Object(root) = parsed else {
        return Err(IngestError::BadRequest(
            "the body must be a JSON object".into(),
        ));
    };
    let source = authenticate(&state, &headers, &root)?;
    let received_at = chrono::Utc::now();
    let events = normalize_body(root, body_kind, received_at)
        .map_err(|e| IngestError::BadRequest(e.to_string()))?;

    let new_events = events
        .into_iter()
        .map(|n| {
            let message = Value::Object(n.message);
            NewEvent {
                source: source.clone(),
                route: RouteKeys::of(message.as_object().expect("a message is an object")),
                json: message.to_string(),
                message_id: n.message_id,
                event_type: n.event_type.into(),
                user_key: Some(n.user_key),
            }
        })
        .collect::<Vec<_>>();
    if !new_events.is_empty() {
        state.store.append(new_events).await?;
    }
    Ok(Json(json!({"success": true})))
}

/// The source of the request: the Basic-auth user name, else `writeKey` in the body.
fn authenticate(
    state: &IngestState,
    headers: &HeaderMap,
    root: &Map<String, Value>,
) -> Result<String, IngestError> {
    let key = match headers.get(header::AUTHORIZATION) {
        Some(value) => Some(basic_user(value).ok_or_else(|| {
            IngestError::Unauthorized("Authorization must be Basic <base64(writeKey:)>".into())
        })?),
        None => root
            .get("writeKey")
            .and_then(Value::as_str)
            .map(str::to_string),
    };
    let key = key.ok_or_else(|| {
        IngestError::Unauthorized(
            "a write key is required (HTTP Basic user name, or writeKey)".into(),
        )
    })?;
    state
        .sources
        .get(&key)
        .cloned()
        .ok_or_else(|| IngestError::Unauthorized("unknown write key".into()))
}

fn basic_user(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    let (scheme, encoded) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let user = decoded.split_once(':').map(|(u, _)| u).unwrap_or(&decoded);
    Some(user.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AppendReport, Claim, DeadLetter, Job, JobId, Millis, QueueStats, Settle};
    use tower::ServiceExt;

    /// A store that is full, or gone.
    struct Refusing(fn() -> StoreError);

    #[async_trait::async_trait]
    impl Store for Refusing {
        async fn append(&self, _: Vec<NewEvent>) -> Result<AppendReport, StoreError> {
            Err((self.0)())
        }
        async fn claim(&self, _: &str, _: Claim, _: Millis) -> Result<Vec<Job>, StoreError> {
            Err((self.0)())
        }
        async fn settle(&self, _: &str, _: Vec<(JobId, Settle)>) -> Result<(), StoreError> {
            Err((self.0)())
        }
        async fn next_due(&self, _: &str) -> Result<Option<Millis>, StoreError> {
            Err((self.0)())
        }
        async fn stats(&self, _: &str) -> Result<QueueStats, StoreError> {
            Err((self.0)())
        }
        async fn dead_letters(
            &self,
            _: &str,
            _: Option<Millis>,
            _: Option<Millis>,
        ) -> Result<Vec<DeadLetter>, StoreError> {
            Err((self.0)())
        }
        async fn replay(
            &self,
            _: &str,
            _: Option<Millis>,
            _: Option<Millis>,
        ) -> Result<u64, StoreError> {
            Err((self.0)())
        }
        fn wakeup(&self, _: &str) -> Arc<tokio::sync::Notify> {
            Arc::default()
        }
    }

    #[tokio::test]
    async fn a_store_that_cannot_take_more_gets_503_with_retry_after() {
        for refusal in [(|| StoreError::Overloaded) as fn() -> StoreError, || {
            StoreError::Unavailable("disk full".into())
        }] {
            let app = app(IngestState {
                sources: Arc::new(HashMap::from([("wk".to_string(), "web".to_string())])),
                store: Arc::new(Refusing(refusal)),
            });
            let req = axum::http::Request::post("/v1/track")
                .header(header::AUTHORIZATION, "Basic d2s6") // "wk:"
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(r#"{"userId":"u","event":"E"}"#))
                .unwrap();
            let resp = app.oneshot(req).await.unwrap();
            assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
            let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
                .await
                .unwrap();
            let body: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body["success"], false);
        }
    }
}
