//! Probes and metrics: `GET /healthz` (liveness, open), `GET /readyz`
//! (readiness, open; see [`super::ready`]) and `GET /metrics`
//! (Prometheus; with the admin token on the main listener, open on
//! `[server] metrics_listen`, which is meant for a private network).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;

use super::answers::Healthz;
use super::ready;
use super::scrape::{DestinationSample, HostSample, CONTENT_TYPE};
use super::AdminState;

/// Longest wait for the store's queue figures during a scrape; the last ones
/// it gave are shown when it does not answer in time.
const SCRAPE_STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// `/healthz` and `/readyz` (no auth: probes carry no token).
pub fn open_routes(state: AdminState) -> axum::Router {
    axum::Router::new()
        .route("/healthz", get(|| async { Json(Healthz { status: "ok" }) }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// The app of `[server] metrics_listen`: `/metrics` without a token, and the probes.
pub fn metrics_app(state: AdminState) -> axum::Router {
    axum::Router::new()
        .route("/metrics", get(metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            state.guard.clone(),
            super::guard::check_host,
        ))
        .with_state(state.clone())
        .merge(open_routes(state))
        .fallback(super::no_such_path)
}

/// How long an answer of `/readyz` to a request without the admin token is
/// reused: the checks ask the store (a JetStream call on NATS), and anyone may
/// call this route.
pub const READY_REUSE: Duration = Duration::from_millis(500);

/// The last checks made for a request without the admin token.
#[derive(Debug, Default)]
pub struct ReadyCache(tokio::sync::Mutex<Option<(std::time::Instant, ready::Readiness)>>);

/// `GET /readyz`: the status and which checks failed; with the admin token,
/// also what each failure says (plugin files, store errors) and always checked
/// afresh.
async fn readyz(State(state): State<AdminState>, headers: axum::http::HeaderMap) -> Response {
    let detailed = state
        .token
        .as_deref()
        .is_some_and(|t| super::bearer_is(&headers, t));
    let readiness = if detailed {
        check(&state).await
    } else {
        let mut cached = state.ready.0.lock().await;
        match &*cached {
            Some((at, r)) if at.elapsed() < READY_REUSE => r.clone(),
            _ => {
                let r = check(&state).await;
                *cached = Some((std::time::Instant::now(), r.clone()));
                r
            }
        }
    };
    let status = if readiness.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let shown = if detailed {
        readiness
    } else {
        readiness.without_details()
    };
    (status, Json(shown)).into_response()
}

/// The readiness checks now.
async fn check(state: &AdminState) -> ready::Readiness {
    let slots = plugins(state);
    ready::check(
        state.store.as_ref(),
        slots.iter().map(|(d, s)| (d.as_str(), &**s)),
        &state.privacy,
    )
    .await
}

/// Each destination with its plugin's slot and those of its transformations,
/// for the readiness checks.
fn plugins(state: &AdminState) -> Vec<(String, Arc<crate::plugins::PluginSlot>)> {
    let all = state.destinations.load();
    all.iter()
        .flat_map(|d| {
            std::iter::once((d.name.clone(), d.plugin.clone())).chain(
                d.live
                    .chain
                    .iter()
                    .map(move |l| (d.name.clone(), l.slot.clone())),
            )
        })
        .collect()
}

/// `GET /metrics`.
pub async fn metrics(State(state): State<AdminState>) -> Response {
    let sample = sample(&state).await;
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        state.metrics.render(sample),
    )
        .into_response()
}

/// What the host looks like now.
async fn sample(state: &AdminState) -> HostSample {
    let all = state.destinations.load_full();
    let mut destinations = Vec::with_capacity(all.len());
    for d in all.iter() {
        let asked = tokio::time::timeout(SCRAPE_STORE_TIMEOUT, state.store.stats(&d.name)).await;
        let q = match asked {
            Ok(Ok(q)) => {
                *d.last_queue.lock().expect("last queue lock") = q;
                q
            }
            _ => *d.last_queue.lock().expect("last queue lock"),
        };
        let s = &d.live;
        destinations.push(DestinationSample {
            name: d.name.clone(),
            plugin: d.plugin.name.clone(),
            queued: q.queued,
            in_flight: s.stats.in_flight.load(Relaxed),
            dead_letters: q.dead_letters,
            delivered: s.stats.delivered.load(Relaxed),
            retried: s.stats.retried.load(Relaxed),
            dead_lettered: s.stats.dead_lettered.load(Relaxed),
            filtered: state.store.filtered(&d.name) + s.stats.filtered.load(Relaxed),
            health: s.health().state,
            violations: s.stats.sandbox.violations(),
            memory_peak_bytes: s.stats.sandbox.memory_peak_bytes.load(Relaxed),
            swaps: d.plugin.swaps.load(Relaxed),
            concurrency: s.limiter.lock().expect("limiter lock").report(),
            transforms: s
                .chain
                .iter()
                .map(|l| super::scrape::TransformSample {
                    name: l.config.name.clone(),
                    filtered: l.stats.filtered.load(Relaxed),
                    violations: l.stats.sandbox.violations(),
                })
                .collect(),
        });
    }
    HostSample {
        destinations,
        ready: check(state).await.is_ready(),
        nats_connected: state.store.connected(),
        warm_instances: state.catalog.runtime().warm_instances(),
        suppressed_subjects: state.privacy.suppressions().load().len(),
        disk: state.store.disk_usage(),
    }
}
