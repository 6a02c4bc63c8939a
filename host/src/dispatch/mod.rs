//! Delivery: one worker per destination, between the store and the runtime.
//!
//! Where it sits: the only module where the store and the runtime meet. Each
//! destination gets its own task ([`worker`]) with its own queue cursor in the
//! store, so a slow or failing destination never delays another. A worker
//! claims due jobs and sends them as batches, up to its concurrency limit
//! ([`concurrency`]) at once; each batch in flight ([`flight`]) settles its
//! events by their outcomes ([`retry`]) and reports to the destination's
//! breaker ([`health`]), rate ([`rate`]) and limit. Before `deliver`, a batch
//! goes through the destination's chain of transformations ([`transform`]).

mod call;
pub mod concurrency;
pub mod deletion;
mod flight;
pub mod health;
pub mod operator;
pub mod rate;
pub mod retry;
mod shared;
pub mod transform;
mod versions;
mod worker;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::config::{DestinationConfig, TransformConfig};
use crate::imports::resolve::Lookup;
use crate::observe::metrics::Instruments;
use crate::plugins::Catalog;
use crate::runtime::SandboxCounters;
use crate::store::{Millis, Store};

pub use worker::Worker;

/// Time as the worker and its policies see it.
pub trait Clock: Send + Sync + 'static {
    /// Monotonic time, for the rate, the concurrency limit and round trips
    /// (tokio's clock, so paused time drives it in tests).
    fn now(&self) -> tokio::time::Instant;
    /// Wall-clock milliseconds, the store's unit (due times, linger).
    fn wall_ms(&self) -> Millis;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> tokio::time::Instant {
        tokio::time::Instant::now()
    }
    fn wall_ms(&self) -> Millis {
        crate::store::now_ms()
    }
}

/// One destination as it runs: the state its worker acts on (breaker,
/// concurrency limit, transformations, a recording under way) and the
/// counters of what it did. Shared by its worker and the admin API.
#[derive(Debug)]
pub struct LiveDestination {
    /// Health and the circuit breaker.
    pub breaker: Mutex<health::Breaker>,
    /// Wakes the worker after an operator pauses or resumes it.
    pub control: Notify,
    /// An operator asked to retry now: an open breaker probes at once instead
    /// of waiting out its interval.
    pub probe_now: std::sync::atomic::AtomicBool,
    /// Its transformations, in the order they run, with their counters.
    pub chain: Vec<Arc<transform::Link>>,
    /// How many batches may be in flight, and how many are.
    pub limiter: Mutex<concurrency::Limiter>,
    /// Live hosts sharing this destination's rate limit (1 on the embedded store).
    pub hosts: std::sync::atomic::AtomicUsize,
    /// Bumped by every pause or resume from this host's admin API, so the
    /// follower never applies a poll that started before it ([`operator`]).
    pub operator_changes: AtomicU64,
    /// A recording under way (`POST /admin/destinations/{name}/record`).
    pub recorder: Mutex<Option<Arc<crate::trial::recording::Recorder>>>,
    /// What it did: counters, histograms and the newest attempts.
    pub stats: DeliveryStats,
}

/// What one destination did, counted: the admin API, the status page and
/// `/metrics` read these; nothing here changes how it delivers.
#[derive(Debug)]
pub struct DeliveryStats {
    /// Events delivered.
    pub delivered: AtomicU64,
    /// Events scheduled for another attempt.
    pub retried: AtomicU64,
    /// Events dead-lettered.
    pub dead_lettered: AtomicU64,
    /// Events its transformations dropped (the router's filter counts its own).
    pub filtered: AtomicU64,
    /// Events in the batches in flight now.
    pub in_flight: AtomicU64,
    /// Sandbox violations (deadlines, traps, contract, egress, log cap).
    pub sandbox: Arc<SandboxCounters>,
    /// Seconds from receipt to delivery of each delivered event (`/metrics`).
    pub latency: prometheus_client::metrics::histogram::Histogram,
    /// Seconds of each `deliver` call (`/metrics`).
    pub calls: prometheus_client::metrics::histogram::Histogram,
    /// The newest attempts, for the delivery debugger.
    pub attempts: crate::observe::attempts::Attempts,
    /// Outcomes per minute and the newest latencies (overview, chart, funnel).
    pub history: crate::observe::history::History,
    /// The same outcomes per source (the sources' funnels).
    pub by_source: crate::observe::history::BySource,
}

