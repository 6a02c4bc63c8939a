//! One destination's delivery loop: up to its concurrency limit of batches in
//! flight, the next one claimed while the others are out.
//!
//! Each turn of [`Worker::run`] takes these named steps:
//! 1. [`Worker::wait_while_paused`]: an operator's pause, or an open breaker
//!    (then only a probe of one event goes, alone);
//! 2. [`Worker::wait_for_room`]: fewer batches in flight than the limit
//!    ([`super::concurrency`]); a claimed batch counts from its claim, so the
//!    events in memory never exceed the limit × `batch.max_bytes`;
//! 3. [`Worker::claim`], then [`Worker::linger`] for a partial batch;
//! 4. [`Worker::throttle`]: the destination's one token bucket, shared by all
//!    its batches;
//! 5. transform, deliver, settle and record, in a task of its own
//!    ([`super::flight`]).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::rate::TokenBucket;
use super::shared::{Shared, Versions, STORE_ERROR_PAUSE};
use super::{Clock, LiveDestination};
use crate::config::DestinationConfig;
use crate::imports::http::Egress;
use crate::imports::resolve::Lookup;
use crate::plugins::PluginSlot;
use crate::runtime::CallContext;
use crate::runtime::Version;
use crate::store::{Claim, Job, Settle, Store};

/// Longest idle wait before the worker looks at the store again anyway.
const IDLE_POLL: Duration = Duration::from_secs(1);
/// The delivery loop of one destination.
pub struct Worker {
    /// Its component's serving version (hot-swappable).
    plugin: Arc<PluginSlot>,
    /// Shared with the batches in flight.
    shared: Arc<Shared>,
    /// The batches in flight.
    flights: JoinSet<()>,
}

/// Whether the loop goes on to claim, or starts its turn again.
enum Step {
    Go,
    Again,
}

impl Worker {
    /// A worker for `dest`, delivering through `plugin`.
    pub fn new(
        dest: DestinationConfig,
        plugin: Arc<PluginSlot>,
        store: Arc<dyn Store>,
        lookup: Arc<dyn Lookup>,
        live: Arc<LiveDestination>,
        clock: Arc<dyn Clock>,
        shutdown: watch::Receiver<bool>,
    ) -> Worker {
        let name: Arc<str> = Arc::from(dest.name.as_str());
        let ctx = CallContext {
            destination: name.clone(),
            transform: None,
            limits: dest.limits,
            egress: Egress::live(name, &dest.allowed_hosts, lookup, dest.limits.timeout)
                .rerouted(&dest.vendor_origins),
            counters: live.stats.sandbox.clone(),
            observers: Default::default(),
            clock: None,
            secrets: dest.secrets.clone(),
            warm: true,
        };
        let bucket = dest
            .rate
            .map(|r| Mutex::new(TokenBucket::new(r, clock.now())));
        Worker {
            plugin,
            shared: Arc::new(Shared {
                settings: dest.settings.to_string(),
                redactor: crate::trial::capture::Redactor::new(&dest.settings),
                dest,
                store,
                ctx,
                live,
                bucket,
                clock,
                shutdown,
            }),
            flights: JoinSet::new(),
        }
    }

