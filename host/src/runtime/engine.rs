//! The process-wide [`Runtime`]: the wasmtime engine and its configuration
//! (component model, pooling allocator, epoch interruption driven by a ticker
//! thread), the linker of every import, and the on-disk cache of compiled
//! components. Everything about how guest code is compiled lives here;
//! `plugin.rs` instantiates and calls it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Component, Linker};
use wasmtime::{
    Config as EngineConfig, Engine, InstanceAllocationStrategy, PoolingAllocationConfig,
};

use super::bindings;
use super::host::HostState;
use super::CallError;
use crate::config::MAX_MEMORY_MB;

/// Core instances a component may hold. A Rust component instantiates 3 core
/// modules, a JavaScript one (componentize-js) 4 and a Python one
/// (componentize-py) 14: at 4 per slot, a pool of N slots held only N × 4 / 14
/// Python instances, and a Python destination with more batches in flight
/// trapped on the pool's limit. Core instances cost address space, not RAM.
pub const CORE_PER_COMPONENT: u32 = 16;

/// Linear memories (and tables) a component may hold.
pub const MEMORIES_PER_COMPONENT: u32 = 2;

/// Bytes of a linear memory's touched pages that its pool slot keeps when the
/// instance ends, reset in place for the next instance rather than unmapped.
const KEEP_RESIDENT: usize = 4 << 20;

/// How often the epoch advances; the granularity of CPU deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The process-wide engine, linker and epoch ticker.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

struct RuntimeInner {
    /// Compiles and runs every component; shared by all plugins.
    engine: Engine,
    /// Where compiled components are cached (`None`: no cache).
    cache_dir: Option<PathBuf>,
    /// Identifies this engine's compiled-code format in cache file names.
    engine_tag: String,
    /// WASI plus the `http` and `log` imports, shared by all instances.
    linker: Linker<HostState>,
    /// Tells the ticker thread to stop when the runtime is dropped.
    stop_ticker: Arc<AtomicBool>,
    /// One permit per instance slot of the pool: a call waits here for a slot
    /// rather than failing when every slot is taken.
    slots: Arc<tokio::sync::Semaphore>,
    /// How many slots the pool has.
    instances: u32,
    /// Instances kept between batches, each holding its slot ([`super::warm`]).
    idle: super::warm::Idle,
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
    ///
    /// The pool has room for `instances` live component instances (each call,
    /// i.e. each batch in flight, is one; `[plugins] max_instances`). It reserves
    /// address space, not memory: per instance slot, up to
    /// [`CORE_PER_COMPONENT`] core instances and [`MEMORIES_PER_COMPONENT`]
    /// linear memories of wasmtime's default reservation (4 GiB plus guard
    /// pages on 64-bit hosts). RAM is used only by the pages a live instance
    /// touches, and is returned when its call ends, but for up to
    /// [`KEEP_RESIDENT`] per slot kept for the next instance (the book, `concepts/delivery.md`).
    pub fn new(cache_dir: Option<PathBuf>, instances: u32) -> anyhow::Result<Runtime> {
        let instances = instances.max(1);
        let n = instances as usize;
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(instances)
            .total_core_instances(instances * CORE_PER_COMPONENT)
            .total_memories(instances * MEMORIES_PER_COMPONENT)
            .total_tables(instances * MEMORIES_PER_COMPONENT)
            .total_stacks(instances)
            .max_memory_size((MAX_MEMORY_MB as usize) << 20);
        // A slot given back keeps up to KEEP_RESIDENT of the pages its memory touched and resets
        // them in place (finding them with PAGEMAP_SCAN on Linux 6.7+), so the next instance
        // in it takes fewer page faults (BENCHMARKS.md §2: a JS instance 587 -> 321 µs).
        pool.linear_memory_keep_resident(KEEP_RESIDENT)
            .pagemap_scan(wasmtime::Enabled::Auto);
        let mut config = EngineConfig::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            // Trap messages stay one line ("wasm trap: ..."), fit for logs and dead letters.
            .wasm_backtrace_max_frames(None)
            // A fresh instance maps its memory image copy-on-write rather than copying
            // it (the default, said here because JS and Python depend on it: without it
            // their instances take 2 and 8 ms, BENCHMARKS.md §2).
            .memory_init_cow(true)
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
                slots: Arc::new(tokio::sync::Semaphore::new(n)),
                instances,
                idle: Default::default(),
            }),
        })
    }

    /// How many instances can be alive at once.
    pub fn instances(&self) -> u32 {
        self.inner.instances
    }

    /// Wait for a free instance slot; it is given back when the permit drops.
    /// While none is free, the warm instance unused the longest gives its slot
    /// up first; only when none is idle does the call wait.
    pub(super) async fn slot(&self) -> tokio::sync::OwnedSemaphorePermit {
        loop {
            match self.inner.slots.clone().try_acquire_owned() {
                Ok(permit) => return permit,
                Err(tokio::sync::TryAcquireError::Closed) => {
                    unreachable!("the slot semaphore is never closed")
                }
                Err(tokio::sync::TryAcquireError::NoPermits) => {
                    if !self.inner.idle.evict_oldest() {
                        break;
                    }
                }
            }
        }
        self.inner
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("the slot semaphore is never closed")
    }

    /// The instances kept warm between batches.
    pub(super) fn idle(&self) -> &super::warm::Idle {
        &self.inner.idle
    }

    /// Drop the instances kept warm, and those in a call now once it ends: a
    /// privacy deletion leaves no guest memory that held the user's events.
    /// How many kept ones were dropped.
    pub fn forget_warm(&self) -> usize {
        self.inner.idle.forget()
    }

    /// How many instances are kept warm now (each holds a slot).
    pub fn warm_instances(&self) -> usize {
        self.inner.idle.len()
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub(super) fn linker(&self) -> &Linker<HostState> {
        &self.inner.linker
    }

    /// The cache file of a component with this sha256, if caching is on.
    fn cache_file(&self, sha256: &str) -> Option<PathBuf> {
        self.inner
            .cache_dir
            .as_ref()
            .map(|d| d.join(format!("{sha256}-{}.cwasm", self.inner.engine_tag)))
    }

    /// The compiled component: from the cache when this exact component was
    /// compiled by this engine configuration before, else compiled (and cached).
    /// The flag says whether it came from the cache.
    pub(super) async fn compile_or_cached(
        &self,
        name: &str,
        sha256: &str,
        bytes: &[u8],
    ) -> Result<(Component, bool), CallError> {
        let engine = self.engine().clone();
        let cache = self.cache_file(sha256);
        if let Some(file) = cache.clone().filter(|f| f.exists()) {
            let engine = engine.clone();
            let loaded = tokio::task::spawn_blocking(move || load_compiled(&engine, &file)).await;
            match loaded {
                Ok(Ok(component)) => {
                    tracing::info!(
                        plugin = name,
                        sha256,
                        "plugin loaded from the compiled cache"
                    );
                    return Ok((component, true));
                }
                Ok(Err(e)) => {
                    tracing::warn!(plugin = name, "compiled cache unusable, recompiling: {e:#}")
                }
                Err(e) => tracing::warn!(plugin = name, "compiled cache task failed: {e}"),
            }
        }
        let owned = bytes.to_vec();
        // Compiling takes from milliseconds (Rust) to seconds (JS, Python): off the executor.
        let started = std::time::Instant::now();
        let component = tokio::task::spawn_blocking(move || Component::new(&engine, &owned))
            .await
            .map_err(|e| CallError::Invalid(format!("compiler task failed: {e}")))?
            .map_err(|e| CallError::Invalid(format!("{e:#}")))?;
        tracing::info!(
            plugin = name,
            sha256,
            ms = started.elapsed().as_millis() as u64,
            "plugin compiled"
        );
        if let Some(file) = cache {
            if let Err(e) = store_compiled(&component, &file) {
                tracing::warn!(
                    plugin = name,
                    "could not write the compiled cache {}: {e:#}",
                    file.display()
                );
            }
        }
        Ok((component, false))
    }
}

