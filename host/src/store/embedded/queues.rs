//! Each destination's cursor over the log, with its retries and what it holds back.
//!
//! Where it sits: the writer thread owns one [`Queue`] per destination and runs
//! `claim` and `settle` on it. Durable state is small: the cursor's `acked`
//! (every event at or below it is settled for this destination), the retry
//! rows and the dead letters. What is in flight or held back for ordering
//! lives only here: after a restart the cursor starts again at `acked`, and
//! those events are delivered again (at-least-once).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use rusqlite::Connection;

use super::chunk::{Chunk, ChunkCache};
use super::sql::{self, EventCopy, RetryMeta};
use crate::store::{Job, JobId, Millis, QueueStats, Settle};

/// Most events an ordered destination holds back behind their users' earlier
/// events before its cursor stops reading ahead (other users then wait too).
const MAX_HELD: usize = 100_000;

/// Most events a claim skips (routed elsewhere) before it answers with what it has.
const MAX_SKIP: usize = 50_000;

/// Reads events of the log by sequence number, through the shared cache.
pub(super) struct Log<'a> {
    /// The writer's connection (inside its transaction).
    pub conn: &'a Connection,
    /// Chunks read or written lately.
    pub cache: &'a mut ChunkCache,
    /// Chunk starts by sequence range, for the cache: `first` of the chunk holding a seq.
    pub index: &'a mut BTreeMap<i64, i64>,
    /// The next sequence number to be written.
    pub next_seq: i64,
}

impl Log<'_> {
    /// The chunk holding `seq`.
    fn chunk(&mut self, seq: i64) -> rusqlite::Result<Option<Arc<Chunk>>> {
        if let Some((&first, &last)) = self.index.range(..=seq).next_back() {
            if seq <= last {
                if let Some(c) = self.cache.get(first) {
                    return Ok(Some(c));
                }
            }
        }
        let chunk = sql::chunk_holding(self.conn, seq)?;
        if let Some(c) = &chunk {
            self.index.insert(c.first, c.last());
            self.cache.put(c.clone());
        }
        Ok(chunk)
    }
}

/// A fresh event claimed and not yet settled.
#[derive(Debug, Clone)]
pub(super) struct Lease {
    /// Its user, for ordering.
    user: Option<String>,
    /// Attempts so far, this one included.
    attempts: u32,
    /// First attempt.
    first_attempt_at: Millis,
}

/// A lease held by a batch in flight, as carried across a reload of the queues
/// (after a failed commit), so that the batch's settle still finds it.
#[derive(Debug, Clone)]
pub(super) enum Leased {
    /// A fresh event of the log.
    Fresh(Lease),
    /// A retry row.
    Retry(Lease),
}

/// One destination's queue.
#[derive(Debug)]
pub(super) struct Queue {
    /// Stable id: its bit in route sets and its key in the tables.
    pub id: u32,
    /// Destination name.
    pub name: String,
    /// Every event at or below this is settled here (persisted).
    pub acked: i64,
    /// `acked` changed since it was last written.
    pub dirty: bool,
    /// `acked` as of the last commit (a failed one may have moved `acked` on).
    pub committed: i64,
    /// The cursor: events up to here were read (claimed, held, skipped or settled).
    scanned: i64,
    /// Fresh events claimed, by sequence number.
    in_flight: BTreeMap<i64, Lease>,
    /// Retry rows claimed: sequence number → lease.
    retry_leased: HashMap<i64, Lease>,
    /// Retry rows waiting: `(due, seq)`.
    retry_due: BTreeSet<(Millis, i64)>,
    /// Every retry row: sequence number → what is kept in memory of it.
    retries: HashMap<i64, RetryMeta>,
    /// Ordered destinations: events read but waiting behind their user's earlier event.
    held: BTreeMap<i64, String>,
    /// Ordered destinations: each user's outstanding events (in flight, retrying, held).
    users: Option<HashMap<String, BTreeSet<i64>>>,
    /// Events routed here after `scanned` (the unread part of the queue).
    pub unread: u64,
    /// Events above `acked` already settled into a retry or dead-letter row before a
    /// restart: the cursor passes them without delivering them again.
    settled_ahead: std::collections::HashSet<i64>,
    /// Events ahead of the cursor whose leases were carried across a reload
    /// ([`Queue::carry`]) and have settled since: the cursor passes them, and
    /// they were never counted in `unread`.
    passed: HashSet<i64>,
}

