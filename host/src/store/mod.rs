//! The durable log and the per-destination cursors, behind [`Store`]: four
//! narrow traits by concern ([`Queues`], [`DeadLetters`], [`Coordination`], and
//! [`Reconfigure`], reached through [`Store::reconfiguration`] where a store can).
//!
//! Where it sits: ingest calls [`Queues::append`] and answers `200` only when it
//! returns (the events are on disk); the dispatcher of each destination calls
//! [`Queues::claim`] and [`Queues::settle`]. Each event is written once, whatever
//! the number of destinations: every destination reads the one log through its
//! own cursor, with its own retries and dead letters, so destinations never
//! share a position or wait for each other.
//!
//! The trait is shaped for both backends: the embedded store (a log of chunks
//! in SQLite, see [`embedded`]) and NATS JetStream (one stream, a durable
//! consumer per destination, see [`nats`]); [`Settle`] maps to ack /
//! nak-with-delay / term.

pub mod embedded;
pub mod nats;
pub mod regulations;
pub mod view;

use std::sync::Arc;

use tokio::sync::Notify;

use crate::config::DestinationConfig;
use crate::event_type::EventType;
use crate::route::RouteKeys;

pub use self::regulations::{EraseStep, Erased, Matches, Regulations, StoredRegulation};

/// Open the store a config names, for these destinations. `ack_wait` is the
/// lease of a claimed job on a shared (NATS) store: size it to the longest
/// destination deadline.
pub async fn open(
    config: &crate::config::StoreConfig,
    ack_wait: std::time::Duration,
    destinations: &[DestinationConfig],
) -> anyhow::Result<Arc<dyn Store>> {
    use anyhow::Context as _;
    Ok(match &config.kind {
        crate::config::StoreKind::Embedded => Arc::new(
            embedded::EmbeddedStore::open(
                &config.path,
                &embedded::EmbeddedOptions {
                    dedup_window: config.dedup_window,
                    retention: config.retention,
                    dead_letter_retention: config.dead_letter_retention,
                },
                destinations,
            )
            .context("opening the embedded store")?,
        ),
        crate::config::StoreKind::Nats(url) => Arc::new(
            nats::NatsStore::open(
                &nats::NatsOptions {
                    url: url.clone(),
                    credentials_file: config.credentials_file.clone(),
                    dedup_window: config.dedup_window,
                    ack_wait,
                    replicas: config.replicas,
                    dead_letter_retention: config.dead_letter_retention,
                    retention: config.retention,
                },
                destinations,
            )
            .await
            .with_context(|| format!("opening the nats store at {}", nats::shown_url(url)))?,
        ),
    })
}

/// A store's disk use (`/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskUsage {
    /// Its files (the embedded store: the database and its write-ahead log).
    pub file_bytes: u64,
    /// Of the log, events every destination has passed, kept for `[store] retention`.
    pub retained_bytes: u64,
}

/// Milliseconds since the Unix epoch (the store's clock unit).
pub type Millis = i64;

/// The current time in [`Millis`].
pub fn now_ms() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// Errors a store can answer with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Too much work is waiting: the caller should come back later (ingest answers 503).
    #[error("the store is overloaded; retry shortly")]
    Overloaded,
    /// The store is closed or its engine failed.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// This store cannot do what was asked, and says why.
    #[error("{0}")]
    Unsupported(&'static str),
}

/// One normalised event to append, with the destinations it routes to.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Source name (deduplication is per source).
    pub source: String,
    /// Segment `messageId`.
    pub message_id: String,
    /// Segment `type`, as ingest decided it.
    pub event_type: EventType,
    /// `userId` (or `anonymousId`), for per-user ordering.
    pub user_key: Option<String>,
    /// The normalised message, as JSON text.
    pub json: String,
    /// What routing reads (type, event name, `integrations`): the store decides
    /// the event's destinations from it once, not once per destination.
    pub route: RouteKeys,
}

/// What `append` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppendReport {
    /// Events stored now.
    pub stored: usize,
    /// Events whose `messageId` was seen within the dedup window: acknowledged, not stored again.
    pub duplicates: usize,
}

