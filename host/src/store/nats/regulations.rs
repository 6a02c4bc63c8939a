//! Privacy regulations on NATS: one key-value bucket that every host of the
//! stream reads, so a suppression recorded through one host is in force on all
//! of them (each polls: `Privacy::follow`).
//!
//! Keys: `key` holds the subject key (made once, by whichever host asks first:
//! a `create` that loses the race reads the winner's), and `r.<id>` the
//! document of each regulation, written once: its stream sequence is its place
//! in the order; `s.<id>` where it stands. Values are read with a plain message get, as the reload
//! generation is (`kv.rs`), which every server version answers.

use async_nats::jetstream::{self, kv};
use base64::Engine as _;
use futures::StreamExt;

use super::kv::{bucket, newest, unavailable};
use crate::store::{StoreError, StoredRegulation};

/// The bucket.
const BUCKET: &str = "switchyard-regulations";
/// The key of the subject key.
const KEY: &str = "key";
/// The prefix of a regulation's key.
const REGULATION: &str = "r.";
/// The prefix of the key of where a regulation stands (rewritten as it goes;
/// the bucket keeps one value per key).
const STATUS: &str = "s.";

/// The bucket and the stream under it.
pub struct RegulationsKv {
    /// Where documents are put.
    bucket: kv::Store,
    /// The same bucket's stream, for plain gets.
    stream: jetstream::stream::Stream,
}

impl RegulationsKv {
    /// Open (or create) the bucket.
    pub async fn open(
        js: &jetstream::Context,
        replicas: usize,
    ) -> Result<RegulationsKv, StoreError> {
        let bucket = bucket(
            js,
            kv::Config {
                bucket: BUCKET.into(),
                description: "Switchyard: privacy regulations (subjects as keyed hashes)".into(),
                history: 1,
                storage: jetstream::stream::StorageType::File,
                ..Default::default()
            },
            replicas,
        )
        .await?;
        let stream = js
            .get_stream(format!("KV_{BUCKET}"))
            .await
            .map_err(unavailable)?;
        Ok(RegulationsKv { bucket, stream })
    }

    /// The newest value under `key`, with its stream sequence.
    async fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u64)>, StoreError> {
        newest(&self.stream, BUCKET, key).await
    }

    /// The subject key: the stored one, or a new one stored first.
    pub async fn subject_key(&self) -> Result<[u8; 16], StoreError> {
        let engine = base64::engine::general_purpose::STANDARD;
        let mut created = Ok(0);
        if self.get(KEY).await?.is_none() {
            let fresh: [u8; 16] = rand::random();
            // Two hosts that race: one create wins, the other fails and reads it.
            created = self.bucket.create(KEY, engine.encode(fresh).into()).await;
        }
        let Some((stored, _)) = self.get(KEY).await? else {
            return Err(match created {
                Err(e) => unavailable(format!("{BUCKET}: the subject key cannot be made: {e}")),
                Ok(_) => unavailable("the subject key was written but cannot be read"),
            });
        };
        engine
            .decode(&stored)
            .ok()
            .and_then(|b| <[u8; 16]>::try_from(b).ok())
            .ok_or_else(|| unavailable(format!("{BUCKET}: the subject key is not 16 bytes")))
    }

    /// Record a new regulation's document; its revision is its place.
    pub async fn add(&self, id: &str, document: &str) -> Result<u64, StoreError> {
        self.bucket
            .create(format!("{REGULATION}{id}"), document.to_string().into())
            .await
            .map_err(unavailable)
    }

    /// The ids of every regulation.
    pub async fn ids(&self) -> Result<Vec<String>, StoreError> {
        let mut keys = self.bucket.keys().await.map_err(unavailable)?;
        let mut ids = Vec::new();
        while let Some(k) = keys.next().await {
            if let Some(id) = k.map_err(unavailable)?.strip_prefix(REGULATION) {
                ids.push(id.to_string());
            }
        }
        Ok(ids)
    }

    /// Where regulation `id` stands.
    pub async fn status(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .get(&format!("{STATUS}{id}"))
            .await?
            .map(|(b, _)| String::from_utf8_lossy(&b).into_owned()))
    }

    /// Record where regulation `id` stands.
    pub async fn set_status(&self, id: &str, document: &str) -> Result<(), StoreError> {
        self.bucket
            .put(format!("{STATUS}{id}"), document.to_string().into())
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    /// Erase the status `id` from the bucket's stream (JetStream's message
    /// delete overwrites it in the server's files).
    pub async fn erase_status(&self, id: &str) -> Result<(), StoreError> {
        if let Some((_, seq)) = self.get(&format!("{STATUS}{id}")).await? {
            self.stream.delete_message(seq).await.map_err(unavailable)?;
        }
        Ok(())
    }

    /// One regulation.
    pub async fn document(&self, id: &str) -> Result<Option<StoredRegulation>, StoreError> {
        Ok(self
            .get(&format!("{REGULATION}{id}"))
            .await?
            .map(|(b, order)| StoredRegulation {
                document: String::from_utf8_lossy(&b).into_owned(),
                order,
            }))
    }
}
