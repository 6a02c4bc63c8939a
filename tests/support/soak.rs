//! What the fault loops share: a load of batches from several clients that
//! keeps the ids the host acknowledged, and the count of what was lost or
//! delivered twice.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::host::WRITE_KEY;
use crate::Receiver;

/// Whether the loops run at full length (`make soak`) or in their short form (`make test`).
pub fn full() -> bool {
    std::env::var("SWITCHYARD_SOAK").as_deref() == Ok("full")
}

/// `short` in `make test`, `long` in `make soak`.
pub fn cycles(short: usize, long: usize) -> usize {
    if full() {
        long
    } else {
        short
    }
}

/// Clients posting batches of `size` to `base` until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    /// Every id of a batch answered 200.
    pub acked: Arc<Mutex<Vec<String>>>,
    /// Round trips of the requests answered 200, in ms.
    pub latencies: Arc<Mutex<Vec<f64>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Start `clients` clients; each waits `gap` between its requests.
    pub fn start(base: &str, clients: usize, size: usize, gap: Duration, prefix: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let latencies = Arc::new(Mutex::new(Vec::new()));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let tasks = (0..clients)
            .map(|c| {
                let (stop, acked, latencies, http) =
                    (stop.clone(), acked.clone(), latencies.clone(), http.clone());
                let url = format!("{base}/v1/batch");
                let prefix = format!("{prefix}{c}-");
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let batch_prefix = format!("{prefix}{n}");
                        n += 1;
                        let body = crate::sdk_batch(&batch_prefix, size);
                        let sent = Instant::now();
                        let resp = http
                            .post(&url)
                            .basic_auth(WRITE_KEY, Some(""))
                            .json(&body)
                            .send()
                            .await;
                        if resp.is_ok_and(|r| r.status() == 200) {
                            latencies
                                .lock()
                                .unwrap()
                                .push(sent.elapsed().as_secs_f64() * 1000.0);
                            acked
                                .lock()
                                .unwrap()
                                .extend(crate::ids(&batch_prefix, size));
                        } else {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        tokio::time::sleep(gap).await;
                    }
                })
            })
            .collect();
        Load {
            stop,
            acked,
            latencies,
            tasks,
        }
    }

    /// Stop every client and wait for them; the ids acknowledged.
    pub async fn stop(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        let acked = self.acked.lock().unwrap().clone();
        acked
    }
}

/// Lost and twice-delivered events among `acked`, once every acknowledged event
/// arrived (or `timeout` passed).
pub async fn tally(rx: &Receiver, acked: &[String], timeout: Duration) -> (usize, usize) {
    let start = Instant::now();
    loop {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for id in rx.delivered_ids() {
            *counts.entry(id).or_insert(0) += 1;
        }
        let lost = acked.iter().filter(|id| !counts.contains_key(*id)).count();
        if lost == 0 || start.elapsed() > timeout {
            let twice = acked
                .iter()
                .map(|id| counts.get(id).copied().unwrap_or(0).saturating_sub(1))
                .sum();
            return (lost, twice);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `q` quantile of `values` (0 when empty).
pub fn quantile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}
