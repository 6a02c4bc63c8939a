//! One loaded destination component: compiled once, instantiated per call.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, ResourceTable};
use wasmtime::Store;
use wasmtime_wasi::WasiCtxBuilder;

use super::bindings::switchyard::destination::types::{EventType, Failure};
use super::bindings::{Destination, DestinationPre};
use super::{CallError, HostState, Runtime, STDIO_CAPTURE_BYTES};
use crate::config::Limits;
use crate::imports::http::Egress;
use crate::imports::log::{CapturedOutput, GuestLog};

pub use super::bindings::switchyard::destination::types::Event;

/// What a destination says about itself (`describe`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// Its own name.
    pub name: String,
    /// Its own version.
    pub version: String,
    /// JSON Schema of its settings.
    pub settings_schema: String,
    /// Largest batch it accepts (at least 1).
    pub max_batch: u32,
}

/// The outcome of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The vendor has it.
    Delivered,
    /// Try again later, not before `after` when given.
    Retry {
        /// Why.
        reason: String,
        /// The vendor's requested delay.
        after: Option<Duration>,
    },
    /// Never going to work: dead-letter it.
    Reject(String),
}

/// Most characters of a guest-provided reason that the host keeps.
const MAX_REASON_CHARS: usize = 1_000;

/// Who is calling, with which limits and egress.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// Destination name, for log tags.
    pub destination: Arc<str>,
    /// Memory cap and deadline.
    pub limits: Limits,
    /// Outbound HTTP.
    pub egress: Egress,
    /// Where violations are counted.
    pub counters: Arc<super::SandboxCounters>,
}

/// A compiled component, ready to instantiate.
#[derive(Clone)]
pub struct Plugin {
    /// Plugin name (file stem).
    pub name: String,
    /// Hex sha256 of the component bytes.
    pub sha256: String,
    /// What `describe` returned at load.
    pub metadata: Metadata,
    /// Whether the compiled code came from the on-disk cache (no compilation).
    pub from_cache: bool,
    /// Type-checked against the world and linked; instantiating is cheap.
    pre: DestinationPre<HostState>,
    /// The runtime that compiled it.
    runtime: Runtime,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("sha256", &self.sha256)
            .field("metadata", &self.metadata)
            .finish()
    }
}

impl EventType {
    /// The WIT enum of a Segment `type`.
    pub fn parse(s: &str) -> Option<EventType> {
        Some(match s {
            "track" => EventType::Track,
            "identify" => EventType::Identify,
            "page" => EventType::Page,
            "screen" => EventType::Screen,
            "group" => EventType::Group,
            "alias" => EventType::Alias,
            _ => return None,
        })
    }
}

impl Runtime {
    /// Compile `bytes`, check them against the world, and read `describe`.
    pub async fn load(&self, name: &str, bytes: &[u8]) -> Result<Plugin, CallError> {
        let sha256 = hex::encode(Sha256::digest(bytes));
        let (component, from_cache) = self.compile_or_cached(name, &sha256, bytes).await?;
        let instance_pre = self
            .linker()
            .instantiate_pre(&component)
            .map_err(|e| CallError::Invalid(format!("{e:#}")))?;
        let pre = DestinationPre::new(instance_pre).map_err(|e| {
            CallError::Invalid(format!("does not implement the destination world: {e:#}"))
        })?;
        let mut plugin = Plugin {
            name: name.to_string(),
            sha256,
            metadata: Metadata {
                name: String::new(),
                version: String::new(),
                settings_schema: String::new(),
                max_batch: 1,
            },
            from_cache,
            pre,
            runtime: self.clone(),
        };
        let ctx = CallContext {
            destination: Arc::from(name),
            limits: Limits::default(),
            egress: Egress::DryRun(Default::default()),
            counters: Default::default(),
        };
        plugin.metadata = plugin.describe(&ctx).await?;
        Ok(plugin)
    }
}

