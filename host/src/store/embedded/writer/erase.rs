//! Deletions in the embedded store: a user's events erased from the chunks
//! that hold them, from the retry rows and from the dead letters, leaving no
//! copy in the file's free space nor in its WAL.
//!
//! Where it sits: the writer thread runs [`Writer::erase_step`] for
//! `Regulations::erase_step`, between two transactions of other commands, so
//! a deletion over a long log goes in bounded steps and ingest flows between
//! them.

use super::*;
use crate::store::{EraseStep, Erased, Matches};

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
        from: i64,
    ) -> Result<EraseStep, StoreError> {
        if self.needs_reload {
            self.load().map_err(sql_error)?;
        }
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
        if next.is_none() {
            self.scrub().map_err(sql_error)?;
        }
        Ok(EraseStep {
            erased,
            next: next.map(|f| f as u64),
        })
    }

    /// Delete the status row `id` (`secure_delete` zeroes it) and scrub.
    pub(super) fn erase_status(&mut self, id: &str) -> Result<(), StoreError> {
        if self.needs_reload {
            self.load().map_err(sql_error)?;
        }
        sql::delete_regulation_status(&self.conn, id).map_err(sql_error)?;
        self.scrub().map_err(sql_error)
    }

    /// Leave nothing deleted readable in the files: a file from before
    /// `secure_delete` was on is vacuumed once (its free pages may hold
    /// events deleted then), and the WAL, which holds copies of recently
    /// written pages, is checkpointed and truncated to nothing.
    fn scrub(&mut self) -> rusqlite::Result<()> {
        if !sql::is_scrubbed(&self.conn)? {
            tracing::info!("store: vacuuming once, so that no deleted event stays in free pages");
            self.conn.execute_batch("VACUUM")?;
            sql::mark_scrubbed(&self.conn)?;
        }
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