impl Queue {
    /// A queue at `acked` with its retry rows; `ordered` for per-user ordering.
    pub fn new(
        id: u32,
        name: String,
        acked: i64,
        ordered: bool,
        retries: Vec<RetryMeta>,
        dead_ahead: Vec<i64>,
    ) -> Queue {
        let mut q = Queue {
            id,
            name,
            acked,
            dirty: false,
            committed: acked,
            scanned: acked,
            in_flight: BTreeMap::new(),
            retry_leased: HashMap::new(),
            retry_due: BTreeSet::new(),
            retries: HashMap::new(),
            held: BTreeMap::new(),
            users: ordered.then(HashMap::new),
            unread: 0,
            settled_ahead: dead_ahead.into_iter().filter(|s| *s > acked).collect(),
            passed: HashSet::new(),
        };
        for r in retries.iter().filter(|r| r.seq > acked) {
            q.settled_ahead.insert(r.seq);
        }
        for r in retries {
            q.add_retry(r);
        }
        q
    }

    fn add_retry(&mut self, r: RetryMeta) {
        self.retry_due.insert((r.due_at, r.seq));
        if let (Some(users), Some(u)) = (&mut self.users, &r.user_key) {
            users.entry(u.clone()).or_default().insert(r.seq);
        }
        self.retries.insert(r.seq, r);
    }

    /// Whether `seq` is the earliest outstanding event of `user` (always true unordered).
    fn first_of(&self, user: Option<&str>, seq: i64) -> bool {
        match (&self.users, user) {
            (Some(users), Some(u)) => users.get(u).and_then(|s| s.first()) == Some(&seq),
            _ => true,
        }
    }

    fn forget_user_event(&mut self, user: Option<&str>, seq: i64) {
        if let (Some(users), Some(u)) = (&mut self.users, user) {
            if let Some(set) = users.get_mut(u) {
                set.remove(&seq);
                if set.is_empty() {
                    users.remove(u);
                }
            }
        }
    }

