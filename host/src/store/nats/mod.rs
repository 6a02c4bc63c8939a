//! The NATS JetStream store (`[store] kind = "nats"`): many hosts, one stream.
//!
//! Layout on the server:
//! - stream `SWITCHYARD_EVENTS` (interest retention, file storage), subjects
//!   `sy.ev.<p>`: one message per event, whatever the number of destinations,
//!   published with `Nats-Msg-Id = <source>/<messageId>` so JetStream's
//!   duplicate window (the dedup window) drops a repeated event. `p` is a hash
//!   of the user (16 partitions). Routing is read by each destination from the
//!   headers (type, event name, `integrations`): an event a destination's
//!   filters skip is acknowledged by it unread. A message is removed once every
//!   destination's consumer has acknowledged it;
//! - one durable pull consumer per destination (`dest-<destination>`), shared by
//!   every host with the same config: the work spreads across hosts, and a job a
//!   host took but never settled is redelivered to another after `ack_wait`;
//! - stream `SWITCHYARD_DLQ`, subjects `sy.dlq.<destination>`: dead letters, the
//!   event as payload and the reason, attempts and times as headers. A replayed
//!   dead letter goes back into the events stream with a
//!   `Switchyard-Only: <destination>` header, which every other destination skips.
//!
//! The trait maps as: `append` = publish and wait for every publish ack (the
//! durability point); `claim` = fetch from the destination's consumer; `settle`
//! = ack, nak with a delay, or publish to the dead-letter stream and term.
//! A job's id is its stream sequence; the fetched message stays in this host's
//! memory until settled. The retry window counts from the job's publication.
//!
//! Per-user ordering (`ordering = "user"`), across hosts: an ordered destination
//! has one consumer per partition (`dest-<destination>-p<p>`, filter `sy.ev.<p>`)
//! with `max_ack_pending = 1`: the server lets one event of a partition out at a
//! time, to any host, until it is acked or terminated; an event waiting for its
//! retry (nak with delay) still holds its partition, so that user's later events
//! wait while other partitions flow, and a batch never holds two events of one
//! user. Each host keeps a long-lived pull on every partition consumer and claims
//! from what arrived. Users that share a partition share its order.
//!
//! Migration: the layout before this one (stream `SWITCHYARD`, one message per
//! event and destination) is detected at open; an empty one is deleted, one
//! with messages is refused with what to do.

mod backfill;
mod dead_letters;
mod erase;
pub mod headers;
mod kv;
mod queues;

pub use self::queues::{job_of, Delivery, NOT_AN_EVENT};
use self::queues::{pull_forever, renew_leases};
mod reconfigure;
mod regulations;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream, AckKind};
use futures::StreamExt;
use tokio::sync::Notify;

use self::headers::Headers;

use crate::config::{DestinationConfig, Ordering};
use crate::event_type::EventType;
use crate::route::{RouteKeys, Router};

use super::{
    now_ms, AppendReport, Claim, Coordination, DeadLetter, DeadLetters, EraseStep, Job, JobId,
    Matches, Millis, NewEvent, QueueStats, Queues, Reconfigure, Regulations, Settle, Store,
    StoreError, StoredRegulation,
};

/// The least byte budget of a pull: a stored event (32 KB at most) with its
/// headers always fits.
const MIN_FETCH_BYTES: usize = 64 * 1024;

const EVENTS: &str = "SWITCHYARD_EVENTS";
/// The stream of the previous layout (one message per event and destination).
const OLD_JOBS: &str = "SWITCHYARD";
const DLQ: &str = "SWITCHYARD_DLQ";
/// How long a publish may wait for JetStream's ack before ingest answers 503.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest wait for the answer to one fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// How often an idle worker asks the server for work (other hosts' appends).
const IDLE_POLL_MS: i64 = 200;

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("nats: {e}"))
}

/// [`max_deliveries`] of a destination the config no longer names.
const DEFAULT_MAX_DELIVERIES: i64 = 10_000;

