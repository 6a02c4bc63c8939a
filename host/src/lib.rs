//! Switchyard: one host process, destinations as WebAssembly components.
//!
//! The data flow, and the module that owns each step:
//!
//! ```text
//! SDKs ─HTTP─> ingest (privacy: drop the suppressed) ─> route ─> store (durable log + queues)
//!                                   │
//!                                   v
//!                      dispatch (one worker per destination: batch, retry, dead letters)
//!                                   │
//!                                   v
//!                      runtime (wasmtime: an instance per batch, kept warm, limits)
//!                                   │
//!                                   v
//!                      imports::http (allowlist) ─> vendor API
//! ```
//!
//! - [`config`]: TOML → validated [`config::Config`].
//! - [`ingest`]: Segment's tracking API (`/v1/*`): auth, limits, and
//!   [`ingest::normalize`], the one validation and normalisation of messages.
//! - [`privacy`]: regulations (suppress, unsuppress), recorded in the store as
//!   keyed hashes; ingest drops a suppressed user's events before the store.
//! - [`route`]: filters and the `integrations` object decide each event's destinations.
//! - [`store`]: the [`store::Store`] trait; the embedded SQLite store
//!   ([`store::embedded`]) and the NATS JetStream store ([`store::nats`]).
//! - [`dispatch`]: per-destination workers between store and runtime: batching,
//!   retry policy, rate limit, health breaker.
//! - [`runtime`]: the wasmtime engine and compiled cache, the generated bindings,
//!   the host functions, loaded plugins and per-call limits.
//! - [`imports`]: the behaviour behind the WIT imports (`http` egress, `log`).
//! - [`plugins`]: the plugin catalog: versions, hot swap, rollback, directory watcher.
//! - [`catalog`]: Segment's action destinations (`catalog:NAME` plugins), built on demand.
//! - [`trial`]: a version tried on real traffic before it serves (shadow,
//!   canary), and recordings of real deliveries for `switchyard replay`.
//! - [`reload`]: a changed config file applied to the running host (destinations
//!   added, changed and retired).
//! - [`admin`]: `/healthz`, `/readyz` (its checks), `/metrics` (the registry and
//!   what is sampled at scrape time) and `/admin/*`.
//! - [`observe`]: what the stages record as events pass (instruments, the
//!   debugger's attempts, per-minute history); a leaf that reads no stage.
//! - [`cli`]: the `switchyard` subcommands.
//! - [`host`]: the host's parts built once from the config ([`host::Host`]),
//!   and [`host::app`], the router that serves them.
//!
//! Leaves that several of them share: [`allowlist`] (egress entries, parsed by
//! config, checked by `imports::http`), [`event_type`] (the six Segment calls)
//! and [`store::view`] (the operator's view of a dead letter).
//!
//! [`run`] is the testable entry point: give it a config, a bound listener and a
//! shutdown future.
#![warn(missing_docs)]

pub mod admin;
pub mod allowlist;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod dispatch;
pub mod event_type;
pub mod host;
pub mod imports;
pub mod ingest;
pub mod observe;
pub mod plugins;
pub mod privacy;
pub mod registry;
pub mod reload;
pub mod route;
pub mod runtime;
pub mod server;
pub mod store;
pub mod trial;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::host::Host;

/// How long shutdown waits for batches in flight before giving up on them
/// (they are then delivered again after the next start).
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(15);

/// Serve `config` on `listener` until `shutdown` completes.
///
/// Opens the store, loads and checks every destination's plugin, starts one
/// delivery worker per destination and serves ingest, admin and health on the
/// listener. On shutdown: stop accepting, let batches in flight finish, exit.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let running = start(config, listener).await?;
    shutdown.await;
    running.stop().await;
    Ok(())
}

