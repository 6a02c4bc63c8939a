//! The baselines, as this binary's own subcommands (separate processes).
//!
//! - `bare-server`: reads the body, answers 200: the ceiling of HTTP alone.
//! - `native-destination`: one destination as a native microservice: takes a
//!   JSON array of events, serialises, signs (HMAC-SHA256) and forwards it,
//!   like the webhook component.
//! - `router`: Segment-like ingest in front of the destination services: Basic
//!   auth, parse, per-event checks, then fan-out of the batch to every service;
//!   200 once all of them took it. It stores nothing: it is the microservices
//!   shape without its queue, which flatters the baseline.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

pub async fn bare_server(port: u16) -> anyhow::Result<()> {
    let app = axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .fallback(|body: Bytes| async move {
            std::hint::black_box(body.len());
            "{\"success\":true}"
        });
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

/// The webhook's per-batch work, natively: array body, signature, headers.
pub fn webhook_request(secret: &str, events: &[String]) -> (Vec<u8>, Vec<(String, String)>) {
    let mut body = Vec::with_capacity(events.iter().map(|e| e.len() + 1).sum::<usize>() + 2);
    body.push(b'[');
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(e.as_bytes());
    }
    body.push(b']');
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
    mac.update(&body);
    let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let headers = vec![
        ("content-type".to_string(), "application/json".to_string()),
        ("x-switchyard-signature".to_string(), sig),
    ];
    (body, headers)
}

struct Forward {
    client: reqwest::Client,
    target: String,
    secret: String,
}

pub async fn native_destination(port: u16, target: String, secret: String) -> anyhow::Result<()> {
    let state = Arc::new(Forward {
        client: reqwest::Client::builder().no_proxy().build()?,
        target,
        secret,
    });
    let app = axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route("/deliver", post(forward))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

async fn forward(State(s): State<Arc<Forward>>, body: Bytes) -> StatusCode {
    let Ok(events) = serde_json::from_slice::<Vec<Value>>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let texts: Vec<String> = events.iter().map(|e| e.to_string()).collect();
    let (body, headers) = webhook_request(&s.secret, &texts);
    let mut req = s.client.post(&s.target).body(body);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    match req.send().await {
        Ok(r) if r.status().is_success() => StatusCode::OK,
        _ => StatusCode::BAD_GATEWAY,
    }
}

struct Fanout {
    client: reqwest::Client,
    services: Vec<String>,
}

pub async fn router(port: u16, services: Vec<u16>) -> anyhow::Result<()> {
    let state = Arc::new(Fanout {
        client: reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(64)
            .build()?,
        services: services
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}/deliver"))
            .collect(),
    });
    let app = axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route("/v1/batch", post(ingest))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

async fn ingest(State(s): State<Arc<Fanout>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if !headers.contains_key("authorization") {
        return StatusCode::UNAUTHORIZED;
    }
    let Ok(mut root) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let Some(items) = root.get_mut("batch").and_then(Value::as_array_mut) else {
        return StatusCode::BAD_REQUEST;
    };
    let now = chrono::Utc::now().to_rfc3339();
    for item in items.iter_mut() {
        if item.get("userId").is_none() && item.get("anonymousId").is_none() {
            return StatusCode::BAD_REQUEST;
        }
        item["receivedAt"] = Value::String(now.clone());
    }
    let payload = Bytes::from(serde_json::to_vec(items).unwrap_or_default());
    let sends = s.services.iter().map(|url| {
        s.client
            .post(url)
            .header("content-type", "application/json")
            .body(payload.clone())
            .send()
    });
    let results = futures_join(sends).await;
    if results.iter().all(|ok| *ok) {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

async fn futures_join<F>(sends: impl Iterator<Item = F>) -> Vec<bool>
where
    F: std::future::Future<Output = reqwest::Result<reqwest::Response>> + Send + 'static,
{
    let tasks: Vec<_> = sends.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(matches!(t.await, Ok(Ok(r)) if r.status().is_success()));
    }
    out
}
