//! The commands the writer thread runs: what each store call asks of it, and
//! how one is run inside the group's transaction.

use super::*;

/// An event ready for the writer: routed and keyed on the caller's task.
pub(super) struct Prepared {
    pub key: dedup::Key,
    pub event: StoredEvent,
}

/// A command for the writer thread, with where to send its answer.
pub(super) enum Command {
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
    SubjectKey(oneshot::Sender<Result<[u8; 16], StoreError>>),
    AddRegulation(String, String, oneshot::Sender<Result<u64, StoreError>>),
    RegulationIds(oneshot::Sender<Result<Vec<String>, StoreError>>),
    Regulation(
        String,
        oneshot::Sender<Result<Option<crate::store::StoredRegulation>, StoreError>>,
    ),
    RegulationStatus(String, oneshot::Sender<Result<Option<String>, StoreError>>),
    SetRegulationStatus(String, String, oneshot::Sender<Result<(), StoreError>>),
    /// Remove a regulation's status row and scrub the file, run between transactions.
    EraseStatus(String, oneshot::Sender<Result<(), StoreError>>),
    /// One step of a deletion ([`Writer::erase_step`]), run between transactions.
    Erase {
        matches: crate::store::Matches,
        from: u64,
        reply: oneshot::Sender<Result<crate::store::EraseStep, StoreError>>,
    },
    /// Tests: fail the transaction this command lands in, as a full disk would.
    #[cfg(test)]
    Fail(oneshot::Sender<Result<(), StoreError>>),
}

/// An event (its JSON) as a backfill delivers it, or `None` when the
/// destination's filter does not take it.
pub(super) type Rewrite = Box<dyn Fn(&str) -> Option<String> + Send>;

/// Chunks a backfill reads in one transaction, so a long one never stalls ingest.
pub(super) const BACKFILL_STEP: usize = 64;

/// What a transaction changed in the leases, to undo if it fails.
#[derive(Default)]
pub(super) struct Undo {
    /// Leases it handed out (queue index, seq): their claims fail with it.
    pub claimed: Vec<(usize, i64)>,
    /// Leases its settles took away: the settles fail, and will be sent again.
    pub settled: Vec<(usize, i64, Leased)>,
}

/// An answer to send once the transaction has committed (`None`) or failed.
pub(super) type Reply = Box<dyn FnOnce(Option<&StoreError>) + Send>;

/// What one transaction works on: the log inside it, the queues, and what it
/// must remember for after the commit (dedup keys to persist, queues to wake,
/// leases to take back if it fails).
pub(super) struct Transaction<'a> {
    /// The log, inside the transaction.
    pub log: Log<'a>,
    /// One queue per configured destination.
    pub queues: &'a mut [Queue],
    /// Queue index by destination name.
    pub by_name: &'a HashMap<String, usize>,
    /// Queue index by cursor id.
    pub by_id: &'a HashMap<u32, usize>,
    /// `messageId`s committed within the window.
    pub dedup: &'a Dedup,
    /// Keys appended in this transaction, to find duplicates within it.
    pub staged_set: dedup::KeySet,
    /// The same, in order, to persist with the commit.
    pub staged: &'a mut Vec<dedup::Key>,
    /// Queues with new work, woken after the commit.
    pub woken: &'a mut HashSet<usize>,
    /// Lease changes to undo if the commit fails.
    pub undo: &'a mut Undo,
    /// The transaction's clock.
    pub now: Millis,
}

/// An answer that sends `value` once the commit succeeded, or the failure.
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

/// A command a reload runs between transactions, found inside one.
fn not_in_a_transaction<T>(reply: oneshot::Sender<Result<T, StoreError>>) -> Reply {
    let _ = reply.send(Err(StoreError::Unavailable(
        "a reload ran in a transaction".into(),
    )));
    Box::new(|_| {})
}

