//! The embedded store: a log of events in SQLite (WAL) in `[store] path`, one
//! cursor per destination, owned by one thread.
//!
//! Layout (see [`sql::SCHEMA`]): each appended request becomes one row of
//! `chunks` (its events, each with the set of destinations it routes to), keyed
//! by the sequence number of its first event. Each destination has a row in
//! `cursors`: every event at or below its `acked` is settled for it. Rows exist
//! only for what is not plain progress: `retries` (a copy of the event, its due
//! time, attempts and last error) and `dead_events`. A chunk is deleted once
//! every cursor has passed it and it is older than `[store] retention`. So an
//! event costs one row write per request, whatever the number of destinations,
//! and a destination that delivers costs one cursor update per commit.
//!
//! Why this engine: measured on this project's 2-core machine against plain
//! segment files and per-event rows (BENCHMARKS.md, "Durable ingest"), SQLite
//! with one row per request keeps within reach of a bare append + fdatasync
//! while keeping crash-safe transactions and indexes for dead letters by time.
//!
//! Group commit: every operation is a command sent to the single writer thread.
//! The thread takes all commands that are waiting, runs them in one
//! transaction, commits once (one fsync, `synchronous = FULL`), and only then
//! answers every caller: an `append` is acknowledged only after the fsync that
//! made it durable. A failed commit answers every command of the group with the
//! error and rebuilds the writer's memory from what is on disk, taking back the
//! leases of the batches still in flight (as they were before the failed
//! group): those batches settle again (the worker retries a settle until it
//! succeeds), and their events are neither delivered twice nor left stuck.
//!
//! Deduplication ([`dedup`]) is checked in memory and persisted once per commit.
//!
//! Delivery first: appends wait in a queue of their own. Each transaction
//! takes every waiting delivery command (claims, settles, reads) first and then
//! at most [`MAX_APPENDS_PER_COMMIT`] appends, so a claim or a settle waits for
//! at most the commit under way and its own, however many appends are queued.
//!
//! Back-pressure: the append queue is bounded; an `append` that finds it full
//! fails with [`StoreError::Overloaded`] at once (ingest answers 503).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot, Notify};

mod chunk;
mod dedup;
mod queues;
mod sql;
#[cfg(test)]
mod tests;

use self::chunk::{Chunk, ChunkCache, StoredEvent};
use self::dedup::Dedup;
use self::queues::{Leased, Log, Queue};
use super::{
    now_ms, AppendReport, Claim, Coordination, DeadLetter, DeadLetters, Job, JobId, Millis,
    NewEvent, QueueStats, Queues, Reconfigure, Settle, Store, StoreError,
};
use crate::config::{DestinationConfig, Ordering};
use crate::route::{RouteSet, Router};

/// Appends that may wait for the writer before more are refused.
const QUEUE_CAPACITY: usize = 4_096;

/// Delivery commands that may wait (their callers wait for room, never refused).
const CONTROL_CAPACITY: usize = 4_096;

/// Most delivery commands in one transaction.
const MAX_COMMANDS_PER_COMMIT: usize = 512;

/// Most appends in one transaction.
const MAX_APPENDS_PER_COMMIT: usize = 256;

/// How often housekeeping (reclaiming chunks, pruning dedup keys) takes a step.
const HOUSEKEEPING_EVERY: Duration = Duration::from_millis(200);

/// Most chunks (or dedup rows) deleted in one housekeeping step, so that a large
/// prune never holds up a commit for long.
const HOUSEKEEPING_STEP: usize = 256;

/// Options of the embedded store.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedOptions {
    /// How long a `messageId` is remembered per source.
    pub dedup_window: Duration,
    /// How long delivered events stay in the log.
    pub retention: Duration,
    /// How long dead letters are kept (`None`: until purged or replayed).
    pub dead_letter_retention: Option<Duration>,
}

/// An event ready for the writer: routed and keyed on the caller's task.
struct Prepared {
    key: dedup::Key,
    event: StoredEvent,
}

