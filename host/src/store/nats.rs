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
pub mod headers;
mod reconfigure;

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
    now_ms, AppendReport, Claim, Coordination, DeadLetter, DeadLetters, Job, JobId, Millis,
    NewEvent, QueueStats, Queues, Reconfigure, Settle, Store, StoreError,
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
    /// Operator pauses and live hosts, shared by every host (`nats_kv.rs`).
    operator: super::nats_kv::OperatorKv,
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
        let operator = super::nats_kv::OperatorKv::open(&js, options.replicas).await?;
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

impl NatsStore {
    /// Move `message` into `destination`'s dead letters with `reason`, and
    /// take it off the destination's consumer for good.
    async fn dead_letter(
        &self,
        destination: &str,
        message: &jetstream::Message,
        reason: &str,
        now: Millis,
    ) -> Result<(), StoreError> {
        let info = message.info().map_err(unavailable)?;
        let published = (info.published.unix_timestamp_nanos() / 1_000_000) as Millis;
        let from = message.headers.as_ref();
        let headers = Headers::new()
            .copied("Switchyard-Message-Id", from)
            .copied("Switchyard-Source", from)
            .copied("Switchyard-Type", from)
            .copied("Switchyard-User", from)
            .text("Switchyard-Reason", reason)
            .number("Switchyard-Attempts", info.delivered)
            .number("Switchyard-First-Attempt", published)
            .number("Switchyard-Last-Attempt", now)
            .number("Switchyard-Dead-At", now);
        self.js
            .publish_with_headers(
                dlq_subject(destination),
                headers.into_map(),
                message.payload.clone(),
            )
            .await
            .map_err(unavailable)?
            .await
            .map_err(unavailable)?;
        message.ack_with(AckKind::Term).await.map_err(unavailable)?;
        Ok(())
    }

    /// The most deliveries `destination`'s consumers should make of one
    /// message ([`max_deliveries`] of its retry policy).
    fn delivery_bound(&self, destination: &str) -> i64 {
        self.destinations
            .read()
            .expect("destinations lock")
            .iter()
            .find(|d| d.name == destination)
            .map_or(DEFAULT_MAX_DELIVERIES, |d| max_deliveries(&d.retry))
    }

    /// The delivery on which a message of `destination` is dead-lettered: its
    /// bound, or the server's `max_deliver` where that is lower (set by another
    /// host, or before a reload raised the retry window), so that the server
    /// never stops delivering a message the host has not dead-lettered.
    fn last_delivery(&self, destination: &str) -> i64 {
        let bound = self.delivery_bound(destination);
        self.server_max_deliver
            .read()
            .expect("max_deliver lock")
            .get(destination)
            .map_or(bound, |held| bound.min(*held))
    }

    /// `messages` without those on their last delivery, which go to dead
    /// letters: the server would not deliver them again, and a message is
    /// never dropped.
    async fn past_last_delivery(
        &self,
        destination: &str,
        messages: Vec<jetstream::Message>,
        now: Millis,
    ) -> Result<Vec<jetstream::Message>, StoreError> {
        let bound = self.last_delivery(destination);
        let mut kept = Vec::with_capacity(messages.len());
        for m in messages {
            match m.info() {
                Ok(info) if info.delivered >= bound => {
                    let reason = format!(
                        "delivered {} times without being settled (the consumer's max_deliver)",
                        info.delivered
                    );
                    tracing::warn!(destination, "nats: {reason}: dead-lettered");
                    self.dead_letter(destination, &m, &reason, now).await?;
                }
                _ => kept.push(m),
            }
        }
        Ok(kept)
    }