/// A started host: serving and delivering until [`Running::stop`].
#[derive(Debug)]
pub struct Running {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// Tells the server and the workers to stop.
    stop_tx: tokio::sync::watch::Sender<bool>,
    /// The HTTP server task.
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    /// Applies a changed config file; holds the delivery workers.
    reloader: Arc<reload::Reloader>,
    /// The plugins-directory watcher.
    watcher: tokio::task::JoinHandle<()>,
    /// The config-file watcher (`[server] watch_config`).
    config_watcher: Option<tokio::task::JoinHandle<()>>,
    /// The `[server] metrics_listen` server, when configured.
    metrics_server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// Everything [`run`] does before it waits for shutdown; fails before serving
/// when the store, a plugin or a destination's settings are not right.
pub async fn start(config: Config, listener: TcpListener) -> anyhow::Result<Running> {
    start_from(config, None, listener).await
}

/// [`start`] for a config read from `file`, which a reload reads again
/// ([`Running::reload`], `POST /admin/reload`).
pub async fn start_from(
    config: Config,
    file: Option<std::path::PathBuf>,
    listener: TcpListener,
) -> anyhow::Result<Running> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let watched = file.clone().filter(|_| config.watch_config);
    let host = Host::build(config, file, stop_rx.clone()).await?;
    let config = &host.config;

    // The watchers: the plugins directory, other hosts' reloads, the config file.
    let watcher = plugins::watch::spawn(host.plugins.clone(), stop_rx.clone())
        .context("watching the plugins directory")?;
    reload::follow::spawn(host.reloader.clone(), host.store.clone(), stop_rx.clone()).await;
    // Only a shared store (NATS) has other hosts whose regulations to follow.
    if host.store.connected().is_some() {
        tokio::spawn(host.privacy.clone().follow(stop_rx.clone()));
    }
    let config_watcher = match watched {
        Some(file) => Some(
            reload::watch::spawn(host.reloader.clone(), file, stop_rx.clone())
                .context("watching the config file ([server] watch_config)")?,
        ),
        None => {
            if config.watch_config {
                tracing::warn!(
                    "[server] watch_config: no config file to watch (the default config)"
                );
            }
            None
        }
    };
    let metrics_server = match &config.metrics_listen {
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} ([server] metrics_listen)"))?;
            tracing::info!(addr = %listener.local_addr()?, "metrics listening (no auth)");
            Some(tokio::spawn(server::serve(
                listener,
                host::metrics_app(&host),
                config.server_limits.clone(),
                stop_rx.clone(),
            )))
        }
        None => None,
    };

    let addr = listener.local_addr()?;
    tracing::info!(%addr, destinations = config.destinations.len(), "switchyard listening");
    for d in config
        .destinations
        .iter()
        .filter(|d| !d.vendor_origins.is_empty())
    {
        tracing::warn!(
            destination = d.name.as_str(),
            "WARNING: vendor_origins is set: this destination's requests go to loopback, \
             not to its vendor ({}); for tests and dry runs only",
            d.vendor_origins.describe()
        );
    }
    let server = tokio::spawn(server::serve(
        listener,
        host::app(&host),
        config.server_limits.clone(),
        stop_rx,
    ));
    Ok(Running {
        addr,
        stop_tx,
        server,
        reloader: host.reloader,
        watcher,
        config_watcher,
        metrics_server,
    })
}

impl Running {
    /// Apply the config file again (as SIGHUP does).
    pub async fn reload(&self) -> Result<reload::Summary, reload::ReloadError> {
        self.reloader.reload().await
    }

    /// What applies the config file again, for a caller that must not wait on it.
    pub fn reloader(&self) -> Arc<reload::Reloader> {
        self.reloader.clone()
    }

    /// Stop accepting, let batches in flight finish (within a grace period), return.
    pub async fn stop(self) {
        tracing::info!("shutting down: no new requests; finishing batches in flight");
        let _ = self.stop_tx.send(true);
        let reloader = self.reloader;
        let server = self.server;
        let watcher = self.watcher;
        let config_watcher = self.config_watcher;
        let metrics_server = self.metrics_server;
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, async move {
            let _ = server.await;
            if let Some(m) = metrics_server {
                let _ = m.await;
            }
            let _ = watcher.await;
            if let Some(w) = config_watcher {
                let _ = w.await;
            }
            // After a reload that is still running (its batches settle now that
            // shutdown has begun).
            if let Some(dispatcher) = reloader.take_dispatcher().await {
                dispatcher.join().await;
            }
        })
        .await;
        tracing::info!("stopped");
    }
}
