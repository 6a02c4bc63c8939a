//! Delivery: one worker per destination, between the store and the runtime.
//!
//! Where it sits: the only module where the store and the runtime meet. Each
//! destination gets its own task ([`worker`]) with its own queue cursor in the
//! store, so a slow or failing destination never delays another. A worker
//! claims due jobs, hands them to the destination's component in one batch,
//! and settles each event by its outcome ([`retry`]).

pub mod retry;
mod worker;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::DestinationConfig;
use crate::runtime::Plugin;
use crate::store::Store;

pub use worker::Worker;

/// Counters of one destination since start.
#[derive(Debug, Default)]
pub struct DeliveryStats {
    /// Events delivered.
    pub delivered: AtomicU64,
    /// Events scheduled for another attempt.
    pub retried: AtomicU64,
    /// Events dead-lettered.
    pub dead_lettered: AtomicU64,
    /// Calls into the component that trapped, timed out or broke the contract.
    pub guest_failures: AtomicU64,
    /// Events in the batch being delivered now.
    pub in_flight: AtomicU64,
}

/// The running workers.
#[derive(Debug)]
pub struct Dispatcher {
    /// One task per destination.
    tasks: Vec<JoinHandle<()>>,
    /// Counters per destination name.
    pub stats: HashMap<String, Arc<DeliveryStats>>,
}

impl Dispatcher {
    /// Start a worker for each destination, with its plugin.
    pub fn start(
        destinations: &[DestinationConfig],
        plugins: &HashMap<String, Plugin>,
        store: Arc<dyn Store>,
        client: reqwest::Client,
        shutdown: watch::Receiver<bool>,
    ) -> Dispatcher {
        let mut tasks = Vec::new();
        let mut stats = HashMap::new();
        for dest in destinations {
            let plugin = plugins
                .get(&dest.plugin)
                .expect("plugins are loaded for every destination before dispatch starts")
                .clone();
            let counters = Arc::new(DeliveryStats::default());
            stats.insert(dest.name.clone(), counters.clone());
            let worker = Worker::new(
                dest.clone(),
                plugin,
                store.clone(),
                client.clone(),
                counters,
            );
            tasks.push(tokio::spawn(worker.run(shutdown.clone())));
        }
        Dispatcher { tasks, stats }
    }

    /// Wait until every worker has finished its batch in flight and stopped.
    pub async fn join(self) {
        for task in self.tasks {
            let _ = task.await;
        }
    }
}
