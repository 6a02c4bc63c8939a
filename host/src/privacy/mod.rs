//! Privacy: regulations that stop collecting a user (`SUPPRESS`), start again
//! (`UNSUPPRESS`) and delete what was stored of them (`DELETE`, and
//! `SUPPRESS_WITH_DELETE` for both), as Segment's regulations do (GDPR
//! Article 17, CCPA).
//!
//! Where it sits: beside ingest, below the admin API, above the store.
//! `POST /admin/regulations` (and `switchyard regulate`, through it) hands a
//! [`Request`] to [`Privacy::submit`], which records a [`Regulation`] in the
//! store ([`Regulations`]) and folds every regulation, in the order the store
//! took them, into the [`Suppressions`] that ingest checks each event against
//! before anything stores it. On NATS every host follows the store
//! ([`Privacy::follow`], once a second), so a suppression recorded through one
//! host is in force on all. A deletion runs as a background [`erase::job`]
//! that erases the subjects' events from the store and this host's memory,
//! and records its [`Progress`] as it goes.
//!
//! The records are the audit log: written once, kept for good, with each
//! subject as a keyed hash only (the key is the store's,
//! [`Regulations::subject_key`]).

pub mod erase;
pub mod regulation;
pub mod suppress;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{watch, Mutex};

pub use self::erase::{DestinationStatus, Forgotten, Forward, Nothing, Progress, Reach, Who};
pub use self::regulation::{Kind, Regulation, Request, State, Subjects, Summary};
pub use self::suppress::{SubjectKey, Suppressions};
use crate::store::{now_ms, Regulations, StoreError};

/// How often a host reads the regulations other hosts recorded.
pub const POLL: Duration = Duration::from_secs(1);

/// How long a following host may go without reading the regulations before
/// it says it is not ready: past this, a user suppressed through another host
/// might be stored here.
pub const STALE_AFTER: Duration = Duration::from_secs(10);

/// What can go wrong with a regulation.
#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    /// The request cannot be carried out as asked; nothing was recorded.
    #[error("{0}")]
    Refused(String),
    /// No regulation has this id.
    #[error("no regulation `{0}`")]
    NotFound(String),
    /// A stored record that does not read as a regulation.
    #[error("{0}")]
    Unreadable(String),
    /// The store did not answer.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What this host knows of one regulation: enough to fold it again and to
/// list it without reading the store.
struct Known {
    /// Suppress or lift.
    kind: Kind,
    /// Where.
    sources: Option<Vec<String>>,
    /// Whom, as the sets hold them.
    hashes: Vec<u64>,
    /// Its row in a list.
    summary: Summary,
    /// A deletion's subjects, as its job and this host's memory match them.
    who: Option<Arc<Who>>,
}

impl Known {
    fn of(r: &Regulation, key: SubjectKey) -> Result<Known, PrivacyError> {
        let who = match erase::deletes(r.kind) {
            true => Some(Arc::new(Who::of(r, key).map_err(PrivacyError::Unreadable)?)),
            false => None,
        };
        Ok(Known {
            kind: r.kind,
            sources: r.sources.clone(),
            hashes: r.short_hashes().map_err(PrivacyError::Unreadable)?,
            summary: Summary::of(r),
            who,
        })
    }

    /// Fold it into `s`.
    fn apply(&self, s: &mut Suppressions) {
        match self.kind {
            Kind::Suppress | Kind::SuppressWithDelete => {
                s.suppress(&self.hashes, self.sources.as_deref())
            }
            Kind::Unsuppress => s.unsuppress(&self.hashes, self.sources.as_deref()),
            Kind::Delete => {}
        }
    }
}

/// What this host has folded.
#[derive(Default)]
struct Folded {
    /// Every regulation applied here, by its place in the store's order.
    by_order: BTreeMap<u64, Known>,
    /// Their ids.
    ids: HashSet<String>,
    /// Stored records that do not read (a newer version's, say): skipped, and
    /// said once each.
    unreadable: HashSet<String>,
}

/// The regulations of one store, and the suppressions they make.
pub struct Privacy {
    /// Where regulations are recorded.
    store: Arc<dyn Regulations>,
    /// What subjects are hashed with (the store's).
    key: SubjectKey,
    /// The configured sources: a regulation may name only these.
    sources: Vec<String>,
    /// What has been folded into `suppressions`.
    folded: Mutex<Folded>,
    /// What ingest checks, swapped whole when a regulation arrives.
    suppressions: Arc<ArcSwap<Suppressions>>,
    /// Whether this host follows other hosts' regulations ([`Privacy::follow`]).
    following: AtomicBool,
    /// When the regulations were last read whole from the store (ms).
    read_at: AtomicI64,
    /// This host's memory and destinations, which a deletion reaches.
    reach: Arc<dyn Reach>,
    /// The deletions whose job runs on this host now.
    running: Arc<std::sync::Mutex<HashSet<String>>>,
}