/// What one claim asks for. Whether a batch keeps each user's events in
/// order is not asked: it is the destination's `ordering`, which its queue was
/// made with ([`Reconfigure::reconfigure`], or the store's opening).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// Most events.
    pub max_events: usize,
    /// Most bytes of event JSON (at least one event is always taken).
    pub max_bytes: usize,
}

impl Claim {
    /// Up to `max_events` and `max_bytes`.
    pub fn up_to(max_events: usize, max_bytes: usize) -> Claim {
        Claim {
            max_events,
            max_bytes,
        }
    }
}

/// Identity of a job within a destination's queue.
pub type JobId = i64;

/// One event due for one destination.
#[derive(Debug, Clone)]
pub struct Job {
    /// Its id, for `settle`.
    pub id: JobId,
    /// The source that sent it (empty when the store did not keep it: an
    /// event stored by an earlier version).
    pub source: Arc<str>,
    /// Segment `messageId`.
    pub message_id: String,
    /// Segment `type`, as ingest decided it.
    pub event_type: EventType,
    /// The normalised message.
    pub json: String,
    /// Attempts so far, this one included.
    pub attempts: u32,
    /// When it was first attempted.
    pub first_attempt_at: Millis,
    /// When the event was received (for batch linger).
    pub queued_at: Millis,
}

/// What became of a claimed job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settle {
    /// Delivered: remove it.
    Done,
    /// Try again at this time.
    RetryAt {
        /// When.
        at: Millis,
        /// Why it failed this time.
        reason: String,
    },
    /// Give up: into dead letters.
    Dead {
        /// Why.
        reason: String,
    },
}

/// A job given up on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its id in the dead-letter list.
    pub id: i64,
    /// Destination.
    pub destination: String,
    /// Segment `messageId`.
    pub message_id: String,
    /// Segment `type`.
    pub event_type: String,
    /// The last failure.
    pub reason: String,
    /// Attempts made.
    pub attempts: u32,
    /// First attempt (ms since epoch).
    pub first_attempt_at: Millis,
    /// Last attempt (ms since epoch).
    pub last_attempt_at: Millis,
    /// When it was dead-lettered (ms since epoch).
    pub dead_at: Millis,
    /// The event as it would be delivered.
    pub event_json: String,
}

/// The store's figures per commit (the embedded writer's transaction, a NATS publish).
#[derive(Debug, Clone)]
pub struct CommitMetrics {
    /// How long a commit of appended events took, in seconds.
    pub duration: prometheus_client::metrics::histogram::Histogram,
    /// Events appended per commit.
    pub events: prometheus_client::metrics::histogram::Histogram,
}

impl Default for CommitMetrics {
    fn default() -> Self {
        CommitMetrics {
            // 50 µs .. ~1.6 s
            duration: prometheus_client::metrics::histogram::Histogram::new(
                prometheus_client::metrics::histogram::exponential_buckets(0.000_05, 2.0, 16),
            ),
            // 1 .. 8,192 events
            events: prometheus_client::metrics::histogram::Histogram::new(
                prometheus_client::metrics::histogram::exponential_buckets(1.0, 2.0, 14),
            ),
        }
    }
}

/// How the store's commits go, shared with `/metrics` and `/readyz` ([`crate::observe`]).
#[derive(Debug, Default)]
pub struct Commits {
    /// Duration and events of each commit of appended events.
    pub metrics: CommitMetrics,
    /// Why the last commit failed, until one succeeds.
    failing: std::sync::Mutex<Option<String>>,
}

impl Commits {
    /// A commit of `events` appended events (maybe none) succeeded in `took`.
    pub fn succeeded(&self, events: usize, took: std::time::Duration) {
        if events > 0 {
            self.metrics.duration.observe(took.as_secs_f64());
            self.metrics.events.observe(events as f64);
        }
        let mut failing = self.failing.lock().expect("commits lock");
        if failing.is_some() {
            *failing = None;
        }
    }

    /// A commit failed.
    pub fn failed(&self, reason: &str) {
        *self.failing.lock().expect("commits lock") = Some(reason.to_string());
    }

    /// Why the last commit failed, if it did.
    pub fn failing(&self) -> Option<String> {
        self.failing.lock().expect("commits lock").clone()
    }
}

