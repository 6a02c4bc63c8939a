//! The host's parts, built once from a validated config, and the one router
//! that serves them.
//!
//! Where it sits: [`crate::start_from`] builds a [`Host`] (store, runtime,
//! plugins, dispatcher, reloader, and the state ingest and admin serve), then
//! serves [`app`] on its listener and starts the watchers. Nothing here
//! listens or waits for shutdown; the stop signal is handed in.

use std::sync::Arc;

use anyhow::Context as _;

use crate::config::Config;
use crate::store::Store;
use crate::{
    admin, dispatch, imports, ingest, observe, plugins, privacy, registry, reload, runtime, store,
};

/// Added to twice the longest destination deadline to make a claimed job's lease.
const LEASE_MARGIN: std::time::Duration = std::time::Duration::from_secs(30);

/// Everything a running host is made of. Each part is built here, once, in
/// the order they depend on each other; none is patched afterwards.
pub struct Host {
    /// The config the host started with (a reload keeps its own copy).
    pub config: Config,
    /// The durable log and the destinations' queues.
    pub store: Arc<dyn Store>,
    /// The plugins each destination and transformation runs, by version.
    pub plugins: Arc<plugins::Catalog>,
    /// Applies a changed config file; holds the delivery workers.
    pub reloader: Arc<reload::Reloader>,
    /// What the tracking API (`/v1/*`) serves.
    pub ingest: ingest::IngestState,
    /// What `/admin/*`, the probes and `/metrics` serve.
    pub admin: admin::AdminState,
    /// The privacy regulations: ingest drops what they suppress.
    pub privacy: Arc<privacy::Privacy>,
}

