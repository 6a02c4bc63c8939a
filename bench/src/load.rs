//! The load generator: closed loop (N concurrent senders, as fast as answered)
//! or open loop (a fixed request rate), both bounded by a duration.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a load phase measured.
#[derive(Debug, Clone, Default)]
pub struct LoadResult {
    /// Requests answered 200.
    pub ok: u64,
    /// Requests answered otherwise, or failed.
    pub errors: u64,
    /// Events in the 200 requests.
    pub events: u64,
    /// Wall time of the phase.
    pub elapsed: Duration,
    /// Latency of each 200 request, in microseconds.
    pub latencies_us: Vec<u64>,
    /// messageIds acknowledged, with the instant of the 200.
    pub acked: Vec<(String, Instant)>,
}

impl LoadResult {
    /// Events per second.
    pub fn eps(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
    /// Latency percentile, in milliseconds.
    pub fn p(&self, q: f64) -> f64 {
        percentile(&self.latencies_us, q) / 1000.0
    }
}

/// The `q` quantile (0..=1) of `values`.
pub fn percentile(values: &[u64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_unstable();
    let idx = ((v.len() - 1) as f64 * q).round() as usize;
    v[idx] as f64
}

/// Where to send and how.
#[derive(Clone)]
pub struct Target {
    /// Full URL of the endpoint.
    pub url: String,
    /// Basic-auth user (write key).
    pub write_key: String,
    /// Shared client.
    pub client: reqwest::Client,
}

impl Target {
    /// A target with a pooled client.
    pub fn new(url: String, write_key: &str) -> Target {
        Target {
            url,
            write_key: write_key.to_string(),
            client: reqwest::Client::builder()
                .no_proxy()
                .pool_max_idle_per_host(256)
                .build()
                .expect("client"),
        }
    }

    async fn send(&self, body: &str) -> bool {
        match self
            .client
            .post(&self.url)
            .basic_auth(&self.write_key, Some(""))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
        {
            Ok(r) => r.status().is_success(),
            Err(_) => false,
        }
    }
}

/// `concurrency` senders, each sending `make()` bodies back to back for `duration`.
pub async fn closed_loop(
    target: &Target,
    concurrency: usize,
    duration: Duration,
    make: impl Fn() -> (String, Vec<String>) + Send + Sync + 'static,
    keep_ids: bool,
) -> LoadResult {
    let make = Arc::new(make);
    let result = Arc::new(Mutex::new(LoadResult::default()));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (target, make, result) = (target.clone(), make.clone(), result.clone());
        tasks.push(tokio::spawn(async move {
            while start.elapsed() < duration {
                let (body, ids) = make();
                let t = Instant::now();
                let ok = target.send(&body).await;
                let done = Instant::now();
                let mut r = result.lock().unwrap();
                if ok {
                    r.ok += 1;
                    r.events += ids.len() as u64;
                    r.latencies_us.push((done - t).as_micros() as u64);
                    if keep_ids {
                        r.acked.extend(ids.into_iter().map(|id| (id, done)));
                    }
                } else {
                    r.errors += 1;
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let mut r = Arc::try_unwrap(result).unwrap().into_inner().unwrap();
    r.elapsed = start.elapsed();
    r
}

/// `rps` requests per second for `duration` (each request its own task).
pub async fn open_loop(
    target: &Target,
    rps: f64,
    duration: Duration,
    make: impl Fn() -> (String, Vec<String>) + Send + Sync + 'static,
) -> LoadResult {
    let result = Arc::new(Mutex::new(LoadResult::default()));
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rps.max(0.1));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::new();
    while start.elapsed() < duration {
        ticker.tick().await;
        let (body, ids) = make();
        let (target, result) = (target.clone(), result.clone());
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let ok = target.send(&body).await;
            let done = Instant::now();
            let mut r = result.lock().unwrap();
            if ok {
                r.ok += 1;
                r.events += ids.len() as u64;
                r.latencies_us.push((done - t).as_micros() as u64);
                r.acked.extend(ids.into_iter().map(|id| (id, done)));
            } else {
                r.errors += 1;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let mut r = Arc::try_unwrap(result).unwrap().into_inner().unwrap();
    r.elapsed = start.elapsed();
    r
}