    /// Lease up to `max_events` (and `max_bytes`, at least one) due events: retries
    /// first, then events held back for ordering, then the log after the cursor.
    pub fn claim(
        &mut self,
        log: &mut Log<'_>,
        max_events: usize,
        max_bytes: usize,
        now: Millis,
    ) -> rusqlite::Result<Vec<Job>> {
        let mut jobs: Vec<Job> = Vec::new();
        let mut bytes = 0usize;
        let ordered = self.users.is_some();
        let mut in_batch: HashSet<String> = HashSet::new();
        let fits =
            |jobs: &Vec<Job>, bytes: usize, len: usize| jobs.is_empty() || bytes + len <= max_bytes;

        // 1. Retries that are due.
        let due: Vec<(Millis, i64)> = self.retry_due.range(..=(now, i64::MAX)).copied().collect();
        for (at, seq) in due {
            if jobs.len() >= max_events {
                return Ok(jobs);
            }
            let Some(meta) = self.retries.get(&seq).cloned() else {
                self.retry_due.remove(&(at, seq));
                continue;
            };
            let user = meta.user_key.as_deref();
            if ordered && (!self.first_of(user, seq) || user.is_some_and(|u| in_batch.contains(u)))
            {
                continue;
            }
            let Some(sql::RetryEvent {
                message_id,
                event_type,
                json,
                received_at,
                source,
            }) = sql::retry_event(log.conn, self.id, seq)?
            else {
                // Its row is gone (a deletion erased it): nothing to deliver.
                self.retry_due.remove(&(at, seq));
                self.retries.remove(&seq);
                self.forget_user_event(user, seq);
                continue;
            };
            if !fits(&jobs, bytes, json.len()) {
                return Ok(jobs);
            }
            bytes += json.len();
            self.retry_due.remove(&(at, seq));
            let lease = Lease {
                user: meta.user_key.clone(),
                attempts: meta.attempts + 1,
                first_attempt_at: meta.first_attempt_at.unwrap_or(now),
            };
            if let Some(u) = &lease.user {
                in_batch.insert(u.clone());
            }
            jobs.push(Job {
                id: seq,
                source: Arc::from(source),
                message_id,
                event_type,
                json,
                attempts: lease.attempts,
                first_attempt_at: lease.first_attempt_at,
                queued_at: received_at,
            });
            self.retry_leased.insert(seq, lease);
        }

        // 2. Events held back behind their user, now first in line.
        if ordered {
            // Only the held events first in line for their user, and no more than fit:
            // copying every held event on each claim would cost up to MAX_HELD copies.
            let room = max_events.saturating_sub(jobs.len());
            let held: Vec<(i64, String)> = self
                .held
                .iter()
                .filter(|(s, u)| self.first_of(Some(u.as_str()), **s) && !in_batch.contains(*u))
                .take(room)
                .map(|(s, u)| (*s, u.clone()))
                .collect();
            for (seq, user) in held {
                if jobs.len() >= max_events {
                    return Ok(jobs);
                }
                if !self.first_of(Some(&user), seq) || in_batch.contains(&user) {
                    continue;
                }
                let Some(chunk) = log.chunk(seq)? else {
                    self.held.remove(&seq);
                    continue;
                };
                let e = chunk.get(seq).expect("chunk holds seq");
                if e.is_erased() {
                    // A deletion erased it while it waited: settled.
                    self.held.remove(&seq);
                    self.forget_user_event(Some(&user), seq);
                    continue;
                }
                if !fits(&jobs, bytes, e.json.len()) {
                    return Ok(jobs);
                }
                bytes += e.json.len();
                self.held.remove(&seq);
                in_batch.insert(user.clone());
                jobs.push(fresh_job(seq, &chunk, now));
                self.in_flight.insert(
                    seq,
                    Lease {
                        user: Some(user),
                        attempts: 1,
                        first_attempt_at: now,
                    },
                );
            }
        }

        // 3. The log after the cursor.
        let mut skipped = 0usize;
        while jobs.len() < max_events && self.scanned + 1 < log.next_seq {
            if ordered && self.held.len() >= MAX_HELD {
                break;
            }
            let seq = self.scanned + 1;
            let Some(chunk) = log.chunk(seq)? else {
                // Reclaimed (cannot happen above `acked`): move on.
                self.scanned = seq;
                continue;
            };
            if self.in_flight.contains_key(&seq) || self.passed.remove(&seq) {
                // Leased before a reload of the queues: still in flight, or settled since.
                self.scanned = seq;
                continue;
            }
            let e = chunk.get(seq).expect("chunk holds seq");
            if e.routes.contains(self.id)
                && (self.settled_ahead.remove(&seq) || self.retries.contains_key(&seq))
            {
                // Settled into a retry or dead-letter row before a restart, or replayed.
                self.scanned = seq;
                self.unread = self.unread.saturating_sub(1);
                continue;
            }
            if e.routes.contains(self.id) && e.is_erased() {
                // A deletion erased it before it was delivered: settled.
                self.scanned = seq;
                self.unread = self.unread.saturating_sub(1);
                continue;
            }
            if !e.routes.contains(self.id) {
                self.scanned = seq;
                skipped += 1;
                if skipped >= MAX_SKIP {
                    break;
                }
                continue;
            }
            let user = e.user_key.clone();
            if let (Some(users), Some(u)) = (&mut self.users, &user) {
                let earlier = users.get(u).is_some_and(|s| !s.is_empty());
                if earlier || in_batch.contains(u) {
                    users.entry(u.clone()).or_default().insert(seq);
                    self.held.insert(seq, u.clone());
                    self.scanned = seq;
                    self.unread = self.unread.saturating_sub(1);
                    continue;
                }
            }
            if !fits(&jobs, bytes, e.json.len()) {
                break;
            }
            bytes += e.json.len();
            if let (Some(users), Some(u)) = (&mut self.users, &user) {
                users.entry(u.clone()).or_default().insert(seq);
                in_batch.insert(u.clone());
            }
            jobs.push(fresh_job(seq, &chunk, now));
            self.in_flight.insert(
                seq,
                Lease {
                    user,
                    attempts: 1,
                    first_attempt_at: now,
                },
            );
            self.scanned = seq;
            self.unread = self.unread.saturating_sub(1);
        }
        self.advance();
        Ok(jobs)
    }

