//! The embedded store's SQL: the schema, and one function per statement the
//! writer runs. Everything here runs on the writer thread, inside its
//! transaction.

use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension};

use super::chunk::{self, Chunk};
use crate::event_type::EventType;
use crate::store::{DeadLetter, Millis};

/// The log, the cursors, and the rows for what is not plain progress.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS chunks (
    first       INTEGER PRIMARY KEY,
    n           INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    source      TEXT    NOT NULL,
    summary     BLOB    NOT NULL,
    body        BLOB    NOT NULL
);
CREATE TABLE IF NOT EXISTS cursors (
    id    INTEGER PRIMARY KEY,
    name  TEXT    NOT NULL UNIQUE,
    acked INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS retries (
    dest             INTEGER NOT NULL,
    seq              INTEGER NOT NULL,
    message_id       TEXT    NOT NULL,
    type             TEXT    NOT NULL,
    user_key         TEXT,
    received_at      INTEGER NOT NULL,
    body             TEXT    NOT NULL,
    due_at           INTEGER NOT NULL,
    attempts         INTEGER NOT NULL,
    first_attempt_at INTEGER,
    last_error       TEXT,
    source           TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (dest, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dead_events (
    id               INTEGER PRIMARY KEY,
    dest             INTEGER NOT NULL,
    seq              INTEGER NOT NULL,
    message_id       TEXT    NOT NULL,
    type             TEXT    NOT NULL,
    user_key         TEXT,
    received_at      INTEGER NOT NULL,
    body             TEXT    NOT NULL,
    reason           TEXT    NOT NULL,
    attempts         INTEGER NOT NULL,
    first_attempt_at INTEGER NOT NULL,
    last_attempt_at  INTEGER NOT NULL,
    dead_at          INTEGER NOT NULL,
    source           TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS dead_events_by_time ON dead_events (dest, dead_at);
CREATE INDEX IF NOT EXISTS dead_events_by_age ON dead_events (dead_at);
CREATE TABLE IF NOT EXISTS dedup_keys (
    id   INTEGER PRIMARY KEY,
    at   INTEGER NOT NULL,
    keys BLOB    NOT NULL
);
CREATE TABLE IF NOT EXISTS regulations (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    id       TEXT    NOT NULL UNIQUE,
    document TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS subject_key (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    key BLOB    NOT NULL
);
CREATE TABLE IF NOT EXISTS regulation_status (
    id       TEXT PRIMARY KEY,
    document TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS zeros (
    id   INTEGER PRIMARY KEY,
    fill BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS scrubbed (
    one INTEGER PRIMARY KEY CHECK (one = 1)
);
CREATE TABLE IF NOT EXISTS paused (
    destination TEXT PRIMARY KEY
) WITHOUT ROWID;
";

/// What a store of the old layout (one job row per event and destination) holds,
/// if `conn` is one: `(jobs, dead letters)`.
pub(super) fn old_layout(conn: &Connection) -> rusqlite::Result<Option<(i64, i64)>> {
    let has_jobs: bool = conn.query_row(
        "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'jobs'",
        [],
        |r| r.get(0),
    )?;
    if !has_jobs {
        return Ok(None);
    }
    let jobs = conn.query_row("SELECT COUNT(*) FROM jobs", [], |r| r.get(0))?;
    let dead = conn
        .query_row("SELECT COUNT(*) FROM dead_letters", [], |r| r.get(0))
        .unwrap_or(0);
    Ok(Some((jobs, dead)))
}

/// Add the columns later versions added to tables an earlier one created
/// (`CREATE TABLE IF NOT EXISTS` leaves an existing table as it is).
pub(super) fn add_new_columns(conn: &Connection) -> rusqlite::Result<()> {
    for table in ["retries", "dead_events"] {
        let has_source: bool = conn.query_row(
            &format!("SELECT COUNT(*) > 0 FROM pragma_table_info('{table}') WHERE name = 'source'"),
            [],
            |r| r.get(0),
        )?;
        if !has_source {
            conn.execute_batch(&format!(
                "ALTER TABLE {table} ADD COLUMN source TEXT NOT NULL DEFAULT ''"
            ))?;
        }
    }
    Ok(())
}

/// Drop the empty tables of the old layout.
pub(super) fn drop_old_layout(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "DROP TABLE IF EXISTS jobs; DROP TABLE IF EXISTS events;
         DROP TABLE IF EXISTS dead_letters; DROP TABLE IF EXISTS dedup;",
    )
}

/// Insert a chunk.
pub(super) fn insert_chunk(conn: &Connection, source: &str, chunk: &Chunk) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO chunks (first, n, received_at, source, summary, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        chunk.first,
        chunk.events.len() as i64,
        chunk.received_at,
        source,
        chunk::encode_summary(&chunk.events),
        chunk::encode_body(&chunk.events)
    ])?;
    Ok(())
}

/// The chunk holding `seq`, if it is still in the log.
pub(super) fn chunk_holding(conn: &Connection, seq: i64) -> rusqlite::Result<Option<Arc<Chunk>>> {
    let row = conn
        .prepare_cached(
            "SELECT first, n, received_at, body, source FROM chunks
             WHERE first <= ?1 ORDER BY first DESC LIMIT 1",
        )?
        .query_row([seq], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Vec<u8>>(3)?,
                r.get::<_, String>(4)?,
            ))
        })
        .optional()?;
    let Some((first, n, received_at, body, source)) = row else {
        return Ok(None);
    };
    if seq >= first + n {
        return Ok(None);
    }
    let mut chunk = chunk::decode(first, received_at, &body)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    chunk.source = Arc::from(source);
    Ok(Some(Arc::new(chunk)))
}

/// The next sequence number after the log's last event, from the chunks and
/// the cursors (which remember progress past chunks already reclaimed).
pub(super) fn next_seq(conn: &Connection) -> rusqlite::Result<i64> {
    let chunks: i64 =
        conn.query_row("SELECT COALESCE(MAX(first + n), 1) FROM chunks", [], |r| {
            r.get(0)
        })?;
    let cursors: i64 =
        conn.query_row("SELECT COALESCE(MAX(acked) + 1, 1) FROM cursors", [], |r| {
            r.get(0)
        })?;
    Ok(chunks.max(cursors))
}

/// Route summaries of the chunks ending after `after`: `(first, n, summary)`.
pub(super) fn summaries_after(
    conn: &Connection,
    after: i64,
) -> rusqlite::Result<Vec<(i64, i64, Vec<u8>)>> {
    let mut q = conn.prepare_cached(
        "SELECT first, n, summary FROM chunks WHERE first + n - 1 > ?1 ORDER BY first",
    )?;
    let rows = q.query_map([after], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    rows.collect()
}

/// Every cursor: `(id, name, acked)`.
pub(super) fn cursors(conn: &Connection) -> rusqlite::Result<Vec<(u32, String, i64)>> {
    let mut q = conn.prepare_cached("SELECT id, name, acked FROM cursors ORDER BY id")?;
    let rows = q.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    rows.collect()
}

/// A new cursor at `acked`; returns its id.
pub(super) fn insert_cursor(conn: &Connection, name: &str, acked: i64) -> rusqlite::Result<u32> {
    conn.execute(
        "INSERT INTO cursors (name, acked) VALUES (?1, ?2)",
        params![name, acked],
    )?;
    Ok(conn.last_insert_rowid() as u32)
}

/// Record that an operator paused (or resumed) `destination`.
pub(super) fn set_paused(
    conn: &Connection,
    destination: &str,
    paused: bool,
) -> rusqlite::Result<()> {
    let sql = if paused {
        "INSERT OR IGNORE INTO paused (destination) VALUES (?1)"
    } else {
        "DELETE FROM paused WHERE destination = ?1"
    };
    conn.prepare_cached(sql)?.execute(params![destination])?;
    Ok(())
}

/// The key regulations hash subjects with, made on first use.
pub(super) fn subject_key(conn: &Connection) -> rusqlite::Result<[u8; 16]> {
    let fresh: [u8; 16] = rand::random();
    conn.execute(
        "INSERT OR IGNORE INTO subject_key (one, key) VALUES (1, ?1)",
        params![&fresh[..]],
    )?;
    let key: Vec<u8> = conn.query_row("SELECT key FROM subject_key WHERE one = 1", [], |r| {
        r.get(0)
    })?;
    key.try_into().map_err(|_| {
        rusqlite::Error::InvalidColumnType(0, "key".into(), rusqlite::types::Type::Blob)
    })
}

/// Record a new regulation; its sequence number is its place in the order.
pub(super) fn add_regulation(conn: &Connection, id: &str, document: &str) -> rusqlite::Result<u64> {
    conn.prepare_cached("INSERT INTO regulations (id, document) VALUES (?1, ?2)")?
        .execute(params![id, document])?;
    Ok(conn.last_insert_rowid() as u64)
}

/// The ids of every regulation.
pub(super) fn regulation_ids(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached("SELECT id FROM regulations")?;
    let ids = stmt.query_map([], |r| r.get(0))?.collect();
    ids
}

/// One regulation: its document and sequence number.
pub(super) fn regulation(
    conn: &Connection,
    id: &str,
) -> rusqlite::Result<Option<crate::store::StoredRegulation>> {
    conn.prepare_cached("SELECT document, seq FROM regulations WHERE id = ?1")?
        .query_row(params![id], |r| {
            Ok(crate::store::StoredRegulation {
                document: r.get(0)?,
                order: r.get::<_, i64>(1)? as u64,
            })
        })
        .optional()
}

/// Where regulation `id` stands, if recorded.
pub(super) fn regulation_status(conn: &Connection, id: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT document FROM regulation_status WHERE id = ?1")?
        .query_row(params![id], |r| r.get(0))
        .optional()
}

/// Record where regulation `id` stands.
pub(super) fn set_regulation_status(
    conn: &Connection,
    id: &str,
    document: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT OR REPLACE INTO regulation_status (id, document) VALUES (?1, ?2)")?
        .execute(params![id, document])?;
    Ok(())
}

/// Delete the status row `id`.
pub(super) fn delete_regulation_status(conn: &Connection, id: &str) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM regulation_status WHERE id = ?1", params![id])?;
    Ok(())
}

/// Whether a table of this store exists yet (`false`: the file is new).
pub(super) fn has_table(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get(0),
    )
}

