//! The writer thread: it owns the connection and every cursor, runs each
//! group of waiting commands in one transaction, commits once and only then
//! answers. A failed commit rebuilds its memory from disk.

use super::command::{Command, Reply, Transaction, Undo};
use super::*;

mod erase;

/// The thread that owns the connection and every cursor.
pub(super) struct Writer {
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
    pub queues: Vec<Queue>,
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
    pub wakeups: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
    /// When housekeeping last took a step.
    last_housekeeping: Instant,
    /// Bytes of the chunks every cursor has passed, still kept (retention),
    /// counted in bounded steps by housekeeping; shared with the handle.
    pub retained_bytes: Arc<std::sync::atomic::AtomicI64>,
    /// The last sequence of the chunks counted in `retained_bytes`.
    counted_upto: i64,
    /// A failed commit's reload did not finish: no command runs until it does.
    needs_reload: bool,
    /// Commit figures and the last failure, shared with the store's handle.
    pub commits: Arc<crate::store::Commits>,
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

fn sql_error(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("sqlite: {e}"))
}

impl Writer {
    /// A writer over `conn` for the destinations of `plan` (name, per-user
    /// ordering), with nothing loaded yet ([`Writer::load`]).
    pub fn new(conn: Connection, options: &EmbeddedOptions, plan: Vec<(String, bool)>) -> Writer {
        Writer {
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
        }
    }

    /// (Re)build the cursors and queues from what is on disk. On an error the
    /// previous state is left as it was and `needs_reload` stays set.
    pub fn load(&mut self) -> rusqlite::Result<()> {
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

    pub fn load_dedup(&mut self) -> rusqlite::Result<()> {
        let since = now_ms() - self.dedup.window_ms() * 2;
        for (at, keys) in sql::dedup_since(&self.conn, since)? {
            self.dedup.add(dedup::from_bytes(&keys), at);
        }
        self.dedup.expire(now_ms());
        Ok(())
    }

    /// Serve commands until both queues are closed: each transaction takes the
    /// waiting delivery commands first, then the waiting appends (each up to its cap).
    pub fn run(
        mut self,
        mut control: mpsc::Receiver<Command>,
        mut appends: mpsc::Receiver<Command>,
    ) {
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
            let (changes, batch): (Vec<Command>, Vec<Command>) = batch.into_iter().partition(|c| {
                matches!(
                    c,
                    Command::Reconfigure { .. }
                        | Command::Forget(..)
                        | Command::Erase { .. }
                        | Command::EraseStatus(..)
                )
            });
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
                    Command::Erase {
                        matches,
                        from,
                        reply,
                    } => {
                        let _ = reply.send(self.erase_step(&matches, from));
                    }
                    Command::EraseStatus(id, reply) => {
                        let _ = reply.send(self.erase_status(&id));
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
        let mut t = Transaction {
            log: Log {
                conn: &tx,
                cache: &mut self.cache,
                index: &mut self.index,
                next_seq: self.next_seq,
            },
            queues: &mut self.queues,
            by_name: &self.by_name,
            by_id: &self.by_id,
            dedup: &self.dedup,
            staged_set: dedup::KeySet::default(),
            staged,
            woken,
            undo,
            now,
        };
        for cmd in batch {
            replies.push(t.run(cmd)?);
        }
        let next_seq = t.log.next_seq;
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