    /// Settle claimed jobs; a job this queue does not hold (settled already, or
    /// from before a reset) is ignored.
    pub fn settle(
        &mut self,
        log: &mut Log<'_>,
        outcomes: &[(JobId, Settle)],
        now: Millis,
    ) -> rusqlite::Result<()> {
        for (seq, outcome) in outcomes {
            let seq = *seq;
            if let Some(lease) = self.in_flight.remove(&seq) {
                if seq > self.scanned {
                    // A lease carried across a reload, settled before the cursor got here.
                    self.passed.insert(seq);
                }
                let user = lease.user.as_deref();
                let erased = match outcome {
                    Settle::Done => false,
                    _ => log
                        .chunk(seq)?
                        .and_then(|c| c.get(seq).map(|e| e.is_erased()))
                        .unwrap_or(false),
                };
                match outcome {
                    // A deletion erased it during its attempt: there is nothing
                    // left to retry or to keep as a dead letter.
                    _ if erased => self.forget_user_event(user, seq),
                    Settle::Done => self.forget_user_event(user, seq),
                    Settle::RetryAt { at, reason } => {
                        let chunk = log.chunk(seq)?.expect("an unsettled event is in the log");
                        let e = chunk.get(seq).expect("chunk holds seq");
                        sql::insert_retry(
                            log.conn,
                            self.id,
                            &copy(seq, &chunk),
                            *at,
                            lease.attempts,
                            lease.first_attempt_at,
                            reason,
                        )?;
                        // Still outstanding for its user: stays in `users`.
                        self.add_retry(RetryMeta {
                            seq,
                            user_key: e.user_key.clone(),
                            due_at: *at,
                            attempts: lease.attempts,
                            first_attempt_at: Some(lease.first_attempt_at),
                        });
                    }
                    Settle::Dead { reason } => {
                        let chunk = log.chunk(seq)?.expect("an unsettled event is in the log");
                        sql::insert_dead(
                            log.conn,
                            self.id,
                            &copy(seq, &chunk),
                            reason,
                            lease.attempts,
                            lease.first_attempt_at,
                            now,
                        )?;
                        self.forget_user_event(user, seq);
                    }
                }
            } else if let Some(lease) = self.retry_leased.remove(&seq) {
                let user = lease.user.as_deref();
                match outcome {
                    Settle::Done => {
                        sql::delete_retry(log.conn, self.id, seq)?;
                        self.retries.remove(&seq);
                        self.forget_user_event(user, seq);
                    }
                    Settle::RetryAt { at, reason } => {
                        sql::update_retry(
                            log.conn,
                            self.id,
                            seq,
                            *at,
                            lease.attempts,
                            lease.first_attempt_at,
                            reason,
                        )?;
                        if let Some(meta) = self.retries.get_mut(&seq) {
                            meta.due_at = *at;
                            meta.attempts = lease.attempts;
                            meta.first_attempt_at = Some(lease.first_attempt_at);
                        }
                        self.retry_due.insert((*at, seq));
                    }
                    Settle::Dead { reason } => {
                        sql::retry_to_dead(
                            log.conn,
                            self.id,
                            seq,
                            reason,
                            lease.attempts,
                            lease.first_attempt_at,
                            now,
                        )?;
                        self.retries.remove(&seq);
                        self.forget_user_event(user, seq);
                    }
                }
            }
        }
        self.advance();
        Ok(())
    }

