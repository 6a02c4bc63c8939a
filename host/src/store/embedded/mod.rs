//! The embedded store: SQLite (WAL) in `[store] path`, owned by one thread.
//!
//! Why SQLite: one file, crash-safe transactions, secondary indexes for "due
//! jobs of destination D, oldest first" and "dead letters of D between T1 and T2",
//! and a mature fsync story. Measured on this project's 2-core machine
//! (`cargo run --release --example store_append`, see BENCHMARKS.md): a commit
//! with `synchronous = FULL` costs one fsync, so the append rate is set by how
//! many events share a commit, which is what the group commit below maximises.
//!
//! Group commit: every operation is a command sent to the single writer thread.
//! The thread takes all commands that are waiting, runs them in one
//! transaction (each inside its own savepoint, so one failing command does not
//! undo the others), commits once, and only then answers every caller. An
//! `append` is therefore acknowledged only after the fsync that made it durable,
//! and N concurrent requests cost one fsync, not N.
//!
//! Back-pressure: the command queue is bounded; an `append` that finds it full
//! fails with [`StoreError::Overloaded`] at once (ingest answers 503).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, Transaction};
use tokio::sync::{mpsc, oneshot, Notify};

mod sql;
#[cfg(test)]
mod tests;

use self::sql::{append, claim, dead_letters, replay, settle, stats, SCHEMA};
use super::{
    now_ms, AppendReport, DeadLetter, Job, JobId, Millis, NewEvent, QueueStats, Settle, Store,
    StoreError,
};

/// Commands that may wait for the writer before appends are refused.
const QUEUE_CAPACITY: usize = 4_096;

/// Most commands in one transaction.
const MAX_COMMANDS_PER_COMMIT: usize = 512;

/// How often expired dedup entries are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// A command for the writer thread, with where to send its answer.
enum Command {
    Append(
        Vec<NewEvent>,
        oneshot::Sender<Result<AppendReport, StoreError>>,
    ),
    Claim {
        destination: String,
        max_events: usize,
        max_bytes: usize,
        per_user_order: bool,
        now: Millis,
        reply: oneshot::Sender<Result<Vec<Job>, StoreError>>,
    },
    Settle(
        String,
        Vec<(JobId, Settle)>,
        oneshot::Sender<Result<(), StoreError>>,
    ),
    NextDue(String, oneshot::Sender<Result<Option<Millis>, StoreError>>),
    Stats(String, oneshot::Sender<Result<QueueStats, StoreError>>),
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
}

/// The embedded store's handle; cheap to share behind an `Arc`.
pub struct EmbeddedStore {
    /// Commands to the writer thread.
    commands: mpsc::Sender<Command>,
    /// Per-destination wake-ups, notified after commits that add due work.
    wakeups: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
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
        path: String,
        source: std::io::Error,
    },
    /// SQLite refused.
    #[error("cannot open store {path}")]
    Sqlite {
        path: String,
        source: rusqlite::Error,
    },
}