    /// What it shares with its batches in flight.
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Deliver until `shutdown` turns true; batches in flight are finished first.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let name = self.shared.dest.name.clone();
        let wake = self.shared.store.wakeup(&name);
        tracing::info!(destination = name.as_str(), plugin = %self.plugin.name, "delivery started");
        while !*shutdown.borrow() {
            while self.flights.try_join_next().is_some() {}
            // What routing kept from it, into its history (for the funnel).
            let s = &self.shared;
            s.live
                .stats
                .history
                .fold_unrouted(s.clock.wall_ms(), s.store.filtered(&name));
            let probing = match self.wait_while_paused(&mut shutdown).await {
                Some(probing) => probing,
                None => continue,
            };
            if let Step::Again = self.wait_for_room(&mut shutdown).await {
                continue;
            }
            // The version serving now delivers the batch claimed for it, so a swap
            // that lowers max-batch never receives a batch larger than it accepts.
            let Some(version) = self.plugin.current() else {
                // Its plugin has not loaded: nothing to deliver with until a
                // valid file is installed (the events wait in the queue).
                pause(&mut shutdown, STORE_ERROR_PAUSE).await;
                continue;
            };
            let Some(chain) = super::transform::versions(&self.shared.live.chain) else {
                // One of its transformations has not loaded: likewise.
                pause(&mut shutdown, STORE_ERROR_PAUSE).await;
                continue;
            };
            // Read once for the turn: the batch is sized for the version on trial too.
            let trial = self.plugin.trial();
            let params = self.params(&version, &chain, trial.as_deref(), probing);
            let Some(mut jobs) = self.claim(params).await else {
                pause(&mut shutdown, STORE_ERROR_PAUSE).await;
                continue;
            };
            if jobs.is_empty() {
                self.idle(&wake, &mut shutdown).await;
                continue;
            }
            if self
                .shared
                .live
                .breaker
                .lock()
                .expect("breaker lock")
                .operator_paused()
            {
                self.release(jobs, "paused by an operator").await;
                continue;
            }
            self.shared
                .live
                .limiter
                .lock()
                .expect("limiter lock")
                .started();
            if !probing && jobs.len() < params.max_events {
                self.linger(&mut jobs, params, &mut shutdown).await;
            }
            self.shared
                .live
                .stats
                .in_flight
                .fetch_add(jobs.len() as u64, Relaxed);
            self.throttle(jobs.len()).await;
            let versions = Versions {
                destination: version,
                chain,
                trial,
                slot: self.plugin.clone(),
            };
            self.flights
                .spawn(super::flight::fly(self.shared.clone(), versions, jobs));
        }
        while self.flights.join_next().await.is_some() {}
        tracing::info!(destination = name.as_str(), "delivery stopped");
    }

    /// Step 1: hold while an operator pauses the destination; while its breaker
    /// is open, wait until nothing is in flight and a probe interval has passed.
    /// `Some(probing)` goes on; `None` starts the turn again.
    async fn wait_while_paused(&mut self, shutdown: &mut watch::Receiver<bool>) -> Option<bool> {
        let live = self.shared.live.clone();
        let (operator_paused, probing, probe_wait) = {
            let b = live.breaker.lock().expect("breaker lock");
            (b.operator_paused(), b.is_paused(), b.probe_interval())
        };
        if operator_paused {
            tokio::select! {
                _ = live.control.notified() => {}
                _ = self.flights.join_next(), if !self.flights.is_empty() => {}
                _ = shutdown.changed() => {}
            }
            return None;
        }
        if !probing {
            return Some(false);
        }
        if !self.flights.is_empty() {
            // A probe goes alone: let the batches still out come back first.
            tokio::select! {
                _ = self.flights.join_next() => {}
                _ = shutdown.changed() => {}
            }
            return None;
        }
        if live
            .probe_now
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            return Some(true); // an operator's "retry now"
        }
        tokio::select! {
            _ = tokio::time::sleep(probe_wait) => Some(true),
            _ = live.control.notified() => None,
            _ = shutdown.changed() => None,
        }
    }

    /// Step 2: wait while the concurrency limit is reached.
    async fn wait_for_room(&mut self, shutdown: &mut watch::Receiver<bool>) -> Step {
        let live = self.shared.live.clone();
        if live.limiter.lock().expect("limiter lock").has_room() {
            return Step::Go;
        }
        tokio::select! {
            _ = self.flights.join_next(), if !self.flights.is_empty() => {}
            _ = live.control.notified() => {}
            _ = shutdown.changed() => {}
        }
        Step::Again
    }

    /// What the next claim asks for: the batch size the destination, its
    /// component and every transformation of its chain accept (a rate's burst
    /// caps it too), one event for a probe.
    fn params(
        &self,
        version: &Version,
        chain: &[Arc<Version>],
        trial: Option<&crate::trial::Trial>,
        probing: bool,
    ) -> Claim {
        let dest = &self.shared.dest;
        // A version on trial gets the same batches (a shadow) or a share of them (a canary).
        let on_trial = trial.map(|t| t.version.plugin.metadata.max_batch);
        let accepted = chain
            .iter()
            .map(|v| v.plugin.metadata.max_batch)
            .chain(on_trial)
            .fold(version.plugin.metadata.max_batch, u32::min);
        let mut max_events = dest.batch.max_events.min(accepted).max(1) as usize;
        if let Some(b) = &self.shared.bucket {
            max_events = max_events.min(b.lock().expect("bucket lock").burst().max(1));
        }
        Claim {
            max_events: if probing { 1 } else { max_events },
            max_bytes: dest.batch.max_bytes as usize,
        }
    }

    /// Step 3: lease due jobs; `None` after a store error.
    async fn claim(&self, params: Claim) -> Option<Vec<Job>> {
        let s = &self.shared;
        match s.store.claim(&s.dest.name, params, s.clock.wall_ms()).await {
            Ok(jobs) => Some(jobs),
            Err(e) => {
                tracing::warn!(destination = s.dest.name.as_str(), "claim failed: {e}");
                None
            }
        }
    }

    /// Nothing due: wait for new work, a batch to come back, the next retry, or
    /// at most [`IDLE_POLL`].
    async fn idle(&mut self, wake: &tokio::sync::Notify, shutdown: &mut watch::Receiver<bool>) {
        let s = self.shared.clone();
        let wait = match s.store.next_due(&s.dest.name).await {
            Ok(Some(at)) => {
                Duration::from_millis((at - s.clock.wall_ms()).max(1) as u64).min(IDLE_POLL)
            }
            _ => IDLE_POLL,
        };
        tokio::select! {
            _ = wake.notified() => {}
            _ = s.live.control.notified() => {}
            _ = self.flights.join_next(), if !self.flights.is_empty() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => {}
        }
    }

    /// Hand claimed jobs back untouched, due now.
    async fn release(&self, jobs: Vec<Job>, reason: &str) {
        let s = &self.shared;
        let now = s.clock.wall_ms();
        let back = jobs
            .iter()
            .map(|j| {
                (
                    j.id,
                    Settle::RetryAt {
                        at: now,
                        reason: reason.into(),
                    },
                )
            })
            .collect();
        if let Err(e) = s.store.settle(&s.dest.name, back).await {
            tracing::warn!(
                destination = s.dest.name.as_str(),
                "releasing claimed jobs failed: {e}"
            );
        }
    }

    /// A partial batch of fresh events waits up to `linger` (from the oldest
    /// event's arrival) for more, then takes what has arrived.
    async fn linger(
        &self,
        jobs: &mut Vec<Job>,
        params: Claim,
        shutdown: &mut watch::Receiver<bool>,
    ) {
        let s = &self.shared;
        let linger = s.dest.batch.linger.as_millis() as i64;
        let oldest = jobs.iter().map(|j| j.queued_at).min().unwrap_or(0);
        let wait = oldest + linger - s.clock.wall_ms();
        if linger == 0 || wait <= 0 {
            return;
        }
        pause(shutdown, Duration::from_millis(wait as u64)).await;
        let used: usize = jobs.iter().map(|j| j.json.len()).sum();
        if used < params.max_bytes {
            let rest = Claim::up_to(params.max_events - jobs.len(), params.max_bytes - used);
            if let Some(more) = self.claim(rest).await {
                jobs.extend(more);
            }
        }
    }

    /// Step 4: take `n` tokens from the destination's bucket, waiting if it is
    /// in debt. The jobs are leased: they are sent even if shutdown starts meanwhile.
    async fn throttle(&self, n: usize) {
        let Some(bucket) = &self.shared.bucket else {
            return;
        };
        let wait = {
            let mut b = bucket.lock().expect("bucket lock");
            b.share(self.shared.live.hosts.load(Relaxed));
            b.take(n, self.shared.clock.now())
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

async fn pause(shutdown: &mut watch::Receiver<bool>, d: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = shutdown.changed() => {}
    }
}