    /// The lease of `seq`, if a batch in flight holds it.
    pub fn lease(&self, seq: i64) -> Option<Leased> {
        if let Some(l) = self.in_flight.get(&seq) {
            return Some(Leased::Fresh(l.clone()));
        }
        self.retry_leased.get(&seq).cloned().map(Leased::Retry)
    }

    /// Every lease held by batches in flight.
    pub fn leases(&self) -> HashMap<i64, Leased> {
        let fresh = self
            .in_flight
            .iter()
            .map(|(s, l)| (*s, Leased::Fresh(l.clone())));
        let retry = self
            .retry_leased
            .iter()
            .map(|(s, l)| (*s, Leased::Retry(l.clone())));
        fresh.chain(retry).collect()
    }

    /// Events above the committed cursor and read by it that are settled here but
    /// not on disk (a later batch settled before an earlier one, or the failed
    /// transaction moved the cursor): every event read that no lease, retry, hold
    /// or `excluded` accounts for.
    pub fn done_ahead(
        &self,
        log: &mut Log<'_>,
        excluded: &HashSet<i64>,
    ) -> rusqlite::Result<Vec<i64>> {
        let mut done = Vec::new();
        for seq in self.committed + 1..=self.scanned {
            if self.in_flight.contains_key(&seq)
                || self.retries.contains_key(&seq)
                || self.held.contains_key(&seq)
                || excluded.contains(&seq)
            {
                continue;
            }
            if let Some(chunk) = log.chunk(seq)? {
                if chunk.get(seq).is_some_and(|e| e.routes.contains(self.id)) {
                    done.push(seq);
                }
            }
        }
        // And what is known settled ahead of the cursor (carried by an earlier
        // reload, or from disk: from disk again after this one).
        done.extend(
            self.passed
                .iter()
                .chain(&self.settled_ahead)
                .filter(|s| !excluded.contains(s)),
        );
        Ok(done)
    }

    /// Take back into a queue just rebuilt from disk what only memory knew: the
    /// leases of batches still in flight (their events are not claimed again,
    /// and their settles apply) and the events settled ahead of the cursor
    /// (not delivered again).
    pub fn carry(&mut self, leases: &HashMap<i64, Leased>, done_ahead: &[i64]) {
        self.settled_ahead
            .extend(done_ahead.iter().filter(|s| **s > self.acked));
        for (&seq, leased) in leases {
            match leased {
                Leased::Fresh(lease) if seq > self.acked => {
                    if let (Some(users), Some(u)) = (&mut self.users, &lease.user) {
                        users.entry(u.clone()).or_default().insert(seq);
                    }
                    self.in_flight.insert(seq, lease.clone());
                    self.unread = self.unread.saturating_sub(1);
                }
                Leased::Retry(lease) => {
                    if let Some(meta) = self.retries.get(&seq) {
                        self.retry_due.remove(&(meta.due_at, seq));
                        self.retry_leased.insert(seq, lease.clone());
                    }
                }
                Leased::Fresh(_) => {}
            }
        }
    }

    /// Dead letters moved back into the queue (as retry rows due now).
    /// Whether `seq` waits here for another attempt (or is out on one).
    pub fn has_retry(&self, seq: i64) -> bool {
        self.retries.contains_key(&seq) || self.retry_leased.contains_key(&seq)
    }

    pub fn replayed(&mut self, moved: Vec<(i64, Option<String>)>, now: Millis) {
        for (seq, user_key) in moved {
            self.add_retry(RetryMeta {
                seq,
                user_key,
                due_at: now,
                attempts: 0,
                first_attempt_at: None,
            });
        }
    }

