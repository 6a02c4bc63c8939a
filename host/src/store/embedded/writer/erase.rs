//! Deletions in the embedded store: a user's events erased from the chunks
//! that hold them, from the retry rows and from the dead letters, leaving no
//! copy in the file's free space nor in its WAL.
//!
//! Where it sits: the writer thread runs [`Writer::erase_step`] for
//! `Regulations::erase_step`, between two transactions of other commands, so
//! a deletion over a long log goes in bounded steps and ingest flows between
//! them.
//!
//! How no copy is left: the connection runs with `secure_delete = FAST`,
//! which zeroes deleted content inside the B-tree pages it writes anyway (no
//! extra I/O on the hot path), but leaves freed pages as they were. So a
//! deletion ends with a *scrub* of the free pages, in steps of its own
//! ([`SCRUB_STEP_BYTES`] each): rows of zeros are written until they have
//! taken every free page (SQLite takes free pages before it grows the file),
//! then deleted. Last, the WAL, which holds copies of recently written pages,
//! is checkpointed and truncated to nothing. A file written before
//! `secure_delete` was set is vacuumed once, by its first deletion.

use super::*;
use crate::store::{EraseStep, Erased, Matches};

/// Positions of the scrub steps: above any sequence number of the log.
const SCRUB_PHASE: u64 = 1 << 62;

/// Zeros one scrub step writes at most (one row: SQLite's longest blob is 1 GB).
const SCRUB_STEP_BYTES: i64 = 64 << 20;

impl Writer {
    /// One step of a deletion: erase the events `matches` takes from up to
    /// [`ERASE_STEP`] chunks after `from`, in one transaction; with the last
    /// chunks, also from the retry rows and the dead letters, and then leave
    /// no copy of what was erased in the file's free space nor in its WAL.
    ///
    /// An erased event keeps its place, type and routes in its chunk
    /// ([`StoredEvent::erased`]): a cursor passes it as settled, a backfill
    /// skips it, and a batch in flight that holds it settles it as delivered.
    /// The chunk row is rewritten in the step's transaction, so a crash leaves
    /// the old chunk or the new one, whole. The queues are rebuilt from disk
    /// after a step that erased anything (as after a reload), keeping the
    /// leases of the batches in flight, so no retry row erased here is
    /// claimed.
    pub(super) fn erase_step(
        &mut self,
        matches: &Matches,
        from: u64,
    ) -> Result<EraseStep, StoreError> {
        if self.needs_reload {
            self.load().map_err(sql_error)?;
        }
        if from >= SCRUB_PHASE {
            return self.scrub_step().map(|done| EraseStep {
                erased: Erased::default(),
                next: (!done).then_some(SCRUB_PHASE),
            });
        }
        let from = i64::try_from(from).unwrap_or(i64::MAX);
        let carried = self.carried_before(Undo::default()).map_err(sql_error)?;
        let tx = self.conn.transaction().map_err(sql_error)?;
        let chunks = sql::chunks_after(&tx, from, ERASE_STEP).map_err(sql_error)?;
        let next = (chunks.len() == ERASE_STEP)
            .then(|| chunks.last().map(|(c, _)| c.first))
            .flatten();
        let mut erased = Erased::default();
        let mut rewritten = Vec::new();
        for (mut chunk, bytes) in chunks {
            let mut hit = 0;
            for e in &mut chunk.events {
                if !e.is_erased() && matches(&chunk.source, &e.json) {
                    *e = e.erased();
                    hit += 1;
                }
            }
            if hit > 0 {
                let size = sql::rewrite_chunk(&tx, &chunk).map_err(sql_error)?;
                erased.log += hit;
                rewritten.push((chunk.first, chunk.last(), bytes - size));
            }
        }
        if next.is_none() {
            let (retries, dead) = sql::erase_rows(&tx, matches.as_ref()).map_err(sql_error)?;
            erased.retries = retries;
            erased.dead_letters = dead;
        }
        tx.commit().map_err(sql_error)?;
        let mut shrunk = 0;
        for (first, last, less) in rewritten {
            self.cache.remove(first);
            if last <= self.counted_upto {
                shrunk += less;
            }
        }
        self.retained_bytes
            .fetch_sub(shrunk, std::sync::atomic::Ordering::Relaxed);
        if !erased.is_empty() {
            self.carry = Some(carried);
            self.load().map_err(sql_error)?;
            for q in &self.queues {
                notify_of(&self.wakeups, &q.name).notify_one();
            }
        }
        Ok(EraseStep {
            erased,
            // After the log, the retries and the dead letters: the free pages.
            next: Some(next.map_or(SCRUB_PHASE, |f| f as u64)),
        })
    }

    /// One step of the scrub of the free pages: a row of zeros (at most
    /// [`SCRUB_STEP_BYTES`]) over the free pages, in one transaction. Once no
    /// page is free, the rows go, the WAL is truncated, and it says `true`.
    fn scrub_step(&mut self) -> Result<bool, StoreError> {
        if !sql::is_scrubbed(&self.conn).map_err(sql_error)? {
            tracing::info!("store: vacuuming once, so that no deleted event stays in free pages");
            self.conn.execute_batch("VACUUM").map_err(sql_error)?;
            sql::mark_scrubbed(&self.conn).map_err(sql_error)?;
        }
        let free = sql::free_bytes(&self.conn).map_err(sql_error)?;
        if free > 0 {
            sql::write_zeros(&self.conn, free.min(SCRUB_STEP_BYTES)).map_err(sql_error)?;
            return Ok(false);
        }
        sql::drop_zeros(&self.conn).map_err(sql_error)?;
        self.truncate_wal().map_err(sql_error)?;
        Ok(true)
    }

    /// Delete the status row `id` (`secure_delete` zeroes it in its page)
    /// and scrub the free pages and the WAL (a small document: the free
    /// pages are few then, and scrubbed at once).
    pub(super) fn erase_status(&mut self, id: &str) -> Result<(), StoreError> {
        if self.needs_reload {
            self.load().map_err(sql_error)?;
        }
        sql::delete_regulation_status(&self.conn, id).map_err(sql_error)?;
        while !self.scrub_step()? {}
        Ok(())
    }

    /// Checkpoint the WAL and truncate it to nothing: it holds copies of
    /// the pages written lately, erased content among them.
    fn truncate_wal(&mut self) -> rusqlite::Result<()> {
        let (busy, _, _): (i64, i64, i64) =
            self.conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?;
        if busy != 0 {
            tracing::warn!("store: the WAL could not be truncated after a deletion (busy)");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
