//! CORS for browser SDKs, per source (`[[sources]] allowed_origins`).
//!
//! A preflight (`OPTIONS`) carries no write key, so it is answered for an
//! origin that any source allows; the request itself is then checked against
//! its own source's origins in [`super::ingest`], which answers 403 for any
//! other. Requests without an `Origin` header (server SDKs, curl) are not
//! affected. Default: no origin is allowed.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{IngestError, IngestState};

/// Request headers the SDKs send that a browser asks about first: analytics.js
/// sends `Authorization` and `X-Retry-Count`, RudderStack's JS SDK
/// `Authorization` and `AnonymousId`, compressing senders `Content-Encoding`.
pub const ALLOWED_HEADERS: &str =
    "authorization, content-type, content-encoding, x-retry-count, anonymousid";

/// How long a browser may cache a preflight answer.
const MAX_AGE_SECS: &str = "600";

/// The `Origin` of a request, if any.
pub fn origin(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::ORIGIN).and_then(|v| v.to_str().ok())
}

/// A request from a page must come from an origin its own source allows.
pub fn check(source: &super::Source, headers: &HeaderMap) -> Result<(), IngestError> {
    match origin(headers) {
        Some(o) if !source.origins.allows(o) => Err(IngestError::OriginNotAllowed(o.to_string())),
        _ => Ok(()),
    }
}

/// Answer preflights, and mark answers to allowed origins readable.
pub async fn layer(State(state): State<IngestState>, request: Request, next: Next) -> Response {
    let Some(origin) = origin(request.headers()).map(str::to_string) else {
        return next.run(request).await;
    };
    let known = state.sources.values().any(|s| s.origins.allows(&origin));
    if request.method() == Method::OPTIONS {
        if !known {
            return IngestError::OriginNotAllowed(origin).into_response();
        }
        let mut resp = StatusCode::NO_CONTENT.into_response();
        allow(resp.headers_mut(), &origin);
        let h = resp.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST, GET, OPTIONS"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOWED_HEADERS),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static(MAX_AGE_SECS),
        );
        return resp;
    }
    let mut resp = next.run(request).await;
    if known {
        allow(resp.headers_mut(), &origin);
    }
    resp
}

fn allow(h: &mut HeaderMap, origin: &str) {
    if let Ok(v) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}
