//! HTTP ingest: Segment's tracking API, so existing SDKs work unchanged.
//!
//! Where it sits: the front door. `POST /v1/{track,identify,page,screen,group,
//! alias,batch,import}` and the short paths of analytics.js and the mobile SDKs
//! (`/v1/t`, `/v1/i`, `/v1/p`, `/v1/s`, `/v1/g`, `/v1/a`, `/v1/b`) decompress
//! the body (`gzip`, `deflate`, `br`; limits apply to the decompressed size),
//! authenticate the write key, check the page's origin ([`cors`]), validate and
//! normalise every message ([`normalize::normalize_body`]), add what Segment's
//! API adds (`context.ip`, `context.library`), drop the events of users a
//! privacy regulation suppresses ([`Suppressions`]: answered as accepted,
//! counted, stored nowhere), append the other valid events to the [`Store`]
//! and answer `200` only once the store says they are durable.
//!
//! A batch keeps its valid events: each refused one is named in the answer
//! (`rejected`) and kept for the admin API ([`rejections`]). A problem of the
//! request itself (bad JSON, auth, size, no valid event at all) refuses it
//! whole, and nothing of it is stored. `GET /v1/projects/{writeKey}/settings`
//! ([`settings`]) answers analytics.js's settings. Ingest never touches the runtime.

pub mod client;
mod cors;
pub mod normalize;
pub mod recent;
pub mod rejections;
mod settings;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json};
use base64::Engine as _;
use serde_json::{json, Map, Value};

use self::normalize::{normalize_body, BodyKind, Invalid, Rejected};
use self::rejections::Rejections;
use crate::config::{AllowedOrigins, Config};
use crate::observe::metrics::{Instruments, RequestLabels, SourceLabel};
use crate::privacy::Suppressions;
use crate::route::RouteKeys;
use crate::store::{NewEvent, Store, StoreError};

pub use self::normalize::MAX_BATCH_EVENTS;

/// Most bytes of one request, after decompression (Segment's limit).
pub const MAX_REQUEST_BYTES: usize = 500 * 1024;
/// Seconds a client is asked to wait when the store is overloaded.
const RETRY_AFTER_SECS: u64 = 1;

/// A source, by its write key.
#[derive(Debug, Clone)]
pub struct Source {
    /// Its name, stored with each event.
    pub name: String,
    /// Pages that may send with its key.
    pub origins: AllowedOrigins,
}

/// What ingest needs.
#[derive(Clone)]
pub struct IngestState {
    /// Write key → source.
    pub sources: Arc<HashMap<String, Source>>,
    /// Where events are kept.
    pub store: Arc<dyn Store>,
    /// Proxies whose `X-Forwarded-*` headers are believed.
    pub trusted_proxies: Arc<Vec<ipnet::IpNet>>,
    /// Refused events, for the admin API.
    pub rejections: Arc<Rejections>,
    /// The newest accepted events per source (the source debugger).
    pub recent: Arc<recent::Recent>,
    /// Accepted and refused events per minute, by source name.
    pub history: Arc<HashMap<String, Arc<crate::observe::history::History>>>,
    /// Requests and events counted for `/metrics`.
    pub instruments: Instruments,
    /// The users whose events are accepted and dropped (`crate::privacy`):
    /// the privacy module swaps in a new set when a regulation arrives.
    pub suppressions: Arc<arc_swap::ArcSwap<Suppressions>>,
}

impl IngestState {
    /// The ingest of `config`, appending to `store`.
    pub fn new(config: &Config, store: Arc<dyn Store>) -> IngestState {
        let sources = config
            .sources
            .iter()
            .map(|(key, name)| {
                let source = Source {
                    name: name.clone(),
                    origins: config.allowed_origins.get(key).cloned().unwrap_or_default(),
                };
                (key.clone(), source)
            })
            .collect();
        IngestState {
            sources: Arc::new(sources),
            store,
            trusted_proxies: Arc::new(config.trusted_proxies.clone()),
            rejections: Arc::default(),
            recent: Arc::default(),
            history: Arc::new(
                config
                    .sources
                    .values()
                    .map(|name| (name.clone(), Arc::default()))
                    .collect(),
            ),
            instruments: Instruments::default(),
            suppressions: Arc::new(arc_swap::ArcSwap::from_pointee(Suppressions::none())),
        }
    }
}