/// Whether the file holds no deleted content left from before
/// `secure_delete` was on (see [`mark_scrubbed`]).
pub(super) fn is_scrubbed(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row("SELECT COUNT(*) > 0 FROM scrubbed", [], |r| r.get(0))
}

/// Say that every deleted byte of the file was overwritten: it was made with
/// `secure_delete` on, or vacuumed since.
pub(super) fn mark_scrubbed(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute("INSERT OR IGNORE INTO scrubbed (one) VALUES (1)", [])?;
    Ok(())
}

/// Bytes of the file's free pages.
pub(super) fn free_bytes(conn: &Connection) -> rusqlite::Result<i64> {
    let pages: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    Ok(pages * size)
}

/// A row of `bytes` zeros: its pages are taken from the free ones first, and
/// written as zeros.
pub(super) fn write_zeros(conn: &Connection, bytes: i64) -> rusqlite::Result<()> {
    conn.execute("INSERT INTO zeros (fill) VALUES (zeroblob(?1))", [bytes])?;
    Ok(())
}

/// Delete the rows of zeros (their pages are free again, and zero).
pub(super) fn drop_zeros(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM zeros", [])?;
    Ok(())
}

/// Up to `limit` chunks that start after `after`, in order, each with its
/// bytes on disk.
pub(super) fn chunks_after(
    conn: &Connection,
    after: i64,
    limit: usize,
) -> rusqlite::Result<Vec<(Chunk, i64)>> {
    let mut q = conn.prepare_cached(
        "SELECT first, received_at, body, source, length(summary) + length(body) FROM chunks
         WHERE first > ?1 ORDER BY first LIMIT ?2",
    )?;
    let rows = q.query_map(params![after, limit as i64], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, Vec<u8>>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, i64>(4)?,
        ))
    })?;
    let mut chunks = Vec::new();
    for row in rows {
        let (first, received_at, body, source, bytes) = row?;
        let mut chunk = chunk::decode(first, received_at, &body)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        chunk.source = Arc::from(source);
        chunks.push((chunk, bytes));
    }
    Ok(chunks)
}

