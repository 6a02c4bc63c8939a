//! Warm instances: the instance that served one batch of a destination is kept
//! and serves its next batch, instead of a fresh instance per batch.
//!
//! Where it sits: inside the runtime, between [`Plugin`](super::Plugin)'s
//! calls and the engine's instance slots. The contract, for guest authors
//! (the book's `concepts/sandbox.md` says the same):
//! - **What persists** from one batch to the next: the guest's own memory,
//!   i.e. its globals, caches and whatever its code computed once (compiled
//!   schemas, templates, parsed settings).
//! - **What never does:** everything the host gives a call. Each call gets its
//!   own egress, log, recorders and view of the secrets: the secrets are
//!   sealed under a new nonce per call, so a token kept from an earlier batch
//!   resolves to nothing (it goes out as the token's own text).
//! - **When an instance is recycled** (dropped; the next batch gets a fresh
//!   one): after a trap, a timeout or any failed call; after [`MAX_CALLS`]
//!   batches; when its linear memory passed [`RECYCLE_AT`] of the
//!   destination's cap (so a guest that leaks is replaced before the cap
//!   traps it); when its version is swapped out; after [`KEPT_FOR`] without
//!   a batch; beyond [`KEPT_PER_KEY`] per destination or [`KEPT_IN_ALL`] in
//!   all; when a call of any
//!   destination needs a slot and none is free (the idle instance unused the
//!   longest goes first).
//! - **Isolation** is the same as with fresh instances: an instance is kept
//!   for one destination (and one transformation of it) and one version, and
//!   no other ever gets it.
//!
//! Only the serving path keeps instances warm: a call with a pinned or
//! recorded clock (a shadow, a replay) or without live egress (`switchyard
//! try`) runs in a fresh instance, as before.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use wasmtime::Store;

use super::bindings::transform::Transform;
use super::bindings::Destination;
use super::host::HostState;

/// Batches one instance serves before it is replaced.
pub const MAX_CALLS: u32 = 1_000;

/// The share of the destination's memory cap past which an instance is
/// replaced after its batch rather than kept.
pub const RECYCLE_AT: f64 = 0.75;

/// Idle instances kept per destination (or transformation) and version: a
/// destination with more batches in flight than this gets fresh instances
/// for the rest.
pub const KEPT_PER_KEY: usize = 4;

/// Idle instances kept in all: each holds the memory its guest touched (a
/// JavaScript or Python one, tens of MB), so a host with many destinations
/// keeps the busiest ones warm, not all.
pub const KEPT_IN_ALL: usize = 32;

/// How long an instance stays kept without a batch: a destination that went
/// quiet gives its memory back.
pub const KEPT_FOR: std::time::Duration = std::time::Duration::from_secs(10);

/// Whose an instance is: it serves only calls with the same key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Key {
    /// The loaded version ([`Plugin`](super::Plugin)'s id): a swap changes it.
    pub plugin: u64,
    /// The destination.
    pub destination: Arc<str>,
    /// The transformation, for a call of one of the destination's transformations.
    pub transform: Option<Arc<str>>,
    /// The memory cap the instance was made with (a reload may change it).
    pub memory: usize,
}

/// An instantiated component of either world.
pub(super) enum Instance {
    /// A destination's exports.
    Destination(Destination),
    /// A transformation's exports.
    Transform(Transform),
    /// A destination's exports with `deletion` (never kept warm).
    Deleting(super::bindings::deleting::DeletingDestination),
}

/// An instance between two calls. Its fields drop in order: the store (and
/// with it the instance's memory) before the slot it held.
pub(super) struct Warm {
    /// The store, whose data the next call binds afresh.
    pub store: Store<HostState>,
    /// The instance in it.
    pub instance: Instance,
    /// Batches it served.
    pub calls: u32,
    /// When its last call ended.
    pub idle_since: std::time::Instant,
    /// Its slot of the instance pool, held while it is kept.
    pub slot: tokio::sync::OwnedSemaphorePermit,
    /// [`Idle::epoch`] when it was made: one made before a [`Idle::forget`]
    /// is not kept again.
    pub epoch: u64,
}

/// The idle warm instances of one runtime, the one unused the longest first.
#[derive(Default)]
pub(super) struct Idle {
    list: Mutex<VecDeque<(Key, Warm)>>,
    /// Bumped by [`Idle::forget`].
    epoch: std::sync::atomic::AtomicU64,
}

impl Idle {
    fn list(&self) -> std::sync::MutexGuard<'_, VecDeque<(Key, Warm)>> {
        self.list.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The idle instance of `key` used last, if any.
    pub fn take(&self, key: &Key) -> Option<Warm> {
        let mut list = self.list();
        let at = list.iter().rposition(|(k, _)| k == key)?;
        list.remove(at).map(|(_, w)| w)
    }

    /// Keep `warm` for the next call of `key`. These go: the instances of the
    /// same destination on another version or memory cap (a swap or a
    /// reload), any kept longer than [`KEPT_FOR`], the oldest of `key` beyond
    /// [`KEPT_PER_KEY`], and the oldest of all beyond [`KEPT_IN_ALL`].
    pub fn put(&self, key: Key, warm: Warm) {
        if warm.epoch != self.epoch() {
            // Made before a deletion: its memory may hold the deleted user's data.
            drop(warm);
            return;
        }
        let dropped: Vec<(Key, Warm)>;
        {
            let mut list = self.list();
            let stale = |k: &Key, w: &Warm| {
                (k.destination == key.destination
                    && k.transform == key.transform
                    && (k.plugin != key.plugin || k.memory != key.memory))
                    || w.idle_since.elapsed() > KEPT_FOR
            };
            let (gone, kept): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut *list)
                .into_iter()
                .partition(|(k, w)| stale(k, w));
            *list = kept;
            let mut dropped_now: Vec<(Key, Warm)> = gone.into_iter().collect();
            if list.iter().filter(|(k, _)| *k == key).count() >= KEPT_PER_KEY {
                if let Some(at) = list.iter().position(|(k, _)| *k == key) {
                    dropped_now.extend(list.remove(at));
                }
            }
            list.push_back((key, warm));
            while list.len() > KEPT_IN_ALL {
                dropped_now.extend(list.pop_front());
            }
            dropped = dropped_now;
        }
        // Instances (and their memory) are freed outside the lock.
        drop(dropped);
    }

    /// Drop the instance unused the longest, to free its slot; whether there was one.
    pub fn evict_oldest(&self) -> bool {
        let oldest = self.list().pop_front();
        oldest.is_some()
    }

    /// Drop every idle instance (the pool ran out of something the slots do
    /// not count, such as core instances of components that have many).
    pub fn clear(&self) {
        let all = std::mem::take(&mut *self.list());
        drop(all);
    }

    /// The count of [`Idle::forget`]s so far: an instance records it when made.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Drop every idle instance, and every instance in a call now once its
    /// call ends (a privacy deletion: a guest's memory may hold the deleted
    /// user's data); how many idle ones were dropped.
    pub fn forget(&self) -> usize {
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let all = std::mem::take(&mut *self.list());
        let n = all.len();
        drop(all);
        n
    }

    /// How many instances are idle now.
    pub fn len(&self) -> usize {
        self.list().len()
    }
}