/// Everything ingest can answer besides success; each becomes a JSON body.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Malformed input.
    #[error("{0}")]
    BadRequest(String),
    /// No valid event: the reasons, with every refused event.
    #[error("{0}")]
    Invalid(Invalid),
    /// The body is over the limit (after decompression).
    #[error("request body exceeds {MAX_REQUEST_BYTES} bytes (after decompression)")]
    TooLarge,
    /// Missing or unknown write key.
    #[error("{0}")]
    Unauthorized(String),
    /// A page whose origin the source does not allow.
    #[error("origin {0} may not send here: add it to the source's allowed_origins")]
    OriginNotAllowed(String),
    /// Not an endpoint of the API.
    #[error("unknown endpoint /v1/{0}")]
    NotFound(String),
    /// Not JSON.
    #[error("Content-Type must be application/json (or text/plain, as analytics.js sends)")]
    UnsupportedMediaType,
    /// The store is overloaded or unavailable.
    #[error("{0}")]
    Unavailable(String),
}

impl IngestError {
    /// The HTTP status it answers with.
    fn status(&self) -> StatusCode {
        match self {
            IngestError::BadRequest(_) => StatusCode::BAD_REQUEST,
            IngestError::Invalid(i) if i.code == "request_too_large" => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            IngestError::Invalid(_) => StatusCode::BAD_REQUEST,
            IngestError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            IngestError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            IngestError::OriginNotAllowed(_) => StatusCode::FORBIDDEN,
            IngestError::NotFound(_) => StatusCode::NOT_FOUND,
            IngestError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IngestError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `code` of its JSON body.
    fn code(&self) -> &'static str {
        match self {
            IngestError::BadRequest(_) => "invalid_request",
            IngestError::Invalid(i) => i.code,
            IngestError::TooLarge => "too_large",
            IngestError::Unauthorized(_) => "unauthorized",
            IngestError::OriginNotAllowed(_) => "origin_not_allowed",
            IngestError::NotFound(_) => "not_found",
            IngestError::UnsupportedMediaType => "unsupported_media_type",
            IngestError::Unavailable(_) => "unavailable",
        }
    }
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        let (status, code) = (self.status(), self.code());
        let mut body = json!({"success": false, "code": code, "message": self.to_string()});
        if let IngestError::Invalid(i) = &self {
            if !i.rejected.is_empty() {
                body["rejected"] = json!(i.rejected);
            }
        }
        let mut resp = (status, Json(body)).into_response();
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

/// The ingest routes, with decompression and CORS as layers.
pub fn app(state: IngestState) -> axum::Router {
    axum::Router::new()
        .route("/v1/{kind}", post(ingest))
        .route("/v1/projects/{key}/settings", get(settings::settings))
        .layer(tower_http::decompression::RequestDecompressionLayer::new())
        .layer(axum::middleware::from_fn(remember_encoding))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            cors::layer,
        ))
        .with_state(state)
}

/// The `Content-Encoding` a request came with (the decompression layer removes
/// the header), to name it when the stream is corrupt.
#[derive(Debug, Clone)]
struct SentEncoding(String);

async fn remember_encoding(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(e) = request
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
    {
        let e = SentEncoding(e.to_string());
        request.extensions_mut().insert(e);
    }
    next.run(request).await
}

/// The peer address, when the server recorded it.
type Peer = Option<Extension<ConnectInfo<SocketAddr>>>;

/// What one request did, for `/metrics`.
#[derive(Debug, Default)]
struct Tally {
    /// The source, once the write key is known.
    source: Option<String>,
    /// Events stored.
    stored: u64,
    /// Events refused.
    rejected: u64,
    /// Events acknowledged as already stored.
    duplicates: u64,
    /// Events accepted and dropped: their user is suppressed.
    suppressed: u64,
}

async fn ingest(
    State(state): State<IngestState>,
    Path(kind): Path<String>,
    peer: Peer,
    encoding: Option<Extension<SentEncoding>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut tally = Tally::default();
    let response = accept(&state, kind, peer, encoding, headers, body, &mut tally)
        .await
        .into_response();
    count(&state, &tally, response.status());
    response
}

/// Count one answered request and its events.
fn count(state: &IngestState, tally: &Tally, status: StatusCode) {
    let instruments = &state.instruments;
    if let Some(h) = tally.source.as_ref().and_then(|s| state.history.get(s)) {
        h.add(
            crate::store::now_ms(),
            crate::observe::history::Minute {
                filtered: tally.suppressed,
                ..crate::observe::history::Minute::counts(
                    tally.stored,
                    tally.rejected,
                    tally.duplicates,
                )
            },
        );
    }
    let source = tally.source.clone().unwrap_or_default();
    instruments
        .ingest_requests
        .get_or_create(&RequestLabels {
            source: source.clone(),
            status: status.as_u16(),
        })
        .inc();
    if tally.source.is_none() {
        return;
    }
    let label = SourceLabel { source };
    for (family, n) in [
        (&instruments.events_accepted, tally.stored),
        (&instruments.events_rejected, tally.rejected),
        (&instruments.events_deduplicated, tally.duplicates),
        (&instruments.events_suppressed, tally.suppressed),
    ] {
        if n > 0 {
            family.get_or_create(&label).inc_by(n);
        }
    }
}