/// Write `chunk` again over its row (a deletion erased some of its events);
/// returns its new size.
pub(super) fn rewrite_chunk(conn: &Connection, chunk: &Chunk) -> rusqlite::Result<i64> {
    let (summary, body) = (
        chunk::encode_summary(&chunk.events),
        chunk::encode_body(&chunk.events),
    );
    let size = (summary.len() + body.len()) as i64;
    conn.prepare_cached("UPDATE chunks SET summary = ?2, body = ?3 WHERE first = ?1")?
        .execute(params![chunk.first, summary, body])?;
    Ok(size)
}

/// Delete the retry rows and the dead letters whose event `matches` takes
/// (asked with its source and JSON): how many of each.
pub(super) fn erase_rows(
    conn: &Connection,
    matches: &dyn Fn(&str, &str) -> bool,
) -> rusqlite::Result<(u64, u64)> {
    let mut hit = Vec::new();
    {
        let mut q = conn.prepare_cached("SELECT dest, seq, source, body FROM retries")?;
        let mut rows = q.query([])?;
        while let Some(r) = rows.next()? {
            let (source, body): (String, String) = (r.get(2)?, r.get(3)?);
            if matches(&source, &body) {
                hit.push((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?));
            }
        }
    }
    for (dest, seq) in &hit {
        conn.prepare_cached("DELETE FROM retries WHERE dest = ?1 AND seq = ?2")?
            .execute(params![dest, seq])?;
    }
    let mut dead = Vec::new();
    {
        let mut q = conn.prepare_cached("SELECT id, source, body FROM dead_events")?;
        let mut rows = q.query([])?;
        while let Some(r) = rows.next()? {
            let (source, body): (String, String) = (r.get(1)?, r.get(2)?);
            if matches(&source, &body) {
                dead.push(r.get::<_, i64>(0)?);
            }
        }
    }
    for id in &dead {
        conn.prepare_cached("DELETE FROM dead_events WHERE id = ?1")?
            .execute(params![id])?;
    }
    Ok((hit.len() as u64, dead.len() as u64))
}

