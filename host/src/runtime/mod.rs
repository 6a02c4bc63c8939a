//! The wasm runtime: one [`Engine`] per process, destinations as components.
//!
//! Where it sits: the dispatcher calls [`Plugin::deliver`] with a batch; this
//! module owns everything about running guest code and nothing about queues,
//! stores or HTTP ingest. Engine setup lives here in one place: component
//! model, pooling allocator, epoch interruption driven by a ticker thread.
//!
//! Every call gets a fresh `Store` and instance ([`plugin`]), with the
//! destination's memory cap and a wall-clock deadline. The guest yields to the
//! async executor at every epoch tick, so a guest spinning in a loop cannot hold
//! a thread past its deadline; a trap, a deadline or a broken contract comes
//! back as a [`CallError`], never as a host panic.

pub mod bindings;
mod limits;
mod plugin;

use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{
    Config as EngineConfig, Engine, InstanceAllocationStrategy, PoolingAllocationConfig,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::config::MAX_MEMORY_MB;
use crate::imports::http::Egress;
use crate::imports::log::{CapturedOutput, GuestLog};

pub use plugin::{CallContext, Event, Metadata, Outcome, Plugin};

/// Sandbox violations of one destination, counted by the runtime.
#[derive(Debug, Default)]
pub struct SandboxCounters {
    /// Calls stopped at their deadline.
    pub timeouts: std::sync::atomic::AtomicU64,
    /// Calls that trapped (panic, memory cap, stack overflow, ...).
    pub traps: std::sync::atomic::AtomicU64,
    /// Calls that broke the contract (wrong number of outcomes).
    pub contract: std::sync::atomic::AtomicU64,
    /// `http.send` requests refused by the allowlist.
    pub egress_denied: std::sync::atomic::AtomicU64,
    /// Guest log lines dropped by the per-call cap.
    pub log_lines_dropped: std::sync::atomic::AtomicU64,
    /// Most linear memory one instance of this destination has held, in bytes.
    pub memory_peak_bytes: std::sync::atomic::AtomicU64,
}

impl SandboxCounters {
    /// As JSON for the admin API.
    pub fn to_json(&self) -> serde_json::Value {
        use std::sync::atomic::Ordering::Relaxed;
        serde_json::json!({
            "timeouts": self.timeouts.load(Relaxed),
            "traps": self.traps.load(Relaxed),
            "contract": self.contract.load(Relaxed),
            "egress_denied": self.egress_denied.load(Relaxed),
            "log_lines_dropped": self.log_lines_dropped.load(Relaxed),
        })
    }
}

/// How often the epoch advances; the granularity of CPU deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

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

/// Data of one `Store`: everything a single call into a guest can touch.
pub struct HostState {
    /// WASI context: no preopens, no env, no network; stdout/stderr captured.
    wasi: WasiCtx,
    /// WASI's resource table.
    table: ResourceTable,
    /// Linear-memory cap of this destination, and what was granted.
    limits: limits::GuestLimits,
    /// Outbound HTTP of this destination (allowlist) or a dry-run recorder.
    egress: Egress,
    /// Tagged, capped log of this call.
    log: GuestLog,
    /// Where violations are counted.
    counters: Arc<SandboxCounters>,
    /// Captured guest stdout.
    stdout: CapturedOutput,
    /// Captured guest stderr.
    stderr: CapturedOutput,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The process-wide engine, linker and epoch ticker.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

struct RuntimeInner {
    /// Compiles and runs every component; shared by all plugins.
    engine: Engine,
    /// Where compiled components are cached (`None`: no cache).
    cache_dir: Option<std::path::PathBuf>,
    /// Identifies this engine's compiled-code format in cache file names.
    engine_tag: String,
    /// WASI plus the `http` and `log` imports, shared by all instances.
    linker: Linker<HostState>,
    /// Tells the ticker thread to stop when the runtime is dropped.
    stop_ticker: Arc<AtomicBool>,
}

impl Drop for RuntimeInner {
    fn drop(&mut self) {
        self.stop_ticker.store(true, AtomicOrdering::Relaxed);
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Runtime")
    }
}

impl Runtime {
    /// Build the engine (pooling allocator, epochs) and the linker, and start the
    /// ticker. Compiled components are cached in `cache_dir` when given.
    pub fn new(cache_dir: Option<std::path::PathBuf>) -> anyhow::Result<Runtime> {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(256)
            .total_core_instances(1024)
            .total_memories(512)
            .total_tables(512)
            .total_stacks(256)
            .max_memory_size((MAX_MEMORY_MB as usize) << 20);
        let mut config = EngineConfig::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            // Trap messages stay one line ("wasm trap: ..."), fit for logs and dead letters.
            .wasm_backtrace_max_frames(None)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(wasm_error)?;
        let engine_tag = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            engine.precompile_compatibility_hash().hash(&mut h);
            format!("{:016x}", h.finish())
        };

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(wasm_error)?;
        bindings::Destination::add_to_linker::<_, wasmtime::component::HasSelf<_>>(
            &mut linker,
            |state| state,
        )
        .map_err(wasm_error)?;

        let stop_ticker = Arc::new(AtomicBool::new(false));
        let weak = engine.weak();
        let stop = stop_ticker.clone();
        std::thread::Builder::new()
            .name("switchyard-epoch".into())
            .spawn(move || {
                while !stop.load(AtomicOrdering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })?;

        Ok(Runtime {
            inner: Arc::new(RuntimeInner {
                engine,
                cache_dir,
                engine_tag,
                linker,
                stop_ticker,
            }),
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The cache file of a component with this sha256, if caching is on.
    fn cache_file(&self, sha256: &str) -> Option<std::path::PathBuf> {
        self.inner
            .cache_dir
            .as_ref()
            .map(|d| d.join(format!("{sha256}-{}.cwasm", self.inner.engine_tag)))
    }

    fn linker(&self) -> &Linker<HostState> {
        &self.inner.linker
    }
}

/// wasmtime's error type is not `std::error::Error`; keep its whole chain as text.
fn wasm_error(e: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("{e:#}")
}
