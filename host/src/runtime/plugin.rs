//! One loaded component, a destination or a transformation: compiled once
//! (by the [`Runtime`]), instantiated per call, with the conversions of the
//! values a destination exports (`transform.rs` has a transformation's).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::Store;

use super::bindings::deleting::DeletingDestinationPre;
use super::bindings::switchyard::destination::types::{EventType, Failure};
use super::bindings::transform::TransformPre;
use super::bindings::DestinationPre;
use super::host::HostState;
use super::limits::clip;
use super::warm::{Instance, Key, Warm, MAX_CALLS, RECYCLE_AT};
use super::{CallError, Runtime};
use crate::config::Limits;
use crate::imports::http::Egress;

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
    /// Nothing the destination does took it (`settle.filtered`, then `ok`):
    /// settled as filtered, for this reason.
    Filtered(String),
}

/// Who is calling, with which limits and egress.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// Destination name, for log tags.
    pub destination: Arc<str>,
    /// The transformation's name when the call is one of the destination's
    /// transformations (a second log tag).
    pub transform: Option<Arc<str>>,
    /// Memory cap and deadline.
    pub limits: Limits,
    /// Outbound HTTP.
    pub egress: Egress,
    /// Where violations are counted.
    pub counters: Arc<super::SandboxCounters>,
    /// Who records this call's HTTP exchanges (the delivery debugger's tape;
    /// a trial's capture, for a shadow or a recording).
    pub observers: super::Observers,
    /// The wall-clock readings to give the guest, in order (a shadow, a replay:
    /// `runtime/clock.rs`); `None`: the real clock.
    pub clock: Option<Arc<[u64]>>,
    /// The destination's secrets (none for a transformation): each call seals
    /// them under a nonce of its own (`imports/secrets.rs`).
    pub secrets: crate::imports::secrets::Secrets,
    /// Whether the call may run in the instance its destination's last batch
    /// left warm (`runtime/warm.rs`); `false`: always a fresh instance.
    pub warm: bool,
}

impl CallContext {
    /// A call for `destination` whose requests `dry` answers (nothing is
    /// sent): default limits, no secrets, the real clock, nothing recorded.
    pub fn dry_run(destination: &str, dry: Arc<crate::imports::http::DryRun>) -> CallContext {
        CallContext {
            destination: Arc::from(destination),
            transform: None,
            limits: Limits::default(),
            egress: Egress::DryRun(dry),
            counters: Default::default(),
            observers: Default::default(),
            clock: None,
            secrets: Default::default(),
            warm: true,
        }
    }
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
    /// Type-checked against its world and linked; instantiating is cheap.
    pub(super) pre: Pre,
    /// The same component linked for `deleting-destination`, when it exports
    /// `deletion` (`wit/deletion.wit`).
    pub(super) deletion: Option<DeletingDestinationPre<HostState>>,
    /// Unique to this load: warm instances of one version never serve another.
    id: u64,
    /// The runtime that compiled it.
    runtime: Runtime,
}

/// Which world a component implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `destination`: delivers batches (`wit/destination.wit`).
    Destination,
    /// `transform`: changes or drops events before a destination (`wit/transform.wit`).
    Transform,
}

impl Kind {
    /// `destination` or `transform`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Destination => "destination",
            Kind::Transform => "transform",
        }
    }
}

/// A component linked for its world.
#[derive(Clone)]
pub(super) enum Pre {
    Destination(DestinationPre<HostState>),
    Transform(TransformPre<HostState>),
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
        crate::event_type::EventType::parse(s).map(EventType::from)
    }
}

impl From<crate::event_type::EventType> for EventType {
    fn from(t: crate::event_type::EventType) -> Self {
        use crate::event_type::EventType as T;
        match t {
            T::Track => EventType::Track,
            T::Identify => EventType::Identify,
            T::Page => EventType::Page,
            T::Screen => EventType::Screen,
            T::Group => EventType::Group,
            T::Alias => EventType::Alias,
        }
    }
}

impl From<EventType> for crate::event_type::EventType {
    fn from(t: EventType) -> Self {
        use crate::event_type::EventType as T;
        match t {
            EventType::Track => T::Track,
            EventType::Identify => T::Identify,
            EventType::Page => T::Page,
            EventType::Screen => T::Screen,
            EventType::Group => T::Group,
            EventType::Alias => T::Alias,
        }
    }
}