    /// Publish every event, then wait for every ack: one round of acks per request.
    async fn publish(&self, events: Vec<NewEvent>) -> Result<AppendReport, StoreError> {
        let received = now_ms();
        // Publish everything first, then wait for every ack: one round of acks per request.
        let mut pending = Vec::new();
        let mut nowhere = 0;
        let router = self.router.load();
        for e in &events {
            if router.routes(&e.route).is_empty() {
                nowhere += 1;
                continue;
            }
            let mut headers = Headers::new()
                .text("Nats-Msg-Id", &format!("{}/{}", e.source, e.message_id))
                .text("Switchyard-Message-Id", &e.message_id)
                .text("Switchyard-Source", &e.source)
                .text("Switchyard-Type", e.event_type.as_str())
                .number("Switchyard-Received-At", received);
            if let Some(user) = &e.user_key {
                headers = headers.text("Switchyard-User", user);
            }
            if let Some(name) = &e.route.event_name {
                headers = headers.text("Switchyard-Event", name);
            }
            if let Some(integrations) = &e.route.integrations {
                let text = serde_json::Value::Object(integrations.clone()).to_string();
                headers = headers.text("Switchyard-Integrations", &text);
            }
            let ack = self
                .js
                .publish_with_headers(
                    event_subject(e.user_key.as_deref().unwrap_or(&e.message_id)),
                    headers.into_map(),
                    e.json.clone().into(),
                )
                .await;
            match ack {
                Ok(ack) => pending.push(ack),
                Err(e) => {
                    if missing(&e) {
                        self.repair(&e).await;
                    }
                    return Err(unavailable(e));
                }
            }
        }
        let mut duplicates = 0;
        for ack in pending {
            match ack.await {
                Ok(a) if a.duplicate => duplicates += 1,
                Ok(_) => {}
                Err(e) => {
                    if missing(&e) {
                        self.repair(&e).await;
                    }
                    return Err(unavailable(e));
                }
            }
        }
        if events.len() > nowhere {
            let names: Vec<String> = self.consumers.lock().await.keys().cloned().collect();
            for d in names {
                self.notify(&d);
            }
        }
        Ok(AppendReport {
            stored: events.len() - duplicates,
            duplicates,
        })
    }
}

#[async_trait::async_trait]
impl Queues for NatsStore {
    async fn append(&self, events: Vec<NewEvent>) -> Result<AppendReport, StoreError> {
        let started = std::time::Instant::now();
        let count = events.len();
        let published = self.publish(events).await;
        match &published {
            Ok(_) => self.commits.succeeded(count, started.elapsed()),
            Err(StoreError::Unavailable(why)) => self.commits.failed(why),
            Err(StoreError::Overloaded | StoreError::Unsupported(_)) => {}
        }
        published
    }

    async fn claim(
        &self,
        destination: &str,
        claim: Claim,
        now: Millis,
    ) -> Result<Vec<Job>, StoreError> {
        let Claim {
            max_events,
            max_bytes,
        } = claim;
        if !self.serves(destination) {
            // A retired destination another host deleted: nothing more to claim.
            return Ok(Vec::new());
        }
        let consumers = self.consumers(destination, false).await?;
        let ordered = self
            .ordered
            .read()
            .expect("ordered lock")
            .contains(destination);
        if ordered {
            let taken: Vec<jetstream::Message> = {
                let mut inboxes = self.inboxes.lock().expect("inboxes lock");
                let inbox = inboxes.entry(destination.to_string()).or_default();
                let n = inbox.len().min(max_events);
                inbox.drain(..n).collect()
            };
            let taken = self.routed(destination, taken);
            let taken = self.past_last_delivery(destination, taken, now).await?;
            return self.take(destination, taken, now).await;
        }
        let consumer = &consumers[0];
        // A pull sent while the connection drops is never answered: bound it.
        let fetch = async {
            let mut batch = consumer
                .fetch()
                .max_messages(max_events)
                // JetStream refuses a pull whose byte budget is smaller than
                // the next message (409 "Message Size Exceeds MaxBytes"), which
                // would stall a destination with a small `batch.max_bytes` for
                // good. Ask for at least one whole message's worth; a batch in
                // flight trims itself to `batch.max_bytes` (`dispatch/flight.rs`).
                .max_bytes(max_bytes.max(MIN_FETCH_BYTES))
                .messages()
                .await
                .map_err(|e| e.to_string())?;
            let mut messages = Vec::new();
            while let Some(message) = batch.next().await {
                messages.push(message.map_err(|e| e.to_string())?);
            }
            Ok::<_, String>(messages)
        };
        let messages = match tokio::time::timeout(FETCH_TIMEOUT, fetch).await {
            Ok(Ok(messages)) => messages,
            Ok(Err(e)) => {
                if missing(&e)
                    && self.is_retired(destination)
                    && self.consumer_gone(destination).await
                {
                    // Deleted through another host: this host lets it go too.
                    tracing::info!(
                        destination,
                        "nats: a retired destination's consumer was deleted"
                    );
                    let _ = self.forget_here(destination).await;
                    return Ok(Vec::new());
                }
                if missing(&e) {
                    self.repair(&e).await;
                }
                return Err(unavailable(e));
            }
            Err(_) => return Err(unavailable("no answer to a fetch (reconnecting?)")),
        };
        let messages = self.routed(destination, messages);
        let messages = self.past_last_delivery(destination, messages, now).await?;
        self.take(destination, messages, now).await
    }