/// The `max_deliver` of a destination's consumers: far more deliveries than
/// its retry policy makes within its window (full jitter waits half the
/// ceiling on average), so only a message that is never settled (a host that
/// crashes on it, say) reaches it. On that last delivery the host moves it to
/// dead letters; the server itself would stop delivering it.
pub fn max_deliveries(policy: &crate::config::RetryPolicy) -> i64 {
    let per_window = policy.window.as_millis() / policy.max.as_millis().max(1);
    i64::try_from(per_window)
        .unwrap_or(i64::MAX)
        .saturating_mul(4)
        .saturating_add(100)
        .min(1_000_000)
}

/// Partitions of a destination's subject space.
const PARTITIONS: u64 = 16;

/// A server URL fit for a log line or an error: any user and password in it
/// replaced by `***`. (`store.url` may carry them.)
pub fn shown_url(url: &str) -> String {
    url.split(',')
        .map(|one| match one.split_once("://") {
            Some((scheme, rest)) => match rest.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://***@{host}"),
                None => one.to_string(),
            },
            None => match one.rsplit_once('@') {
                Some((_, host)) => format!("***@{host}"),
                None => one.to_string(),
            },
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The partition of a user (FNV-1a: stable across hosts and versions).
pub fn partition(key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h % PARTITIONS
}

/// The subject of an event: the partition of its user (or of its id).
fn event_subject(user_or_id: &str) -> String {
    format!("sy.ev.{}", partition(user_or_id))
}

fn dlq_subject(destination: &str) -> String {
    format!("sy.dlq.{destination}")
}

/// The JetStream store's handle.
pub struct NatsStore {
    /// The connection (flushed after acks, which are fire-and-forget).
    client: async_nats::Client,
    /// JetStream context (publish timeout set).
    js: jetstream::Context,
    /// The events stream.
    events: stream::Stream,
    /// The dead-letter stream.
    dlq: stream::Stream,
    /// How long a fetched job stays leased to a host before redelivery.
    ack_wait: Duration,
    /// `[store] retention` (zero: none; the stream then has interest retention).
    retention: Duration,
    /// Destinations with `ordering = "user"` (a reload adds those it adds).
    ordered: std::sync::RwLock<std::collections::HashSet<String>>,
    /// Decides, from an event's headers, whether a destination takes it;
    /// replaced by a reload. Retired destinations keep their routes here.
    router: arc_swap::ArcSwap<Router>,
    /// Destinations a reload retired, each with the last stream sequence
    /// published before it: their consumers drain up to it and skip the rest.
    retired: std::sync::RwLock<HashMap<String, u64>>,
    /// Consumers by destination (one, or one per partition), created at open.
    consumers: tokio::sync::Mutex<HashMap<String, Vec<consumer::PullConsumer>>>,
    /// Jobs pulled for ordered destinations, waiting to be claimed.
    inboxes: Arc<Mutex<HashMap<String, std::collections::VecDeque<jetstream::Message>>>>,
    /// The long-lived pulls feeding `inboxes` (stopped when the store is dropped).
    pullers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Fetched, unsettled messages by destination and job id.
    leased: Arc<Mutex<HashMap<String, HashMap<JobId, Leased>>>>,
    /// Retries this host scheduled (a nak with a delay): job id (the stream
    /// sequence) → when it is due, by destination, for the admin API's retry
    /// figures. An entry leaves when its message is delivered again.
    retrying: Mutex<HashMap<String, HashMap<JobId, Millis>>>,
    /// Wake-ups after local appends.
    wakeups: Mutex<HashMap<String, Arc<Notify>>>,
    /// Operator pauses and live hosts, shared by every host (`kv.rs`).
    operator: kv::OperatorKv,
    /// The privacy regulations, shared by every host.
    regulations: regulations::RegulationsKv,
    /// The two streams' configs, to make them again if they are deleted.
    streams: [stream::Config; 2],
    /// Every destination served (retired ones included): to make its
    /// consumers again, and to route again after a reload.
    destinations: std::sync::RwLock<Vec<DestinationConfig>>,
    /// The lowest `max_deliver` the server holds on each destination's consumers.
    server_max_deliver: std::sync::RwLock<HashMap<String, i64>>,
    /// When [`NatsStore::repair`] last ran (at most once a second).
    last_repair: Mutex<Option<std::time::Instant>>,
    /// Publish figures and the last failure (`/metrics`, `/readyz`).
    commits: Arc<super::Commits>,
}

/// The events and dead-letter streams, as this store makes them.
fn stream_configs(options: &NatsOptions) -> [stream::Config; 2] {
    [
        stream::Config {
            name: EVENTS.into(),
            subjects: vec!["sy.ev.>".into()],
            retention: match options.retention.is_zero() {
                true => stream::RetentionPolicy::Interest,
                false => stream::RetentionPolicy::Limits,
            },
            max_age: options.retention,
            storage: stream::StorageType::File,
            num_replicas: options.replicas,
            // JetStream wants the window within the stream's max_age.
            duplicate_window: match options.retention.is_zero() {
                true => options.dedup_window,
                false => options.dedup_window.min(options.retention),
            },
            ..Default::default()
        },
        stream::Config {
            name: DLQ.into(),
            subjects: vec!["sy.dlq.>".into()],
            storage: stream::StorageType::File,
            num_replicas: options.replicas,
            max_age: options.dead_letter_retention.unwrap_or_default(),
            ..Default::default()
        },
    ]
}

/// Whether an error says a stream or consumer is gone (deleted by hand, or a
/// server that lost its data), rather than that the server is unreachable.
fn missing(e: &dyn std::fmt::Display) -> bool {
    let text = e.to_string();
    [
        "no stream found",
        "stream not found",
        "consumer not found",
        "does not exist",
        "no responders",
    ]
    .iter()
    .any(|m| text.contains(m))
}

impl std::fmt::Debug for NatsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NatsStore")
    }
}