impl DeliveryStats {
    /// Counters at zero for `dest`, whose latency and call histograms are
    /// those of `instruments`.
    fn observed(dest: &DestinationConfig, instruments: &Instruments) -> DeliveryStats {
        DeliveryStats {
            delivered: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            filtered: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            sandbox: Arc::default(),
            latency: instruments.latency_of(&dest.name),
            calls: instruments.calls_of(&dest.name),
            attempts: Default::default(),
            history: Default::default(),
            by_source: Default::default(),
        }
    }

    /// Take over the counts of `old`, the same destination before a reload.
    fn carry_from(&self, old: &DeliveryStats) {
        for (to, from) in [
            (&self.delivered, &old.delivered),
            (&self.retried, &old.retried),
            (&self.dead_lettered, &old.dead_lettered),
            (&self.filtered, &old.filtered),
        ] {
            to.store(from.load(Relaxed), Relaxed);
        }
        self.history.carry_from(&old.history);
        self.by_source.carry_from(&old.by_source);
    }
}

impl LiveDestination {
    /// Fresh state for `dest`: healthy, counters at zero. The breaker's probe
    /// interval follows the retry policy (5 × `initial`, from 100 ms, doubling up to `max`).
    pub fn new(dest: &DestinationConfig) -> LiveDestination {
        LiveDestination::observed(dest, &Instruments::default())
    }

    /// Fresh state for `dest` whose latency and call histograms are those of `instruments`.
    pub fn observed(dest: &DestinationConfig, instruments: &Instruments) -> LiveDestination {
        let first_probe = dest
            .retry
            .initial
            .saturating_mul(5)
            .max(Duration::from_millis(100));
        LiveDestination {
            breaker: Mutex::new(health::Breaker::new(
                &dest.name,
                first_probe,
                dest.retry.max,
            )),
            control: Notify::new(),
            probe_now: std::sync::atomic::AtomicBool::new(false),
            chain: Vec::new(),
            limiter: Mutex::new(concurrency::Limiter::new(
                dest.concurrency,
                tokio::time::Instant::now(),
            )),
            hosts: std::sync::atomic::AtomicUsize::new(1),
            operator_changes: AtomicU64::new(0),
            recorder: Mutex::new(None),
            stats: DeliveryStats::observed(dest, instruments),
        }
    }

    /// Take over the counters of `old`, the same destination before a reload
    /// changed it, and an operator's pause.
    fn carry_from(&self, old: &LiveDestination) {
        self.stats.carry_from(&old.stats);
        self.hosts.store(old.hosts.load(Relaxed), Relaxed);
        // A recording under way goes on with the new settings.
        let recording = old.recorder.lock().expect("recorder lock").clone();
        *self.recorder.lock().expect("recorder lock") = recording;
        if old.operator_paused() {
            self.set_operator_paused(true);
        }
    }

    /// The recording under way, while it wants more deliveries.
    pub fn recording(&self) -> Option<Arc<crate::trial::recording::Recorder>> {
        self.recorder
            .lock()
            .expect("recorder lock")
            .as_ref()
            .filter(|r| r.wants_more())
            .cloned()
    }

    /// Health for the admin API.
    pub fn health(&self) -> health::HealthReport {
        self.breaker.lock().expect("breaker lock").report()
    }

    /// Whether an operator holds the destination.
    pub fn operator_paused(&self) -> bool {
        self.breaker.lock().expect("breaker lock").operator_paused()
    }

