//! A fast loopback receiver: counts events per path and records when each
//! messageId arrived. One path can be made to hang. (The tests' receiver keeps
//! every request, too much for a benchmark; both serve through the support
//! crate's `serve_fallback`.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::Uri;
use switchyard_e2e::receiver::serve_fallback;

#[derive(Default)]
struct Inner {
    /// Events received per path.
    per_path: HashMap<String, u64>,
    /// First arrival of each messageId (when recording).
    arrivals: HashMap<String, Instant>,
    /// Record arrivals (costs memory; only for latency runs).
    record: bool,
    /// Requests to this path never get an answer (within 60 s).
    hang: Option<String>,
    /// Requests to this path are answered 500.
    fail: Option<String>,
    /// Every answer waits this long: the vendor's latency.
    latency: Duration,
    /// Beyond this many requests being answered at once, each extra one adds
    /// `.1` to every answer: a vendor that queues.
    knee: Option<(u32, Duration)>,
    /// Requests being answered now.
    open: u32,
    /// Each answer waits up to this much longer, uniformly at random.
    jitter: Duration,
    /// Beyond this many requests being answered at once, an extra one is
    /// answered 429 with `Retry-After: 1` at once.
    refuse_above: Option<u32>,
    /// Requests answered 429.
    refused: u64,
    /// Requests answered in all.
    answered: u64,
    /// How long each request answered 2xx took here (when recording service times).
    service: Option<Vec<Duration>>,
    /// Sample 1 in 16 messageIds per path for latency (`record_paths`).
    sample_paths: bool,
    /// Arrivals of sampled `path messageId` pairs.
    path_arrivals: HashMap<String, Instant>,
}

/// The receiver; clones share state.
#[derive(Clone)]
pub struct Receiver {
    /// Its port.
    pub port: u16,
    inner: Arc<Mutex<Inner>>,
}