/// Size of a destination's queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueStats {
    /// Jobs waiting (due now or later).
    pub queued: u64,
    /// Jobs claimed and not settled.
    pub in_flight: u64,
    /// Dead letters kept.
    pub dead_letters: u64,
    /// Of `queued`, the jobs waiting for a retry (on NATS, those this host
    /// scheduled: a retry is a delayed redelivery the server keeps).
    pub retrying: u64,
    /// When the earliest of them is due.
    pub next_retry_at: Option<Millis>,
    /// When the oldest job not yet settled was first tried, or received when
    /// it was not tried yet (embedded store; on NATS, `None`).
    pub oldest_at: Option<Millis>,
}

/// The durable store: the log and each destination's queue ([`Queues`]), its
/// dead letters ([`DeadLetters`]), what the hosts sharing it agree on
/// ([`Coordination`]), the privacy regulations ([`Regulations`]), and, where the store can, changing its destinations
/// while it runs ([`Store::reconfiguration`]). Callers hold an `Arc<dyn Store>`
/// and bring into scope the part they use.
pub trait Store: Queues + DeadLetters + Coordination + Regulations {
    /// Reloads that change routing, backfills and deleting a retired queue
    /// (`None`: this store cannot; a reload that changes routing is refused then).
    fn reconfiguration(&self) -> Option<&dyn Reconfigure>;
}

impl dyn Store {
    /// [`Store::reconfiguration`], or the error that says this store cannot.
    pub fn reconfigurable(&self) -> Result<&dyn Reconfigure, StoreError> {
        self.reconfiguration().ok_or(StoreError::Unsupported(
            "this store cannot change its destinations, backfill or delete a queue while it runs",
        ))
    }
}

/// The log and the queues: events in, jobs out, outcomes back.
#[async_trait::async_trait]
pub trait Queues: Send + Sync + 'static {
    /// Durably append events, each stored once for all the destinations it routes
    /// to. Returns only after the events are on disk; concurrent callers share one
    /// commit.
    async fn append(&self, events: Vec<NewEvent>) -> Result<AppendReport, StoreError>;

    /// Lease up to `claim.max_events` due jobs (and at most `claim.max_bytes` of
    /// JSON, but always at least one) of `destination`, oldest first. A leased job
    /// is not handed out again until settled, or until the process restarts. For
    /// a destination with per-user ordering, a batch holds at most one event per user, and a job
    /// is held back while an earlier job of the same user is leased or waits for
    /// its retry: a destination that delivers part of a batch can then never put a
    /// user's later event first, and several batches in flight never hold events
    /// of the same user.
    async fn claim(
        &self,
        destination: &str,
        claim: Claim,
        now: Millis,
    ) -> Result<Vec<Job>, StoreError>;

    /// Settle claimed jobs, all in one commit.
    async fn settle(
        &self,
        destination: &str,
        outcomes: Vec<(JobId, Settle)>,
    ) -> Result<(), StoreError>;

    /// When the earliest not-leased job of `destination` is due, if any.
    async fn next_due(&self, destination: &str) -> Result<Option<Millis>, StoreError>;

    /// Counts for status and the admin API.
    async fn stats(&self, destination: &str) -> Result<QueueStats, StoreError>;

    /// Make every retry of `destination` that waits for its time due now (an
    /// operator's "retry now"); how many were moved.
    async fn retry_now(&self, destination: &str) -> Result<u64, StoreError>;

    /// Notified when `destination` may have new due work.
    fn wakeup(&self, destination: &str) -> Arc<Notify>;

    /// The store's commit figures and its last commit failure.
    fn commits(&self) -> Arc<Commits>;

    /// Whether the store can take events now (`/readyz`): `Err` says why not.
    /// By default: the last commit did not fail.
    async fn ready(&self) -> Result<(), StoreError> {
        match self.commits().failing() {
            Some(reason) => Err(StoreError::Unavailable(format!(
                "the last commit failed: {reason}"
            ))),
            None => Ok(()),
        }
    }

    /// On NATS, whether the client is connected now; `None` for a local store.
    fn connected(&self) -> Option<bool> {
        None
    }

    /// Events this host received that `destination`'s filter or their
    /// `integrations` object kept from it (see [`crate::route::Router::filtered`]).
    fn filtered(&self, destination: &str) -> u64 {
        let _ = destination;
        0
    }

    /// What the store holds on disk (`None`: not known on this store).
    fn disk_usage(&self) -> Option<DiskUsage> {
        None
    }
}