/// The destinations an operator paused.
pub(super) fn paused(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached("SELECT destination FROM paused")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    rows.collect()
}

/// Move a cursor.
pub(super) fn set_acked(conn: &Connection, id: u32, acked: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE cursors SET acked = ?2 WHERE id = ?1")?
        .execute(params![id, acked])?;
    Ok(())
}

/// A retry row as the writer keeps it in memory (the body stays on disk).
#[derive(Debug, Clone)]
pub(super) struct RetryMeta {
    /// Sequence number of the event.
    pub seq: i64,
    /// `userId` or `anonymousId`.
    pub user_key: Option<String>,
    /// When it is due.
    pub due_at: Millis,
    /// Attempts made.
    pub attempts: u32,
    /// First attempt, if any was made (a replayed dead letter starts afresh).
    pub first_attempt_at: Option<Millis>,
}

/// The retry rows of a destination.
pub(super) fn retries_of(conn: &Connection, dest: u32) -> rusqlite::Result<Vec<RetryMeta>> {
    let mut q = conn.prepare_cached(
        "SELECT seq, user_key, due_at, attempts, first_attempt_at FROM retries WHERE dest = ?1",
    )?;
    let rows = q.query_map([dest], |r| {
        Ok(RetryMeta {
            seq: r.get(0)?,
            user_key: r.get(1)?,
            due_at: r.get(2)?,
            attempts: r.get(3)?,
            first_attempt_at: r.get(4)?,
        })
    })?;
    rows.collect()
}

