//! One destination's delivery loop.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::health::BatchVerdict;
use super::rate::TokenBucket;
use super::retry::decide;
use super::DeliveryStats;
use crate::config::{DestinationConfig, Ordering};
use crate::imports::http::{Egress, HttpLimits};
use crate::plugins::{PluginSlot, Version};
use crate::runtime::bindings::switchyard::destination::types::EventType;
use crate::runtime::{CallContext, CallError, Event, Outcome};
use crate::store::{now_ms, Job, Settle, Store};

/// Longest idle wait before the worker looks at the store again anyway.
const IDLE_POLL: Duration = Duration::from_secs(1);
/// Pause after a store error.
const STORE_ERROR_PAUSE: Duration = Duration::from_millis(500);

/// The delivery loop of one destination.
pub struct Worker {
    /// The destination's configuration (policies, limits).
    dest: DestinationConfig,
    /// Its component's serving version (hot-swappable).
    plugin: Arc<PluginSlot>,
    /// Its settings as JSON text, serialised once.
    settings: String,
    /// The store holding its queue.
    store: Arc<dyn Store>,
    /// What every call into the component runs with (limits, egress).
    ctx: CallContext,
    /// Counters and health, shared with the admin API.
    stats: Arc<DeliveryStats>,
}

/// What one batch did, for health and rate.
struct BatchResult {
    verdict: BatchVerdict,
    /// The destination asked to slow down (a retry with an `after` hint).
    throttled: bool,
}

impl Worker {
    /// A worker for `dest`, delivering through `plugin`.
    pub fn new(
        dest: DestinationConfig,
        plugin: Arc<PluginSlot>,
        store: Arc<dyn Store>,
        client: reqwest::Client,
        stats: Arc<DeliveryStats>,
    ) -> Worker {
        let name: Arc<str> = Arc::from(dest.name.as_str());
        let ctx = CallContext {
            destination: name.clone(),
            limits: dest.limits,
            egress: Egress::Live {
                client,
                allowlist: Arc::new(dest.allowed_hosts.clone()),
                limits: HttpLimits {
                    timeout: dest.limits.timeout.min(HttpLimits::default().timeout),
                    ..HttpLimits::default()
                },
                destination: name,
            },
            counters: stats.sandbox.clone(),
        };
        Worker {
            settings: dest.settings.to_string(),
            dest,
            plugin,
            store,
            ctx,
            stats,
        }
    }