impl Runtime {
    /// The compiled component: from the cache when this exact component was
    /// compiled by this engine configuration before, else compiled (and cached).
    async fn compile_or_cached(
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
fn load_compiled(engine: &wasmtime::Engine, file: &std::path::Path) -> wasmtime::Result<Component> {
    // SAFETY: `deserialize_file` trusts its input to be wasmtime's own output for
    // a compatible engine. The file lives in the host's private store directory,
    // is written only by `store_compiled` (atomically, via rename), and its name
    // carries the component's sha256 and the engine's compatibility hash; wasmtime
    // also checks the version and configuration recorded in the artifact.
    unsafe { Component::deserialize_file(engine, file) }
}

/// Write a compiled component atomically (temporary file, then rename).
fn store_compiled(component: &Component, file: &std::path::Path) -> anyhow::Result<()> {
    let bytes = component
        .serialize()
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = file.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, file)?;
    Ok(())
}

impl Plugin {
    fn new_store(&self, ctx: &CallContext) -> Store<HostState> {
        let stdout = CapturedOutput::new(STDIO_CAPTURE_BYTES);
        let stderr = CapturedOutput::new(STDIO_CAPTURE_BYTES);
        // No preopens, no env, no args, no sockets: WASI is linked only because
        // guest languages' runtimes import it.
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let limits = super::limits::GuestLimits::new(ctx.limits.memory_bytes);
        let mut store = Store::new(
            self.runtime.engine(),
            HostState {
                wasi,
                table: ResourceTable::new(),
                limits,
                egress: ctx.egress.clone(),
                log: GuestLog::new(ctx.destination.clone()),
                counters: ctx.counters.clone(),
                stdout,
                stderr,
            },
        );
        store.limiter(|state| &mut state.limits);
        // Yield to the executor at every epoch tick, so the wall-clock deadline
        // below can preempt a guest that never returns.
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);
        store
    }

    /// Run `describe` in a fresh instance.
    pub async fn describe(&self, ctx: &CallContext) -> Result<Metadata, CallError> {
        let mut store = self.new_store(ctx);
        let result = {
            let work = async {
                let instance = self.pre.instantiate_async(&mut store).await?;
                instance.call_describe(&mut store).await
            };
            tokio::time::timeout(ctx.limits.timeout, work).await
        };
        flush_stdio(&mut store);
        let meta = settle(result, ctx)?;
        Ok(Metadata {
            name: meta.name,
            version: meta.version,
            settings_schema: meta.settings_schema,
            max_batch: meta.max_batch.max(1),
        })
    }

    /// Run `check` on settings (a JSON object) in a fresh instance.
    pub async fn check(
        &self,
        ctx: &CallContext,
        settings: &str,
    ) -> Result<Result<(), String>, CallError> {
        let mut store = self.new_store(ctx);
        let result = {
            let work = async {
                let instance = self.pre.instantiate_async(&mut store).await?;
                instance.call_check(&mut store, settings).await
            };
            tokio::time::timeout(ctx.limits.timeout, work).await
        };
        flush_stdio(&mut store);
        settle(result, ctx)
    }

    /// Run `deliver` on a batch in a fresh instance: one outcome per event.
    pub async fn deliver(
        &self,
        ctx: &CallContext,
        settings: &str,
        events: &[Event],
    ) -> Result<Vec<Outcome>, CallError> {
        let mut store = self.new_store(ctx);
        let result = {
            let work = async {
                let instance: Destination = self.pre.instantiate_async(&mut store).await?;
                instance.call_deliver(&mut store, settings, events).await
            };
            tokio::time::timeout(ctx.limits.timeout, work).await
        };
        flush_stdio(&mut store);
        let outcomes = settle(result, ctx)?;
        if outcomes.len() != events.len() {
            ctx.counters.contract.fetch_add(1, Relaxed);
            return Err(CallError::Contract(format!(
                "deliver returned {} outcomes for {} events",
                outcomes.len(),
                events.len()
            )));
        }
        Ok(outcomes
            .into_iter()
            .map(|o| match o {
                Ok(()) => Outcome::Delivered,
                Err(Failure::Retry(hint)) => Outcome::Retry {
                    reason: clip(hint.reason),
                    after: hint.after_ms.map(Duration::from_millis),
                },
                Err(Failure::Reject(reason)) => Outcome::Reject(clip(reason)),
            })
            .collect())
    }
}

fn settle<T>(
    result: Result<wasmtime::Result<T>, tokio::time::error::Elapsed>,
    ctx: &CallContext,
) -> Result<T, CallError> {
    match result {
        Err(_) => {
            ctx.counters.timeouts.fetch_add(1, Relaxed);
            Err(CallError::Timeout(ctx.limits.timeout))
        }
        Ok(Err(e)) => {
            ctx.counters.traps.fetch_add(1, Relaxed);
            Err(CallError::Trap(clip(format!("{e:#}").replace('\n', " | "))))
        }
        Ok(Ok(v)) => Ok(v),
    }
}

fn flush_stdio(store: &mut Store<HostState>) {
    let state = store.data_mut();
    let out = state.stdout.contents();
    let err = state.stderr.contents();
    state.log.write_stream("stdout", &out);
    state.log.write_stream("stderr", &err);
    state
        .counters
        .log_lines_dropped
        .fetch_add(u64::from(state.log.dropped()), Relaxed);
    state
        .counters
        .memory_peak_bytes
        .fetch_max(state.limits.granted() as u64, Relaxed);
}

fn clip(mut s: String) -> String {
    if s.len() > MAX_REASON_CHARS {
        let mut end = MAX_REASON_CHARS;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}