/// A destination's dead letters: list, page, replay, purge.
#[async_trait::async_trait]
pub trait DeadLetters: Send + Sync + 'static {
    /// Dead letters of `destination` dead-lettered in `[since, until)`, oldest first.
    async fn dead_letters(
        &self,
        destination: &str,
        since: Option<Millis>,
        until: Option<Millis>,
    ) -> Result<Vec<DeadLetter>, StoreError>;

    /// Move dead letters of `destination` in `[since, until)` back into its queue, due now.
    /// Returns how many.
    async fn replay(
        &self,
        destination: &str,
        since: Option<Millis>,
        until: Option<Millis>,
    ) -> Result<u64, StoreError>;

    /// One page of the dead letters of `destination` dead-lettered in
    /// `[since, until)`: those with an id above `after`, at most `limit`, by id
    /// (the order they were dead-lettered in). By default read from [`DeadLetters::dead_letters`].
    async fn dead_letter_page(
        &self,
        destination: &str,
        since: Option<Millis>,
        until: Option<Millis>,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let mut all = self.dead_letters(destination, since, until).await?;
        all.retain(|d| after.is_none_or(|a| d.id > a));
        all.sort_by_key(|d| d.id);
        all.truncate(limit);
        Ok(all)
    }

    /// Delete the dead letters of `destination` dead-lettered in `[since, until)`; how many.
    async fn purge(
        &self,
        destination: &str,
        since: Option<Millis>,
        until: Option<Millis>,
    ) -> Result<u64, StoreError>;
}

/// What the hosts that share a store agree on: operators' pauses, who is
/// live, and the newest reload.
#[async_trait::async_trait]
pub trait Coordination: Send + Sync + 'static {
    /// Record an operator's pause (or resume) of `destination`: it outlives a
    /// restart, and on NATS every host sees it.
    async fn set_paused(&self, destination: &str, paused: bool) -> Result<(), StoreError>;

    /// The destinations an operator paused.
    async fn paused(&self) -> Result<std::collections::HashSet<String>, StoreError>;

    /// Announce `host` (this process) as live and count the live hosts sharing
    /// this store, this one included: a destination's rate limit is divided
    /// among them.
    async fn live_hosts(&self, host: &str) -> Result<usize, StoreError>;

    /// The newest reload any host of this store announced (`None`: this store
    /// is not shared, or none was): a host that sees a new one reloads too
    /// (`reload/follow.rs`).
    async fn reload_generation(&self) -> Result<Option<String>, StoreError> {
        Ok(None)
    }

    /// Announce a reload to every host of this store.
    async fn announce_reload(&self, generation: &str) -> Result<(), StoreError> {
        let _ = generation;
        Ok(())
    }
}

/// Changing a store's destinations while it runs, and what needs its log.
#[async_trait::async_trait]
pub trait Reconfigure: Send + Sync + 'static {
    /// A reload (`crate::reload`): from now on events route to `destinations`
    /// (new ones get a queue that starts at the end of the log, a name that had
    /// a queue before resumes it); the queues of `retired` destinations are kept,
    /// receive nothing new and go on answering claims and settles, so they drain.
    async fn reconfigure(
        &self,
        destinations: &[DestinationConfig],
        retired: &[String],
    ) -> Result<(), StoreError>;

    /// Queue again for `destination` the events still in the log that were
    /// received in `[since, until)` and that its filter takes, with their
    /// messageIds and `context.is_backfill = true`; those not yet delivered to it
    /// are left to their turn. Returns how many were queued.
    async fn backfill(
        &self,
        destination: &str,
        since: Millis,
        until: Millis,
    ) -> Result<u64, StoreError>;

    /// Delete the queue of a retired destination: its cursor, retries and dead
    /// letters. Returns the events that were still waiting in it.
    async fn forget(&self, destination: &str) -> Result<u64, StoreError>;
}