/// Sequence numbers of a destination's dead letters above `after`.
pub(super) fn dead_seqs_after(
    conn: &Connection,
    dest: u32,
    after: i64,
) -> rusqlite::Result<Vec<i64>> {
    let mut q = conn.prepare_cached("SELECT seq FROM dead_events WHERE dest = ?1 AND seq > ?2")?;
    let rows = q.query_map(params![dest, after], |r| r.get(0))?;
    rows.collect()
}

/// A `type` column: one of the six, or the row is not one this store wrote.
impl rusqlite::types::FromSql for EventType {
    fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        let text = v.as_str()?;
        EventType::parse(text).ok_or_else(|| {
            rusqlite::types::FromSqlError::Other(
                format!("`{text}` is not a Segment event type").into(),
            )
        })
    }
}

/// A retried event, as its retry row keeps it.
pub(super) fn retry_event(
    conn: &Connection,
    dest: u32,
    seq: i64,
) -> rusqlite::Result<Option<RetryEvent>> {
    conn.prepare_cached(
        "SELECT message_id, type, body, received_at, source FROM retries
         WHERE dest = ?1 AND seq = ?2",
    )?
    .query_row(params![dest, seq], |r| {
        Ok(RetryEvent {
            message_id: r.get(0)?,
            event_type: r.get(1)?,
            json: r.get(2)?,
            received_at: r.get(3)?,
            source: r.get(4)?,
        })
    })
    .optional()
}

/// An event to copy into a retry or dead-letter row.
pub(super) struct EventCopy<'a> {
    pub seq: i64,
    pub message_id: &'a str,
    pub event_type: &'a str,
    pub user_key: Option<&'a str>,
    pub received_at: Millis,
    pub body: &'a str,
    pub source: &'a str,
}

/// An event as its retry row keeps it.
pub(super) struct RetryEvent {
    pub message_id: String,
    pub event_type: EventType,
    pub json: String,
    pub received_at: Millis,
    pub source: String,
}

/// A fresh event's first retry row.
pub(super) fn insert_retry(
    conn: &Connection,
    dest: u32,
    e: &EventCopy<'_>,
    due_at: Millis,
    attempts: u32,
    first_attempt_at: Millis,
    error: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO retries
           (dest, seq, message_id, type, user_key, received_at, body, due_at, attempts,
            first_attempt_at, last_error, source)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        dest,
        e.seq,
        e.message_id,
        e.event_type,
        e.user_key,
        e.received_at,
        e.body,
        due_at,
        attempts,
        first_attempt_at,
        error,
        e.source
    ])?;
    Ok(())
}

/// A retry row tried again.
pub(super) fn update_retry(
    conn: &Connection,
    dest: u32,
    seq: i64,
    due_at: Millis,
    attempts: u32,
    first_attempt_at: Millis,
    error: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE retries SET due_at = ?3, attempts = ?4, first_attempt_at = ?5, last_error = ?6
         WHERE dest = ?1 AND seq = ?2",
    )?
    .execute(params![
        dest,
        seq,
        due_at,
        attempts,
        first_attempt_at,
        error
    ])?;
    Ok(())
}

/// Every retry row of `dest` due after `now` made due at `now`.
pub(super) fn retries_due_by(conn: &Connection, dest: u32, now: Millis) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE retries SET due_at = ?2 WHERE dest = ?1 AND due_at > ?2")?
        .execute(params![dest, now])?;
    Ok(())
}

/// A retry row settled for good.
pub(super) fn delete_retry(conn: &Connection, dest: u32, seq: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM retries WHERE dest = ?1 AND seq = ?2")?
        .execute(params![dest, seq])?;
    Ok(())
}