    async fn settle(
        &self,
        destination: &str,
        outcomes: Vec<(JobId, Settle)>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        // Acks of delivered jobs are confirmed by the server; they go out together.
        let mut delivered = Vec::new();
        for (id, outcome) in outcomes {
            let message = self
                .leased
                .lock()
                .expect("leased lock")
                .get_mut(destination)
                .and_then(|m| m.remove(&id))
                .map(|l| l.message);
            let Some(message) = message else { continue };
            match outcome {
                Settle::Done => delivered.push(message),
                Settle::RetryAt { at, .. } => {
                    let delay = Duration::from_millis((at - now).max(0) as u64);
                    message
                        .ack_with(AckKind::Nak(Some(delay)))
                        .await
                        .map_err(unavailable)?;
                    self.retrying
                        .lock()
                        .expect("retrying lock")
                        .entry(destination.to_string())
                        .or_default()
                        .insert(id, at);
                }
                Settle::Dead { reason } => {
                    self.dead_letter(destination, &message, &reason, now)
                        .await?;
                }
            }
        }
        for acked in futures::future::join_all(delivered.iter().map(|m| m.double_ack())).await {
            acked.map_err(unavailable)?;
        }
        // Naks and terms are only buffered by the client: make sure they left.
        self.client.flush().await.map_err(unavailable)?;
        Ok(())
    }

    async fn next_due(&self, _destination: &str) -> Result<Option<Millis>, StoreError> {
        // Other hosts append too: look again shortly.
        Ok(Some(now_ms() + IDLE_POLL_MS))
    }

    async fn stats(&self, destination: &str) -> Result<QueueStats, StoreError> {
        if !self.serves(destination) {
            // Deleted (through another host): nothing to make again, nothing queued.
            return Ok(QueueStats::default());
        }
        let (mut pending, mut ack_pending) = (0u64, 0u64);
        for mut c in self.consumers(destination, false).await? {
            let info = c.info().await.map_err(unavailable)?;
            pending += info.num_pending;
            ack_pending += info.num_ack_pending as u64;
        }
        let in_flight = self
            .leased
            .lock()
            .expect("leased lock")
            .get(destination)
            .map_or(0, |m| m.len() as u64);
        let queued = pending + ack_pending.saturating_sub(in_flight);
        let now = now_ms();
        let (retrying, next_retry_at) = {
            let mut all = self.retrying.lock().expect("retrying lock");
            let mine = all.entry(destination.to_string()).or_default();
            // A retry whose time came is being (or was) delivered again.
            mine.retain(|_, due| *due > now);
            (mine.len() as u64, mine.values().min().copied())
        };
        Ok(QueueStats {
            queued,
            in_flight,
            dead_letters: self.dead_letter_count(destination).await?,
            retrying,
            next_retry_at,
            oldest_at: None,
        })
    }