/// A message this host holds for a destination, and since when.
struct Leased {
    message: jetstream::Message,
    since: std::time::Instant,
}

/// Longest a host keeps renewing the lease of one job. A batch that lingers,
/// waits for rate tokens (which AIMD can make 64× longer) or is in flight is
/// renewed; a job held past this is left to expire, so a host whose worker is
/// stuck cannot hold it for ever.
const MAX_RENEWED_LEASE: Duration = Duration::from_secs(15 * 60);

/// Longest wait for JetStream's answer to the readiness check.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// How to reach the server.
#[derive(Debug, Clone)]
pub struct NatsOptions {
    /// `nats://host:port` (user and password may be in the URL).
    pub url: String,
    /// A `.creds` file, when the server wants one.
    pub credentials_file: Option<std::path::PathBuf>,
    /// JetStream's duplicate window (the dedup window).
    pub dedup_window: Duration,
    /// Lease of a fetched job (sized to the destinations' timeouts).
    pub ack_wait: Duration,
    /// Replicas of the streams this store creates (the server needs that many).
    pub replicas: usize,
    /// The dead-letter stream's `max_age` (`None`: kept until purged or replayed).
    pub dead_letter_retention: Option<Duration>,
    /// `[store] retention`: the events stream keeps every event this long
    /// (limits retention), for backfills; zero: until every destination has it.
    pub retention: Duration,
}