impl EmbeddedStore {
    /// Open (or create) the store in directory `dir`, with a dedup window.
    ///
    /// Jobs left leased by a previous process are released: at-least-once.
    pub fn open(dir: &Path, dedup_window: Duration) -> Result<EmbeddedStore, OpenError> {
        std::fs::create_dir_all(dir).map_err(|source| OpenError::Dir {
            path: dir.display().to_string(),
            source,
        })?;
        let file = dir.join("switchyard.sqlite3");
        let sqlite = |source| OpenError::Sqlite {
            path: file.display().to_string(),
            source,
        };
        let conn = Connection::open(&file).map_err(sqlite)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA foreign_keys = OFF;
             PRAGMA busy_timeout = 5000;",
        )
        .map_err(sqlite)?;
        conn.execute_batch(SCHEMA).map_err(sqlite)?;
        conn.execute("UPDATE jobs SET leased = 0 WHERE leased = 1", [])
            .map_err(sqlite)?;

        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let wakeups: Arc<Mutex<HashMap<String, Arc<Notify>>>> = Default::default();
        let writer = Writer {
            conn,
            dedup_window_ms: dedup_window.as_millis() as i64,
            wakeups: wakeups.clone(),
        };
        std::thread::Builder::new()
            .name("switchyard-store".into())
            .spawn(move || writer.run(rx))
            .map_err(|source| OpenError::Dir {
                path: dir.display().to_string(),
                source,
            })?;
        Ok(EmbeddedStore {
            commands: tx,
            wakeups,
        })
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
impl Store for EmbeddedStore {
    async fn append(&self, events: Vec<NewEvent>) -> Result<AppendReport, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .try_send(Command::Append(events, reply))
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
        max_events: usize,
        max_bytes: usize,
        per_user_order: bool,
        now: Millis,
    ) -> Result<Vec<Job>, StoreError> {
        let destination = destination.to_string();
        self.ask(|reply| Command::Claim {
            destination,
            max_events,
            max_bytes,
            per_user_order,
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

    fn wakeup(&self, destination: &str) -> Arc<Notify> {
        notify_of(&self.wakeups, destination)
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

/// The thread that owns the connection.
struct Writer {
    /// The only connection to the database.
    conn: Connection,
    /// Dedup window, in ms.
    dedup_window_ms: i64,
    /// Who to wake after a commit.
    wakeups: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
}

/// An answer to send once the transaction has committed.
type Reply = Box<dyn FnOnce(Option<StoreError>) + Send>;

fn sql(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("sqlite: {e}"))
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut last_prune = std::time::Instant::now();
        while let Some(first) = rx.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_COMMANDS_PER_COMMIT {
                match rx.try_recv() {
                    Ok(cmd) => batch.push(cmd),
                    Err(_) => break,
                }
            }
            self.commit(batch);
            if last_prune.elapsed() >= PRUNE_EVERY {
                last_prune = std::time::Instant::now();
                let cutoff = now_ms() - self.dedup_window_ms;
                if let Err(e) = self
                    .conn
                    .execute("DELETE FROM dedup WHERE seen_at < ?1", [cutoff])
                {
                    tracing::warn!("store: pruning dedup entries failed: {e}");
                }
            }
        }
    }

    /// Run a batch of commands in one transaction, then answer them all.
    fn commit(&mut self, batch: Vec<Command>) {
        let mut replies: Vec<Reply> = Vec::with_capacity(batch.len());
        let mut woken: Vec<String> = Vec::new();
        let window = self.dedup_window_ms;
        let result = (|| -> Result<(), rusqlite::Error> {
            let mut tx = self.conn.transaction()?;
            for cmd in batch {
                replies.push(run_command(&mut tx, cmd, window, &mut woken));
            }
            tx.commit()
        })();
        let failure = result.err().map(sql);
        for reply in replies {
            reply(
                failure
                    .as_ref()
                    .map(|e| StoreError::Unavailable(e.to_string())),
            );
        }
        if failure.is_none() {
            woken.sort();
            woken.dedup();
            for d in woken {
                notify_of(&self.wakeups, &d).notify_one();
            }
        }
    }
}

/// Run one command in its own savepoint; return how to answer it after the commit.
fn run_command(
    tx: &mut Transaction<'_>,
    cmd: Command,
    window: i64,
    woken: &mut Vec<String>,
) -> Reply {
    fn answer<T: Send + 'static>(
        reply: oneshot::Sender<Result<T, StoreError>>,
        result: Result<T, rusqlite::Error>,
    ) -> Reply {
        match result {
            Ok(v) => Box::new(move |failure| {
                let _ = reply.send(match failure {
                    None => Ok(v),
                    Some(e) => Err(e),
                });
            }),
            Err(e) => Box::new(move |_| {
                let _ = reply.send(Err(sql(e)));
            }),
        }
    }
    fn in_savepoint<T>(
        tx: &mut Transaction<'_>,
        f: impl FnOnce(&Connection) -> Result<T, rusqlite::Error>,
    ) -> Result<T, rusqlite::Error> {
        let sp = tx.savepoint()?;
        let value = f(&sp)?;
        sp.commit()?;
        Ok(value)
    }
    match cmd {
        Command::Append(events, reply) => {
            let mut dests = Vec::new();
            let result = in_savepoint(tx, |t| append(t, &events, window, &mut dests));
            if result.is_ok() {
                woken.extend(dests);
            }
            answer(reply, result)
        }
        Command::Claim {
            destination,
            max_events,
            max_bytes,
            per_user_order,
            now,
            reply,
        } => answer(
            reply,
            in_savepoint(tx, |t| {
                claim(t, &destination, max_events, max_bytes, per_user_order, now)
            }),
        ),
        Command::Settle(destination, outcomes, reply) => {
            let result = in_savepoint(tx, |t| settle(t, &destination, &outcomes));
            if result.is_ok() {
                woken.push(destination);
            }
            answer(reply, result)
        }
        Command::NextDue(destination, reply) => answer(
            reply,
            tx.query_row(
                "SELECT MIN(due_at) FROM jobs WHERE destination = ?1 AND leased = 0",
                [&destination],
                |r| r.get::<_, Option<i64>>(0),
            ),
        ),
        Command::Stats(destination, reply) => answer(reply, stats(tx, &destination)),
        Command::DeadLetters {
            destination,
            since,
            until,
            reply,
        } => answer(reply, dead_letters(tx, &destination, since, until)),
        Command::Replay {
            destination,
            since,
            until,
            reply,
        } => {
            let result = in_savepoint(tx, |t| replay(t, &destination, since, until));
            if result.is_ok() {
                woken.push(destination);
            }
            answer(reply, result)
        }
    }
}