/// The id of the next plugin loaded.
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Runtime {
    /// Compile `bytes`, check them against the world, and read `describe`.
    pub async fn load(&self, name: &str, bytes: &[u8]) -> Result<Plugin, CallError> {
        let sha256 = hex::encode(Sha256::digest(bytes));
        let (component, from_cache) = self.compile_or_cached(name, &sha256, bytes).await?;
        let instance_pre = self
            .linker()
            .instantiate_pre(&component)
            .map_err(|e| CallError::Invalid(format!("{e:#}")))?;
        let deletion = DeletingDestinationPre::new(instance_pre.clone()).ok();
        let pre = match DestinationPre::new(instance_pre.clone()) {
            Ok(pre) => Pre::Destination(pre),
            Err(not_destination) => match TransformPre::new(instance_pre) {
                Ok(pre) => Pre::Transform(pre),
                Err(not_transform) => {
                    return Err(CallError::Invalid(format!(
                        "does not implement the destination world: {not_destination:#}; \
                         nor the transform world: {not_transform:#}"
                    )))
                }
            },
        };
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
            deletion,
            id: NEXT_ID.fetch_add(1, Relaxed),
            runtime: self.clone(),
        };
        let ctx = CallContext::dry_run(name, Default::default());
        plugin.metadata = plugin.describe(&ctx).await?;
        Ok(plugin)
    }
}

impl Plugin {
    /// Which world it implements.
    pub fn kind(&self) -> Kind {
        match self.pre {
            Pre::Destination(_) => Kind::Destination,
            Pre::Transform(_) => Kind::Transform,
        }
    }

    /// The error of calling an export of the other world.
    pub(super) fn wrong_kind(&self, wanted: Kind) -> CallError {
        CallError::Invalid(format!(
            "plugin `{}` is a {} component, not a {}",
            self.name,
            self.kind().as_str(),
            wanted.as_str()
        ))
    }