    async fn retry_now(&self, _destination: &str) -> Result<u64, StoreError> {
        Err(StoreError::Unsupported(
            "retry now is not possible on the NATS store: JetStream keeps a retry until its delay is over (a nak with a delay cannot be moved); the embedded store supports it",
        ))
    }

    fn wakeup(&self, destination: &str) -> Arc<Notify> {
        self.wakeups
            .lock()
            .expect("wakeups lock")
            .entry(destination.to_string())
            .or_default()
            .clone()
    }

    fn filtered(&self, destination: &str) -> u64 {
        self.router.load().filtered(destination)
    }

    fn commits(&self) -> Arc<super::Commits> {
        self.commits.clone()
    }

    /// Connected, JetStream answers within [`READY_TIMEOUT`] with the events
    /// stream, and the last publish did not fail.
    async fn ready(&self) -> Result<(), StoreError> {
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Err(unavailable(format!(
                "not connected to the NATS server ({})",
                self.client.connection_state()
            )));
        }
        // A round trip to JetStream that also finds the events stream.
        match tokio::time::timeout(READY_TIMEOUT, self.js.get_stream(EVENTS)).await {
            Err(_) => return Err(unavailable("JetStream did not answer within 2 s")),
            Ok(Err(e)) => return Err(unavailable(format!("JetStream, stream {EVENTS}: {e}"))),
            Ok(Ok(_)) => {}
        }
        match self.commits.failing() {
            Some(why) => Err(unavailable(format!("the last publish failed: {why}"))),
            None => Ok(()),
        }
    }

    fn connected(&self) -> Option<bool> {
        Some(self.client.connection_state() == async_nats::connection::State::Connected)
    }
}

#[async_trait::async_trait]
impl DeadLetters for NatsStore {
    async fn dead_letters(
        &self,
        destination: &str,
        since: Option<Millis>,
        until: Option<Millis>,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        Ok(self
            .read_dead_letters(destination)
            .await?
            .into_iter()
            .map(|(d, _, _, _)| d)
            .filter(|d| since.is_none_or(|s| d.dead_at >= s) && until.is_none_or(|u| d.dead_at < u))
            .collect())
    }

    async fn replay(
        &self,
        destination: &str,
        since: Option<Millis>,
        until: Option<Millis>,
    ) -> Result<u64, StoreError> {
        let mut replayed = 0;
        for (d, seq, user, source) in self.read_dead_letters(destination).await? {
            if since.is_some_and(|s| d.dead_at < s) || until.is_some_and(|u| d.dead_at >= u) {
                continue;
            }
            let mut headers = Headers::new()
                .text("Nats-Msg-Id", &format!("replay/{seq}/{destination}"))
                .text("Switchyard-Only", destination)
                .text("Switchyard-Message-Id", &d.message_id)
                .text("Switchyard-Source", &source)
                .text("Switchyard-Type", &d.event_type)
                .number("Switchyard-Received-At", now_ms());
            if let Some(user) = &user {
                headers = headers.text("Switchyard-User", user);
            }
            self.js
                .publish_with_headers(
                    event_subject(user.as_deref().unwrap_or(&d.message_id)),
                    headers.into_map(),
                    d.event_json.clone().into(),
                )
                .await
                .map_err(unavailable)?
                .await
                .map_err(unavailable)?;
            self.dlq.delete_message(seq).await.map_err(unavailable)?;
            replayed += 1;
        }
        if replayed > 0 {
            self.notify(destination);
        }
        Ok(replayed)
    }