/// A dead letter, copied from an event.
#[allow(clippy::too_many_arguments)]
pub(super) fn insert_dead(
    conn: &Connection,
    dest: u32,
    e: &EventCopy<'_>,
    reason: &str,
    attempts: u32,
    first_attempt_at: Millis,
    now: Millis,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO dead_events
           (dest, seq, message_id, type, user_key, received_at, body, reason, attempts,
            first_attempt_at, last_attempt_at, dead_at, source)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12)",
    )?
    .execute(params![
        dest,
        e.seq,
        e.message_id,
        e.event_type,
        e.user_key,
        e.received_at,
        e.body,
        reason,
        attempts,
        first_attempt_at,
        now,
        e.source
    ])?;
    Ok(())
}

/// A retry row moved into the dead letters.
pub(super) fn retry_to_dead(
    conn: &Connection,
    dest: u32,
    seq: i64,
    reason: &str,
    attempts: u32,
    first_attempt_at: Millis,
    now: Millis,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO dead_events
           (dest, seq, message_id, type, user_key, received_at, body, reason, attempts,
            first_attempt_at, last_attempt_at, dead_at, source)
         SELECT dest, seq, message_id, type, user_key, received_at, body, ?3, ?4, ?5, ?6, ?6,
                source
         FROM retries WHERE dest = ?1 AND seq = ?2",
    )?
    .execute(params![dest, seq, reason, attempts, first_attempt_at, now])?;
    delete_retry(conn, dest, seq)
}

/// The columns every dead-letter query selects, in this order.
const DEAD_LETTER_COLUMNS: &str = "id, message_id, type, reason, attempts, first_attempt_at, \
    last_attempt_at, dead_at, body";

/// A row of [`DEAD_LETTER_COLUMNS`] as a dead letter of destination `name`.
fn dead_letter_row(r: &rusqlite::Row<'_>, name: &str) -> rusqlite::Result<DeadLetter> {
    Ok(DeadLetter {
        id: r.get(0)?,
        destination: name.to_string(),
        message_id: r.get(1)?,
        event_type: r.get(2)?,
        reason: r.get(3)?,
        attempts: r.get(4)?,
        first_attempt_at: r.get(5)?,
        last_attempt_at: r.get(6)?,
        dead_at: r.get(7)?,
        event_json: r.get(8)?,
    })
}

/// Dead letters of a destination in `[since, until)`, oldest first.
pub(super) fn dead_letters(
    conn: &Connection,
    dest: u32,
    name: &str,
    since: Option<Millis>,
    until: Option<Millis>,
) -> rusqlite::Result<Vec<DeadLetter>> {
    let mut q = conn.prepare_cached(&format!(
        "SELECT {DEAD_LETTER_COLUMNS} FROM dead_events
         WHERE dest = ?1 AND dead_at >= ?2 AND dead_at < ?3 ORDER BY dead_at, id"
    ))?;
    let rows = q.query_map(
        params![dest, since.unwrap_or(i64::MIN), until.unwrap_or(i64::MAX)],
        |r| dead_letter_row(r, name),
    )?;
    rows.collect()
}

/// A page of dead letters of `[since, until)`: ids above `after`, at most `limit`, by id.
#[allow(clippy::too_many_arguments)]
pub(super) fn dead_letter_page(
    conn: &Connection,
    dest: u32,
    name: &str,
    since: Option<Millis>,
    until: Option<Millis>,
    after: Option<i64>,
    limit: usize,
) -> rusqlite::Result<Vec<DeadLetter>> {
    let mut q = conn.prepare_cached(&format!(
        "SELECT {DEAD_LETTER_COLUMNS} FROM dead_events
         WHERE dest = ?1 AND dead_at >= ?2 AND dead_at < ?3 AND id > ?4 ORDER BY id LIMIT ?5"
    ))?;
    let rows = q.query_map(
        params![
            dest,
            since.unwrap_or(i64::MIN),
            until.unwrap_or(i64::MAX),
            after.unwrap_or(i64::MIN),
            i64::try_from(limit).unwrap_or(i64::MAX)
        ],
        |r| dead_letter_row(r, name),
    )?;
    rows.collect()
}

