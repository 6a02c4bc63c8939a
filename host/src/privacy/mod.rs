//! Privacy: regulations that stop collecting a user (`SUPPRESS`) and start
//! again (`UNSUPPRESS`), as Segment's regulations do (GDPR Article 17, CCPA).
//!
//! Where it sits: beside ingest, below the admin API. `POST /admin/regulations`
//! (and `switchyard regulate`, through it) hands a [`Request`] to
//! [`Privacy::submit`], which records a [`Regulation`] in the store
//! ([`Regulations`](crate::store::Regulations)) and folds every regulation into
//! the [`Suppressions`] that ingest checks each event against before anything
//! stores it. On NATS every host follows the store ([`Privacy::follow`], once a
//! second), so a suppression recorded through one host is in force on all.
//!
//! The records are the audit log: kept for good, with each subject as a keyed
//! hash only (the key is the store's, [`crate::store::Regulations::subject_key`]).

pub mod regulation;
pub mod suppress;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{watch, Mutex};

pub use self::regulation::{Kind, Regulation, Request, State, Subjects};
pub use self::suppress::{SubjectKey, Suppressions};
use crate::store::{now_ms, Store, StoreError};

/// How often a host reads the regulations other hosts recorded.
pub const POLL: Duration = Duration::from_secs(1);

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

/// What this host knows of one regulation: enough to fold it again.
struct Known {
    /// Suppress or lift.
    kind: Kind,
    /// Where.
    sources: Option<Vec<String>>,
    /// Whom, as the sets hold them.
    hashes: Vec<u64>,
}

impl Known {
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

/// The regulations of one store, and the suppressions they make.
pub struct Privacy {
    /// Where regulations are recorded.
    store: Arc<dyn Store>,
    /// What subjects are hashed with (the store's).
    key: SubjectKey,
    /// The configured sources: a regulation may name only these.
    sources: Vec<String>,
    /// Every regulation applied here, by id: ids sort in the order they apply,
    /// so an `UNSUPPRESS` lifts only what was suppressed before it.
    known: Mutex<BTreeMap<String, Known>>,
    /// What ingest checks, swapped whole when a regulation arrives.
    suppressions: Arc<ArcSwap<Suppressions>>,
}

impl Privacy {
    /// The regulations `store` holds, in force; `sources` are the configured ones.
    pub async fn open(
        store: Arc<dyn Store>,
        sources: Vec<String>,
    ) -> Result<Privacy, PrivacyError> {
        let key = SubjectKey::new(store.subject_key().await?);
        let privacy = Privacy {
            store,
            key,
            sources,
            known: Mutex::default(),
            suppressions: Arc::new(ArcSwap::from_pointee(Suppressions::new(key))),
        };
        privacy.refresh().await?;
        Ok(privacy)
    }

    /// The suppressions in force, as ingest reads them (the same cell is
    /// swapped whenever they change).
    pub fn suppressions(&self) -> Arc<ArcSwap<Suppressions>> {
        self.suppressions.clone()
    }

    /// Carry out `request`, asked by `by`: record it, then put it in force on
    /// this host (others follow within [`POLL`]).
    pub async fn submit(&self, request: &Request, by: &str) -> Result<Regulation, PrivacyError> {
        let now = now_ms();
        let mut r = Regulation::new(request, &self.key, &self.sources, by, now)
            .map_err(PrivacyError::Refused)?;
        let hashes = r.short_hashes().map_err(PrivacyError::Unreadable)?;
        // In force the moment it is recorded: a crash after the put is
        // followed by a start that folds it from the store.
        r.state = State::Done;
        r.done_at = Some(r.requested_at.clone());
        self.store.put_regulation(&r.id, &to_json(&r)).await?;
        let mut known = self.known.lock().await;
        let last = known.keys().next_back().is_none_or(|k| *k < r.id);
        let k = Known {
            kind: r.kind,
            sources: r.sources.clone(),
            hashes,
        };
        if last {
            // The usual case: it applies after every known one, so it is
            // folded into a copy of the sets rather than all of them again.
            let mut s = Suppressions::clone(&self.suppressions.load());
            k.apply(&mut s);
            self.suppressions.store(Arc::new(s));
            known.insert(r.id.clone(), k);
        } else {
            known.insert(r.id.clone(), k);
            self.rebuild(&known);
        }
        tracing::info!(
            regulation = r.id.as_str(),
            kind = r.kind.as_str(),
            subjects = r.subjects.len(),
            by,
            "privacy: regulation in force"
        );
        Ok(r)
    }

    /// Every regulation recorded, oldest first.
    pub async fn list(&self) -> Result<Vec<Regulation>, PrivacyError> {
        let mut ids = self.store.regulation_ids().await?;
        ids.sort();
        let mut all = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(r) = self.read(&id).await? {
                all.push(r);
            }
        }
        Ok(all)
    }

    /// One regulation.
    pub async fn get(&self, id: &str) -> Result<Regulation, PrivacyError> {
        self.read(id)
            .await?
            .ok_or_else(|| PrivacyError::NotFound(id.to_string()))
    }

    async fn read(&self, id: &str) -> Result<Option<Regulation>, PrivacyError> {
        let Some(doc) = self.store.regulation(id).await? else {
            return Ok(None);
        };
        serde_json::from_str(&doc)
            .map(Some)
            .map_err(|e| PrivacyError::Unreadable(format!("regulation {id} in the store: {e}")))
    }

    /// Fold in the regulations recorded since this host last looked (by other
    /// hosts, or before it started). Returns how many were new.
    pub async fn refresh(&self) -> Result<usize, PrivacyError> {
        let ids = self.store.regulation_ids().await?;
        let mut known = self.known.lock().await;
        let mut new = 0;
        for id in ids {
            if known.contains_key(&id) {
                continue;
            }
            let Some(r) = self.read(&id).await? else {
                continue;
            };
            let hashes = r.short_hashes().map_err(PrivacyError::Unreadable)?;
            known.insert(
                id,
                Known {
                    kind: r.kind,
                    sources: r.sources,
                    hashes,
                },
            );
            new += 1;
        }
        if new > 0 {
            self.rebuild(&known);
        }
        Ok(new)
    }

    /// Fold every known regulation, in order, into the set ingest reads.
    fn rebuild(&self, known: &BTreeMap<String, Known>) {
        let mut s = Suppressions::new(self.key);
        for k in known.values() {
            k.apply(&mut s);
        }
        self.suppressions.store(Arc::new(s));
    }

    /// Follow the store until `shutdown`: regulations other hosts record are in
    /// force here within [`POLL`].
    pub async fn follow(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut warned = false;
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(POLL) => {}
            }
            match self.refresh().await {
                Ok(n) => {
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

fn to_json(r: &Regulation) -> String {
    serde_json::to_string(r).expect("a regulation serializes")
}