    async fn purge(
        &self,
        destination: &str,
        since: Option<Millis>,
        until: Option<Millis>,
    ) -> Result<u64, StoreError> {
        let mut purged = 0;
        for (d, seq, _, _) in self.read_dead_letters(destination).await? {
            if since.is_some_and(|s| d.dead_at < s) || until.is_some_and(|u| d.dead_at >= u) {
                continue;
            }
            self.dlq.delete_message(seq).await.map_err(unavailable)?;
            purged += 1;
        }
        Ok(purged)
    }
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

impl NatsStore {
    /// The messages `destination` takes; the others are acknowledged unread (its
    /// filters or the event's `integrations` skip them, or a replay is for another).
    fn routed(
        &self,
        destination: &str,
        messages: Vec<jetstream::Message>,
    ) -> Vec<jetstream::Message> {
        let mut kept = Vec::with_capacity(messages.len());
        let router = self.router.load();
        let cutoff = self
            .retired
            .read()
            .expect("retired lock")
            .get(destination)
            .copied();
        for m in messages {
            // A retired destination drains what was published before it retired.
            // (A dead letter replayed for it is its own, whenever published.)
            let only = header(&m, "Switchyard-Only");
            let only = only.as_deref();
            let after_cutoff = only != Some(destination)
                && cutoff.is_some_and(|last| m.info().is_ok_and(|i| i.stream_sequence > last));
            let takes = !after_cutoff
                && match only {
                    Some(only) => only == destination,
                    None => router.accepts(destination, &route_keys(&m)),
                };
            if takes {
                kept.push(m);
            } else {
                let client = self.client.clone();
                tokio::spawn(async move {
                    if let Err(e) = m.ack().await {
                        tracing::debug!("nats: acking a skipped event: {e}");
                    }
                    let _ = client.flush().await;
                });
            }
        }
        kept
    }

    /// Turn pulled messages into jobs ([`NatsStore::hold`]); a message that is
    /// no event, published by something other than a host of ours, goes to the
    /// dead letters with why, rather than being delivered as a guess.
    async fn take(
        &self,
        destination: &str,
        messages: Vec<jetstream::Message>,
        now: Millis,
    ) -> Result<Vec<Job>, StoreError> {
        let (jobs, not_events) = self.hold(destination, messages, now)?;
        for (message, why) in not_events {
            tracing::warn!(destination, "nats: a message on the events stream is {why}");
            self.dead_letter(destination, &message, why, now).await?;
        }
        Ok(jobs)
    }