impl NatsStore {
    /// Connect, make sure both streams and every destination's consumers exist.
    pub async fn open(
        options: &NatsOptions,
        destinations: &[DestinationConfig],
    ) -> Result<NatsStore, StoreError> {
        let mut connect = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .retry_on_initial_connect();
        if let Some(file) = &options.credentials_file {
            connect = connect
                .credentials_file(file)
                .await
                .map_err(|e| unavailable(format!("credentials {}: {e}", file.display())))?;
        }
        let client = tokio::time::timeout(Duration::from_secs(10), connect.connect(&options.url))
            .await
            .map_err(|_| unavailable(format!("cannot connect to {}", shown_url(&options.url))))?
            .map_err(|e| {
                let mut text = e.to_string();
                for one in std::iter::once(options.url.as_str()).chain(options.url.split(',')) {
                    text = text.replace(one, &shown_url(one));
                }
                unavailable(text)
            })?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(PUBLISH_TIMEOUT);
        refuse_old_layout(&js).await?;
        let streams = stream_configs(options);
        let mut events = js
            .get_or_create_stream(streams[0].clone())
            .await
            .map_err(unavailable)?;
        let had = events.cached_info().config.clone();
        if had.retention != streams[0].retention {
            return Err(StoreError::Unavailable(format!(
                "stream {EVENTS} keeps events by {:?} retention, and `[store] retention` asks for {:?}: \
                 a stream's retention cannot change; drain it, delete it (`nats stream rm {EVENTS}`) and start again",
                had.retention, streams[0].retention
            )));
        }
        if had.max_age != streams[0].max_age {
            // Only what `[store] retention` sets changes; other limits set by hand stay.
            let mut updated = had.clone();
            updated.max_age = streams[0].max_age;
            updated.duplicate_window = streams[0].duplicate_window;
            tracing::warn!(
                "nats: stream {EVENTS}: max_age {:?} -> {:?} ([store] retention)",
                had.max_age,
                updated.max_age
            );
            js.update_stream(&updated).await.map_err(unavailable)?;
            events = js.get_stream(EVENTS).await.map_err(unavailable)?;
        }
        let mut dlq = js
            .get_or_create_stream(streams[1].clone())
            .await
            .map_err(unavailable)?;
        // A changed `dead_letter_retention` applies to the stream that exists.
        if dlq.cached_info().config.max_age != streams[1].max_age {
            js.update_stream(&streams[1]).await.map_err(unavailable)?;
            dlq = js.get_stream(DLQ).await.map_err(unavailable)?;
        }
        let ids: Vec<u32> = (0..destinations.len() as u32).collect();
        let operator = kv::OperatorKv::open(&js, options.replicas).await?;
        let regulations = regulations::RegulationsKv::open(&js, options.replicas).await?;
        let store = NatsStore {
            client,
            js,
            events,
            dlq,
            ack_wait: options.ack_wait,
            retention: options.retention,
            ordered: std::sync::RwLock::new(
                destinations
                    .iter()
                    .filter(|d| d.ordering == Ordering::User)
                    .map(|d| d.name.clone())
                    .collect(),
            ),
            router: arc_swap::ArcSwap::from_pointee(Router::new(destinations, &ids)),
            retired: Default::default(),
            consumers: Default::default(),
            inboxes: Default::default(),
            pullers: Default::default(),
            leased: Default::default(),
            retrying: Default::default(),
            wakeups: Default::default(),
            operator,
            regulations,
            streams,
            destinations: std::sync::RwLock::new(destinations.to_vec()),
            server_max_deliver: Default::default(),
            last_repair: Mutex::new(None),
            commits: Arc::default(),
        };
        let renew = tokio::spawn(renew_leases(
            store.leased.clone(),
            store.inboxes.clone(),
            store.client.clone(),
            (options.ack_wait / 3).max(Duration::from_millis(250)),
        ));
        store.pullers.lock().expect("pullers lock").push(renew);
        // Interest retention keeps a message only for consumers that exist when it
        // is published: every destination's consumers are made before any append.
        // With retention the stream keeps what every consumer has had: a new
        // destination starts at its end, not at its oldest event.
        let from_now = !options.retention.is_zero();
        for d in destinations {
            store.consumers(&d.name, from_now).await?;
        }
        Ok(store)
    }