impl Transaction<'_> {
    /// The queue of `destination`, if it is configured.
    fn queue(&self, destination: &str) -> Option<usize> {
        self.by_name.get(destination).copied()
    }

    /// `f` on `destination`'s queue; nothing (the default answer) when no
    /// such destination is configured.
    fn on_queue<T: Default>(
        &mut self,
        destination: &str,
        f: impl FnOnce(&mut Self, usize) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        match self.queue(destination) {
            Some(qi) => f(self, qi),
            None => Ok(T::default()),
        }
    }

    /// Run one command; return how to answer it after the commit. An error
    /// fails the whole transaction.
    pub fn run(&mut self, cmd: Command) -> rusqlite::Result<Reply> {
        let now = self.now;
        Ok(match cmd {
            Command::Append {
                source,
                events,
                reply,
            } => answer(reply, self.append(&source, events)?),
            Command::Claim {
                destination,
                max_events,
                max_bytes,
                now,
                reply,
            } => {
                let jobs = self.on_queue(&destination, |t, qi| {
                    let jobs = t.queues[qi].claim(&mut t.log, max_events, max_bytes, now)?;
                    t.undo.claimed.extend(jobs.iter().map(|j| (qi, j.id)));
                    Ok(jobs)
                })?;
                answer(reply, jobs)
            }
            Command::Settle(destination, outcomes, reply) => {
                if let Some(qi) = self.queue(&destination) {
                    for (seq, _) in &outcomes {
                        if let Some(lease) = self.queues[qi].lease(*seq) {
                            self.undo.settled.push((qi, *seq, lease));
                        }
                    }
                    self.queues[qi].settle(&mut self.log, &outcomes, now)?;
                    self.woken.insert(qi);
                }
                answer(reply, ())
            }
            Command::NextDue(destination, reply) => {
                let due = self
                    .queue(&destination)
                    .and_then(|qi| self.queues[qi].next_due(now));
                answer(reply, due)
            }
            Command::Stats(destination, reply) => {
                let stats = self.on_queue(&destination, |t, qi| {
                    Ok(QueueStats {
                        dead_letters: sql::dead_count(t.log.conn, t.queues[qi].id)?,
                        ..t.queues[qi].stats(&mut t.log, now)?
                    })
                })?;
                answer(reply, stats)
            }
            Command::RetryNow(destination, reply) => {
                let moved = self.on_queue(&destination, |t, qi| {
                    t.woken.insert(qi);
                    t.queues[qi].retry_now(&t.log, now)
                })?;
                answer(reply, moved)
            }
            Command::DeadLetters {
                destination,
                since,
                until,
                reply,
            } => {
                let list = self.on_queue(&destination, |t, qi| {
                    sql::dead_letters(t.log.conn, t.queues[qi].id, &destination, since, until)
                })?;
                answer(reply, list)
            }
            Command::SetPaused(destination, paused, reply) => {
                sql::set_paused(self.log.conn, &destination, paused)?;
                answer(reply, ())
            }
            Command::Paused(reply) => answer(reply, sql::paused(self.log.conn)?),
            Command::SubjectKey(reply) => answer(reply, sql::subject_key(self.log.conn)?),
            Command::AddRegulation(id, document, reply) => {
                answer(reply, sql::add_regulation(self.log.conn, &id, &document)?)
            }
            Command::RegulationIds(reply) => answer(reply, sql::regulation_ids(self.log.conn)?),
            Command::Regulation(id, reply) => answer(reply, sql::regulation(self.log.conn, &id)?),
            Command::RegulationStatus(id, reply) => {
                answer(reply, sql::regulation_status(self.log.conn, &id)?)
            }
            Command::SetRegulationStatus(id, document, reply) => answer(
                reply,
                sql::set_regulation_status(self.log.conn, &id, &document)?,
            ),
            // Taken out of the batch before its transaction (`Writer::run`).
            Command::Reconfigure { reply, .. } => not_in_a_transaction(reply),
            Command::Forget(_, reply) => not_in_a_transaction(reply),
            Command::Erase { reply, .. } => not_in_a_transaction(reply),
            Command::EraseStatus(_, reply) => not_in_a_transaction(reply),
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
                let Some(qi) = self.queue(&destination) else {
                    return Ok(Box::new(move |_| {
                        let _ = reply.send(Err(StoreError::Unavailable(format!(
                            "no destination named `{destination}`"
                        ))));
                    }));
                };
                answer(reply, self.backfill(qi, since, until, after, rewrite)?)
            }
            Command::Replay {
                destination,
                since,
                until,
                reply,
            } => {
                let moved = self.on_queue(&destination, |t, qi| {
                    let moved = sql::replay(t.log.conn, t.queues[qi].id, since, until, now)?;
                    let n = moved.len() as u64;
                    t.queues[qi].replayed(moved, now);
                    t.woken.insert(qi);
                    Ok(n)
                })?;
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
                let list = self.on_queue(&destination, |t, qi| {
                    let id = t.queues[qi].id;
                    sql::dead_letter_page(t.log.conn, id, &destination, since, until, after, limit)
                })?;
                answer(reply, list)
            }
            Command::Purge {
                destination,
                since,
                until,
                reply,
            } => {
                let purged = self.on_queue(&destination, |t, qi| {
                    sql::purge_dead(t.log.conn, t.queues[qi].id, since, until)
                })?;
                answer(reply, purged)
            }
        })
    }

    /// Keep the events not seen within the dedup window (nor earlier in this
    /// transaction) as one chunk, and count them into the queues they route to.
    fn append(&mut self, source: &str, events: Vec<Prepared>) -> rusqlite::Result<AppendReport> {
        let mut report = AppendReport::default();
        let mut kept: Vec<StoredEvent> = Vec::new();
        for p in events {
            if self.dedup.seen(p.key, self.now) || !self.staged_set.insert(p.key) {
                report.duplicates += 1;
                continue;
            }
            self.staged.push(p.key);
            report.stored += 1;
            if !p.event.routes.is_empty() {
                kept.push(p.event);
            }
        }
        if kept.is_empty() {
            return Ok(report);
        }
        let chunk = Chunk {
            first: self.log.next_seq,
            received_at: self.now,
            source: Arc::from(source),
            events: kept,
        };
        sql::insert_chunk(self.log.conn, source, &chunk)?;
        self.log.next_seq += chunk.events.len() as i64;
        let mut counts: HashMap<&RouteSet, u64> = HashMap::new();
        for e in &chunk.events {
            *counts.entry(&e.routes).or_default() += 1;
        }
        for (set, n) in counts {
            for id in set.ids() {
                if let Some(&qi) = self.by_id.get(&id) {
                    self.queues[qi].unread += n;
                    self.woken.insert(qi);
                }
            }
        }
        self.log.index.insert(chunk.first, chunk.last());
        self.log.cache.put(Arc::new(chunk));
        Ok(report)
    }

    /// Queue again for queue `qi` the retained events of up to
    /// [`BACKFILL_STEP`] chunks received in `[since, until)` after chunk
    /// `after` that its cursor has passed, as `rewrite` gives them: how many,
    /// and the chunk to go on after (`None`: done).
    fn backfill(
        &mut self,
        qi: usize,
        since: Millis,
        until: Millis,
        after: i64,
        rewrite: Rewrite,
    ) -> rusqlite::Result<(u64, Option<i64>)> {
        let q = &mut self.queues[qi];
        let chunks =
            sql::chunks_received(self.log.conn, since, until, after, q.acked, BACKFILL_STEP)?;
        let next = (chunks.len() == BACKFILL_STEP)
            .then(|| chunks.last().map(|c| c.first))
            .flatten();
        let mut moved = Vec::new();
        for chunk in &chunks {
            for (i, e) in chunk.events.iter().enumerate() {
                let seq = chunk.first + i as i64;
                // Still ahead of the cursor, waiting already, or erased by a deletion.
                if seq > q.acked || q.has_retry(seq) || e.is_erased() {
                    continue;
                }
                let Some(body) = rewrite(&e.json) else {
                    continue;
                };
                if sql::insert_backfill(self.log.conn, q.id, chunk, i, &body, self.now)? {
                    moved.push((seq, e.user_key.clone()));
                }
            }
        }
        let n = moved.len() as u64;
        q.replayed(moved, self.now);
        self.woken.insert(qi);
        Ok((n, next))
    }
}