/// Delete the dead letters of `[since, until)`; how many.
pub(super) fn purge_dead(
    conn: &Connection,
    dest: u32,
    since: Option<Millis>,
    until: Option<Millis>,
) -> rusqlite::Result<u64> {
    conn.prepare_cached(
        "DELETE FROM dead_events WHERE dest = ?1 AND dead_at >= ?2 AND dead_at < ?3",
    )?
    .execute(params![
        dest,
        since.unwrap_or(i64::MIN),
        until.unwrap_or(i64::MAX)
    ])
    .map(|n| n as u64)
}

/// Delete at most `step` dead letters (of any destination) dead before `before`.
pub(super) fn expire_dead(conn: &Connection, before: Millis, step: usize) -> rusqlite::Result<u64> {
    conn.prepare_cached(
        "DELETE FROM dead_events WHERE id IN
           (SELECT id FROM dead_events WHERE dead_at < ?1 ORDER BY dead_at LIMIT ?2)",
    )?
    .execute(params![before, i64::try_from(step).unwrap_or(i64::MAX)])
    .map(|n| n as u64)
}

/// Dead letters kept for a destination.
pub(super) fn dead_count(conn: &Connection, dest: u32) -> rusqlite::Result<u64> {
    conn.prepare_cached("SELECT COUNT(*) FROM dead_events WHERE dest = ?1")?
        .query_row([dest], |r| r.get::<_, i64>(0))
        .map(|n| n as u64)
}