/// A command for the writer thread, with where to send its answer.
enum Command {
    Append {
        source: String,
        events: Vec<Prepared>,
        reply: oneshot::Sender<Result<AppendReport, StoreError>>,
    },
    Claim {
        destination: String,
        max_events: usize,
        max_bytes: usize,
        now: Millis,
        reply: oneshot::Sender<Result<Vec<Job>, StoreError>>,
    },
    Settle(
        String,
        Vec<(JobId, Settle)>,
        oneshot::Sender<Result<(), StoreError>>,
    ),
    NextDue(String, oneshot::Sender<Result<Option<Millis>, StoreError>>),
    /// A reload: the destinations now (name, per-user ordering) and those
    /// retired; answered with the cursor ids of the destinations now, in order.
    /// Run between transactions ([`Writer::reconfigure`]).
    Reconfigure {
        current: Vec<(String, bool)>,
        retired: Vec<String>,
        reply: oneshot::Sender<Result<Vec<u32>, StoreError>>,
    },
    /// Queue the retained events of up to [`BACKFILL_STEP`] chunks received in
    /// `[since, until)` after chunk `after` for `destination` again (those its
    /// filter takes, as `rewrite` gives them), marked `context.is_backfill`; answered with how many,
    /// and the chunk to go on after (`None`: done).
    Backfill {
        destination: String,
        since: Millis,
        until: Millis,
        after: i64,
        rewrite: Rewrite,
        reply: oneshot::Sender<Result<(u64, Option<i64>), StoreError>>,
    },
    /// Delete a retired destination's queue ([`Writer::forget`]).
    Forget(String, oneshot::Sender<Result<u64, StoreError>>),
    Stats(String, oneshot::Sender<Result<QueueStats, StoreError>>),
    /// Every waiting retry of a destination made due now.
    RetryNow(String, oneshot::Sender<Result<u64, StoreError>>),
    DeadLetters {
        destination: String,
        since: Option<Millis>,
        until: Option<Millis>,
        reply: oneshot::Sender<Result<Vec<DeadLetter>, StoreError>>,
    },
    Replay {
        destination: String,
        since: Option<Millis>,
        until: Option<Millis>,
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
    DeadLetterPage {
        destination: String,
        since: Option<Millis>,
        until: Option<Millis>,
        after: Option<i64>,
        limit: usize,
        reply: oneshot::Sender<Result<Vec<DeadLetter>, StoreError>>,
    },
    Purge {
        destination: String,
        since: Option<Millis>,
        until: Option<Millis>,
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
    SetPaused(String, bool, oneshot::Sender<Result<(), StoreError>>),
    Paused(oneshot::Sender<Result<Vec<String>, StoreError>>),
    /// Tests: fail the transaction this command lands in, as a full disk would.
    #[cfg(test)]
    Fail(oneshot::Sender<Result<(), StoreError>>),
}

/// An event (its JSON) as a backfill delivers it, or `None` when the
/// destination's filter does not take it.
type Rewrite = Box<dyn Fn(&str) -> Option<String> + Send>;

/// Chunks a backfill reads in one transaction, so a long one never stalls ingest.
const BACKFILL_STEP: usize = 64;

/// The embedded store's handle; cheap to share behind an `Arc`.
pub struct EmbeddedStore {
    /// Delivery commands (claims, settles, reads) to the writer thread, served first.
    commands: mpsc::Sender<Command>,
    /// Appends to the writer thread.
    appends: mpsc::Sender<Command>,
    /// Decides each appended event's destinations (over the cursors' ids);
    /// replaced by a reload.
    router: arc_swap::ArcSwap<Router>,
    /// Per-destination wake-ups, notified after commits that add due work.
    wakeups: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
    /// The writer's commit figures and failures (`/metrics`, `/readyz`).
    commits: Arc<super::Commits>,
    /// Bytes of the log that retention keeps, counted by the writer.
    retained_bytes: Arc<std::sync::atomic::AtomicI64>,
    /// The database file (its size, and its WAL's, is the store's disk use).
    file: std::path::PathBuf,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmbeddedStore")
    }
}

/// Errors of opening the store.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The directory could not be created.
    #[error("cannot create store directory {path}")]
    Dir {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// SQLite refused.
    #[error("cannot open store {path}")]
    Sqlite {
        /// The database file.
        path: String,
        /// Why.
        source: rusqlite::Error,
    },
    /// The file holds the layout of an older version, with work still in it.
    #[error(
        "{path} was written by an older Switchyard (one job row per event and destination) \
         and still holds {jobs} queued jobs and {dead} dead letters; this version does not \
         convert them: drain them with the previous version (or move the directory away to \
         start empty), then start again"
    )]
    OldLayout {
        /// The database file.
        path: String,
        /// Jobs waiting there.
        jobs: i64,
        /// Dead letters kept there.
        dead: i64,
    },
}

impl EmbeddedStore {
    /// Open (or create) the store in directory `dir`, for these destinations.
    ///
    /// Each destination keeps its cursor across restarts (a new one starts at the
    /// end of the log); events that were in flight are delivered again.
    pub fn open(
        dir: &Path,
        options: &EmbeddedOptions,
        destinations: &[DestinationConfig],
    ) -> Result<EmbeddedStore, OpenError> {
        std::fs::create_dir_all(dir).map_err(|source| OpenError::Dir {
            path: dir.display().to_string(),
            source,
        })?;
        let file = dir.join("switchyard.sqlite3");
        let path = file.display().to_string();
        let sqlite = |source| OpenError::Sqlite {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&file).map_err(sqlite)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA foreign_keys = OFF;
             PRAGMA busy_timeout = 5000;
             PRAGMA cache_size = -65536;",
        )
        .map_err(sqlite)?;
        match sql::old_layout(&conn).map_err(sqlite)? {
            Some((jobs, dead)) if jobs > 0 || dead > 0 => {
                return Err(OpenError::OldLayout {
                    path: path.clone(),
                    jobs,
                    dead,
                })
            }
            Some(_) => {
                tracing::info!(file = %path, "store: dropping the empty tables of the old layout");
                sql::drop_old_layout(&conn).map_err(sqlite)?;
            }
            None => {}
        }
        conn.execute_batch(sql::SCHEMA).map_err(sqlite)?;
        sql::add_new_columns(&conn).map_err(sqlite)?;

        let plan: Vec<(String, bool)> = destinations
            .iter()
            .map(|d| (d.name.clone(), d.ordering == Ordering::User))
            .collect();
        let mut writer = Writer {
            conn,
            dedup: Dedup::new(options.dedup_window.as_millis() as i64),
            retention_ms: options.retention.as_millis() as i64,
            dead_letter_retention_ms: options
                .dead_letter_retention
                .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            plan,
            queues: Vec::new(),
            by_name: HashMap::new(),
            by_id: HashMap::new(),
            others_acked: Vec::new(),
            others: HashMap::new(),
            next_seq: 1,
            cache: ChunkCache::default(),
            index: BTreeMap::new(),
            wakeups: Default::default(),
            last_housekeeping: Instant::now(),
            retained_bytes: Arc::default(),
            counted_upto: 0,
            needs_reload: false,
            carry: None,
            commits: Arc::default(),
        };
        writer.load().map_err(sqlite)?;
        writer.load_dedup().map_err(sqlite)?;
        let ids: Vec<u32> = writer.queues.iter().map(|q| q.id).collect();
        let router = Router::new(destinations, &ids);
        let wakeups = writer.wakeups.clone();
        let commits = writer.commits.clone();
        let retained_bytes = writer.retained_bytes.clone();