    /// Turn pulled messages into jobs, keeping the messages until they are
    /// settled; and the messages that are no events, with why.
    #[allow(clippy::type_complexity)]
    fn hold(
        &self,
        destination: &str,
        messages: Vec<jetstream::Message>,
        now: Millis,
    ) -> Result<(Vec<Job>, Vec<(jetstream::Message, &'static str)>), StoreError> {
        let mut jobs = Vec::with_capacity(messages.len());
        let mut not_events = Vec::new();
        let mut held = Vec::with_capacity(messages.len());
        let mut redelivered = Vec::new();
        for message in messages {
            let info = message.info().map_err(unavailable)?;
            let id = info.stream_sequence as JobId;
            if info.delivered > 1 {
                redelivered.push(id);
            }
            let published = (info.published.unix_timestamp_nanos() / 1_000_000) as Millis;
            let job = job_of(
                message.headers.as_ref(),
                &message.payload,
                Delivery {
                    sequence: info.stream_sequence,
                    published,
                    delivered: info.delivered,
                },
                now,
            );
            match job {
                Ok(job) => jobs.push(job),
                Err(why) => {
                    not_events.push((message, why));
                    continue;
                }
            }
            held.push((
                id,
                Leased {
                    message,
                    since: std::time::Instant::now(),
                },
            ));
        }
        self.leased
            .lock()
            .expect("leased lock")
            .entry(destination.to_string())
            .or_default()
            .extend(held);
        if !redelivered.is_empty() {
            // A retry delivered again no longer waits for its time.
            if let Some(mine) = self
                .retrying
                .lock()
                .expect("retrying lock")
                .get_mut(destination)
            {
                for id in &redelivered {
                    mine.remove(id);
                }
            }
        }
        Ok((jobs, not_events))
    }

    async fn dead_letter_count(&self, destination: &str) -> Result<u64, StoreError> {
        let subject = dlq_subject(destination);
        let mut subjects = self
            .dlq
            .info_with_subjects(&subject)
            .await
            .map_err(unavailable)?;
        let mut count = 0;
        while let Some(entry) = subjects.next().await {
            let (name, n) = entry.map_err(unavailable)?;
            if name == subject {
                count += n as u64;
            }
        }
        Ok(count)
    }

    /// Every dead letter of `destination`, with its sequence in the DLQ stream.
    async fn read_dead_letters(
        &self,
        destination: &str,
    ) -> Result<Vec<(DeadLetter, u64, Option<String>, String)>, StoreError> {
        let total = self.dead_letter_count(destination).await?;
        if total == 0 {
            return Ok(Vec::new());
        }
        let reader = self
            .dlq
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: dlq_subject(destination),
                ..Default::default()
            })
            .await
            .map_err(unavailable)?;
        let mut messages = reader.messages().await.map_err(unavailable)?;
        let mut out = Vec::new();
        while (out.len() as u64) < total {
            let next = tokio::time::timeout(Duration::from_secs(5), messages.next()).await;
            let Ok(Some(message)) = next else { break };
            let message = message.map_err(unavailable)?;
            let info = message.info().map_err(unavailable)?;
            let seq = info.stream_sequence;
            let num = |name: &str| {
                header(&message, name)
                    .and_then(|v| v.parse::<i64>().ok())
                    .unwrap_or(0)
            };
            let text = |name: &str| header(&message, name).unwrap_or_default().into_owned();
            out.push((
                DeadLetter {
                    id: seq as i64,
                    destination: destination.to_string(),
                    message_id: text("Switchyard-Message-Id"),
                    event_type: text("Switchyard-Type"),
                    reason: text("Switchyard-Reason"),
                    attempts: num("Switchyard-Attempts") as u32,
                    first_attempt_at: num("Switchyard-First-Attempt"),
                    last_attempt_at: num("Switchyard-Last-Attempt"),
                    dead_at: num("Switchyard-Dead-At"),
                    event_json: String::from_utf8_lossy(&message.payload).into_owned(),
                },
                seq,
                header(&message, "Switchyard-User").map(std::borrow::Cow::into_owned),
                text("Switchyard-Source"),
            ));
        }
        Ok(out)
    }
}

/// Where and when the server delivered a message.
#[derive(Debug, Clone, Copy)]
pub struct Delivery {
    /// Its sequence in the stream (the job's id).
    pub sequence: u64,
    /// When it was published, in ms since the epoch.
    pub published: Millis,
    /// How many times the consumer has delivered it, this time included.
    pub delivered: i64,
}

/// Why a message on the events stream is not a job.
pub const NOT_AN_EVENT: &str = "not a Switchyard event: no Segment type in its \
    `Switchyard-Type` header nor in its body's `type`";

/// The job an events-stream message stands for: its headers and payload as
/// they came off the wire, whatever they hold (`make fuzz` runs this). Its
/// type is the header's, else the body's `type` (a message a host of ours
/// publishes always has both); without either it is not an event
/// ([`NOT_AN_EVENT`]).
pub fn job_of(
    map: Option<&async_nats::HeaderMap>,
    payload: &[u8],
    delivery: Delivery,
    now: Millis,
) -> Result<Job, &'static str> {
    let event_type = headers::read(map, "Switchyard-Type")
        .and_then(|t| EventType::parse(&t))
        .or_else(|| {
            let body: serde_json::Value = serde_json::from_slice(payload).ok()?;
            EventType::parse(body.get("type")?.as_str()?)
        })
        .ok_or(NOT_AN_EVENT)?;
    let queued_at = headers::read(map, "Switchyard-Received-At")
        .and_then(|v| v.parse().ok())
        .unwrap_or(delivery.published);
    Ok(Job {
        id: delivery.sequence as JobId,
        source: std::sync::Arc::from(
            headers::read(map, "Switchyard-Source")
                .unwrap_or_default()
                .as_ref(),
        ),
        message_id: headers::read(map, "Switchyard-Message-Id")
            .unwrap_or_default()
            .into_owned(),
        event_type,
        json: String::from_utf8_lossy(payload).into_owned(),
        attempts: u32::try_from(delivery.delivered.max(1)).unwrap_or(u32::MAX),
        first_attempt_at: queued_at.min(now),
        queued_at,
    })
}