async fn accept(
    state: &IngestState,
    kind: String,
    peer: Peer,
    encoding: Option<Extension<SentEncoding>>,
    headers: HeaderMap,
    body: Body,
    tally: &mut Tally,
) -> Result<Json<Value>, IngestError> {
    let body_kind = BodyKind::of_endpoint(&kind).ok_or(IngestError::NotFound(kind))?;
    // A key in the header names the source before the body is read: a body
    // refused for its size or its syntax is counted under its source.
    let by_header = headers
        .get(header::AUTHORIZATION)
        .and_then(basic_user)
        .and_then(|key| state.sources.get(&key));
    tally.source = by_header.map(|s| s.name.clone());
    let result = read_root(&headers, encoding, body).await;
    if let (Err(e), Some(source)) = (&result, &tally.source) {
        let whole = Rejected {
            index: 0,
            message_id: None,
            code: e.code(),
            message: format!("the whole request: {e}"),
        };
        state.rejections.record(source, &[whole]);
        tally.rejected = 1;
    }
    let root = result?;
    let source = match by_header {
        Some(source) => source,
        None => authenticate(state, &headers, &root)?,
    };
    tally.source = Some(source.name.clone());
    cors::check(source, &headers)?;
    let received_at = chrono::Utc::now();
    let ip = client::client_ip(peer.map(|p| p.0 .0), &headers, &state.trusted_proxies)
        .map(|ip| ip.to_string());
    let accepted = normalize_body(root, body_kind, received_at, ip.as_deref()).map_err(|e| {
        state.rejections.record(&source.name, &e.rejected);
        tally.rejected = e.rejected.len() as u64;
        IngestError::Invalid(e)
    })?;
    // A suppressed user's events are answered as accepted (an SDK would
    // otherwise send them again) and go no further: not the store, not the
    // source debugger.
    let suppressions = state.suppressions.load();
    let mut events = accepted.events;
    if !suppressions.is_empty() {
        let before = events.len();
        events.retain(|n| !suppressions.suppresses(&source.name, &n.message));
        tally.suppressed = (before - events.len()) as u64;
    }
    let new_events = events
        .into_iter()
        .map(|n| {
            let route = RouteKeys::of(&n.message);
            NewEvent {
                source: source.name.clone(),
                route,
                json: n.json,
                message_id: n.message_id,
                event_type: n.event_type,
                user_key: Some(n.user_key),
            }
        })
        .collect::<Vec<_>>();
    if !new_events.is_empty() {
        // The source debugger's copy is taken first (the store takes the events);
        // it is kept only once the store acknowledged them.
        let skip = new_events.len().saturating_sub(recent::KEEP_PER_SOURCE);
        let copies: Vec<(String, &'static str, String)> = new_events[skip..]
            .iter()
            .map(|e| (e.message_id.clone(), e.event_type.as_str(), e.json.clone()))
            .collect();
        let report = state.store.append(new_events).await?;
        tally.stored = report.stored as u64;
        tally.duplicates = report.duplicates as u64;
        state.recent.record(
            &source.name,
            copies
                .iter()
                .map(|(id, kind, json)| (id.as_str(), *kind, json.as_str())),
        );
    }
    state.rejections.record(&source.name, &accepted.rejected);
    tally.rejected = accepted.rejected.len() as u64;
    Ok(Json(if accepted.rejected.is_empty() {
        json!({"success": true})
    } else {
        json!({"success": true, "rejected": accepted.rejected})
    }))
}

/// The body as a JSON object, checked for its media type and size.
async fn read_root(
    headers: &HeaderMap,
    encoding: Option<Extension<SentEncoding>>,
    body: Body,
) -> Result<Map<String, Value>, IngestError> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
        if !(ct.starts_with("application/json") || ct.starts_with("text/plain")) {
            return Err(IngestError::UnsupportedMediaType);
        }
    }
    let encoding = encoding.map_or_else(|| "identity".to_string(), |e| e.0 .0);
    let bytes = read_body(body, &encoding).await?;
    let parsed: Value = serde_json::from_slice(&bytes)
        .map_err(|e| IngestError::BadRequest(format!("invalid JSON: {e}")))?;
    match parsed {
        Value::Object(root) => Ok(root),
        _ => Err(IngestError::BadRequest(
            "the body must be a JSON object".into(),
        )),
    }
}

