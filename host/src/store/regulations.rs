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

use super::StoreError;

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
}
