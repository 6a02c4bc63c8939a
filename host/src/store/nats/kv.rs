//! Operator state on NATS, shared by every host of one stream: which
//! destinations an operator paused, which hosts are live (so each takes its
//! share of a destination's rate limit), and the newest reload (so every host
//! reloads when one does). Three JetStream key-value buckets.
//!
//! Where it sits: [`super::NatsStore`] opens an [`OperatorKv`] beside its
//! streams and answers `set_paused`, `paused` and `live_hosts` of the
//! [`Store`](crate::store::Store) contract with it. The dispatcher's follower
//! (`dispatch/operator.rs`) polls both once a second.

use std::collections::HashSet;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures::StreamExt;

use crate::store::StoreError;

/// Bucket of operator pauses: one key per paused destination.
const PAUSED: &str = "switchyard-paused";

/// Bucket of live hosts: one key per host, expiring unless renewed.
const HOSTS: &str = "switchyard-hosts";

/// Bucket of the newest reload: key [`RELOAD_KEY`] → a generation.
const CONFIG: &str = "switchyard-config";
const RELOAD_KEY: &str = "reload";

/// How long a host counts as live after its last heartbeat (the follower beats
/// once a second).
pub const HOST_TTL: Duration = Duration::from_secs(6);

/// The two buckets.
pub struct OperatorKv {
    /// `pause.<destination>` → `1`, for every destination an operator paused.
    paused: kv::Store,
    /// `<host>` → its last heartbeat, expiring after [`HOST_TTL`].
    hosts: kv::Store,
    /// `reload` → the generation of the newest reload a host announced.
    config: kv::Store,
    /// The stream under `config`, read with a plain message get (which every
    /// server version answers).
    config_stream: jetstream::stream::Stream,
}

pub(super) fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("nats: {e}"))
}

/// A bucket key for any destination or host name: kept as it is when it is a
/// valid key (and does not start with `x`), otherwise `x` and its hex (keys
/// allow `[-_=.a-zA-Z0-9/]` only).
fn key(name: &str) -> String {
    let plain = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_=".contains(&b));
    if plain && !name.is_empty() && !name.starts_with('x') {
        name.to_string()
    } else {
        format!("x{}", hex::encode(name))
    }
}

/// The name a key was made from.
fn name_of(key: &str) -> String {
    key.strip_prefix('x')
        .and_then(|h| hex::decode(h).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_else(|| key.to_string())
}

/// Open the bucket, or make it: its stream is made here (as the KV layout
/// wants it) rather than by the client's `create_key_value`, whose request asks
/// for stream features that older servers (Debian's 2.9) refuse.
pub(super) async fn bucket(
    js: &jetstream::Context,
    config: kv::Config,
    replicas: usize,
) -> Result<kv::Store, StoreError> {
    if let Ok(store) = js.get_key_value(config.bucket.clone()).await {
        return Ok(store);
    }
    js.get_or_create_stream(jetstream::stream::Config {
        name: format!("KV_{}", config.bucket),
        description: Some(config.description.clone()),
        subjects: vec![format!("$KV.{}.>", config.bucket)],
        max_messages_per_subject: config.history,
        max_age: config.max_age,
        storage: config.storage,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: jetstream::stream::DiscardPolicy::New,
        num_replicas: replicas,
        ..Default::default()
    })
    .await
    .map_err(unavailable)?;
    js.get_key_value(config.bucket).await.map_err(unavailable)
}

impl OperatorKv {
    /// Open (or create) both buckets.
    pub async fn open(js: &jetstream::Context, replicas: usize) -> Result<OperatorKv, StoreError> {
        let paused = bucket(
            js,
            kv::Config {
                bucket: PAUSED.into(),
                description: "Switchyard: destinations an operator paused".into(),
                history: 1,
                storage: jetstream::stream::StorageType::File,
                ..Default::default()
            },
            replicas,
        )
        .await?;
        let hosts = bucket(
            js,
            kv::Config {
                bucket: HOSTS.into(),
                description: "Switchyard: live hosts (heartbeats)".into(),
                history: 1,
                max_age: HOST_TTL,
                storage: jetstream::stream::StorageType::File,
                ..Default::default()
            },
            replicas,
        )
        .await?;
        let config = bucket(
            js,
            kv::Config {
                bucket: CONFIG.into(),
                description: "Switchyard: the newest reload, which every host applies".into(),
                history: 1,
                storage: jetstream::stream::StorageType::File,
                ..Default::default()
            },
            replicas,
        )
        .await?;
        let config_stream = js
            .get_stream(format!("KV_{CONFIG}"))
            .await
            .map_err(unavailable)?;
        Ok(OperatorKv {
            paused,
            hosts,
            config,
            config_stream,
        })
    }

    /// The generation of the newest reload announced, if any.
    pub async fn reload_generation(&self) -> Result<Option<String>, StoreError> {
        Ok(newest(&self.config_stream, CONFIG, RELOAD_KEY)
            .await?
            .map(|(payload, _)| String::from_utf8_lossy(&payload).into_owned()))
    }

    /// Announce a reload.
    pub async fn announce_reload(&self, generation: &str) -> Result<(), StoreError> {
        self.config
            .put(RELOAD_KEY, generation.to_string().into())
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    /// Record a pause or a resume.
    pub async fn set_paused(&self, destination: &str, paused: bool) -> Result<(), StoreError> {
        let k = key(destination);
        if paused {
            self.paused
                .put(k, "1".into())
                .await
                .map(|_| ())
                .map_err(unavailable)
        } else {
            self.paused.purge(k).await.map_err(unavailable)
        }
    }

    /// Every paused destination.
    pub async fn paused(&self) -> Result<HashSet<String>, StoreError> {
        keys(&self.paused).await
    }

    /// Beat for `host`, then count the hosts that beat within [`HOST_TTL`].
    pub async fn live_hosts(&self, host: &str) -> Result<usize, StoreError> {
        let now = crate::store::now_ms().to_string();
        self.hosts
            .put(key(host), now.into())
            .await
            .map_err(unavailable)?;
        Ok(keys(&self.hosts).await?.len().max(1))
    }
}

/// The newest value under `key` in `bucket` (whose stream is `stream`), with
/// its stream sequence: read with a plain message get, which every server
/// version answers (a KV get may ask for more than Debian's 2.9 has).
pub(super) async fn newest(
    stream: &jetstream::stream::Stream,
    bucket: &str,
    key: &str,
) -> Result<Option<(Vec<u8>, u64)>, StoreError> {
    match stream
        .get_last_raw_message_by_subject(&format!("$KV.{bucket}.{key}"))
        .await
    {
        Ok(m) => Ok(Some((m.payload.to_vec(), m.sequence))),
        Err(e) if e.kind() == jetstream::stream::LastRawMessageErrorKind::NoMessageFound => {
            Ok(None)
        }
        Err(e) => Err(unavailable(e)),
    }
}

async fn keys(bucket: &kv::Store) -> Result<HashSet<String>, StoreError> {
    let mut keys = bucket.keys().await.map_err(unavailable)?;
    let mut out = HashSet::new();
    while let Some(k) = keys.next().await {
        out.insert(name_of(&k.map_err(unavailable)?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_name_makes_a_valid_key_and_comes_back() {
        for name in [
            "hooks",
            "a-b_c",
            "with space",
            "dots.and/slash",
            "ünï",
            "x41",
        ] {
            let k = key(name);
            assert!(
                k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_=".contains(&b)),
                "{k}"
            );
            assert_eq!(name_of(&k), name, "{k}");
        }
    }
}