/// A regulation as `GET /admin/regulations/{id}` shows it: the record, and
/// where a deletion stands.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Shown {
    /// The record, with the state its progress says.
    #[serde(flatten)]
    pub regulation: Regulation,
    /// A deletion's progress: what was removed where, each destination's part.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
}

impl Privacy {
    /// The regulations `store` holds, in force; `sources` are the configured
    /// ones, and `reach` what a deletion reaches beyond the store. A deletion
    /// left unfinished by a stopped host goes on.
    pub async fn open(
        store: Arc<dyn Regulations>,
        sources: Vec<String>,
        reach: Arc<dyn Reach>,
    ) -> Result<Privacy, PrivacyError> {
        let key = SubjectKey::new(store.subject_key().await?);
        let privacy = Privacy {
            store,
            key,
            sources,
            folded: Mutex::default(),
            suppressions: Arc::new(ArcSwap::from_pointee(Suppressions::new(key))),
            following: AtomicBool::new(false),
            read_at: AtomicI64::new(0),
            reach,
            running: Arc::default(),
        };
        privacy.refresh().await?;
        privacy.resume().await?;
        Ok(privacy)
    }

    /// Start the job of every deletion not done yet.
    async fn resume(&self) -> Result<(), PrivacyError> {
        let unfinished: Vec<String> = {
            let folded = self.folded.lock().await;
            folded
                .by_order
                .values()
                .filter(|k| k.who.is_some())
                .map(|k| k.summary.id.clone())
                .collect()
        };
        for id in unfinished {
            let done = erase::progress(self.store.as_ref(), &id)
                .await?
                .is_some_and(|p| p.state == State::Done);
            if !done {
                let r = self.get(&id).await?.regulation;
                tracing::info!(
                    regulation = id.as_str(),
                    "privacy: going on with a deletion"
                );
                self.start(r);
            }
        }
        Ok(())
    }

    /// Run the deletion `r` in the background, unless it runs here already.
    fn start(&self, r: Regulation) {
        let Ok(who) = Who::of(&r, self.key) else {
            return;
        };
        if !self
            .running
            .lock()
            .expect("running lock")
            .insert(r.id.clone())
        {
            return;
        }
        let running = self.running.clone();
        let id = r.id.clone();
        let job = erase::Job {
            store: self.store.clone(),
            reach: self.reach.clone(),
            regulation: r,
            who: Arc::new(who),
        };
        tokio::spawn(async move {
            erase::job(job).await;
            running.lock().expect("running lock").remove(&id);
        });
    }

    /// The suppressions in force, as ingest reads them (the same cell is
    /// swapped whenever they change).
    pub fn suppressions(&self) -> Arc<ArcSwap<Suppressions>> {
        self.suppressions.clone()
    }

    /// Carry out `request`, asked by `by`: record it, then put it in force on
    /// this host (others follow within [`POLL`]).
    pub async fn submit(&self, request: &Request, by: &str) -> Result<Regulation, PrivacyError> {
        let mut r = Regulation::new(request, &self.key, &self.sources, by, now_ms())
            .map_err(PrivacyError::Refused)?;
        if !erase::deletes(r.kind) {
            // In force on this host the moment it is recorded: a crash after
            // the write is followed by a start that folds it from the store.
            // A deletion stays pending until its job is done.
            r.state = State::Done;
            r.done_at = Some(r.requested_at.clone());
        }
        let known = Known::of(&r, self.key)?;
        let document = serde_json::to_string(&r).expect("a regulation serializes");
        let mut folded = self.folded.lock().await;
        let order = self.store.add_regulation(&r.id, &document).await?;
        let last = folded
            .by_order
            .keys()
            .next_back()
            .is_none_or(|o| *o < order);
        folded.ids.insert(r.id.clone());
        if last {
            // The usual case: it applies after every known one, so it is
            // folded into a copy of the sets rather than all of them again.
            let mut s = Suppressions::clone(&self.suppressions.load());
            known.apply(&mut s);
            self.suppressions.store(Arc::new(s));
            folded.by_order.insert(order, known);
        } else {
            folded.by_order.insert(order, known);
            self.rebuild(&folded);
        }
        drop(folded);
        tracing::info!(
            regulation = r.id.as_str(),
            kind = r.kind.as_str(),
            subjects = r.subjects.len(),
            by,
            "privacy: regulation in force"
        );
        if erase::deletes(r.kind) {
            if self.reach.destinations().iter().any(|(_, can)| *can) {
                // The ids in the clear, for the destinations to be asked (a
                // restart goes on with them); erased once every one answered.
                let subjects = serde_json::to_string(&request.subjects).expect("ids serialize");
                self.store
                    .set_status(&erase::subjects_key(&r.id), &subjects)
                    .await?;
            }
            self.start(r.clone());
        }
        Ok(r)
    }