impl Receiver {
    /// Start on a free loopback port.
    pub async fn start() -> Receiver {
        let inner: Arc<Mutex<Inner>> = Default::default();
        let port = serve_fallback(handle, inner.clone()).await.port();
        Receiver { port, inner }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Record arrival times of messageIds from now on.
    pub fn record_arrivals(&self, on: bool) {
        self.inner.lock().unwrap().record = on;
    }

    /// Answer every request after `latency` (a vendor's round trip).
    pub fn latency(&self, latency: Duration) {
        self.inner.lock().unwrap().latency = latency;
    }

    /// Add `extra` per request beyond `knee` being answered at once.
    pub fn queue_beyond(&self, knee: u32, extra: Duration) {
        self.inner.lock().unwrap().knee = Some((knee, extra));
    }

    /// Every answer waits up to `jitter` more, uniformly at random.
    pub fn jitter(&self, jitter: Duration) {
        self.inner.lock().unwrap().jitter = jitter;
    }

    /// Answer 429 (`Retry-After: 1`) at once to a request beyond `n` being answered.
    pub fn refuse_above(&self, n: u32) {
        self.inner.lock().unwrap().refuse_above = Some(n);
    }

    /// Keep how long each answered request took here (for percentiles).
    pub fn record_service(&self) {
        self.inner.lock().unwrap().service = Some(Vec::new());
    }

    /// `(requests answered, of them 429, service times of the others)`.
    pub fn answers(&self) -> (u64, u64, Vec<Duration>) {
        let g = self.inner.lock().unwrap();
        (g.answered, g.refused, g.service.clone().unwrap_or_default())
    }

    /// Answer `path` with 500.
    pub fn fail(&self, path: &str) {
        self.inner.lock().unwrap().fail = Some(path.to_string());
    }

    /// Events received on `path`.
    pub fn on_path(&self, path: &str) -> u64 {
        self.inner
            .lock()
            .unwrap()
            .per_path
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Record arrivals per path of 1 in 16 messageIds (by a hash of the id).
    pub fn record_paths(&self, on: bool) {
        self.inner.lock().unwrap().sample_paths = on;
    }

    /// Arrivals of the sampled ids on every path: `(id, arrival)`.
    pub fn path_arrivals(&self) -> Vec<(String, Instant)> {
        let g = self.inner.lock().unwrap();
        g.path_arrivals
            .iter()
            .map(|(k, at)| (k.split(' ').nth(1).unwrap_or("").to_string(), *at))
            .collect()
    }

    /// Whether `id` is among the sampled ids.
    pub fn sampled(id: &str) -> bool {
        id.bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
            % 16
            == 0
    }

    /// Make `path` hang.
    pub fn hang(&self, path: &str) {
        self.inner.lock().unwrap().hang = Some(path.to_string());
    }

    /// Events received on every path.
    pub fn total(&self) -> u64 {
        self.inner.lock().unwrap().per_path.values().sum()
    }

    /// Events received on paths other than `except`.
    pub fn total_except(&self, except: &str) -> u64 {
        let g = self.inner.lock().unwrap();
        g.per_path
            .iter()
            .filter(|(p, _)| p.as_str() != except)
            .map(|(_, n)| n)
            .sum()
    }

    /// Arrival of a messageId.
    pub fn arrival(&self, id: &str) -> Option<Instant> {
        self.inner.lock().unwrap().arrivals.get(id).copied()
    }

    /// Wait until `total()` stops growing for 1 s (or 60 s pass).
    pub async fn drain(&self) {
        let mut last = self.total();
        let start = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = self.total();
            if now == last || start.elapsed() > Duration::from_secs(60) {
                return;
            }
            last = now;
        }
    }
}

/// An event as the receiver reads it when it records arrivals.
#[derive(serde::Deserialize)]
struct IdOnly {
    #[serde(rename = "messageId")]
    message_id: Option<String>,
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    uri: Uri,
    body: Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let started = Instant::now();
    let path = uri.path().to_string();
    let (hang, fail, wait) = {
        let mut g = inner.lock().unwrap();
        g.answered += 1;
        if g.refuse_above.is_some_and(|n| g.open >= n) {
            g.refused += 1;
            return (
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                [(axum::http::header::RETRY_AFTER, "1")],
                "slow down",
            )
                .into_response();
        }
        g.open += 1;
        let extra = match g.knee {
            Some((knee, per)) => per * g.open.saturating_sub(knee),
            None => Duration::ZERO,
        };
        let jitter = if g.jitter.is_zero() {
            Duration::ZERO
        } else {
            g.jitter.mul_f64(rand::random::<f64>())
        };
        (
            g.hang.as_deref() == Some(path.as_str()),
            g.fail.as_deref() == Some(path.as_str()),
            g.latency + extra + jitter,
        )
    };
    if hang {
        tokio::time::sleep(Duration::from_secs(60)).await;
        inner.lock().unwrap().open -= 1;
        return (axum::http::StatusCode::OK, "late").into_response();
    }
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    let at = Instant::now();
    let (record, per_path) = {
        let g = inner.lock().unwrap();
        (g.record, g.sample_paths)
    };
    // Count without building values unless ids are wanted: the receiver is the
    // vendor, and shares the machine with the system under test.
    let (count, events): (usize, Vec<IdOnly>) = if fail {
        (0, Vec::new())
    } else if record || per_path {
        let events: Vec<IdOnly> = serde_json::from_slice(&body).unwrap_or_default();
        (events.len(), events)
    } else {
        let n = serde_json::from_slice::<Vec<serde::de::IgnoredAny>>(&body).map_or(0, |v| v.len());
        (n, Vec::new())
    };
    let mut g = inner.lock().unwrap();
    g.open -= 1;
    if fail {
        return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "down").into_response();
    }
    if let Some(service) = g.service.as_mut() {
        service.push(started.elapsed());
    }
    *g.per_path.entry(path.clone()).or_default() += count as u64;
    if record || per_path {
        for e in &events {
            if let Some(id) = e.message_id.as_deref() {
                if record {
                    g.arrivals.entry(id.to_string()).or_insert(at);
                }
                if per_path && Receiver::sampled(id) {
                    g.path_arrivals.entry(format!("{path} {id}")).or_insert(at);
                }
            }
        }
    }
    (axum::http::StatusCode::OK, "ok").into_response()
}