    /// The consumers of a destination: one over all its partitions, or one per
    /// partition (ordered), each then fed into the destination's inbox by a long-lived pull.
    /// `from_now`: a consumer made now starts at the end of the stream (a
    /// destination a reload adds), not at its first message still kept.
    async fn consumers(
        &self,
        destination: &str,
        from_now: bool,
    ) -> Result<Vec<consumer::PullConsumer>, StoreError> {
        let mut consumers = self.consumers.lock().await;
        if let Some(c) = consumers.get(destination) {
            return Ok(c.clone());
        }
        let ordered = self
            .ordered
            .read()
            .expect("ordered lock")
            .contains(destination);
        let deliver_policy = match from_now {
            true => consumer::DeliverPolicy::New,
            false => consumer::DeliverPolicy::All,
        };
        let specs: Vec<(String, String, i64)> = if ordered {
            (0..PARTITIONS)
                .map(|p| (format!("dest-{destination}-p{p}"), format!("sy.ev.{p}"), 1))
                .collect()
        } else {
            vec![(
                format!("dest-{destination}"),
                "sy.ev.>".to_string(),
                100_000,
            )]
        };
        let max_deliver = self.delivery_bound(destination);
        let mut made = Vec::new();
        for (name, filter, max_ack_pending) in specs {
            let config = consumer::pull::Config {
                durable_name: Some(name.clone()),
                filter_subject: filter,
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: self.ack_wait,
                max_ack_pending,
                max_deliver,
                deliver_policy,
                ..Default::default()
            };
            let mut c: consumer::PullConsumer = self
                .events
                .get_or_create_consumer(&name, config)
                .await
                .map_err(unavailable)?;
            // A consumer made before (by an older version, or another retry
            // policy) gets this bound too; nothing else of its config changes.
            if c.cached_info().config.max_deliver != max_deliver {
                let mut changed = c.cached_info().config.clone();
                changed.max_deliver = max_deliver;
                let updated = match self.events.update_consumer(changed).await {
                    Ok(_) => self
                        .events
                        .get_consumer(&name)
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                match updated {
                    Ok(updated) => c = updated,
                    Err(e) => tracing::warn!(
                        consumer = name.as_str(),
                        "nats: cannot set max_deliver {max_deliver}: {e}"
                    ),
                }
            }
            // What the server holds is what counts (another host, or a failed update).
            let held = c.cached_info().config.max_deliver;
            if held > 0 {
                self.server_max_deliver
                    .write()
                    .expect("max_deliver lock")
                    .entry(destination.to_string())
                    .and_modify(|m| *m = (*m).min(held))
                    .or_insert(held);
            }
            made.push(c);
        }
        if ordered {
            let mut pullers = self.pullers.lock().expect("pullers lock");
            for c in &made {
                pullers.push(tokio::spawn(pull_forever(
                    c.clone(),
                    destination.to_string(),
                    self.inboxes.clone(),
                    self.wakeup(destination),
                )));
            }
        }
        consumers.insert(destination.to_string(), made.clone());
        Ok(made)
    }

    fn notify(&self, destination: &str) {
        self.wakeup(destination).notify_one();
    }

    /// Make the streams and every destination's consumers again, when an error
    /// says they are gone (at most once a second). Consumers come first back,
    /// before the next publish, so interest retention keeps what is published.
    async fn repair(&self, error: &(dyn std::fmt::Display + Sync)) {
        {
            let mut last = self.last_repair.lock().expect("repair lock");
            if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
                return;
            }
            *last = Some(std::time::Instant::now());
        }
        tracing::warn!("nats: a stream or consumer is gone ({error}); making them again");
        for config in &self.streams {
            if let Err(e) = self.js.get_or_create_stream(config.clone()).await {
                tracing::warn!("nats: cannot make stream {} again: {e}", config.name);
                return;
            }
        }
        self.consumers.lock().await.clear();
        let names: Vec<String> = {
            let all = self.destinations.read().expect("destinations lock");
            all.iter().map(|d| d.name.clone()).collect()
        };
        // Not a retired one's: another host may have deleted it on purpose.
        let names: Vec<String> = names.into_iter().filter(|n| !self.is_retired(n)).collect();
        for d in &names {
            if let Err(e) = self.consumers(d, false).await {
                tracing::warn!(
                    destination = d.as_str(),
                    "nats: cannot make its consumer again: {e}"
                );
            }
        }
    }
}