    /// Move `acked` up to just below the earliest event still held here.
    fn advance(&mut self) {
        let earliest = [
            self.in_flight.keys().next().copied(),
            self.held.keys().next().copied(),
        ]
        .into_iter()
        .flatten()
        .min();
        // Never past the cursor: leases carried across a reload can lie ahead of it.
        let acked = earliest.map_or(self.scanned, |s| (s - 1).min(self.scanned));
        if acked > self.acked {
            self.acked = acked;
            self.dirty = true;
        }
    }

    /// When the next claim can take something: `now` when unread or held events
    /// are ready, else the earliest retry that is first in line for its user.
    pub fn next_due(&self, now: Millis) -> Option<Millis> {
        let held_ready = self
            .held
            .iter()
            .any(|(s, u)| self.first_of(Some(u.as_str()), *s));
        let reading = self.users.is_none() || self.held.len() < MAX_HELD;
        if (self.unread > 0 && reading) || held_ready {
            return Some(now);
        }
        self.retry_due
            .iter()
            .find(|(_, seq)| {
                let user = self.retries.get(seq).and_then(|r| r.user_key.as_deref());
                self.first_of(user, *seq)
            })
            .map(|(at, _)| *at)
    }

    /// Jobs waiting (due now or later).
    pub fn queued(&self) -> u64 {
        self.unread + self.held.len() as u64 + self.retry_due.len() as u64
    }

    /// Counts for the admin API (dead letters filled in by the caller).
    pub fn stats(&self, log: &mut Log, now: Millis) -> rusqlite::Result<QueueStats> {
        let mut waiting = self.retry_due.range((now + 1, i64::MIN)..);
        let next_retry_at = waiting.next().map(|(at, _)| *at);
        let retrying = next_retry_at.map_or(0, |_| 1 + waiting.count() as u64);
        // The oldest job: a retry's first attempt, a lease's, or (for events
        // not read yet) when the first event past the settled point arrived.
        let retried = self.retries.values().filter_map(|r| r.first_attempt_at);
        let leased = self
            .in_flight
            .values()
            .chain(self.retry_leased.values())
            .map(|l| l.first_attempt_at);
        let unread = match self.unread > 0 || !self.held.is_empty() {
            true => log.chunk(self.acked + 1)?.map(|c| c.received_at),
            false => None,
        };
        Ok(QueueStats {
            queued: self.queued(),
            in_flight: (self.in_flight.len() + self.retry_leased.len()) as u64,
            dead_letters: 0,
            retrying,
            next_retry_at,
            oldest_at: retried.chain(leased).chain(unread).min(),
        })
    }

    /// Make every retry waiting for its time due at `now`; how many moved.
    pub fn retry_now(&mut self, log: &Log, now: Millis) -> rusqlite::Result<u64> {
        let waiting: Vec<(Millis, i64)> = self
            .retry_due
            .range((now + 1, i64::MIN)..)
            .copied()
            .collect();
        sql::retries_due_by(log.conn, self.id, now)?;
        for (at, seq) in &waiting {
            self.retry_due.remove(&(*at, *seq));
            self.retry_due.insert((now, *seq));
            if let Some(meta) = self.retries.get_mut(seq) {
                meta.due_at = now;
            }
        }
        Ok(waiting.len() as u64)
    }
}

fn fresh_job(seq: i64, chunk: &Chunk, now: Millis) -> Job {
    let e = chunk.get(seq).expect("chunk holds seq");
    Job {
        id: seq,
        source: chunk.source.clone(),
        message_id: e.message_id.clone(),
        event_type: e.event_type,
        json: e.json.clone(),
        attempts: 1,
        first_attempt_at: now,
        queued_at: chunk.received_at,
    }
}

fn copy(seq: i64, chunk: &Chunk) -> EventCopy<'_> {
    let e = chunk.get(seq).expect("chunk holds seq");
    EventCopy {
        seq,
        message_id: &e.message_id,
        event_type: e.event_type.as_str(),
        user_key: e.user_key.as_deref(),
        received_at: chunk.received_at,
        body: &e.json,
        source: &chunk.source,
    }
}
