//! Switchyard: one host process, destinations as WebAssembly components.
//!
//! The data flow, and the module that owns each step:
//!
//! ```text
//! SDKs ─HTTP─> ingest ─> route ─> store (durable log + one queue per destination)
//!                                   │
//!                                   v
//!                      dispatch (one worker per destination: batch, retry, dead letters)
//!                                   │
//!                                   v
//!                      runtime (wasmtime: fresh instance per batch, limits)
//!                                   │
//!                                   v
//!                      imports::http (allowlist) ─> vendor API
//! ```
//!
//! - [`config`]: TOML → validated [`config::Config`].
//! - [`ingest`]: Segment's tracking API (`/v1/*`): auth, limits, and
//!   [`ingest::normalize`], the one validation and normalisation of messages.
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
//! - [`admin`]: `/healthz`, `/readyz`, `/metrics` and `/admin/*`.
//! - [`observe`]: the metrics registry and the readiness checks behind them.
//! - [`cli`]: the `switchyard` subcommands.
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
pub mod imports;
pub mod ingest;
pub mod observe;
pub mod plugins;
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
use crate::store::Store;

/// Added to twice the longest destination deadline to make a claimed job's lease.
const LEASE_MARGIN: std::time::Duration = std::time::Duration::from_secs(30);

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
    let longest = config
        .destinations
        .iter()
        .map(|d| d.limits.timeout)
        .max()
        .unwrap_or_default();
    let ack_wait = config.store.ack_wait.unwrap_or(longest * 2 + LEASE_MARGIN);
    let store: Arc<dyn Store> = store::open(&config.store, ack_wait, &config.destinations).await?;
    let runtime = runtime::Runtime::new(
        Some(config.store.path.join("compiled")),
        config.max_instances,
    )
    .context("starting the wasm runtime")?;
    let catalog = Arc::new(
        plugins::Catalog::load_serving(
            &runtime,
            &config.plugins_dir,
            &config.destinations,
            &config.transforms,
        )
        .await?,
    );

    // One registry per host; the store brings its own commit histograms.
    let instruments = observe::metrics::Instruments {
        commits: store.commits().metrics.clone(),
        ..Default::default()
    };
    let metrics = Arc::new(observe::metrics::Metrics::new(instruments.clone()));

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Destinations an operator paused stay paused across a restart.
    let paused = store
        .paused()
        .await
        .context("reading the operator's pauses from the store")?;
    let dispatcher = dispatch::Dispatcher::start(
        &config.destinations,
        &config.transforms,
        &catalog,
        store.clone(),
        Arc::new(imports::resolve::SystemLookup),
        &paused,
        &instruments,
        stop_rx.clone(),
    );
    let watcher = plugins::watch::spawn(catalog.clone(), stop_rx.clone())
        .context("watching the plugins directory")?;

    let infos = config
        .destinations
        .iter()
        .map(|d| {
            registry::DestinationInfo::of(&dispatcher, &catalog, d, false)
                .expect("every destination has a worker and its plugin a slot")
        })
        .collect();
    let mut ingest_state = ingest::IngestState::new(&config, store.clone());
    ingest_state.instruments = instruments;
    let admin_token = match (&config.admin_token, &config.admin_token_file) {
        (Some(token), _) => Some(token.clone()),
        (None, Some(file)) => Some(admin::token::make(file)?),
        (None, None) => None,
    };
    // The live destinations: shown by the admin API, rebuilt by a reload.
    let destinations = Arc::new(arc_swap::ArcSwap::from_pointee(infos));
    let watched = file.clone().filter(|_| config.watch_config);
    let reloader = Arc::new(reload::Reloader::new(
        file,
        config.clone(),
        store.clone(),
        catalog.clone(),
        dispatcher,
        destinations.clone(),
        longest,
    ));
    reload::follow::spawn(reloader.clone(), store.clone(), stop_rx.clone()).await;
    let config_watcher = match watched {
        Some(file) => Some(
            reload::watch::spawn(reloader.clone(), file, stop_rx.clone())
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
    // Every field given here, none patched later: a field forgotten is a
    // compile error, not a page that silently shows nothing.
    let admin_state = admin::AdminState {
        token: admin_token.map(Arc::from),
        destinations,
        reloader: Some(reloader.clone()),
        store: store.clone(),
        catalog: catalog.clone(),
        sources: Arc::new(config.sources.values().cloned().collect()),
        source_history: ingest_state.history.clone(),
        rejections: ingest_state.rejections.clone(),
        recent: ingest_state.recent.clone(),
        metrics,
        sessions: Arc::default(),
        guard: Arc::new(admin::guard::Guard::new(
            config.admin_hosts.clone(),
            config.trusted_proxies.clone(),
            config.server_limits.request_timeout,
        )),
        ready: Arc::default(),
    };
    let metrics_server = match &config.metrics_listen {
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} ([server] metrics_listen)"))?;
            tracing::info!(addr = %listener.local_addr()?, "metrics listening (no auth)");
            Some(tokio::spawn(server::serve(
                listener,
                admin::probes::metrics_app(admin_state.clone()),
                config.server_limits.clone(),
                stop_rx.clone(),
            )))
        }
        None => None,
    };
    let ingest =
        ingest::app(ingest_state).layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            config.server_limits.request_timeout,
        ));
    let app = ingest.merge(admin::app(admin_state));

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
        app,
        config.server_limits.clone(),
        stop_rx.clone(),
    ));
    Ok(Running {
        addr,
        stop_tx,
        server,
        reloader,
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