        let (tx, rx) = mpsc::channel(CONTROL_CAPACITY);
        let (append_tx, append_rx) = mpsc::channel(QUEUE_CAPACITY);
        std::thread::Builder::new()
            .name("switchyard-store".into())
            .spawn(move || writer.run(rx, append_rx))
            .map_err(|source| OpenError::Dir {
                path: dir.display().to_string(),
                source,
            })?;
        Ok(EmbeddedStore {
            commands: tx,
            appends: append_tx,
            router: arc_swap::ArcSwap::from_pointee(router),
            wakeups,
            commits,
            retained_bytes,
            file,
        })
    }

    /// Tests: fail one transaction, as a full disk would.
    #[cfg(test)]
    pub(crate) async fn fail_a_commit(&self) {
        let _ = self.ask(Command::Fail).await;
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Command,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| StoreError::Unavailable("writer stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("writer stopped".into()))?
    }
}

#[async_trait::async_trait]
impl Queues for EmbeddedStore {
    async fn append(&self, events: Vec<NewEvent>) -> Result<AppendReport, StoreError> {
        let source = events.first().map(|e| e.source.clone()).unwrap_or_default();
        // Routing and keys are worked out here, on the caller's task, so the
        // writer thread does no per-destination work.
        let router = self.router.load();
        let events = events
            .into_iter()
            .map(|e| Prepared {
                key: dedup::key(&e.source, &e.message_id),
                event: StoredEvent {
                    routes: router.routes(&e.route),
                    message_id: e.message_id,
                    event_type: e.event_type,
                    user_key: e.user_key,
                    json: e.json,
                },
            })
            .collect();
        let (reply, answer) = oneshot::channel();
        self.appends
            .try_send(Command::Append {
                source,
                events,
                reply,
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => StoreError::Overloaded,
                mpsc::error::TrySendError::Closed(_) => {
                    StoreError::Unavailable("writer stopped".into())
                }
            })?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("writer stopped".into()))?
    }

    async fn claim(
        &self,
        destination: &str,
        claim: Claim,
        now: Millis,
    ) -> Result<Vec<Job>, StoreError> {
        let Claim {
            max_events,
            max_bytes,
            ..
        } = claim;
        // Per-user ordering is the destination's own setting, known since `open`.
        let destination = destination.to_string();
        self.ask(|reply| Command::Claim {
            destination,
            max_events,
            max_bytes,
            now,
            reply,
        })
        .await
    }

    async fn settle(
        &self,
        destination: &str,
        outcomes: Vec<(JobId, Settle)>,
    ) -> Result<(), StoreError> {
        let destination = destination.to_string();
        self.ask(|reply| Command::Settle(destination, outcomes, reply))
            .await
    }

    async fn next_due(&self, destination: &str) -> Result<Option<Millis>, StoreError> {
        let destination = destination.to_string();
        self.ask(|reply| Command::NextDue(destination, reply)).await
    }

    async fn stats(&self, destination: &str) -> Result<QueueStats, StoreError> {
        let destination = destination.to_string();
        self.ask(|reply| Command::Stats(destination, reply)).await
    }

    async fn retry_now(&self, destination: &str) -> Result<u64, StoreError> {
        let destination = destination.to_string();
        self.ask(|reply| Command::RetryNow(destination, reply))
            .await
    }

    fn wakeup(&self, destination: &str) -> Arc<Notify> {
        notify_of(&self.wakeups, destination)
    }

    fn filtered(&self, destination: &str) -> u64 {
        self.router.load().filtered(destination)
    }

    fn commits(&self) -> Arc<super::Commits> {
        self.commits.clone()
    }

    fn disk_usage(&self) -> Option<super::DiskUsage> {
        let size = |p: std::path::PathBuf| std::fs::metadata(p).map_or(0, |m| m.len());
        let wal = self.file.with_extension("sqlite3-wal");
        Some(super::DiskUsage {
            file_bytes: size(self.file.clone()) + size(wal),
            retained_bytes: self
                .retained_bytes
                .load(std::sync::atomic::Ordering::Relaxed)
                .max(0) as u64,
        })
    }

    async fn ready(&self) -> Result<(), StoreError> {
        if self.appends.is_closed() {
            return Err(StoreError::Unavailable("the writer stopped".into()));
        }
        match self.commits.failing() {
            Some(reason) => Err(StoreError::Unavailable(format!(
                "the last commit failed: {reason}"
            ))),
            None => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl DeadLetters for EmbeddedStore {
    async fn dead_letters(
        &self,
        destination: &str,
        since: Option<Millis>,
        until: Option<Millis>,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let destination = destination.to_string();
        self.ask(|reply| Command::DeadLetters {
            destination,
            since,
            until,
            reply,
        })
        .await
    }

    async fn replay(
        &self,
        destination: &str,
        since: Option<Millis>,
        until: Option<Millis>,
    ) -> Result<u64, StoreError> {
        let destination = destination.to_string();
        self.ask(|reply| Command::Replay {
            destination,
            since,
            until,
            reply,
        })
        .await
    }

    async fn dead_letter_page(
        &self,
        destination: &str,
        since: Option<Millis>,
        until: Option<Millis>,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let destination = destination.to_string();
        self.ask(|reply| Command::DeadLetterPage {
            destination,
            since,
            until,
            after,
            limit,
            reply,
        })
        .await
    }

    async fn purge(
        &self,
        destination: &str,
        since: Option<Millis>,
        until: Option<Millis>,
    ) -> Result<u64, StoreError> {
        let destination = destination.to_string();
        self.ask(|reply| Command::Purge {
            destination,
            since,
            until,
            reply,
        })
        .await
    }
}

#[async_trait::async_trait]
impl Coordination for EmbeddedStore {
    async fn set_paused(&self, destination: &str, paused: bool) -> Result<(), StoreError> {
        let destination = destination.to_string();
        self.ask(|reply| Command::SetPaused(destination, paused, reply))
            .await
    }

    async fn paused(&self) -> Result<HashSet<String>, StoreError> {
        Ok(self.ask(Command::Paused).await?.into_iter().collect())
    }

    async fn live_hosts(&self, _host: &str) -> Result<usize, StoreError> {
        // One process owns the embedded store.
        Ok(1)
    }
}

#[async_trait::async_trait]
impl Reconfigure for EmbeddedStore {
    async fn reconfigure(
        &self,
        destinations: &[DestinationConfig],
        retired: &[String],
    ) -> Result<(), StoreError> {
        let current: Vec<(String, bool)> = destinations
            .iter()
            .map(|d| (d.name.clone(), d.ordering == Ordering::User))
            .collect();
        let retired = retired.to_vec();
        // The queues exist before the router sends anything to them.
        let ids = self
            .ask(|reply| Command::Reconfigure {
                current,
                retired,
                reply,
            })
            .await?;
        let router = Router::new(destinations, &ids).carrying(&self.router.load());
        self.router.store(Arc::new(router));
        Ok(())
    }

    async fn backfill(
        &self,
        destination: &str,
        since: Millis,
        until: Millis,
    ) -> Result<u64, StoreError> {
        let router = self.router.load_full();
        let mut after = i64::MIN;
        let mut total = 0;
        loop {
            let (name, router) = (destination.to_string(), router.clone());
            let rewrite: Rewrite = Box::new(move |json| {
                let m: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(json).ok()?;
                router
                    .accepts(&name, &crate::route::RouteKeys::of(&m))
                    .then(|| mark_backfill(m))
            });
            let destination = destination.to_string();
            let (n, next) = self
                .ask(|reply| Command::Backfill {
                    destination,
                    since,
                    until,
                    after,
                    rewrite,
                    reply,
                })
                .await?;
            total += n;
            match next {
                Some(first) => after = first,
                None => return Ok(total),
            }
        }
    }

    async fn forget(&self, destination: &str) -> Result<u64, StoreError> {
        let destination = destination.to_string();
        self.ask(|reply| Command::Forget(destination, reply)).await
    }
}

impl Store for EmbeddedStore {
    fn reconfiguration(&self) -> Option<&dyn Reconfigure> {
        Some(self)
    }
}

fn notify_of(wakeups: &Mutex<HashMap<String, Arc<Notify>>>, destination: &str) -> Arc<Notify> {
    wakeups
        .lock()
        .expect("wakeups lock")
        .entry(destination.to_string())
        .or_default()
        .clone()
}

/// The thread that owns the connection and every cursor.
struct Writer {
    /// The only connection to the database.
    conn: Connection,
    /// `messageId`s seen within the window.
    dedup: Dedup,
    /// `[store] retention`, in ms.
    retention_ms: i64,
    /// `[store] dead_letter_retention`, in ms (`None`: kept until purged).
    dead_letter_retention_ms: Option<i64>,
    /// The configured destinations, in order: name, per-user ordering.
    plan: Vec<(String, bool)>,
    /// One queue per configured destination, in config order.
    queues: Vec<Queue>,
    /// Queue index by destination name.
    by_name: HashMap<String, usize>,
    /// Queue index by cursor id.
    by_id: HashMap<u32, usize>,
    /// Cursors of destinations no longer configured: their events are kept.
    others_acked: Vec<i64>,
    /// The same by name, with their cursor ids: for deleting one.
    others: HashMap<String, (u32, i64)>,
    /// The sequence number of the next appended event.
    next_seq: i64,
    /// Chunks read or written lately.
    cache: ChunkCache,
    /// `first → last` sequence number of the chunks seen, to find a seq's chunk in the cache.
    index: BTreeMap<i64, i64>,
    /// Who to wake after a commit.
    wakeups: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
    /// When housekeeping last took a step.
    last_housekeeping: Instant,
    /// Bytes of the chunks every cursor has passed, still kept (retention),
    /// counted in bounded steps by housekeeping; shared with the handle.
    retained_bytes: Arc<std::sync::atomic::AtomicI64>,
    /// The last sequence of the chunks counted in `retained_bytes`.
    counted_upto: i64,
    /// A failed commit's reload did not finish: no command runs until it does.
    needs_reload: bool,
    /// Commit figures and the last failure, shared with the store's handle.
    commits: Arc<super::Commits>,
    /// Leases of batches in flight at a failed commit, per destination, to take
    /// back into the queues once they are rebuilt from disk.
    carry: Option<HashMap<String, Carried>>,
}

/// What memory knew of a queue before a failed commit, to take back after
/// rebuilding it from disk ([`Queue::carry`]).
struct Carried {
    /// The leases of the batches in flight.
    leases: HashMap<i64, Leased>,
    /// Events settled ahead of the cursor ([`Queue::done_ahead`]).
    done_ahead: Vec<i64>,
}

/// What a transaction changed in the leases, to undo if it fails.
#[derive(Default)]
struct Undo {
    /// Leases it handed out (queue index, seq): their claims fail with it.
    claimed: Vec<(usize, i64)>,
    /// Leases its settles took away: the settles fail, and will be sent again.
    settled: Vec<(usize, i64, Leased)>,
}

/// An answer to send once the transaction has committed (`None`) or failed.
type Reply = Box<dyn FnOnce(Option<&StoreError>) + Send>;

fn sql_error(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("sqlite: {e}"))
}

impl Writer {
    /// (Re)build the cursors and queues from what is on disk. On an error the
    /// previous state is left as it was and `needs_reload` stays set.
    fn load(&mut self) -> rusqlite::Result<()> {
        self.needs_reload = true;
        let next_seq = sql::next_seq(&self.conn)?;
        let mut known: HashMap<String, (u32, i64)> = sql::cursors(&self.conn)?
            .into_iter()
            .map(|(id, name, acked)| (name, (id, acked)))
            .collect();
        let (mut queues, mut by_name, mut by_id) = (Vec::new(), HashMap::new(), HashMap::new());
        for (name, ordered) in self.plan.clone() {
            let (id, acked) = match known.remove(&name) {
                Some(c) => c,
                None => {
                    let acked = next_seq - 1;
                    (sql::insert_cursor(&self.conn, &name, acked)?, acked)
                }
            };
            let retries = sql::retries_of(&self.conn, id)?;
            let dead_ahead = sql::dead_seqs_after(&self.conn, id, acked)?;
            by_name.insert(name.clone(), queues.len());
            by_id.insert(id, queues.len());
            queues.push(Queue::new(id, name, acked, ordered, retries, dead_ahead));
        }
        let mut others_acked = Vec::new();
        let mut others = HashMap::new();
        for (name, (id, acked)) in &known {
            tracing::warn!(
                destination = name.as_str(),
                "store: a destination no longer in the config still has a cursor; \
                 the log is kept from where it stopped (DELETE /admin/destinations/{name} deletes it)"
            );
            others_acked.push(*acked);
            others.insert(name.clone(), (*id, *acked));
        }
        let previous = std::mem::replace(&mut self.queues, queues);
        if let Err(e) = self.count_unread() {
            self.queues = previous;
            return Err(e);
        }
        self.cache.clear();
        self.index.clear();
        self.next_seq = next_seq;
        self.by_name = by_name;
        self.by_id = by_id;
        self.others_acked = others_acked;
        self.others = others;
        if let Some(carry) = self.carry.take() {
            for q in &mut self.queues {
                if let Some(c) = carry.get(&q.name) {
                    q.carry(&c.leases, &c.done_ahead);
                }
            }
        }
        self.needs_reload = false;
        Ok(())
    }

    /// Each queue's unread events, from the chunks' route summaries (a chunk a
    /// cursor stops inside is decoded).
    fn count_unread(&mut self) -> rusqlite::Result<()> {
        let Some(low) = self.queues.iter().map(|q| q.acked).min() else {
            return Ok(());
        };
        for q in &mut self.queues {
            q.unread = 0;
        }
        for (first, n, summary) in sql::summaries_after(&self.conn, low)? {
            let last = first + n - 1;
            let summary = chunk::decode_summary(&summary);
            let mut decoded: Option<Arc<Chunk>> = None;
            for qi in 0..self.queues.len() {
                let (id, acked) = (self.queues[qi].id, self.queues[qi].acked);
                if last <= acked {
                    continue;
                }
                if first > acked {
                    self.queues[qi].unread += summary
                        .iter()
                        .filter(|(set, _)| set.contains(id))
                        .map(|(_, n)| u64::from(*n))
                        .sum::<u64>();
                    continue;
                }
                if decoded.is_none() {
                    decoded = sql::chunk_holding(&self.conn, first)?;
                }
                if let Some(c) = &decoded {
                    self.queues[qi].unread += c
                        .events
                        .iter()
                        .enumerate()
                        .filter(|(i, e)| first + *i as i64 > acked && e.routes.contains(id))
                        .count() as u64;
                }
            }
        }
        Ok(())
    }

    fn load_dedup(&mut self) -> rusqlite::Result<()> {
        let since = now_ms() - self.dedup.window_ms() * 2;
        for (at, keys) in sql::dedup_since(&self.conn, since)? {
            self.dedup.add(dedup::from_bytes(&keys), at);
        }
        self.dedup.expire(now_ms());
        Ok(())
    }

    /// Serve commands until both queues are closed: each transaction takes the
    /// waiting delivery commands first, then the waiting appends (each up to its cap).
    fn run(mut self, mut control: mpsc::Receiver<Command>, mut appends: mpsc::Receiver<Command>) {
        let waiter = match tokio::runtime::Builder::new_current_thread().build() {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!("store: cannot start the writer's waiter: {e}");
                return;
            }
        };
        let (mut control_open, mut appends_open) = (true, true);
        while control_open || appends_open {
            let first = waiter.block_on(async {
                tokio::select! {
                    biased;
                    c = control.recv(), if control_open => (c, true),
                    a = appends.recv(), if appends_open => (a, false),
                }
            });
            let mut batch = match first {
                (Some(cmd), _) => vec![cmd],
                (None, true) => {
                    control_open = false;
                    continue;
                }
                (None, false) => {
                    appends_open = false;
                    continue;
                }
            };
            while batch.len() < MAX_COMMANDS_PER_COMMIT {
                match control.try_recv() {
                    Ok(cmd) => batch.push(cmd),
                    Err(_) => break,
                }
            }
            let mut taken = 0;
            while taken < MAX_APPENDS_PER_COMMIT {
                match appends.try_recv() {
                    Ok(cmd) => {
                        batch.push(cmd);
                        taken += 1;
                    }
                    Err(_) => break,
                }
            }
            // A reload's commands run after the transaction of the others.
            let (changes, batch): (Vec<Command>, Vec<Command>) = batch
                .into_iter()
                .partition(|c| matches!(c, Command::Reconfigure { .. } | Command::Forget(..)));
            if !batch.is_empty() {
                self.commit(batch);
            }
            for change in changes {
                match change {
                    Command::Reconfigure {
                        current,
                        retired,
                        reply,
                    } => {
                        let _ = reply.send(self.reconfigure(current, &retired));
                    }
                    Command::Forget(name, reply) => {
                        let _ = reply.send(self.forget(&name));
                    }
                    _ => unreachable!("partitioned above"),
                }
            }
        }
    }

    /// Serve the queues of `current` and `retired` from now on: a new name gets
    /// a cursor at the end of the log (or its old one, if it had a queue
    /// before). The queues are rebuilt from disk, keeping the leases of the
    /// batches in flight, as after a failed commit.
    fn reconfigure(
        &mut self,
        current: Vec<(String, bool)>,
        retired: &[String],
    ) -> Result<Vec<u32>, StoreError> {
        if self.needs_reload {
            self.load().map_err(sql_error)?;
        }
        let mut plan = current.clone();
        for (name, ordered) in &self.plan {
            if retired.contains(name) && !plan.iter().any(|(n, _)| n == name) {
                plan.push((name.clone(), *ordered));
            }
        }
        let carried = self.carried_before(Undo::default()).map_err(sql_error)?;
        let before = std::mem::replace(&mut self.plan, plan);
        self.carry = Some(carried);
        if let Err(e) = self.load() {
            // The carried leases are still in `carry` when `load` fails before using them.
            self.plan = before;
            let retried = self.load();
            tracing::warn!("store: a reload's new queues could not be made: {e}");
            return Err(sql_error(retried.err().unwrap_or(e)));
        }
        for q in &self.queues {
            notify_of(&self.wakeups, &q.name).notify_one();
        }
        Ok(current
            .iter()
            .map(|(name, _)| self.queues[self.by_name[name]].id)
            .collect())
    }

    /// Delete the queue of `name` (not one the router routes to): its cursor,
    /// retries and dead letters. Returns how many events were still waiting.
    fn forget(&mut self, name: &str) -> Result<u64, StoreError> {
        if self.needs_reload {
            self.load().map_err(sql_error)?;
        }
        let Some(&qi) = self.by_name.get(name) else {
            // A queue kept from before a restart that no destination serves.
            let Some(&(id, acked)) = self.others.get(name) else {
                return Err(StoreError::Unavailable(format!("no queue named `{name}`")));
            };
            let carried = self.carried_before(Undo::default()).map_err(sql_error)?;
            sql::delete_cursor(&mut self.conn, id).map_err(sql_error)?;
            self.carry = Some(carried);
            self.load().map_err(sql_error)?;
            return Ok((self.next_seq - 1 - acked).max(0) as u64);
        };
        let q = &self.queues[qi];
        if !q.leases().is_empty() {
            return Err(StoreError::Unavailable(format!(
                "`{name}` has batches in flight: delete its queue once its delivery has stopped"
            )));
        }
        let waiting = q.queued();
        let id = q.id;
        // The other queues' batches in flight keep their leases across the rebuild.
        let carried = self.carried_before(Undo::default()).map_err(sql_error)?;
        sql::delete_cursor(&mut self.conn, id).map_err(sql_error)?;
        self.plan.retain(|(n, _)| n != name);
        self.carry = Some(carried);
        self.load().map_err(sql_error)?;
        for q in &self.queues {
            notify_of(&self.wakeups, &q.name).notify_one();
        }
        Ok(waiting)
    }

    /// Run a batch of commands in one transaction, then answer them all.
    fn commit(&mut self, batch: Vec<Command>) {
        if self.needs_reload {
            if let Err(e) = self.load() {
                // Dropping the commands answers each caller "unavailable".
                tracing::warn!("store: still cannot reload after a failed commit: {e}");
                drop(batch);
                std::thread::sleep(Duration::from_millis(100));
                return;
            }
        }
        let now = now_ms();
        let started = Instant::now();
        let appended: usize = batch
            .iter()
            .map(|c| match c {
                Command::Append { events, .. } => events.len(),
                _ => 0,
            })
            .sum();
        let mut replies: Vec<Reply> = Vec::with_capacity(batch.len());
        let mut woken: HashSet<usize> = HashSet::new();
        let mut staged: Vec<dedup::Key> = Vec::new();
        let mut undo = Undo::default();
        let result = self.run_batch(batch, now, &mut replies, &mut woken, &mut staged, &mut undo);
        match result {
            Ok(()) => {
                self.commits.succeeded(appended, started.elapsed());
                self.dedup.add(staged, now);
                for q in &mut self.queues {
                    q.committed = q.acked;
                }
                for reply in replies {
                    reply(None);
                }
                for qi in woken {
                    notify_of(&self.wakeups, &self.queues[qi].name).notify_one();
                }
            }
            Err(e) => {
                let failure = sql_error(e);
                tracing::warn!("store: commit failed: {failure}");
                if let StoreError::Unavailable(why) = &failure {
                    self.commits.failed(why);
                }
                for reply in replies {
                    reply(Some(&failure));
                }
                // Memory ran ahead of the rolled-back transaction: start again from
                // disk, keeping the leases of the batches still in flight (as they
                // were before this transaction), whose settles will come again.
                match self.carried_before(undo) {
                    Ok(carried) => self.carry = Some(carried),
                    Err(e) => tracing::warn!(
                        "store: cannot read what the batches in flight hold; \
                         their events will be delivered again: {e}"
                    ),
                }
                if let Err(e) = self.load() {
                    tracing::warn!("store: reloading after a failed commit failed: {e}");
                }
                for q in &self.queues {
                    notify_of(&self.wakeups, &q.name).notify_one();
                }
            }
        }
    }

    /// What the queues knew before the failed transaction that `undo` describes.
    fn carried_before(&mut self, undo: Undo) -> rusqlite::Result<HashMap<String, Carried>> {
        let mut leases: Vec<HashMap<i64, Leased>> =
            self.queues.iter().map(|q| q.leases()).collect();
        let mut undone: Vec<HashSet<i64>> = vec![HashSet::new(); self.queues.len()];
        for (qi, seq) in undo.claimed {
            leases[qi].remove(&seq);
            undone[qi].insert(seq);
        }
        for (qi, seq, lease) in undo.settled {
            leases[qi].insert(seq, lease);
            undone[qi].insert(seq);
        }
        let mut log = Log {
            conn: &self.conn,
            cache: &mut self.cache,
            index: &mut self.index,
            next_seq: self.next_seq,
        };
        let mut carried = HashMap::new();
        for ((q, leases), undone) in self.queues.iter().zip(leases).zip(undone) {
            let done_ahead = q.done_ahead(&mut log, &undone)?;
            carried.insert(q.name.clone(), Carried { leases, done_ahead });
        }
        Ok(carried)
    }

    fn run_batch(
        &mut self,
        batch: Vec<Command>,
        now: Millis,
        replies: &mut Vec<Reply>,
        woken: &mut HashSet<usize>,
        staged: &mut Vec<dedup::Key>,
        undo: &mut Undo,
    ) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        let mut staged_set = dedup::KeySet::default();
        let mut log = Log {
            conn: &tx,
            cache: &mut self.cache,
            index: &mut self.index,
            next_seq: self.next_seq,
        };
        for cmd in batch {
            let reply = run_command(
                cmd,
                &mut log,
                &mut self.queues,
                &self.by_name,
                &self.by_id,
                &self.dedup,
                &mut staged_set,
                staged,
                woken,
                undo,
                now,
            )?;
            replies.push(reply);
        }
        let next_seq = log.next_seq;
        if !staged.is_empty() {
            sql::insert_dedup(&tx, now, &dedup::to_bytes(staged))?;
        }
        for q in &mut self.queues {
            if q.dirty {
                sql::set_acked(&tx, q.id, q.acked)?;
                q.dirty = false;
            }
        }
        let mut usage = None;
        if self.last_housekeeping.elapsed() >= HOUSEKEEPING_EVERY {
            self.last_housekeeping = Instant::now();
            let upto = self
                .queues
                .iter()
                .map(|q| q.acked)
                .chain(self.others_acked.iter().copied())
                .min()
                .unwrap_or(self.next_seq - 1);
            // Count what became retained (in bounded steps), then prune.
            let (added, counted) =
                sql::passed_bytes(&tx, self.counted_upto, upto, HOUSEKEEPING_STEP)?;
            let counted = counted.unwrap_or(self.counted_upto);
            let mut removed = 0;
            for (first, last, bytes) in
                sql::reclaim(&tx, upto, now - self.retention_ms, HOUSEKEEPING_STEP)?
            {
                self.cache.remove(first);
                self.index.remove(&first);
                if last <= counted {
                    removed += bytes;
                }
            }
            usage = Some((added - removed, counted));
            let cutoff = self.dedup.expire(now);
            sql::prune_dedup(&tx, cutoff, HOUSEKEEPING_STEP)?;
            if let Some(keep) = self.dead_letter_retention_ms {
                sql::expire_dead(&tx, now - keep, HOUSEKEEPING_STEP)?;
            }
        }
        tx.commit()?;
        self.next_seq = next_seq;
        // Only what was committed is counted.
        if let Some((delta, counted)) = usage {
            self.retained_bytes
                .fetch_add(delta, std::sync::atomic::Ordering::Relaxed);
            self.counted_upto = counted;
        }
        Ok(())
    }
}