impl Drop for NatsStore {
    fn drop(&mut self) {
        for puller in self.pullers.lock().expect("pullers lock").drain(..) {
            puller.abort();
        }
    }
}

/// Every `every`, tell the server that this host still works on the jobs it
/// holds (`+WPI`, an in-progress ack, which restarts a job's `ack_wait`): those
/// claimed and not yet settled, and those pulled for an ordered destination and
/// waiting in its inbox. A host that dies stops renewing, and its jobs go to
/// another host after `ack_wait`.
async fn renew_leases(
    leased: Arc<Mutex<HashMap<String, HashMap<JobId, Leased>>>>,
    inboxes: Arc<Mutex<HashMap<String, std::collections::VecDeque<jetstream::Message>>>>,
    client: async_nats::Client,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let mut held: Vec<(String, JobId, jetstream::Message)> = Vec::new();
        for (destination, jobs) in leased.lock().expect("leased lock").iter() {
            for (id, l) in jobs {
                if l.since.elapsed() < MAX_RENEWED_LEASE {
                    held.push((destination.clone(), *id, l.message.clone()));
                } else {
                    tracing::warn!(
                        destination = destination.as_str(),
                        job = id,
                        "nats: a job held for over 15 minutes is no longer renewed"
                    );
                }
            }
        }
        let mut waiting: Vec<jetstream::Message> = Vec::new();
        for inbox in inboxes.lock().expect("inboxes lock").values() {
            waiting.extend(inbox.iter().cloned());
        }
        // A message claimed from an inbox since the snapshot is renewed as a leased
        // one (or not at all, once settled), never from the stale copy here.
        let sequence = |m: &jetstream::Message| m.info().map(|i| i.stream_sequence).ok();
        if held.is_empty() && waiting.is_empty() {
            continue;
        }
        for (destination, id, m) in &held {
            // Settled since the snapshot (a nak with a delay, say): a late renewal
            // would restart its lease over the delay.
            let still = leased
                .lock()
                .expect("leased lock")
                .get(destination)
                .is_some_and(|jobs| jobs.contains_key(id));
            if still {
                if let Err(e) = m.ack_with(AckKind::Progress).await {
                    tracing::debug!("nats: renewing a lease: {e}");
                }
            }
        }
        for m in &waiting {
            let seq = sequence(m);
            let still = inboxes
                .lock()
                .expect("inboxes lock")
                .values()
                .any(|inbox| inbox.iter().any(|w| sequence(w) == seq));
            if still {
                if let Err(e) = m.ack_with(AckKind::Progress).await {
                    tracing::debug!("nats: renewing a lease: {e}");
                }
            }
        }
        let _ = client.flush().await;
    }
}

/// Keep one pull open on a partition consumer and move what arrives into the
/// destination's inbox (the server sends a partition's next job only after the
/// previous one is acked or terminated). Restarts the pull after an error.
async fn pull_forever(
    consumer: consumer::PullConsumer,
    destination: String,
    inboxes: Arc<Mutex<HashMap<String, std::collections::VecDeque<jetstream::Message>>>>,
    wake: Arc<Notify>,
) {
    loop {
        match consumer.messages().await {
            Ok(mut stream) => {
                while let Some(next) = stream.next().await {
                    match next {
                        Ok(message) => {
                            inboxes
                                .lock()
                                .expect("inboxes lock")
                                .entry(destination.clone())
                                .or_default()
                                .push_back(message);
                            wake.notify_one();
                        }
                        Err(e) => {
                            tracing::debug!(
                                destination = destination.as_str(),
                                "partition pull: {e}"
                            );
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::debug!(destination = destination.as_str(), "partition pull: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
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