    /// Deliver until `shutdown` turns true; a batch in flight is finished first.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let name = self.dest.name.as_str();
        let wake = self.store.wakeup(name);
        let mut bucket = self.dest.rate.map(|r| TokenBucket::new(r, Instant::now()));
        let max_bytes = self.dest.batch.max_bytes as usize;
        let per_user_order = self.dest.ordering == Ordering::User;
        tracing::info!(destination = name, plugin = %self.plugin.name, "delivery started");
        while !*shutdown.borrow() {
            // The version serving now delivers the batch claimed for it, so a swap
            // that lowers max-batch never receives a batch larger than it accepts.
            let version = self.plugin.current();
            let mut max_events = self
                .dest
                .batch
                .max_events
                .min(version.plugin.metadata.max_batch)
                .max(1) as usize;
            if let Some(b) = &bucket {
                max_events = max_events.min(b.burst().max(1));
            }
            let (operator_paused, probing, probe_wait) = {
                let b = self.stats.breaker.lock().expect("breaker lock");
                (b.operator_paused(), b.is_paused(), b.probe_interval())
            };
            if operator_paused {
                tokio::select! {
                    _ = self.stats.control.notified() => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            if probing {
                // The breaker is open: wait, then send one event as a probe.
                tokio::select! {
                    _ = tokio::time::sleep(probe_wait) => {}
                    _ = self.stats.control.notified() => continue,
                    _ = shutdown.changed() => continue,
                }
            }
            let limit = if probing { 1 } else { max_events };
            let mut jobs = match self.claim(limit, max_bytes, per_user_order).await {
                Some(jobs) => jobs,
                None => {
                    pause(&mut shutdown, STORE_ERROR_PAUSE).await;
                    continue;
                }
            };
            if jobs.is_empty() {
                let wait = match self.store.next_due(name).await {
                    Ok(Some(at)) => {
                        Duration::from_millis((at - now_ms()).max(1) as u64).min(IDLE_POLL)
                    }
                    _ => IDLE_POLL,
                };
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = self.stats.control.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            if self
                .stats
                .breaker
                .lock()
                .expect("breaker lock")
                .operator_paused()
            {
                // Paused while the claim was under way: hand the jobs back untouched.
                let now = now_ms();
                let back = jobs
                    .iter()
                    .map(|j| {
                        (
                            j.id,
                            Settle::RetryAt {
                                at: now,
                                reason: "paused by an operator".into(),
                            },
                        )
                    })
                    .collect();
                if let Err(e) = self.store.settle(name, back).await {
                    tracing::warn!(destination = name, "releasing claimed jobs failed: {e}");
                }
                continue;
            }
            if !probing && jobs.len() < limit {
                self.linger(&mut jobs, limit, max_bytes, per_user_order, &mut shutdown)
                    .await;
            }
            if let Some(b) = bucket.as_mut() {
                let wait = b.take(jobs.len(), Instant::now());
                if !wait.is_zero() {
                    // Sent even if shutdown starts meanwhile: the jobs are leased.
                    tokio::time::sleep(wait).await;
                }
            }
            let result = self.deliver(&version, jobs).await;
            if let Some(b) = bucket.as_mut() {
                if result.throttled {
                    b.throttled(Instant::now());
                    tracing::debug!(
                        destination = name,
                        rate = b.rate(),
                        "throttled: rate lowered"
                    );
                } else if result.verdict == BatchVerdict::Success {
                    b.succeeded(Instant::now());
                }
            }
            self.stats
                .breaker
                .lock()
                .expect("breaker lock")
                .record(result.verdict);
        }
        tracing::info!(destination = name, "delivery stopped");
    }

    async fn claim(
        &self,
        limit: usize,
        max_bytes: usize,
        per_user_order: bool,
    ) -> Option<Vec<Job>> {
        match self
            .store
            .claim(&self.dest.name, limit, max_bytes, per_user_order, now_ms())
            .await
        {
            Ok(jobs) => Some(jobs),
            Err(e) => {
                tracing::warn!(destination = self.dest.name.as_str(), "claim failed: {e}");
                None
            }
        }
    }

    /// A partial batch of fresh events waits up to `linger` (from the oldest
    /// event's arrival) for more, then takes what has arrived.
    async fn linger(
        &self,
        jobs: &mut Vec<Job>,
        limit: usize,
        max_bytes: usize,
        per_user_order: bool,
        shutdown: &mut watch::Receiver<bool>,
    ) {
        let linger = self.dest.batch.linger.as_millis() as i64;
        let oldest = jobs.iter().map(|j| j.queued_at).min().unwrap_or(0);
        let wait = oldest + linger - now_ms();
        if linger == 0 || wait <= 0 {
            return;
        }
        pause(shutdown, Duration::from_millis(wait as u64)).await;
        let used: usize = jobs.iter().map(|j| j.json.len()).sum();
        if used < max_bytes {
            if let Some(more) = self
                .claim(limit - jobs.len(), max_bytes - used, per_user_order)
                .await
            {
                jobs.extend(more);
            }
        }
    }

    /// Deliver one batch and settle every job in it.
    async fn deliver(&self, version: &Version, jobs: Vec<Job>) -> BatchResult {
        let name = self.dest.name.as_str();
        let events: Vec<Event> = jobs
            .iter()
            .map(|j| Event {
                message_id: j.message_id.clone(),
                event_type: EventType::parse(&j.event_type).unwrap_or(EventType::Track),
                json: j.json.clone(),
            })
            .collect();
        self.stats.in_flight.store(jobs.len() as u64, Relaxed);
        // This batch runs to the end on its version, whatever swaps meanwhile.
        let outcomes = match version
            .plugin
            .deliver(&self.ctx, &self.settings, &events)
            .await
        {
            Ok(outcomes) => outcomes,
            Err(e) => {
                tracing::warn!(
                    destination = name,
                    batch = jobs.len(),
                    "delivery failed: {e}"
                );
                let reason = e.to_string();
                let outcome = match e {
                    CallError::Invalid(_) => Outcome::Reject(reason),
                    _ => Outcome::Retry {
                        reason,
                        after: None,
                    },
                };
                vec![outcome; jobs.len()]
            }
        };
        self.stats.in_flight.store(0, Relaxed);

        let delivered = outcomes.contains(&Outcome::Delivered);
        let first_retry = outcomes.iter().find_map(|o| match o {
            Outcome::Retry { reason, .. } => Some(reason.clone()),
            _ => None,
        });
        let throttled = outcomes
            .iter()
            .any(|o| matches!(o, Outcome::Retry { after: Some(_), .. }));
        let verdict = match (delivered, first_retry) {
            (true, _) => BatchVerdict::Success,
            (false, Some(reason)) => BatchVerdict::Failure(reason),
            (false, None) => BatchVerdict::Neutral,
        };

        let now = now_ms();
        let jitter = super::retry::jitter(&mut rand::rng());
        let settles: Vec<_> = jobs
            .iter()
            .zip(outcomes)
            .map(|(job, outcome)| {
                let settle = decide(&self.dest.retry, job, outcome, now, jitter);
                match &settle {
                    Settle::Done => self.stats.delivered.fetch_add(1, Relaxed),
                    Settle::RetryAt { at, reason } => {
                        tracing::debug!(destination = name, message_id = %job.message_id, in_ms = at - now, "retry: {reason}");
                        self.stats.retried.fetch_add(1, Relaxed)
                    }
                    Settle::Dead { reason } => {
                        tracing::warn!(destination = name, message_id = %job.message_id, "dead-lettered: {reason}");
                        self.stats.dead_lettered.fetch_add(1, Relaxed)
                    }
                };
                (job.id, settle)
            })
            .collect();
        // Settling must not be lost: retry a few times; if the store stays down the
        // jobs stay leased and are delivered again after a restart (at-least-once).
        for attempt in 0..5u32 {
            match self.store.settle(name, settles.clone()).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(destination = name, attempt, "settle failed: {e}");
                    tokio::time::sleep(STORE_ERROR_PAUSE * (attempt + 1)).await;
                }
            }
        }
        BatchResult { verdict, throttled }
    }
}

async fn pause(shutdown: &mut watch::Receiver<bool>, d: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = shutdown.changed() => {}
    }
}
