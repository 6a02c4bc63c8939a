//! Operator state that outlives a restart and, on NATS, is shared by every
//! host: an operator's pause of a destination, and how many live hosts a
//! destination's rate limit is divided among.
//!
//! Where it sits: beside the workers ([`super::Dispatcher::start`] spawns
//! [`follow`]). The admin API records a pause or a resume in the store
//! ([`Coordination::set_paused`](crate::store::Coordination::set_paused)) and applies it on its own host at once; the follower
//! polls the store every [`POLL`] and applies what other hosts (or an earlier
//! run) recorded. It also beats for this host ([`Coordination::live_hosts`](crate::store::Coordination::live_hosts)): each
//! live host takes `rate / hosts` of a destination's rate limit, so their sum
//! stays at the configured rate (the book, `concepts/guarantees.md`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::LiveDestination;
use crate::store::Store;

/// How often the follower reads the store's operator state and beats.
pub const POLL: Duration = Duration::from_secs(1);

/// A name for this process among the hosts of one store: host name, pid and a
/// random part (a restarted process is a new host).
pub fn host_id() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    format!(
        "{name}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// Hold or release each destination as `paused` says, skipping those whose
/// state this host's admin API changed since `changes_before` was read.
pub fn apply_paused(
    stats: &HashMap<String, Arc<LiveDestination>>,
    paused: &HashSet<String>,
    changes_before: &HashMap<String, u64>,
) {
    for (name, s) in stats {
        if changes_before.get(name) != Some(&s.operator_changes.load(Relaxed)) {
            continue;
        }
        let want = paused.contains(name);
        if s.operator_paused() != want {
            tracing::info!(
                destination = name.as_str(),
                paused = want,
                "operator state from the store: {}",
                if want { "paused" } else { "resumed" }
            );
            s.set_operator_paused(want);
        }
    }
}

/// Poll the store's operator state until shutdown.
pub async fn follow(
    store: Arc<dyn Store>,
    followed: Arc<arc_swap::ArcSwap<HashMap<String, Arc<LiveDestination>>>>,
    host: String,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut warned = false;
    while !*shutdown.borrow() {
        // The destinations now: a reload adds and replaces them.
        let stats = followed.load_full();
        let before: HashMap<String, u64> = stats
            .iter()
            .map(|(n, s)| (n.clone(), s.operator_changes.load(Relaxed)))
            .collect();
        let polled = async {
            let paused = store.paused().await?;
            let hosts = store.live_hosts(&host).await?;
            Ok::<_, crate::store::StoreError>((paused, hosts))
        };
        match polled.await {
            Ok((paused, hosts)) => {
                warned = false;
                apply_paused(&stats, &paused, &before);
                for s in stats.values() {
                    s.hosts.store(hosts, Relaxed);
                }
            }
            Err(e) if !warned => {
                warned = true;
                tracing::warn!("cannot read operator state from the store (will retry): {e}");
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = shutdown.changed() => {}
        }
    }
}