    /// Hold (`true`) or release the destination; its worker notices at once.
    pub fn set_operator_paused(&self, paused: bool) {
        self.breaker
            .lock()
            .expect("breaker lock")
            .set_operator_paused(paused);
        self.control.notify_one();
    }
}

/// The running workers.
pub struct Dispatcher {
    /// One task per destination, by name; a reload adds, replaces and stops them.
    workers: HashMap<String, WorkerTask>,
    /// The follower of operator state ([`operator`]).
    follower: JoinHandle<()>,
    /// Counters per destination name.
    pub live: HashMap<String, Arc<LiveDestination>>,
    /// The same, for the follower of operator state.
    followed: Arc<arc_swap::ArcSwap<HashMap<String, Arc<LiveDestination>>>>,
    /// What a new worker needs: the store of its queue, the name lookup of its
    /// egress, the registry of its histograms, and the host's shutdown.
    store: Arc<dyn Store>,
    lookup: Arc<dyn Lookup>,
    instruments: Instruments,
    shutdown: watch::Receiver<bool>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("workers", &self.workers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// One destination's running worker.
struct WorkerTask {
    /// Stops this worker alone (a reload): it claims nothing more and finishes
    /// the batches it has in flight.
    stop: Arc<watch::Sender<bool>>,
    /// The worker.
    task: JoinHandle<()>,
    /// Passes the host's shutdown on to `stop`.
    forward: JoinHandle<()>,
    /// Forwards privacy deletions to its component.
    deletions: deletion::Deletions,
}

impl Dispatcher {
    /// How destination `name` forwards privacy deletions, if it has a worker.
    pub fn deletions(&self, name: &str) -> Option<deletion::Deletions> {
        self.workers.get(name).map(|w| w.deletions.clone())
    }

    /// Start a worker for each destination, with its plugin's slot in the
    /// catalog and its chain of `transforms` (those an operator `paused` start
    /// held; latencies go to `instruments`); names its destinations call are
    /// looked up through `lookup` (and checked). The follower of operator state
    /// ([`operator`]) runs beside them.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        destinations: &[DestinationConfig],
        transforms: &[TransformConfig],
        catalog: &Catalog,
        store: Arc<dyn Store>,
        lookup: Arc<dyn Lookup>,
        paused: &std::collections::HashSet<String>,
        instruments: &Instruments,
        shutdown: watch::Receiver<bool>,
    ) -> Dispatcher {
        let mut dispatcher = Dispatcher {
            workers: HashMap::new(),
            follower: tokio::spawn(async {}),
            live: HashMap::new(),
            followed: Default::default(),
            store,
            lookup,
            instruments: instruments.clone(),
            shutdown,
        };
        let mut ready = Vec::new();
        for dest in destinations {
            let live = Arc::new(dispatcher.live_for(dest, transforms, catalog));
            if paused.contains(&dest.name) {
                live.set_operator_paused(true);
            }
            dispatcher.live.insert(dest.name.clone(), live.clone());
            ready.push((dest, live));
        }
        dispatcher.followed.store(Arc::new(dispatcher.live.clone()));
        dispatcher.follower = tokio::spawn(operator::follow(
            dispatcher.store.clone(),
            dispatcher.followed.clone(),
            operator::host_id(),
            dispatcher.shutdown.clone(),
        ));
        for (dest, live) in ready {
            dispatcher.spawn(dest, catalog, live);
        }
        dispatcher
    }

    /// Fresh live state for `dest`, with its chain of transformations.
    fn live_for(
        &self,
        dest: &DestinationConfig,
        transforms: &[TransformConfig],
        catalog: &Catalog,
    ) -> LiveDestination {
        let mut live = LiveDestination::observed(dest, &self.instruments);
        live.chain = dest
            .transforms
            .iter()
            .filter_map(|name| transforms.iter().find(|t| &t.name == name))
            .map(|t| {
                let slot = catalog
                    .slot(&t.plugin)
                    .expect("plugins are loaded for every transform before dispatch starts");
                Arc::new(transform::Link::new(
                    &dest.name,
                    t.clone(),
                    slot,
                    self.lookup.clone(),
                ))
            })
            .collect();
        live
    }

    /// Start `dest`'s worker on `live`.
    fn spawn(
        &mut self,
        dest: &DestinationConfig,
        catalog: &Catalog,
        live: Arc<LiveDestination>,
    ) -> Arc<LiveDestination> {
        let plugin = catalog
            .slot(&dest.plugin)
            .expect("plugins are loaded for every destination before dispatch starts");
        let (stop, stop_rx) = watch::channel(false);
        let stop = Arc::new(stop);
        let forward = {
            let stop = stop.clone();
            let mut shutdown = self.shutdown.clone();
            tokio::spawn(async move {
                let _ = shutdown.wait_for(|down| *down).await;
                let _ = stop.send(true);
            })
        };
        let worker = Worker::new(
            dest.clone(),
            plugin,
            self.store.clone(),
            self.lookup.clone(),
            live.clone(),
            Arc::new(SystemClock),
            self.shutdown.clone(),
        );
        let deletions = deletion::Deletions {
            shared: worker.shared(),
            slot: catalog.slot(&dest.plugin).expect("the slot found above"),
        };
        let task = tokio::spawn(worker.run(stop_rx));
        self.live.insert(dest.name.clone(), live.clone());
        self.followed.store(Arc::new(self.live.clone()));
        let replaced = self.workers.insert(
            dest.name.clone(),
            WorkerTask {
                stop,
                task,
                forward,
                deletions,
            },
        );
        // Callers stop a worker before they start another on its queue; should one
        // ever be left, it is told to stop rather than left to serve beside this one.
        if let Some(old) = replaced {
            tracing::warn!(
                destination = dest.name.as_str(),
                "a second worker was started: the first stops"
            );
            let _ = old.stop.send(true);
        }
        live
    }

    /// Start delivering to a destination a reload added.
    pub fn add(
        &mut self,
        dest: &DestinationConfig,
        transforms: &[TransformConfig],
        catalog: &Catalog,
    ) -> Arc<LiveDestination> {
        let live = Arc::new(self.live_for(dest, transforms, catalog));
        self.spawn(dest, catalog, live)
    }

    /// Stop `name`'s worker once its batches in flight have settled, and start
    /// one with its new configuration on the same queue. The counters go on;
    /// its breaker, concurrency limit and rate start afresh from the new policies,
    /// and an operator's pause holds.
    pub async fn replace(
        &mut self,
        dest: &DestinationConfig,
        transforms: &[TransformConfig],
        catalog: &Catalog,
    ) -> Arc<LiveDestination> {
        self.stop(&dest.name).await;
        let old = self.live.remove(&dest.name);
        let fresh = self.live_for(dest, transforms, catalog);
        if let Some(old) = &old {
            fresh.carry_from(old);
        }
        self.spawn(dest, catalog, Arc::new(fresh))
    }

    /// Stop `name`'s worker: it claims nothing more, and returns once its
    /// batches in flight have settled. Its live state and counters stay in [`Dispatcher::live`]
    /// until [`Dispatcher::forget`].
    pub async fn stop(&mut self, name: &str) {
        if let Some(w) = self.workers.remove(name) {
            let _ = w.stop.send(true);
            let _ = w.task.await;
            w.forward.abort();
        }
    }

    /// Whether `name` has a running worker.
    pub fn is_running(&self, name: &str) -> bool {
        self.workers.contains_key(name)
    }

    /// Drop a stopped destination's counters.
    pub fn forget(&mut self, name: &str) {
        self.live.remove(name);
        self.followed.store(Arc::new(self.live.clone()));
    }

    /// Wait until every worker has finished its batches in flight and stopped.
    pub async fn join(self) {
        for (_, w) in self.workers {
            let _ = w.task.await;
            w.forward.abort();
        }
        let _ = self.follower.await;
    }
}