impl Host {
    /// Open the store, load and check every plugin, and start one delivery
    /// worker per destination; the workers stop when `stop` turns true. `file`
    /// is where the config came from, which a reload reads again. Fails before
    /// anything serves when the store, a plugin or a destination's settings
    /// are not right.
    pub async fn build(
        config: Config,
        file: Option<std::path::PathBuf>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<Host> {
        let longest = config
            .destinations
            .iter()
            .map(|d| d.limits.timeout)
            .max()
            .unwrap_or_default();
        let ack_wait = config.store.ack_wait.unwrap_or(longest * 2 + LEASE_MARGIN);
        let store: Arc<dyn Store> =
            store::open(&config.store, ack_wait, &config.destinations).await?;
        let runtime = runtime::Runtime::new(
            Some(config.store.path.join("compiled")),
            config.max_instances,
        )
        .context("starting the wasm runtime")?;
        let plugins = Arc::new(
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
        let metrics = Arc::new(admin::scrape::Metrics::new(instruments.clone()));

        // Destinations an operator paused stay paused across a restart.
        let paused = store
            .paused()
            .await
            .context("reading the operator's pauses from the store")?;
        let dispatcher = dispatch::Dispatcher::start(
            &config.destinations,
            &config.transforms,
            &plugins,
            store.clone(),
            Arc::new(imports::resolve::SystemLookup),
            &paused,
            &instruments,
            stop,
        );
        // The live destinations: shown by the admin API, rebuilt by a reload.
        let infos = config
            .destinations
            .iter()
            .map(|d| {
                registry::DestinationInfo::of(&dispatcher, &plugins, d, false)
                    .expect("every destination has a worker and its plugin a slot")
            })
            .collect();
        let destinations = Arc::new(arc_swap::ArcSwap::from_pointee(infos));
        let reloader = Arc::new(reload::Reloader::new(
            file,
            config.clone(),
            store.clone(),
            plugins.clone(),
            dispatcher,
            destinations.clone(),
            longest,
        ));

        let mut ingest = ingest::IngestState::new(&config, store.clone());
        ingest.instruments = instruments;
        // Regulations recorded before this start are in force before it
        // serves; a deletion a stopped host left unfinished goes on.
        let reach = Arc::new(Reach {
            recent: ingest.recent.clone(),
            destinations: destinations.clone(),
            runtime,
        });
        let privacy = Arc::new(
            privacy::Privacy::open(
                store.clone() as _,
                config.sources.values().cloned().collect(),
                reach,
            )
            .await
            .context("reading the privacy regulations from the store")?,
        );
        ingest.suppressions = privacy.suppressions();
        let token = match (&config.admin_token, &config.admin_token_file) {
            (Some(token), _) => Some(token.clone()),
            (None, Some(file)) => Some(admin::token::make(file)?),
            (None, None) => None,
        };
        // Every field given here: a field forgotten is a compile error, not a
        // page that silently shows nothing.
        let admin = admin::AdminState {
            token: token.map(Arc::from),
            destinations,
            reloader: Some(reloader.clone()),
            store: store.clone(),
            catalog: plugins.clone(),
            sources: Arc::new(config.sources.values().cloned().collect()),
            source_history: ingest.history.clone(),
            rejections: ingest.rejections.clone(),
            recent: ingest.recent.clone(),
            metrics,
            sessions: Arc::default(),
            guard: Arc::new(admin::guard::Guard::new(
                config.admin_hosts.clone(),
                config.trusted_proxies.clone(),
                config.server_limits.request_timeout,
            )),
            ready: Arc::default(),
            privacy: privacy.clone(),
        };
        Ok(Host {
            config,
            store,
            plugins,
            reloader,
            ingest,
            admin,
            privacy,
        })
    }
}

/// What a privacy deletion reaches on this host beyond the store: the copies
/// of events kept in memory, and the destinations.
struct Reach {
    /// The source debugger's events.
    recent: Arc<ingest::recent::Recent>,
    /// The live destinations: their delivery debuggers, recordings under way
    /// and trials' samples.
    destinations: Arc<arc_swap::ArcSwap<Vec<registry::DestinationInfo>>>,
    /// Its warm instances, whose guests' memory held earlier batches.
    runtime: runtime::Runtime,
}

#[async_trait::async_trait]
impl privacy::Reach for Reach {
    fn destinations(&self) -> Vec<(String, bool)> {
        self.destinations
            .load()
            .iter()
            .filter(|d| !d.retired)
            .map(|d| {
                let can = d.deletions.as_ref().is_some_and(|x| x.supported());
                (d.name.clone(), can)
            })
            .collect()
    }

    async fn forward(
        &self,
        name: &str,
        subjects: &privacy::Subjects,
    ) -> Option<privacy::DestinationStatus> {
        use dispatch::deletion::Forwarded;
        use privacy::{DestinationStatus, Forward};
        let deletions = self
            .destinations
            .load()
            .iter()
            .find(|d| d.name == name && !d.retired)
            .and_then(|d| d.deletions.clone());
        let list: Vec<runtime::Subject> = subjects
            .user_id
            .iter()
            .map(|id| runtime::Subject::UserId(id.clone()))
            .chain(
                subjects
                    .anonymous_id
                    .iter()
                    .map(|id| runtime::Subject::AnonymousId(id.clone())),
            )
            .collect();
        let forwarded = match deletions {
            Some(d) => d.forward(list).await,
            None => Forwarded::Failed("no longer configured".into()),
        };
        let (state, reason) = match forwarded {
            Forwarded::Done => (Forward::Done, None),
            Forwarded::NotSupported => (
                Forward::NotSupported,
                Some("its component does not export `deletion`".to_string()),
            ),
            Forwarded::Failed(why) => (Forward::Failed, Some(why)),
            Forwarded::Interrupted => return None,
        };
        Some(DestinationStatus { state, reason })
    }

    fn forget(&self, who: &dyn Fn(Option<&str>, &str) -> bool) -> privacy::Forgotten {
        let mut f = privacy::Forgotten::new();
        let mut add = |place: &str, n: u64| *f.entry(place.to_string()).or_default() += n;
        add(
            "source_debugger",
            self.recent.forget(&|s, json| who(Some(s), json)),
        );
        for d in self.destinations.load().iter() {
            add("delivery_debugger", d.live.stats.attempts.forget_all());
            let recorder = d.live.recorder.lock().expect("recorder lock").clone();
            if let Some(r) = recorder {
                add("recordings", r.forget(&|json| who(None, json)));
            }
            if let Some(t) = d.plugin.trial() {
                add("trial_samples", t.forget_samples());
            }
        }
        add("warm_instances", self.runtime.forget_warm() as u64);
        f
    }
}

/// Every route the host serves on its listener: the tracking API (with the
/// request timeout as a layer), then the admin API, probes and status pages.
pub fn app(host: &Host) -> axum::Router {
    let ingest = ingest::app(host.ingest.clone()).layer(
        tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            host.config.server_limits.request_timeout,
        ),
    );
    ingest.merge(admin::app(host.admin.clone()))
}

/// What `[server] metrics_listen` serves: `/metrics` alone, without auth.
pub fn metrics_app(host: &Host) -> axum::Router {
    admin::probes::metrics_app(host.admin.clone())
}
