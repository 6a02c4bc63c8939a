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

async fn handle(State(inner): State<Arc<Mutex<Inner>>>, uri: Uri, body: Bytes) -> &'static str {
    let path = uri.path().to_string();
    let hang = inner.lock().unwrap().hang.as_deref() == Some(path.as_str());
    if hang {
        tokio::time::sleep(Duration::from_secs(60)).await;
        return "late";
    }
    let at = Instant::now();
    let record = inner.lock().unwrap().record;
    let events: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap_or_default();
    let mut g = inner.lock().unwrap();
    *g.per_path.entry(path).or_default() += events.len() as u64;
    if record {
        for e in &events {
            if let Some(id) = e.get("messageId").and_then(|v| v.as_str()) {
                g.arrivals.entry(id.to_string()).or_insert(at);
            }
        }
    }
    "ok"
}
