//! The embedded store's SQL: the schema, and one function per command, each run by
//! the writer thread inside the command's savepoint.

use rusqlite::{params, Connection, OptionalExtension};

use crate::store::{
    now_ms, AppendReport, DeadLetter, Job, JobId, Millis, NewEvent, QueueStats, Settle,
};

pub(super) const SCHEMA: &str = "
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

pub(super) fn append(
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

pub(super) fn claim(
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

pub(super) fn settle(
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

pub(super) fn stats(tx: &Connection, destination: &str) -> Result<QueueStats, rusqlite::Error> {
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

pub(super) fn dead_letters(
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

pub(super) fn replay(
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