/// The whole body, decompressed by the layer, at most [`MAX_REQUEST_BYTES`]: a
/// decompression bomb stops there (413); a corrupt stream is a 400 naming its encoding.
async fn read_body(body: Body, encoding: &str) -> Result<axum::body::Bytes, IngestError> {
    axum::body::to_bytes(body, MAX_REQUEST_BYTES)
        .await
        .map_err(|e| {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(err) = source {
                if err.is::<http_body_util::LengthLimitError>() {
                    return IngestError::TooLarge;
                }
                source = err.source();
            }
            IngestError::BadRequest(format!(
                "the request body cannot be read as Content-Encoding {encoding}: {e}"
            ))
        })
}

/// The source of the request, by its write key: the Basic-auth user name, else
/// `writeKey` in the body.
fn authenticate<'a>(
    state: &'a IngestState,
    headers: &HeaderMap,
    root: &Map<String, Value>,
) -> Result<&'a Source, IngestError> {
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
    use crate::store::{
        AppendReport, Claim, Coordination, DeadLetter, DeadLetters, Job, JobId, Millis, QueueStats,
        Queues, Settle,
    };
    use tower::ServiceExt;

    /// A store that is full, or gone.
    struct Refusing(fn() -> StoreError);

    #[async_trait::async_trait]
    impl Queues for Refusing {
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
        async fn retry_now(&self, _: &str) -> Result<u64, StoreError> {
            Err((self.0)())
        }
        fn wakeup(&self, _: &str) -> Arc<tokio::sync::Notify> {
            Arc::default()
        }
        fn commits(&self) -> Arc<crate::store::Commits> {
            Arc::default()
        }
    }

    #[async_trait::async_trait]
    impl DeadLetters for Refusing {
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
        async fn purge(
            &self,
            _: &str,
            _: Option<Millis>,
            _: Option<Millis>,
        ) -> Result<u64, StoreError> {
            Err((self.0)())
        }
    }

    #[async_trait::async_trait]
    impl Coordination for Refusing {
        async fn set_paused(&self, _: &str, _: bool) -> Result<(), StoreError> {
            Err((self.0)())
        }
        async fn paused(&self) -> Result<std::collections::HashSet<String>, StoreError> {
            Err((self.0)())
        }
        async fn live_hosts(&self, _: &str) -> Result<usize, StoreError> {
            Err((self.0)())
        }
    }

    #[async_trait::async_trait]
    impl crate::store::Regulations for Refusing {
        async fn subject_key(&self) -> Result<[u8; 16], StoreError> {
            Err((self.0)())
        }
        async fn add_regulation(&self, _: &str, _: &str) -> Result<u64, StoreError> {
            Err((self.0)())
        }
        async fn regulation_ids(&self) -> Result<Vec<String>, StoreError> {
            Err((self.0)())
        }
        async fn regulation(
            &self,
            _: &str,
        ) -> Result<Option<crate::store::StoredRegulation>, StoreError> {
            Err((self.0)())
        }
        async fn status(&self, _: &str) -> Result<Option<String>, StoreError> {
            Err((self.0)())
        }
        async fn set_status(&self, _: &str, _: &str) -> Result<(), StoreError> {
            Err((self.0)())
        }
        async fn erase_status(&self, _: &str) -> Result<(), StoreError> {
            Err((self.0)())
        }
        async fn erase_step(
            &self,
            _: crate::store::Matches,
            _: u64,
        ) -> Result<crate::store::EraseStep, StoreError> {
            Err((self.0)())
        }
    }

    impl Store for Refusing {
        fn reconfiguration(&self) -> Option<&dyn crate::store::Reconfigure> {
            None
        }
    }

    #[tokio::test]
    async fn a_store_that_cannot_take_more_gets_503_with_retry_after() {
        for refusal in [(|| StoreError::Overloaded) as fn() -> StoreError, || {
            StoreError::Unavailable("disk full".into())
        }] {
            let source = Source {
                name: "web".into(),
                origins: AllowedOrigins::default(),
            };
            let app = app(IngestState {
                sources: Arc::new(HashMap::from([("wk".to_string(), source)])),
                store: Arc::new(Refusing(refusal)),
                trusted_proxies: Arc::default(),
                rejections: Arc::default(),
                recent: Arc::default(),
                history: Arc::default(),
                instruments: Instruments::default(),
                suppressions: Arc::new(arc_swap::ArcSwap::from_pointee(Suppressions::none())),
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
