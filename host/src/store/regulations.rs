//! The privacy regulations' part of the store contract: kept durably and, on
//! NATS, shared by every host.
//!
//! Where it sits: below `crate::privacy`, which records regulations and folds
//! them into what ingest suppresses. The store keeps each regulation as an
//! opaque JSON document under its id, written once: the privacy module owns its
//! shape, and the store never sees a subject's id in the clear (regulations hold
//! keyed hashes). The store gives each a place in one order that every host
//! sees the same, so an `UNSUPPRESS` and a `SUPPRESS` of the same user apply in
//! the order the store took them, whatever the hosts' clocks say.
//!
//! A deletion asks the store to erase a user's events ([`Regulations::erase_step`]):
//! the privacy module says which events are the user's ([`Matches`]), the store
//! finds and erases them in bounded steps, each crash-safe on its own, so that
//! no byte of them remains in its files. Where a deletion stands (its
//! [`Regulations::status`]) is kept beside the write-once record and rewritten
//! as it goes, so a host that restarts goes on from the last step.

use std::sync::Arc;

use super::StoreError;

/// Which stored events a deletion takes: asked of each with its source and its
/// JSON. A plain function, so the store needs nothing of the privacy module.
pub type Matches = Arc<dyn Fn(&str, &str) -> bool + Send + Sync>;

/// How many events one erase step (or a whole deletion) erased, per place.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Erased {
    /// From the log (the retained events and those still to deliver).
    pub log: u64,
    /// From the retry rows.
    pub retries: u64,
    /// From the dead letters.
    pub dead_letters: u64,
}

impl Erased {
    /// Both counts added.
    pub fn add(&mut self, other: Erased) {
        self.log += other.log;
        self.retries += other.retries;
        self.dead_letters += other.dead_letters;
    }

    /// Nothing erased.
    pub fn is_empty(&self) -> bool {
        *self == Erased::default()
    }
}

/// What one erase step did, and where the next one starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EraseStep {
    /// What it erased.
    pub erased: Erased,
    /// Where the next step starts (a position only this store reads); `None`:
    /// the deletion is complete in this store.
    pub next: Option<u64>,
}

/// A regulation as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRegulation {
    /// Its document.
    pub document: String,
    /// Its place in the order the store took regulations in (rising).
    pub order: u64,
}

/// Regulations, durable and shared.
#[async_trait::async_trait]
pub trait Regulations: Send + Sync + 'static {
    /// The key subjects are hashed with: 16 random bytes made by the first host
    /// that asks, then the same for every host of this store, for good.
    async fn subject_key(&self) -> Result<[u8; 16], StoreError>;

    /// Record a new regulation's document, once. Returns its place in the
    /// store's order.
    async fn add_regulation(&self, id: &str, document: &str) -> Result<u64, StoreError>;

    /// The ids of every regulation recorded (in no particular order).
    async fn regulation_ids(&self) -> Result<Vec<String>, StoreError>;

    /// Regulation `id`, if recorded.
    async fn regulation(&self, id: &str) -> Result<Option<StoredRegulation>, StoreError>;

    /// Where regulation `id` stands: the document last written by
    /// [`Regulations::set_status`], if any.
    async fn status(&self, id: &str) -> Result<Option<String>, StoreError>;

    /// Record where regulation `id` stands (replacing what was recorded).
    async fn set_status(&self, id: &str, document: &str) -> Result<(), StoreError>;

    /// Remove what [`Regulations::set_status`] recorded under `id`, leaving
    /// no copy of it in the store's files (a deletion's ids in the clear are
    /// kept this way until every destination was asked).
    async fn erase_status(&self, id: &str) -> Result<(), StoreError>;

    /// Erase, from position `from` (0: the start), a bounded step's worth of
    /// the stored events `matches` takes: from the log, the retry rows and
    /// the dead letters, so that their bytes are gone from the store's files
    /// once the last step answers. Each step is whole or not at all; a step
    /// run again erases nothing more.
    async fn erase_step(&self, matches: Matches, from: u64) -> Result<EraseStep, StoreError>;
}