/// Move dead letters of `[since, until)` into the retry rows, due at `now`;
/// returns the moved rows' `(seq, user_key)`.
pub(super) fn replay(
    conn: &Connection,
    dest: u32,
    since: Option<Millis>,
    until: Option<Millis>,
    now: Millis,
) -> rusqlite::Result<Vec<(i64, Option<String>)>> {
    let range = params![
        dest,
        since.unwrap_or(i64::MIN),
        until.unwrap_or(i64::MAX),
        now
    ];
    let moved = {
        let mut q = conn.prepare_cached(
            "SELECT seq, user_key FROM dead_events
             WHERE dest = ?1 AND dead_at >= ?2 AND dead_at < ?3 AND ?4 = ?4 ORDER BY seq",
        )?;
        let rows = q.query_map(range, |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
    };
    conn.execute(
        "INSERT OR REPLACE INTO retries
           (dest, seq, message_id, type, user_key, received_at, body, due_at, attempts,
            first_attempt_at, last_error, source)
         SELECT dest, seq, message_id, type, user_key, received_at, body, ?4, 0, NULL, NULL,
                source
         FROM dead_events WHERE dest = ?1 AND dead_at >= ?2 AND dead_at < ?3",
        range,
    )?;
    conn.execute(
        "DELETE FROM dead_events WHERE dest = ?1 AND dead_at >= ?2 AND dead_at < ?3 AND ?4 = ?4",
        range,
    )?;
    Ok(moved)
}

/// Delete up to `limit` chunks wholly at or below `upto` received before
/// `before`; returns the first sequence numbers of the deleted chunks.
pub(super) fn reclaim(
    conn: &Connection,
    upto: i64,
    before: Millis,
    limit: usize,
) -> rusqlite::Result<Vec<(i64, i64, i64)>> {
    let chunks = {
        let mut q = conn.prepare_cached(
            // `first <= ?1` bounds the scan of the key (a chunk that ends by
            // `upto` starts by it), so the unread backlog is not walked.
            "SELECT first, first + n - 1, length(summary) + length(body) FROM chunks
             WHERE first <= ?1 AND first + n - 1 <= ?1 AND received_at < ?2
             ORDER BY first LIMIT ?3",
        )?;
        let rows = q.query_map(params![upto, before, limit as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
        rows.collect::<rusqlite::Result<Vec<(i64, i64, i64)>>>()?
    };
    let mut delete = conn.prepare_cached("DELETE FROM chunks WHERE first = ?1")?;
    for (f, _, _) in &chunks {
        delete.execute([f])?;
    }
    Ok(chunks)
}

/// Bytes of at most `limit` chunks that end after sequence `after` and at or
/// before `upto` (every cursor has passed them), oldest first, and the last
/// sequence of the last one counted (`None`: none).
pub(super) fn passed_bytes(
    conn: &Connection,
    after: i64,
    upto: i64,
    limit: usize,
) -> rusqlite::Result<(i64, Option<i64>)> {
    let mut q = conn.prepare_cached(
        "SELECT first + n - 1, length(summary) + length(body) FROM chunks
         WHERE first > ?1 AND first <= ?2 AND first + n - 1 <= ?2 ORDER BY first LIMIT ?3",
    )?;
    let rows = q.query_map(params![after, upto, limit as i64], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
    })?;
    let (mut bytes, mut last) = (0, None);
    for row in rows {
        let (end, size) = row?;
        bytes += size;
        last = Some(end);
    }
    Ok((bytes, last))
}

/// Persist the keys of one commit.
pub(super) fn insert_dedup(conn: &Connection, at: Millis, keys: &[u8]) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT INTO dedup_keys (at, keys) VALUES (?1, ?2)")?
        .execute(params![at, keys])?;
    Ok(())
}

/// The persisted keys seen at or after `since`: `(at, keys)`.
pub(super) fn dedup_since(
    conn: &Connection,
    since: Millis,
) -> rusqlite::Result<Vec<(i64, Vec<u8>)>> {
    let mut q = conn.prepare_cached("SELECT at, keys FROM dedup_keys WHERE at >= ?1")?;
    let rows = q.query_map([since], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// Delete up to `limit` persisted key rows older than `before`.
pub(super) fn prune_dedup(
    conn: &Connection,
    before: Millis,
    limit: usize,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "DELETE FROM dedup_keys WHERE id IN
           (SELECT id FROM dedup_keys WHERE at < ?1 ORDER BY id LIMIT ?2)",
    )?
    .execute(params![before, limit as i64])
}

/// Up to `limit` chunks received in `[since, until)` that start after `after`
/// and at or below `upto`, in order.
pub(super) fn chunks_received(
    conn: &Connection,
    since: Millis,
    until: Millis,
    after: i64,
    upto: i64,
    limit: usize,
) -> rusqlite::Result<Vec<Chunk>> {
    let mut q = conn.prepare_cached(
        "SELECT first, received_at, body, source FROM chunks
         WHERE received_at >= ?1 AND received_at < ?2 AND first > ?3 AND first <= ?4
         ORDER BY first LIMIT ?5",
    )?;
    let rows = q.query_map(params![since, until, after, upto, limit as i64], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, Vec<u8>>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    let mut chunks = Vec::new();
    for row in rows {
        let (first, received_at, body, source) = row?;
        let mut chunk = chunk::decode(first, received_at, &body)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        chunk.source = Arc::from(source);
        chunks.push(chunk);
    }
    Ok(chunks)
}

/// Event `i` of `chunk` queued again for `dest` as a retry due at `due_at`
/// (`body` is what the destination gets). Nothing if it already waits there.
pub(super) fn insert_backfill(
    conn: &Connection,
    dest: u32,
    chunk: &Chunk,
    i: usize,
    body: &str,
    due_at: Millis,
) -> rusqlite::Result<bool> {
    let e = &chunk.events[i];
    let seq = chunk.first + i as i64;
    let n = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO retries
               (dest, seq, message_id, type, user_key, received_at, body, due_at, attempts,
                first_attempt_at, last_error, source)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, NULL, NULL, ?9)",
        )?
        .execute(params![
            dest,
            seq,
            e.message_id,
            e.event_type.as_str(),
            e.user_key,
            chunk.received_at,
            body,
            due_at,
            &*chunk.source
        ])?;
    Ok(n == 1)
}

/// Delete cursor `id` with its retries and dead letters, in one transaction.
pub(super) fn delete_cursor(conn: &mut Connection, id: u32) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    tx.execute("DELETE FROM retries WHERE dest = ?1", params![id])?;
    tx.execute("DELETE FROM dead_events WHERE dest = ?1", params![id])?;
    tx.execute("DELETE FROM cursors WHERE id = ?1", params![id])?;
    tx.commit()
}