    /// Every regulation, in the store's order (as of the last refresh: on
    /// NATS, another host's is listed within [`POLL`]).
    pub async fn list(&self) -> Vec<Summary> {
        let mut folded = self.folded.lock().await;
        // A deletion's state is its progress's (read until it is done).
        for k in folded.by_order.values_mut() {
            if k.who.is_some() && k.summary.state == State::Pending {
                if let Ok(Some(p)) = erase::progress(self.store.as_ref(), &k.summary.id).await {
                    k.summary.state = p.state;
                    k.summary.reason = p.reason;
                    k.summary.done_at = p.done_at;
                }
            }
        }
        folded
            .by_order
            .values()
            .map(|k| k.summary.clone())
            .collect()
    }

    /// The newest `limit` deletions, newest first, each with its progress
    /// (`None`: not started yet).
    pub async fn deletions(&self, limit: usize) -> Vec<(Summary, Option<Progress>)> {
        let rows: Vec<Summary> = self
            .list()
            .await
            .into_iter()
            .rev()
            .filter(|r| erase::deletes(r.kind))
            .take(limit)
            .collect();
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let p = erase::progress(self.store.as_ref(), &r.id)
                .await
                .ok()
                .flatten();
            out.push((r, p));
        }
        out
    }

    /// One regulation, whole, with a deletion's progress.
    pub async fn get(&self, id: &str) -> Result<Shown, PrivacyError> {
        if !regulation::is_id(id) {
            return Err(PrivacyError::NotFound(id.to_string()));
        }
        let stored = self
            .store
            .regulation(id)
            .await?
            .ok_or_else(|| PrivacyError::NotFound(id.to_string()))?;
        let mut regulation = parse(id, &stored.document)?;
        let progress = match erase::deletes(regulation.kind) {
            true => erase::progress(self.store.as_ref(), id).await?,
            false => None,
        };
        if let Some(p) = &progress {
            regulation.state = p.state;
            regulation.reason = p.reason.clone();
            regulation.done_at = p.done_at.clone();
        }
        Ok(Shown {
            regulation,
            progress,
        })
    }

    /// Fold in the regulations recorded since this host last looked (by other
    /// hosts, or before it started). A record that does not read is skipped
    /// and said once; the others are applied. Returns how many were new.
    pub async fn refresh(&self) -> Result<usize, PrivacyError> {
        let ids = self.store.regulation_ids().await?;
        let mut folded = self.folded.lock().await;
        let mut new = Vec::new();
        for id in ids {
            if folded.ids.contains(&id) || folded.unreadable.contains(&id) {
                continue;
            }
            let Some(stored) = self.store.regulation(&id).await? else {
                continue;
            };
            match parse(&id, &stored.document).and_then(|r| Known::of(&r, self.key)) {
                Ok(known) => new.push((id, stored.order, known)),
                Err(e) => {
                    tracing::error!("privacy: regulation {id} is not applied on this host: {e}");
                    folded.unreadable.insert(id);
                }
            }
        }
        self.read_at.store(now_ms(), Relaxed);
        let n = new.len();
        for (_, _, known) in &new {
            // Another host's deletion (or one from before this start): this
            // host's memory forgets its copies too.
            if let Some(who) = &known.who {
                self.reach.forget(&|source, json| who.takes(source, json));
            }
        }
        for (id, order, known) in new {
            folded.ids.insert(id);
            folded.by_order.insert(order, known);
        }
        if n > 0 {
            self.rebuild(&folded);
        }
        Ok(n)
    }

    /// How long, at `now` (ms), a following host has gone without reading the
    /// regulations, when that is longer than [`STALE_AFTER`] (`/readyz` then
    /// says not ready). `None` on a host that follows no other.
    pub fn stale(&self, now: crate::store::Millis) -> Option<Duration> {
        if !self.following.load(Relaxed) {
            return None;
        }
        let age = Duration::from_millis(u64::try_from(now - self.read_at.load(Relaxed)).ok()?);
        (age > STALE_AFTER).then_some(age)
    }

    /// Fold every known regulation, in order, into the set ingest reads.
    fn rebuild(&self, folded: &Folded) {
        let mut s = Suppressions::new(self.key);
        for k in folded.by_order.values() {
            k.apply(&mut s);
        }
        self.suppressions.store(Arc::new(s));
    }

    /// Follow the store until `shutdown`: regulations other hosts record are in
    /// force here within [`POLL`].
    pub async fn follow(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        self.following.store(true, Relaxed);
        let mut warned = false;
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(POLL) => {}
            }
            match self.refresh().await {
                Ok(n) => {
                    if warned {
                        tracing::info!("privacy: the regulations can be read again");
                    }
                    warned = false;
                    if n > 0 {
                        tracing::info!("privacy: {n} regulation(s) from the store now in force");
                    }
                }
                Err(e) if !warned => {
                    warned = true;
                    tracing::warn!("privacy: cannot read the regulations (will retry): {e}");
                }
                Err(_) => {}
            }
        }
    }
}

fn parse(id: &str, document: &str) -> Result<Regulation, PrivacyError> {
    serde_json::from_str(document)
        .map_err(|e| PrivacyError::Unreadable(format!("regulation {id} in the store: {e}")))
}

#[cfg(test)]
mod tests;
