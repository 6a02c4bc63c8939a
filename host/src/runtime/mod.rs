//! The wasm runtime: one engine per process, destinations and transformations
//! as components.
//!
//! Where it sits: the dispatcher calls [`Plugin::transform`] and
//! [`Plugin::deliver`] with a batch; this
//! module owns everything about running guest code and nothing about queues,
//! stores or HTTP ingest. Below it, [`crate::imports`] holds the behaviour of
//! the imports a guest may call.
//!
//! - `bindings.rs`: the generated code, one `bindgen!` per world;
//! - `engine.rs`: the [`Runtime`]: engine setup (component model, pooling
//!   allocator, epoch interruption) and the cache of compiled components;
//! - `host.rs`: `HostState`, the data of one call, and the host functions;
//! - `plugin.rs`: a loaded [`Plugin`] (either [`Kind`]) and its `describe`,
//!   `check`, `deliver`;
//! - `transform.rs`: a transformation's `transform` and its [`Verdict`]s;
//! - `limits.rs`, `stdio.rs`: the memory cap and the capture of stdout/stderr;
//! - `clock.rs`: the wall clock of a captured or replayed call;
//! - `observer.rs`: the [`ExchangeObserver`] seam: who records a call's HTTP
//!   exchanges (the delivery debugger's tape, a trial's capture), defined here
//!   and implemented above, so the runtime imports neither.
//!
//! Every call gets a fresh `Store` and instance, with the destination's memory
//! cap and a wall-clock deadline. The guest yields to the async executor at
//! every epoch tick, so a guest spinning in a loop cannot hold a thread past its
//! deadline; a trap, a deadline or a broken contract comes back as a
//! [`CallError`], never as a host panic.

pub mod bindings;
mod clock;
mod deletion;
mod engine;
mod host;
mod limits;
pub mod observer;
mod plugin;
mod stdio;
mod transform;
mod version;
mod warm;

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

pub use deletion::Subject;
pub use engine::{user_cache_dir, Runtime, EPOCH_TICK};
pub use observer::{ExchangeObserver, Observers, Sending};
pub use plugin::{CallContext, Event, Kind, Metadata, Outcome, Plugin};
pub use transform::Verdict;
pub use version::Version;

/// Sandbox violations of one destination, counted by the runtime.
#[derive(Debug, Default)]
pub struct SandboxCounters {
    /// Calls stopped at their deadline.
    pub timeouts: AtomicU64,
    /// Calls that trapped (panic, memory cap, stack overflow, ...).
    pub traps: AtomicU64,
    /// Calls that broke the contract (wrong number of outcomes).
    pub contract: AtomicU64,
    /// `http.send` requests refused by the allowlist.
    pub egress_denied: AtomicU64,
    /// Guest log lines dropped by the per-call cap.
    pub log_lines_dropped: AtomicU64,
    /// Most linear memory one instance of this destination has held, in bytes.
    pub memory_peak_bytes: AtomicU64,
}

/// The violation counts of a destination at one moment (`violations` in the admin API).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Violations {
    /// Calls stopped at their deadline.
    pub timeouts: u64,
    /// Calls that trapped.
    pub traps: u64,
    /// Calls that broke the contract.
    pub contract: u64,
    /// Requests refused by the allowlist.
    pub egress_denied: u64,
    /// Guest log lines dropped by the cap.
    pub log_lines_dropped: u64,
}

impl SandboxCounters {
    /// The counts now.
    pub fn violations(&self) -> Violations {
        Violations {
            timeouts: self.timeouts.load(Relaxed),
            traps: self.traps.load(Relaxed),
            contract: self.contract.load(Relaxed),
            egress_denied: self.egress_denied.load(Relaxed),
            log_lines_dropped: self.log_lines_dropped.load(Relaxed),
        }
    }
}

/// Most bytes of guest stdout (and of stderr) kept per call.
const STDIO_CAPTURE_BYTES: usize = 64 * 1024;

/// Errors of loading a component or calling into it.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The bytes are not a component, or it does not implement the world.
    #[error("invalid component: {0}")]
    Invalid(String),
    /// The guest trapped (panic, out of memory, stack overflow, ...).
    #[error("guest trapped: {0}")]
    Trap(String),
    /// The call ran past the destination's deadline.
    #[error("guest exceeded its deadline of {0:?}")]
    Timeout(Duration),
    /// The guest broke the contract (e.g. wrong number of outcomes).
    #[error("guest broke the contract: {0}")]
    Contract(String),
}
