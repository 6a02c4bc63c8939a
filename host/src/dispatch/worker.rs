//! One destination's delivery loop.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::retry::decide;
use super::DeliveryStats;
use crate::config::DestinationConfig;
use crate::imports::http::{Egress, HttpLimits};
use crate::runtime::bindings::switchyard::destination::types::EventType;
use crate::runtime::Event;
use crate::runtime::{CallContext, CallError, Outcome, Plugin};
use crate::store::{now_ms, Job, Settle, Store};

/// Longest idle wait before the worker looks at the store again anyway.
const IDLE_POLL: Duration = Duration::from_secs(1);
/// Pause after a store error.
const STORE_ERROR_PAUSE: Duration = Duration::from_millis(500);

/// The delivery loop of one destination.
pub struct Worker {
    /// The destination's configuration (policies, limits).
    dest: DestinationConfig,
    /// Its component.
    plugin: Plugin,
    /// Its settings as JSON text, serialised once.
    settings: String,
    /// The store holding its queue.
    store: Arc<dyn Store>,
    /// What every call into the component runs with (limits, egress).
    ctx: CallContext,
    /// Counters shared with status reporting.
    stats: Arc<DeliveryStats>,
}

impl Worker {
    /// A worker for `dest`, delivering through `plugin`.
    pub fn new(
        dest: DestinationConfig,
        plugin: Plugin,
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
        let max_events = self
            .dest
            .batch
            .max_events
            .min(self.plugin.metadata.max_batch)
            .max(1) as usize;
        let max_bytes = self.dest.batch.max_bytes as usize;
        tracing::info!(destination = name, plugin = %self.plugin.name, max_events, "delivery started");
        while !*shutdown.borrow() {
            let jobs = match self
                .store
                .claim(name, max_events, max_bytes, now_ms())
                .await
            {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::warn!(destination = name, "claim failed: {e}");
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
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            self.deliver(jobs).await;
        }
        tracing::info!(destination = name, "delivery stopped");
    }

    /// Deliver one batch and settle every job in it.
    async fn deliver(&self, jobs: Vec<Job>) {
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
        let outcomes = match self
            .plugin
            .deliver(&self.ctx, &self.settings, &events)
            .await
        {
            Ok(outcomes) => outcomes,
            Err(e) => {
                self.stats.guest_failures.fetch_add(1, Relaxed);
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
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(destination = name, attempt, "settle failed: {e}");
                    tokio::time::sleep(STORE_ERROR_PAUSE * (attempt + 1)).await;
                }
            }
        }
    }
}

async fn pause(shutdown: &mut watch::Receiver<bool>, d: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = shutdown.changed() => {}
    }
}