/// One pull of at most `max` messages from a consumer of a reader's own
/// (a backfill's, a deletion's), within [`FETCH_TIMEOUT`]; empty when none is
/// left. `what` names the reader in the error.
async fn pull_batch(
    reader: &consumer::PullConsumer,
    max: usize,
    what: &str,
) -> Result<Vec<jetstream::Message>, StoreError> {
    tokio::time::timeout(FETCH_TIMEOUT, async {
        let mut got = Vec::new();
        let mut msgs = reader
            .fetch()
            .max_messages(max)
            .messages()
            .await
            .map_err(unavailable)?;
        while let Some(m) = msgs.next().await {
            got.push(m.map_err(unavailable)?);
        }
        Ok(got)
    })
    .await
    .map_err(|_| unavailable(format!("no answer to {what}'s read")))?
}

/// The text of a message's header `name` ([`headers::read`]).
fn header<'a>(m: &'a jetstream::Message, name: &str) -> Option<std::borrow::Cow<'a, str>> {
    headers::read(m.headers.as_ref(), name)
}

/// What routing reads, from an event's headers.
fn route_keys(m: &jetstream::Message) -> RouteKeys {
    route_keys_of(m.headers.as_ref())
}

/// What routing reads, from these headers.
pub fn route_keys_of(map: Option<&async_nats::HeaderMap>) -> RouteKeys {
    RouteKeys {
        event_type: headers::read(map, "Switchyard-Type")
            .unwrap_or_default()
            .into_owned(),
        event_name: headers::read(map, "Switchyard-Event").map(std::borrow::Cow::into_owned),
        integrations: headers::read(map, "Switchyard-Integrations")
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| match v {
                serde_json::Value::Object(map) => Some(map),
                _ => None,
            }),
    }
}

/// Refuse a server that holds the previous layout with work in it; delete an empty one.
async fn refuse_old_layout(js: &jetstream::Context) -> Result<(), StoreError> {
    let Ok(mut old) = js.get_stream(OLD_JOBS).await else {
        return Ok(());
    };
    let messages = old.info().await.map_err(unavailable)?.state.messages;
    if messages > 0 {
        return Err(StoreError::Unavailable(format!(
            "nats: stream {OLD_JOBS} holds {messages} jobs of an older Switchyard (one message \
             per event and destination); this version does not convert them: drain them with \
             the previous version (or delete the stream: `nats stream rm {OLD_JOBS}`), then \
             start again"
        )));
    }
    tracing::info!("nats: deleting the empty stream {OLD_JOBS} of the previous layout");
    js.delete_stream(OLD_JOBS).await.map_err(unavailable)?;
    Ok(())
}

#[async_trait::async_trait]
impl Coordination for NatsStore {
    async fn set_paused(&self, destination: &str, paused: bool) -> Result<(), StoreError> {
        self.operator.set_paused(destination, paused).await
    }

    async fn paused(&self) -> Result<std::collections::HashSet<String>, StoreError> {
        self.operator.paused().await
    }

    async fn live_hosts(&self, host: &str) -> Result<usize, StoreError> {
        self.operator.live_hosts(host).await
    }

    async fn reload_generation(&self) -> Result<Option<String>, StoreError> {
        self.operator.reload_generation().await
    }

    async fn announce_reload(&self, generation: &str) -> Result<(), StoreError> {
        self.operator.announce_reload(generation).await
    }
}

#[async_trait::async_trait]
impl Regulations for NatsStore {
    async fn subject_key(&self) -> Result<[u8; 16], StoreError> {
        self.regulations.subject_key().await
    }

    async fn add_regulation(&self, id: &str, document: &str) -> Result<u64, StoreError> {
        self.regulations.add(id, document).await
    }

    async fn regulation_ids(&self) -> Result<Vec<String>, StoreError> {
        self.regulations.ids().await
    }

    async fn regulation(&self, id: &str) -> Result<Option<StoredRegulation>, StoreError> {
        self.regulations.document(id).await
    }