    fn new_store(&self, ctx: &CallContext) -> Store<HostState> {
        let mut store = Store::new(self.runtime.engine(), HostState::new(ctx));
        store.limiter(|state| &mut state.limits);
        // Yield to the executor at every epoch tick, so the wall-clock deadline
        // below can preempt a guest that never returns.
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);
        store
    }

    /// The warm instances `ctx`'s call may use, if any: not with a pinned or
    /// recorded clock (a shadow, a replay), nor when `ctx` asks for a fresh
    /// instance ([`super::warm`]).
    fn warm_key(&self, ctx: &CallContext) -> Option<Key> {
        (ctx.warm && ctx.clock.is_none() && !ctx.observers.keep_clock()).then(|| Key {
            plugin: self.id,
            destination: ctx.destination.clone(),
            transform: ctx.transform.clone(),
            memory: ctx.limits.memory_bytes,
        })
    }

    /// An instance of its world, or of `deleting-destination` for a deletion.
    async fn instantiate(
        &self,
        store: &mut Store<HostState>,
        deletion: bool,
    ) -> wasmtime::Result<Instance> {
        Ok(match (&self.pre, &self.deletion) {
            (_, Some(pre)) if deletion => Instance::Deleting(pre.instantiate_async(store).await?),
            (Pre::Destination(pre), _) => {
                Instance::Destination(pre.instantiate_async(store).await?)
            }
            (Pre::Transform(pre), _) => Instance::Transform(pre.instantiate_async(store).await?),
        })
    }

    /// Run `work` on an instance of this plugin for `ctx`: the warm one its
    /// destination's last batch left, when `warm` and there is one, else a
    /// fresh one in a free slot; within the call's deadline, the guest's
    /// output flushed to its log after. A deadline or a trap is counted and
    /// comes back as a [`CallError`], and the instance is dropped; after a
    /// call that worked it is kept for the next batch unless it is due for
    /// recycling. Also returns the events the guest settled as filtered.
    pub(super) async fn with_instance<T>(
        &self,
        ctx: &CallContext,
        warm: bool,
        work: impl AsyncFnOnce(&mut Store<HostState>, &Instance) -> wasmtime::Result<T>,
    ) -> (
        Result<T, CallError>,
        std::collections::HashMap<String, String>,
    ) {
        self.with_instance_of(ctx, warm, false, work).await
    }

    /// [`Plugin::with_instance`], of the `deleting-destination` world when
    /// `deletion` (then never warm: a deletion is rare, and its instance is
    /// not a delivery's).
    pub(super) async fn with_instance_of<T>(
        &self,
        ctx: &CallContext,
        warm: bool,
        deletion: bool,
        work: impl AsyncFnOnce(&mut Store<HostState>, &Instance) -> wasmtime::Result<T>,
    ) -> (
        Result<T, CallError>,
        std::collections::HashMap<String, String>,
    ) {
        let warm = warm && !deletion;
        let key = warm.then(|| self.warm_key(ctx)).flatten();
        let kept = key.as_ref().and_then(|k| self.runtime.idle().take(k));
        let (mut store, instance, calls, slot, epoch) = match kept {
            Some(mut w) => {
                w.store.data_mut().rebind(ctx);
                (w.store, Some(w.instance), w.calls, w.slot, w.epoch)
            }
            None => {
                let epoch = self.runtime.idle().epoch();
                let slot = self.runtime.slot().await;
                (self.new_store(ctx), None, 0, slot, epoch)
            }
        };
        // The deadline counts from this call's start, for a kept instance too.
        store.set_epoch_deadline(1);
        let result = tokio::time::timeout(ctx.limits.timeout, async {
            let instance = match instance {
                Some(instance) => instance,
                None => match self.instantiate(&mut store, deletion).await {
                    // The slots count components, not the core instances or
                    // memories inside them: when kept instances hold those,
                    // they give them up, and the call starts again.
                    Err(e)
                        if e.is::<wasmtime::PoolConcurrencyLimitError>()
                            && self.runtime.idle().len() > 0 =>
                    {
                        self.runtime.idle().clear();
                        store = self.new_store(ctx);
                        self.instantiate(&mut store, deletion).await?
                    }
                    other => other?,
                },
            };
            let value = work(&mut store, &instance).await?;
            Ok((value, instance))
        })
        .await;
        store.data_mut().flush();
        let filtered = std::mem::take(&mut store.data_mut().filtered);
        match settle(result, ctx) {
            Ok((value, instance)) => {
                let calls = calls + 1;
                let memory = store.data().limits.granted() as f64;
                let fresh_enough =
                    calls < MAX_CALLS && memory <= ctx.limits.memory_bytes as f64 * RECYCLE_AT;
                if let (Some(key), true) = (key, fresh_enough) {
                    let warm = Warm {
                        store,
                        instance,
                        calls,
                        idle_since: std::time::Instant::now(),
                        slot,
                        epoch,
                    };
                    self.runtime.idle().put(key, warm);
                }
                (Ok(value), filtered)
            }
            Err(e) => (Err(e), filtered),
        }
    }

    /// Run `describe` in a fresh instance.
    pub async fn describe(&self, ctx: &CallContext) -> Result<Metadata, CallError> {
        let (meta, _) = self
            .with_instance(ctx, false, async |store, instance| match instance {
                Instance::Destination(d) => d.call_describe(store).await,
                Instance::Transform(t) => t.call_describe(store).await,
                Instance::Deleting(d) => d.call_describe(store).await,
            })
            .await;
        let meta = meta?;
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
        let (verdict, _) = self
            .with_instance(ctx, false, async |store, instance| {
                let settings = store.data().seal_settings(settings);
                match instance {
                    Instance::Destination(d) => d.call_check(store, &settings).await,
                    Instance::Transform(t) => t.call_check(store, &settings).await,
                    Instance::Deleting(d) => d.call_check(store, &settings).await,
                }
            })
            .await;
        verdict
    }

    /// Run `deliver` on a batch, in the instance its destination's last batch
    /// left warm or a fresh one: one outcome per event.
    pub async fn deliver(
        &self,
        ctx: &CallContext,
        settings: &str,
        events: &[Event],
    ) -> Result<Vec<Outcome>, CallError> {
        if !matches!(self.pre, Pre::Destination(_)) {
            return Err(self.wrong_kind(Kind::Destination));
        }
        let (outcomes, mut filtered) = self
            .with_instance(ctx, true, async |store, instance| {
                let Instance::Destination(d) = instance else {
                    unreachable!("a destination's pre makes a destination's instance");
                };
                let settings = store.data().seal_settings(settings);
                d.call_deliver(store, &settings, events).await
            })
            .await;
        let outcomes = outcomes?;
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
            .zip(events)
            .map(|(o, event)| match o {
                Ok(()) => match filtered.remove(&event.message_id) {
                    Some(reason) => Outcome::Filtered(reason),
                    None => Outcome::Delivered,
                },
                Err(failure) => failure.into(),
            })
            .collect())
    }
}

impl From<Failure> for Outcome {
    fn from(failure: Failure) -> Outcome {
        match failure {
            Failure::Retry(hint) => Outcome::Retry {
                reason: clip(hint.reason),
                after: hint.after_ms.map(Duration::from_millis),
            },
            Failure::Reject(reason) => Outcome::Reject(clip(reason)),
        }
    }
}

pub(super) fn settle<T>(
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