/// Load a precompiled component written by [`store_compiled`].
#[allow(unsafe_code)]
fn load_compiled(engine: &Engine, file: &Path) -> wasmtime::Result<Component> {
    // SAFETY: `deserialize_file` trusts its input to be wasmtime's own output for
    // a compatible engine. The file lives in the host's private store directory,
    // is written only by `store_compiled` (atomically, via rename), and its name
    // carries the component's sha256 and the engine's compatibility hash; wasmtime
    // also checks the version and configuration recorded in the artifact.
    unsafe { Component::deserialize_file(engine, file) }
}

/// Write a compiled component atomically (temporary file, then rename).
fn store_compiled(component: &Component, file: &Path) -> anyhow::Result<()> {
    let bytes = component.serialize().map_err(wasm_error)?;
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = file.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, file)?;
    Ok(())
}

/// wasmtime's error type is not `std::error::Error`; keep its whole chain as text.
fn wasm_error(e: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("{e:#}")
}

/// Where compiled components are kept for the commands that run without a host's store (`try`,
/// `check`, `replay`, `catalog`, catalog entries built for no host):
/// `$SWITCHYARD_CACHE_DIR`, else `$XDG_CACHE_HOME/switchyard`, else `~/.cache/switchyard`.
pub fn user_cache_dir() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("SWITCHYARD_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("switchyard")))
        .or_else(|| var("HOME").map(|d| d.join(".cache/switchyard")))
        .map(|d| d.join("compiled"))
}