/// Run one command; return how to answer it after the commit. An error fails
/// the whole transaction.
#[allow(clippy::too_many_arguments)]
fn run_command(
    cmd: Command,
    log: &mut Log<'_>,
    queues: &mut [Queue],
    by_name: &HashMap<String, usize>,
    by_id: &HashMap<u32, usize>,
    dedup: &Dedup,
    staged_set: &mut dedup::KeySet,
    staged: &mut Vec<dedup::Key>,
    woken: &mut HashSet<usize>,
    undo: &mut Undo,
    now: Millis,
) -> rusqlite::Result<Reply> {
    fn answer<T: Send + 'static>(reply: oneshot::Sender<Result<T, StoreError>>, value: T) -> Reply {
        Box::new(move |failure| {
            let _ = reply.send(match failure {
                None => Ok(value),
                Some(e) => Err(StoreError::Unavailable(match e {
                    StoreError::Unavailable(m) => m.clone(),
                    other => other.to_string(),
                })),
            });
        })
    }
    Ok(match cmd {
        Command::Append {
            source,
            events,
            reply,
        } => {
            let mut report = AppendReport::default();
            let mut kept: Vec<StoredEvent> = Vec::new();
            for p in events {
                if dedup.seen(p.key, now) || !staged_set.insert(p.key) {
                    report.duplicates += 1;
                    continue;
                }
                staged.push(p.key);
                report.stored += 1;
                if !p.event.routes.is_empty() {
                    kept.push(p.event);
                }
            }
            if !kept.is_empty() {
                let chunk = Chunk {
                    first: log.next_seq,
                    received_at: now,
                    source: Arc::from(source.as_str()),
                    events: kept,
                };
                sql::insert_chunk(log.conn, &source, &chunk)?;
                log.next_seq += chunk.events.len() as i64;
                let mut counts: HashMap<&RouteSet, u64> = HashMap::new();
                for e in &chunk.events {
                    *counts.entry(&e.routes).or_default() += 1;
                }
                for (set, n) in counts {
                    for id in set.ids() {
                        if let Some(&qi) = by_id.get(&id) {
                            queues[qi].unread += n;
                            woken.insert(qi);
                        }
                    }
                }
                log.index.insert(chunk.first, chunk.last());
                log.cache.put(Arc::new(chunk));
            }
            answer(reply, report)
        }
        Command::Claim {
            destination,
            max_events,
            max_bytes,
            now,
            reply,
        } => {
            let jobs = match by_name.get(&destination) {
                Some(&qi) => {
                    let jobs = queues[qi].claim(log, max_events, max_bytes, now)?;
                    undo.claimed.extend(jobs.iter().map(|j| (qi, j.id)));
                    jobs
                }
                None => Vec::new(),
            };
            answer(reply, jobs)
        }
        Command::Settle(destination, outcomes, reply) => {
            if let Some(&qi) = by_name.get(&destination) {
                for (seq, _) in &outcomes {
                    if let Some(lease) = queues[qi].lease(*seq) {
                        undo.settled.push((qi, *seq, lease));
                    }
                }
                queues[qi].settle(log, &outcomes, now)?;
                woken.insert(qi);
            }
            answer(reply, ())
        }
        Command::NextDue(destination, reply) => {
            let due = by_name
                .get(&destination)
                .and_then(|&qi| queues[qi].next_due(now));
            answer(reply, due)
        }
        Command::Stats(destination, reply) => {
            let stats = match by_name.get(&destination) {
                Some(&qi) => QueueStats {
                    dead_letters: sql::dead_count(log.conn, queues[qi].id)?,
                    ..queues[qi].stats(log, now)?
                },
                None => QueueStats::default(),
            };
            answer(reply, stats)
        }
        Command::RetryNow(destination, reply) => {
            let moved = match by_name.get(&destination) {
                Some(&qi) => {
                    woken.insert(qi);
                    queues[qi].retry_now(log, now)?
                }
                None => 0,
            };
            answer(reply, moved)
        }
        Command::DeadLetters {
            destination,
            since,
            until,
            reply,
        } => {
            let list = match by_name.get(&destination) {
                Some(&qi) => {
                    sql::dead_letters(log.conn, queues[qi].id, &destination, since, until)?
                }
                None => Vec::new(),
            };
            answer(reply, list)
        }
        Command::SetPaused(destination, paused, reply) => {
            sql::set_paused(log.conn, &destination, paused)?;
            answer(reply, ())
        }
        Command::Paused(reply) => answer(reply, sql::paused(log.conn)?),
        // Taken out of the batch before its transaction (`Writer::run`).
        Command::Reconfigure { reply, .. } => {
            let _ = reply.send(Err(StoreError::Unavailable(
                "a reload ran in a transaction".into(),
            )));
            Box::new(|_| {})
        }
        Command::Forget(_, reply) => {
            let _ = reply.send(Err(StoreError::Unavailable(
                "a reload ran in a transaction".into(),
            )));
            Box::new(|_| {})
        }
        #[cfg(test)]
        Command::Fail(reply) => {
            drop(reply);
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
                None,
            ));
        }
        Command::Backfill {
            destination,
            since,
            until,
            after,
            rewrite,
            reply,
        } => {
            let Some(&qi) = by_name.get(&destination) else {
                return Ok(Box::new(move |_| {
                    let _ = reply.send(Err(StoreError::Unavailable(format!(
                        "no destination named `{destination}`"
                    ))));
                }));
            };
            let q = &mut queues[qi];
            let chunks =
                sql::chunks_received(log.conn, since, until, after, q.acked, BACKFILL_STEP)?;
            let next = (chunks.len() == BACKFILL_STEP)
                .then(|| chunks.last().map(|c| c.first))
                .flatten();
            let mut moved = Vec::new();
            for chunk in &chunks {
                for (i, e) in chunk.events.iter().enumerate() {
                    let seq = chunk.first + i as i64;
                    // Still ahead of the cursor, or waiting already: it will be delivered anyway.
                    if seq > q.acked || q.has_retry(seq) {
                        continue;
                    }
                    let Some(body) = rewrite(&e.json) else {
                        continue;
                    };
                    if sql::insert_backfill(log.conn, q.id, chunk, i, &body, now)? {
                        moved.push((seq, e.user_key.clone()));
                    }
                }
            }
            let n = moved.len() as u64;
            q.replayed(moved, now);
            woken.insert(qi);
            answer(reply, (n, next))
        }
        Command::Replay {
            destination,
            since,
            until,
            reply,
        } => {
            let moved = match by_name.get(&destination) {
                Some(&qi) => {
                    let moved = sql::replay(log.conn, queues[qi].id, since, until, now)?;
                    let n = moved.len() as u64;
                    queues[qi].replayed(moved, now);
                    woken.insert(qi);
                    n
                }
                None => 0,
            };
            answer(reply, moved)
        }
        Command::DeadLetterPage {
            destination,
            since,
            until,
            after,
            limit,
            reply,
        } => {
            let list = match by_name.get(&destination) {
                Some(&qi) => sql::dead_letter_page(
                    log.conn,
                    queues[qi].id,
                    &destination,
                    since,
                    until,
                    after,
                    limit,
                )?,
                None => Vec::new(),
            };
            answer(reply, list)
        }
        Command::Purge {
            destination,
            since,
            until,
            reply,
        } => {
            let purged = match by_name.get(&destination) {
                Some(&qi) => sql::purge_dead(log.conn, queues[qi].id, since, until)?,
                None => 0,
            };
            answer(reply, purged)
        }
    })
}

/// An event as a backfill delivers it: `context.is_backfill` set.
fn mark_backfill(mut m: serde_json::Map<String, serde_json::Value>) -> String {
    let context = m
        .entry("context")
        .or_insert_with(|| serde_json::Value::Object(Default::default()));
    if let serde_json::Value::Object(c) = context {
        c.insert("is_backfill".into(), serde_json::Value::Bool(true));
    }
    serde_json::Value::Object(m).to_string()
}
