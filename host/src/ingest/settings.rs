//! `GET /v1/projects/{writeKey}/settings`: the settings document analytics.js
//! loads from its CDN at start, pointing its `Segment.io` plugin at this host,
//! so a page needs only `cdnURL` set to Switchyard.
//!
//! The fields are those that `@segment/analytics-next` reads (see the book's
//! `concepts/ingest.md` for the version tried): `integrations["Segment.io"]` with `apiKey`,
//! `apiHost` (host and `/v1`, no scheme) and `protocol`; `plan`; and the
//! switches for its remote plugins, middleware, metrics and legacy video
//! plugins, all off.

use std::net::SocketAddr;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

use super::{client, cors, IngestError, IngestState};

/// The settings of the source of `key`; 404 for an unknown key. The document
/// names the `Host` the request named, so no shared cache may keep it for
/// another request (`Cache-Control: private, no-store`, `Vary`).
pub async fn settings(
    State(state): State<IngestState>,
    Path(key): Path<String>,
    headers: HeaderMap,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<SocketAddr>>>,
) -> Result<impl IntoResponse, IngestError> {
    let source = state.sources.get(&key).ok_or_else(|| {
        IngestError::NotFound(format!("projects/{key}/settings: unknown write key"))
    })?;
    cors::check(source, &headers)?;
    let peer = peer.map(|p| p.0 .0);
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1:8088");
    let protocol = client::scheme(peer, &headers, &state.trusted_proxies);
    Ok((
        [
            (header::CACHE_CONTROL, "private, no-store"),
            (header::VARY, "Host, X-Forwarded-Proto"),
        ],
        Json(document(&key, host, protocol)),
    ))
}

/// The document for write key `key`, served at `protocol://host`.
pub fn document(key: &str, host: &str, protocol: &str) -> Value {
    json!({
        "integrations": {
            "Segment.io": {
                "apiKey": key,
                "apiHost": format!("{host}/v1"),
                "protocol": protocol,
                "unbundledIntegrations": [],
                "addBundledMetadata": false,
                "maybeBundledConfigIds": {},
            }
        },
        "plan": {
            "track": {"__default": {"enabled": true, "integrations": {}}},
            "identify": {"__default": {"enabled": true}},
            "group": {"__default": {"enabled": true}},
        },
        "edgeFunction": {},
        "analyticsNextEnabled": true,
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "metrics": {"sampleRate": 0},
        "legacyVideoPluginsEnabled": false,
        "remotePlugins": [],
    })
}