    async fn status(&self, id: &str) -> Result<Option<String>, StoreError> {
        self.regulations.status(id).await
    }

    async fn set_status(&self, id: &str, document: &str) -> Result<(), StoreError> {
        self.regulations.set_status(id, document).await
    }

    async fn erase_status(&self, id: &str) -> Result<(), StoreError> {
        self.regulations.erase_status(id).await
    }

    async fn erase_step(&self, matches: Matches, from: u64) -> Result<EraseStep, StoreError> {
        self.erase_from_streams(&matches, from).await
    }
}

#[async_trait::async_trait]
impl Reconfigure for NatsStore {
    async fn reconfigure(
        &self,
        destinations: &[DestinationConfig],
        retired: &[String],
    ) -> Result<(), StoreError> {
        self.reroute(destinations, retired).await
    }

    async fn forget(&self, destination: &str) -> Result<u64, StoreError> {
        self.drop_consumers(destination).await
    }

    async fn backfill(
        &self,
        destination: &str,
        since: Millis,
        until: Millis,
    ) -> Result<u64, StoreError> {
        self.backfill_from_stream(destination, since, until).await
    }
}

impl Store for NatsStore {
    fn reconfiguration(&self) -> Option<&dyn Reconfigure> {
        Some(self)
    }
}

impl Drop for NatsStore {
    fn drop(&mut self) {
        for puller in self.pullers.lock().expect("pullers lock").drain(..) {
            puller.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_shown_without_its_credentials() {
        assert_eq!(
            shown_url("nats://app:p@ss@10.0.0.1:4222,nats://b:c@10.0.0.2:4222"),
            "nats://***@10.0.0.1:4222,nats://***@10.0.0.2:4222"
        );
        assert_eq!(shown_url("nats://10.0.0.1:4222"), "nats://10.0.0.1:4222");
        assert_eq!(shown_url("u:p@localhost:4222"), "***@localhost:4222");
    }

    #[test]
    fn the_delivery_bound_leaves_room_for_every_retry_in_the_window() {
        let policy = |max_ms: u64, window_s: u64| crate::config::RetryPolicy {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(max_ms),
            window: Duration::from_secs(window_s),
        };
        // The defaults (10 min, 4 h): 24 ceilings in the window.
        assert_eq!(max_deliveries(&policy(600_000, 4 * 3600)), 4 * 24 + 100);
        // Fast retries for a minute: every one fits, with room.
        assert!(max_deliveries(&policy(200, 60)) >= 2 * 300);
        assert_eq!(max_deliveries(&policy(1, 365 * 24 * 3600)), 1_000_000);
    }

    #[test]
    fn a_job_is_read_back_from_any_headers() {
        let map = Headers::new()
            .text("Switchyard-Message-Id", "m\r\nx")
            .text("Switchyard-Source", "web")
            .text("Switchyard-Type", "identify")
            .number("Switchyard-Received-At", 5)
            .into_map();
        let delivery = Delivery {
            sequence: 9,
            published: 7,
            delivered: 2,
        };
        let job = job_of(Some(&map), b"{}", delivery, 100).unwrap();
        assert_eq!(
            (
                job.id,
                &*job.source,
                job.message_id.as_str(),
                job.event_type.as_str()
            ),
            (9, "web", "m\r\nx", "identify")
        );
        assert_eq!(
            (job.queued_at, job.first_attempt_at, job.attempts),
            (5, 5, 2)
        );
        // Without the header, the body's `type` says; without either it is no event.
        let bare = job_of(None, br#"{"type":"page"}"#, delivery, 100).unwrap();
        assert_eq!((bare.queued_at, bare.event_type), (7, EventType::Page));
        assert_eq!(
            job_of(None, &[0xff], delivery, 100).unwrap_err(),
            NOT_AN_EVENT
        );
        let odd = Headers::new().text("Switchyard-Type", "Track").into_map();
        assert!(job_of(Some(&odd), b"{}", delivery, 100).is_err());
    }
}
