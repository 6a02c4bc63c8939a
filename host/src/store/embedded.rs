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

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use tokio::sync::{mpsc, oneshot, Notify};

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

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq         INTEGER PRIMARY KEY,
    source      TEXT    NOT NULL,
    message_id  TEXT    NOT NULL,
    type        TEXT    NOT NULL,
    user_key    TEXT,
    received_at INTEGER NOT NULL,
    body        TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id               INTEGER PRIMARY KEY,
    destination      TEXT    NOT NULL,
    event_seq        INTEGER NOT NULL REFERENCES events(seq),
    user_key         TEXT,
    due_at           INTEGER NOT NULL,
    leased           INTEGER NOT NULL DEFAULT 0,
    attempts         INTEGER NOT NULL DEFAULT 0,
    first_attempt_at INTEGER,
    last_attempt_at  INTEGER,
    last_error       TEXT
);
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (destination, leased, due_at, id);
CREATE INDEX IF NOT EXISTS jobs_event ON jobs (event_seq);
CREATE INDEX IF NOT EXISTS jobs_user ON jobs (destination, user_key, id);
CREATE TABLE IF NOT EXISTS dead_letters (
    id               INTEGER PRIMARY KEY,
    destination      TEXT    NOT NULL,
    event_seq        INTEGER NOT NULL REFERENCES events(seq),
    reason           TEXT    NOT NULL,
    attempts         INTEGER NOT NULL,
    first_attempt_at INTEGER NOT NULL,
    last_attempt_at  INTEGER NOT NULL,
    dead_at          INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_by_time ON dead_letters (destination, dead_at);
CREATE INDEX IF NOT EXISTS dead_letters_event ON dead_letters (event_seq);
CREATE TABLE IF NOT EXISTS dedup (
    source     TEXT    NOT NULL,
    message_id TEXT    NOT NULL,
    seen_at    INTEGER NOT NULL,
    PRIMARY KEY (source, message_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedup_by_time ON dedup (seen_at);
";

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

fn append(
    tx: &Connection,
    events: &[NewEvent],
    window: i64,
    woken: &mut Vec<String>,
) -> Result<AppendReport, rusqlite::Error> {
    let now = now_ms();
    let mut report = AppendReport::default();
    let mut seen =
        tx.prepare_cached("SELECT seen_at FROM dedup WHERE source = ?1 AND message_id = ?2")?;
    let mut remember = tx.prepare_cached(
        "INSERT INTO dedup (source, message_id, seen_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (source, message_id) DO UPDATE SET seen_at = excluded.seen_at",
    )?;
    let mut insert_event = tx.prepare_cached(
        "INSERT INTO events (source, message_id, type, user_key, received_at, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let mut insert_job = tx.prepare_cached(
        "INSERT INTO jobs (destination, event_seq, user_key, due_at) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for e in events {
        let previous: Option<i64> = seen
            .query_row(params![e.source, e.message_id], |r| r.get(0))
            .optional()?;
        if previous.is_some_and(|at| now - at < window) {
            report.duplicates += 1;
            continue;
        }
        remember.execute(params![e.source, e.message_id, now])?;
        report.stored += 1;
        if e.destinations.is_empty() {
            continue;
        }
        insert_event.execute(params![
            e.source,
            e.message_id,
            e.event_type,
            e.user_key,
            now,
            e.json
        ])?;
        let seq = tx.last_insert_rowid();
        for d in &e.destinations {
            insert_job.execute(params![d, seq, e.user_key, now])?;
            woken.push(d.clone());
        }
    }
    Ok(report)
}

fn claim(
    tx: &Connection,
    destination: &str,
    max_events: usize,
    max_bytes: usize,
    per_user_order: bool,
    now: Millis,
) -> Result<Vec<Job>, rusqlite::Error> {
    // With per-user order, a job waits while an earlier job of the same user is
    // in flight or not yet due; jobs are then taken in arrival order.
    let sql = if per_user_order {
        "SELECT j.id, e.message_id, e.type, e.body, j.attempts, j.first_attempt_at, e.received_at
         FROM jobs j JOIN events e ON e.seq = j.event_seq
         WHERE j.destination = ?1 AND j.leased = 0 AND j.due_at <= ?2
           AND NOT EXISTS (
               SELECT 1 FROM jobs p
               WHERE p.destination = j.destination AND p.user_key = j.user_key AND p.id < j.id
                 AND (p.leased = 1 OR p.due_at > ?2))
         ORDER BY j.id LIMIT ?3"
    } else {
        "SELECT j.id, e.message_id, e.type, e.body, j.attempts, j.first_attempt_at, e.received_at
         FROM jobs j JOIN events e ON e.seq = j.event_seq
         WHERE j.destination = ?1 AND j.leased = 0 AND j.due_at <= ?2
         ORDER BY j.due_at, j.id LIMIT ?3"
    };
    let mut select = tx.prepare_cached(sql)?;
    let mut rows = select.query(params![destination, now, max_events as i64])?;
    let mut jobs = Vec::new();
    let mut bytes = 0usize;
    while let Some(row) = rows.next()? {
        let json: String = row.get(3)?;
        if !jobs.is_empty() && bytes + json.len() > max_bytes {
            break;
        }
        bytes += json.len();
        let attempts: u32 = row.get(4)?;
        let first: Option<i64> = row.get(5)?;
        jobs.push(Job {
            id: row.get(0)?,
            message_id: row.get(1)?,
            event_type: row.get(2)?,
            json,
            attempts: attempts + 1,
            first_attempt_at: first.unwrap_or(now),
            queued_at: row.get(6)?,
        });
    }
    let mut lease = tx.prepare_cached(
        "UPDATE jobs SET leased = 1, attempts = attempts + 1, last_attempt_at = ?2,
                first_attempt_at = COALESCE(first_attempt_at, ?2)
         WHERE id = ?1",
    )?;
    for job in &jobs {
        lease.execute(params![job.id, now])?;
    }
    Ok(jobs)
}

fn settle(
    tx: &Connection,
    destination: &str,
    outcomes: &[(JobId, Settle)],
) -> Result<(), rusqlite::Error> {
    let now = now_ms();
    let mut event_of =
        tx.prepare_cached("SELECT event_seq FROM jobs WHERE id = ?1 AND destination = ?2")?;
    let mut delete_job = tx.prepare_cached("DELETE FROM jobs WHERE id = ?1")?;
    let mut retry = tx
        .prepare_cached("UPDATE jobs SET leased = 0, due_at = ?2, last_error = ?3 WHERE id = ?1")?;
    let mut dead = tx.prepare_cached(
        "INSERT INTO dead_letters (destination, event_seq, reason, attempts, first_attempt_at, last_attempt_at, dead_at)
         SELECT destination, event_seq, ?2, attempts, COALESCE(first_attempt_at, ?3), COALESCE(last_attempt_at, ?3), ?3
         FROM jobs WHERE id = ?1",
    )?;
    let mut gc = tx.prepare_cached(
        "DELETE FROM events WHERE seq = ?1
           AND NOT EXISTS (SELECT 1 FROM jobs WHERE event_seq = ?1)
           AND NOT EXISTS (SELECT 1 FROM dead_letters WHERE event_seq = ?1)",
    )?;
    for (id, outcome) in outcomes {
        let Some(seq) = event_of
            .query_row(params![id, destination], |r| r.get::<_, i64>(0))
            .optional()?
        else {
            continue;
        };
        match outcome {
            Settle::Done => {
                delete_job.execute([id])?;
                gc.execute([seq])?;
            }
            Settle::RetryAt { at, reason } => {
                retry.execute(params![id, at, reason])?;
            }
            Settle::Dead { reason } => {
                dead.execute(params![id, reason, now])?;
                delete_job.execute([id])?;
            }
        }
    }
    Ok(())
}

fn stats(tx: &Connection, destination: &str) -> Result<QueueStats, rusqlite::Error> {
    let (queued, in_flight) = tx.query_row(
        "SELECT COALESCE(SUM(leased = 0), 0), COALESCE(SUM(leased = 1), 0) FROM jobs WHERE destination = ?1",
        [destination],
        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
    )?;
    let dead: i64 = tx.query_row(
        "SELECT COUNT(*) FROM dead_letters WHERE destination = ?1",
        [destination],
        |r| r.get(0),
    )?;
    Ok(QueueStats {
        queued: queued as u64,
        in_flight: in_flight as u64,
        dead_letters: dead as u64,
    })
}

fn dead_letters(
    tx: &Connection,
    destination: &str,
    since: Option<Millis>,
    until: Option<Millis>,
) -> Result<Vec<DeadLetter>, rusqlite::Error> {
    let mut q = tx.prepare_cached(
        "SELECT d.id, d.destination, e.message_id, e.type, d.reason, d.attempts,
                d.first_attempt_at, d.last_attempt_at, d.dead_at, e.body
         FROM dead_letters d JOIN events e ON e.seq = d.event_seq
         WHERE d.destination = ?1 AND d.dead_at >= ?2 AND d.dead_at < ?3
         ORDER BY d.dead_at, d.id",
    )?;
    let rows = q.query_map(
        params![
            destination,
            since.unwrap_or(i64::MIN),
            until.unwrap_or(i64::MAX)
        ],
        |r| {
            Ok(DeadLetter {
                id: r.get(0)?,
                destination: r.get(1)?,
                message_id: r.get(2)?,
                event_type: r.get(3)?,
                reason: r.get(4)?,
                attempts: r.get(5)?,
                first_attempt_at: r.get(6)?,
                last_attempt_at: r.get(7)?,
                dead_at: r.get(8)?,
                event_json: r.get(9)?,
            })
        },
    )?;
    rows.collect()
}

fn replay(
    tx: &Connection,
    destination: &str,
    since: Option<Millis>,
    until: Option<Millis>,
) -> Result<u64, rusqlite::Error> {
    let now = now_ms();
    let range = params![
        destination,
        since.unwrap_or(i64::MIN),
        until.unwrap_or(i64::MAX),
        now
    ];
    tx.execute(
        "INSERT INTO jobs (destination, event_seq, user_key, due_at)
         SELECT d.destination, d.event_seq, e.user_key, ?4
         FROM dead_letters d JOIN events e ON e.seq = d.event_seq
         WHERE d.destination = ?1 AND d.dead_at >= ?2 AND d.dead_at < ?3
         ORDER BY d.event_seq",
        range,
    )?;
    let moved = tx.execute(
        "DELETE FROM dead_letters WHERE destination = ?1 AND dead_at >= ?2 AND dead_at < ?3 AND ?4 = ?4",
        range,
    )?;
    Ok(moved as u64)
}

// The store contract (cursors, settle, dead letters, replay, dedup) is tested on both
// backends by tests/store.rs; these are the embedded store's own cases.
#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, dests: &[&str]) -> NewEvent {
        NewEvent {
            source: "web".into(),
            message_id: id.into(),
            event_type: "track".into(),
            user_key: Some("u1".into()),
            json: format!(r#"{{"messageId":"{id}"}}"#),
            destinations: dests.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[tokio::test]
    async fn leases_are_released_on_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = EmbeddedStore::open(dir.path(), Duration::from_secs(3600)).unwrap();
            store.append(vec![event("a", &["x"])]).await.unwrap();
            assert_eq!(
                store
                    .claim("x", 10, 1 << 20, false, now_ms())
                    .await
                    .unwrap()
                    .len(),
                1
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let store = EmbeddedStore::open(dir.path(), Duration::from_secs(3600)).unwrap();
        assert_eq!(
            store
                .claim("x", 10, 1 << 20, false, now_ms())
                .await
                .unwrap()
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn per_user_order_holds_a_user_behind_its_unsettled_event() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), Duration::from_secs(3600)).unwrap();
        let mut b = event("b1", &["x"]);
        b.user_key = Some("u2".into());
        store
            .append(vec![event("a1", &["x"]), event("a2", &["x"]), b])
            .await
            .unwrap();
        let now = now_ms();
        let first = store.claim("x", 1, 1 << 20, true, now).await.unwrap();
        assert_eq!(first[0].message_id, "a1");
        // a1 is in flight: a2 waits, b1 (another user) flows.
        let next = store.claim("x", 10, 1 << 20, true, now).await.unwrap();
        assert_eq!(
            next.iter()
                .map(|j| j.message_id.as_str())
                .collect::<Vec<_>>(),
            ["b1"]
        );
        let retry = Settle::RetryAt {
            at: now + 60_000,
            reason: "429".into(),
        };
        store.settle("x", vec![(first[0].id, retry)]).await.unwrap();
        assert!(
            store
                .claim("x", 10, 1 << 20, true, now)
                .await
                .unwrap()
                .is_empty(),
            "a2 waits behind a1's retry"
        );
        let later = store
            .claim("x", 10, 1 << 20, true, now + 60_000)
            .await
            .unwrap();
        assert_eq!(
            later
                .iter()
                .map(|j| j.message_id.as_str())
                .collect::<Vec<_>>(),
            ["a1", "a2"]
        );
    }

    #[tokio::test]
    async fn claim_respects_max_bytes_but_returns_at_least_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), Duration::from_secs(3600)).unwrap();
        store
            .append(vec![event("a", &["x"]), event("b", &["x"])])
            .await
            .unwrap();
        assert_eq!(
            store
                .claim("x", 10, 1, false, now_ms())
                .await
                .unwrap()
                .len(),
            1
        );
    }
}
