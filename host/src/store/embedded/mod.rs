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
mod command;
mod dedup;
mod queues;
mod sql;
mod writer;

use self::command::{Command, Prepared, Rewrite};
use self::writer::Writer;
#[cfg(test)]
mod tests;

use self::chunk::{Chunk, ChunkCache, StoredEvent};
use self::dedup::Dedup;
use self::queues::{Leased, Log, Queue};
use super::{
    now_ms, AppendReport, Claim, Coordination, DeadLetter, DeadLetters, EraseStep, Job, JobId,
    Matches, Millis, NewEvent, QueueStats, Queues, Reconfigure, Regulations, Settle, Store,
    StoreError, StoredRegulation,
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

/// Chunks one step of a deletion reads and rewrites in one transaction, so a
/// deletion over a long log never holds up ingest for long.
const ERASE_STEP: usize = 256;

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
             PRAGMA cache_size = -65536;
             PRAGMA secure_delete = FAST;",
        )
        .map_err(sqlite)?;
        // A file made with `secure_delete` set never held deleted content in
        // its B-tree pages; an older one is vacuumed by its first deletion
        // (free pages are scrubbed by every deletion: `writer/erase.rs`).
        let fresh = !sql::has_table(&conn, "chunks").map_err(sqlite)?;
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
        if fresh {
            sql::mark_scrubbed(&conn).map_err(sqlite)?;
        }

        let plan: Vec<(String, bool)> = destinations
            .iter()
            .map(|d| (d.name.clone(), d.ordering == Ordering::User))
            .collect();
        let mut writer = Writer::new(conn, options, plan);
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
impl Regulations for EmbeddedStore {
    async fn subject_key(&self) -> Result<[u8; 16], StoreError> {
        self.ask(Command::SubjectKey).await
    }

    async fn add_regulation(&self, id: &str, document: &str) -> Result<u64, StoreError> {
        let (id, document) = (id.to_string(), document.to_string());
        self.ask(|reply| Command::AddRegulation(id, document, reply))
            .await
    }

    async fn regulation_ids(&self) -> Result<Vec<String>, StoreError> {
        self.ask(Command::RegulationIds).await
    }

    async fn regulation(&self, id: &str) -> Result<Option<StoredRegulation>, StoreError> {
        let id = id.to_string();
        self.ask(|reply| Command::Regulation(id, reply)).await
    }

    async fn status(&self, id: &str) -> Result<Option<String>, StoreError> {
        let id = id.to_string();
        self.ask(|reply| Command::RegulationStatus(id, reply)).await
    }

    async fn set_status(&self, id: &str, document: &str) -> Result<(), StoreError> {
        let (id, document) = (id.to_string(), document.to_string());
        self.ask(|reply| Command::SetRegulationStatus(id, document, reply))
            .await
    }

    async fn erase_status(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_string();
        self.ask(|reply| Command::EraseStatus(id, reply)).await
    }

    async fn erase_step(&self, matches: Matches, from: u64) -> Result<EraseStep, StoreError> {
        self.ask(|reply| Command::Erase {
            matches,
            from,
            reply,
        })
        .await
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
