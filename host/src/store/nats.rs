//! The NATS JetStream store (`[store] kind = "nats"`): many hosts, one stream.
//!
//! Layout on the server:
//! - stream `SWITCHYARD` (work-queue retention, file storage), subjects
//!   `sy.jobs.<destination>`: one message per (event, destination), i.e. one
//!   job, published with `Nats-Msg-Id = <source>/<messageId>/<destination>` so
//!   JetStream's duplicate window (the dedup window) drops a repeated event;
//! - one durable pull consumer per destination (`dest-<destination>`), shared by
//!   every host with the same config: the work spreads across hosts, and a job a
//!   host took but never settled is redelivered to another after `ack_wait`;
//! - stream `SWITCHYARD_DLQ`, subjects `sy.dlq.<destination>`: dead letters, the
//!   event as payload and the reason, attempts and times as headers.
//!
//! The trait maps as: `append` = publish and wait for every publish ack (the
//! durability point); `claim` = fetch from the destination's consumer; `settle`
//! = ack, nak with a delay, or publish to the dead-letter stream and term.
//! A job's id is its stream sequence; the fetched message stays in this host's
//! memory until settled. The retry window counts from the job's publication.
//!
//! Per-user ordering (`ordering = "user"`), across hosts: a job's subject carries a
//! partition, `sy.jobs.<destination>.<p>`, `p` a hash of the user (16 partitions). An
//! ordered destination has one consumer per partition with `max_ack_pending = 1`: the
//! server lets one job of a partition out at a time, to any host, until it is acked
//! or terminated; a job waiting for its retry (nak with delay) still holds its
//! partition, so that user's later events wait while other partitions flow. Each
//! host keeps a long-lived pull on every partition consumer and claims from what
//! arrived. Users that share a partition share its order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream, AckKind};
use futures::StreamExt;
use tokio::sync::Notify;

use super::{
    now_ms, AppendReport, DeadLetter, Job, JobId, Millis, NewEvent, QueueStats, Settle, Store,
    StoreError,
};

const JOBS: &str = "SWITCHYARD";
const DLQ: &str = "SWITCHYARD_DLQ";
/// How long a publish may wait for JetStream's ack before ingest answers 503.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(3);
/// How often an idle worker asks the server for work (other hosts' appends).
const IDLE_POLL_MS: i64 = 200;

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("nats: {e}"))
}

/// Partitions of a destination's subject space.
const PARTITIONS: u64 = 16;

/// The partition of a user (FNV-1a: stable across hosts and versions).
pub fn partition(key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h % PARTITIONS
}

/// The subject of a job: its destination and the partition of its user (or of its id).
fn jobs_subject(destination: &str, user_or_id: &str) -> String {
    format!("sy.jobs.{destination}.{}", partition(user_or_id))
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
    /// The jobs stream.
    jobs: stream::Stream,
    /// The dead-letter stream.
    dlq: stream::Stream,
    /// How long a fetched job stays leased to a host before redelivery.
    ack_wait: Duration,
    /// Destinations with `ordering = "user"`.
    ordered: std::collections::HashSet<String>,
    /// Consumers by destination (one, or one per partition), created on first use.
    consumers: tokio::sync::Mutex<HashMap<String, Vec<consumer::PullConsumer>>>,
    /// Jobs pulled for ordered destinations, waiting to be claimed.
    inboxes: Arc<Mutex<HashMap<String, std::collections::VecDeque<jetstream::Message>>>>,
    /// The long-lived pulls feeding `inboxes` (stopped when the store is dropped).
    pullers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Fetched, unsettled messages by destination and job id.
    leased: Mutex<HashMap<String, HashMap<JobId, jetstream::Message>>>,
    /// Wake-ups after local appends.
    wakeups: Mutex<HashMap<String, Arc<Notify>>>,
}

impl std::fmt::Debug for NatsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NatsStore")
    }
}

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
    /// Destinations with `ordering = "user"`.
    pub ordered: Vec<String>,
}

impl NatsStore {
    /// Connect and make sure both streams exist.
    pub async fn open(options: &NatsOptions) -> Result<NatsStore, StoreError> {
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
            .map_err(|_| unavailable(format!("cannot connect to {}", options.url)))?
            .map_err(unavailable)?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(PUBLISH_TIMEOUT);
        let jobs = js
            .get_or_create_stream(stream::Config {
                name: JOBS.into(),
                subjects: vec!["sy.jobs.>".into()],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                duplicate_window: options.dedup_window,
                ..Default::default()
            })
            .await
            .map_err(unavailable)?;
        let dlq = js
            .get_or_create_stream(stream::Config {
                name: DLQ.into(),
                subjects: vec!["sy.dlq.>".into()],
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(unavailable)?;
        Ok(NatsStore {
            client,
            js,
            jobs,
            dlq,
            ack_wait: options.ack_wait,
            ordered: options.ordered.iter().cloned().collect(),
            consumers: Default::default(),
            inboxes: Default::default(),
            pullers: Default::default(),
            leased: Default::default(),
            wakeups: Default::default(),
        })
    }

    /// The consumers of a destination: one over all its partitions, or one per
    /// partition (ordered), each then fed into the destination's inbox by a long-lived pull.
    async fn consumers(
        &self,
        destination: &str,
    ) -> Result<Vec<consumer::PullConsumer>, StoreError> {
        let mut consumers = self.consumers.lock().await;
        if let Some(c) = consumers.get(destination) {
            return Ok(c.clone());
        }
        let ordered = self.ordered.contains(destination);
        let specs: Vec<(String, String, i64)> = if ordered {
            (0..PARTITIONS)
                .map(|p| {
                    (
                        format!("dest-{destination}-p{p}"),
                        format!("sy.jobs.{destination}.{p}"),
                        1,
                    )
                })
                .collect()
        } else {
            vec![(
                format!("dest-{destination}"),
                format!("sy.jobs.{destination}.*"),
                100_000,
            )]
        };
        let mut made = Vec::new();
        for (name, filter, max_ack_pending) in specs {
            let c = self
                .jobs
                .get_or_create_consumer(
                    &name,
                    consumer::pull::Config {
                        durable_name: Some(name.clone()),
                        filter_subject: filter,
                        ack_policy: consumer::AckPolicy::Explicit,
                        ack_wait: self.ack_wait,
                        max_ack_pending,
                        ..Default::default()
                    },
                )
                .await
                .map_err(unavailable)?;
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
}

fn header<'a>(m: &'a jetstream::Message, name: &str) -> Option<&'a str> {
    m.headers.as_ref()?.get(name).map(|v| v.as_str())
}

#[async_trait::async_trait]
impl Store for NatsStore {
    async fn append(&self, events: Vec<NewEvent>) -> Result<AppendReport, StoreError> {
        let received = now_ms().to_string();
        // Publish everything first, then wait for every ack: one round of acks per request.
        let mut pending = Vec::new();
        for (i, e) in events.iter().enumerate() {
            for d in &e.destinations {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert(
                    "Nats-Msg-Id",
                    format!("{}/{}/{d}", e.source, e.message_id).as_str(),
                );
                headers.insert("Switchyard-Message-Id", e.message_id.as_str());
                headers.insert("Switchyard-Type", e.event_type.as_str());
                headers.insert("Switchyard-Received-At", received.as_str());
                if let Some(user) = &e.user_key {
                    headers.insert("Switchyard-User", user.as_str());
                }
                let ack = self
                    .js
                    .publish_with_headers(
                        jobs_subject(d, e.user_key.as_deref().unwrap_or(&e.message_id)),
                        headers,
                        e.json.clone().into(),
                    )
                    .await
                    .map_err(unavailable)?;
                pending.push((i, ack));
            }
        }
        let mut duplicate = vec![true; events.len()];
        for (i, e) in events.iter().enumerate() {
            if e.destinations.is_empty() {
                duplicate[i] = false;
            }
        }
        for (i, ack) in pending {
            let ack = ack.await.map_err(unavailable)?;
            if !ack.duplicate {
                duplicate[i] = false;
            }
        }
        let mut woken: Vec<&String> = events.iter().flat_map(|e| &e.destinations).collect();
        woken.sort();
        woken.dedup();
        for d in woken {
            self.notify(d);
        }
        let duplicates = duplicate.iter().filter(|d| **d).count();
        Ok(AppendReport {
            stored: events.len() - duplicates,
            duplicates,
        })
    }

    async fn claim(
        &self,
        destination: &str,
        max_events: usize,
        max_bytes: usize,
        per_user_order: bool,
        now: Millis,
    ) -> Result<Vec<Job>, StoreError> {
        let consumers = self.consumers(destination).await?;
        if per_user_order && self.ordered.contains(destination) {
            let taken: Vec<jetstream::Message> = {
                let mut inboxes = self.inboxes.lock().expect("inboxes lock");
                let inbox = inboxes.entry(destination.to_string()).or_default();
                let n = inbox.len().min(max_events);
                inbox.drain(..n).collect()
            };
            return self.hold(destination, taken, now);
        }
        let consumer = &consumers[0];
        let mut batch = consumer
            .fetch()
            .max_messages(max_events)
            .max_bytes(max_bytes.max(1))
            .messages()
            .await
            .map_err(unavailable)?;
        let mut messages = Vec::new();
        while let Some(message) = batch.next().await {
            messages.push(message.map_err(unavailable)?);
        }
        self.hold(destination, messages, now)
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
                .and_then(|m| m.remove(&id));
            let Some(message) = message else { continue };
            match outcome {
                Settle::Done => delivered.push(message),
                Settle::RetryAt { at, .. } => {
                    let delay = Duration::from_millis((at - now).max(0) as u64);
                    message
                        .ack_with(AckKind::Nak(Some(delay)))
                        .await
                        .map_err(unavailable)?;
                }
                Settle::Dead { reason } => {
                    let info = message.info().map_err(unavailable)?;
                    let published = (info.published.unix_timestamp_nanos() / 1_000_000) as Millis;
                    let mut headers = async_nats::HeaderMap::new();
                    for name in [
                        "Switchyard-Message-Id",
                        "Switchyard-Type",
                        "Switchyard-User",
                    ] {
                        if let Some(v) = header(&message, name) {
                            headers.insert(name, v);
                        }
                    }
                    let reason_line = reason.replace(['\r', '\n'], " ");
                    headers.insert("Switchyard-Reason", reason_line.as_str());
                    headers.insert("Switchyard-Attempts", info.delivered.to_string().as_str());
                    headers.insert("Switchyard-First-Attempt", published.to_string().as_str());
                    headers.insert("Switchyard-Last-Attempt", now.to_string().as_str());
                    headers.insert("Switchyard-Dead-At", now.to_string().as_str());
                    self.js
                        .publish_with_headers(
                            dlq_subject(destination),
                            headers,
                            message.payload.clone(),
                        )
                        .await
                        .map_err(unavailable)?
                        .await
                        .map_err(unavailable)?;
                    message.ack_with(AckKind::Term).await.map_err(unavailable)?;
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
        let (mut pending, mut ack_pending) = (0u64, 0u64);
        for mut c in self.consumers(destination).await? {
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
        Ok(QueueStats {
            queued,
            in_flight,
            dead_letters: self.dead_letter_count(destination).await?,
        })
    }

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
            .map(|(d, _, _)| d)
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
        for (d, seq, user) in self.read_dead_letters(destination).await? {
            if since.is_some_and(|s| d.dead_at < s) || until.is_some_and(|u| d.dead_at >= u) {
                continue;
            }
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(
                "Nats-Msg-Id",
                format!("replay/{seq}/{destination}").as_str(),
            );
            headers.insert("Switchyard-Message-Id", d.message_id.as_str());
            headers.insert("Switchyard-Type", d.event_type.as_str());
            headers.insert("Switchyard-Received-At", now_ms().to_string().as_str());
            if let Some(user) = &user {
                headers.insert("Switchyard-User", user.as_str());
            }
            self.js
                .publish_with_headers(
                    jobs_subject(destination, user.as_deref().unwrap_or(&d.message_id)),
                    headers,
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

    fn wakeup(&self, destination: &str) -> Arc<Notify> {
        self.wakeups
            .lock()
            .expect("wakeups lock")
            .entry(destination.to_string())
            .or_default()
            .clone()
    }
}

impl NatsStore {
    /// Turn pulled messages into jobs, keeping the messages until they are settled.
    fn hold(
        &self,
        destination: &str,
        messages: Vec<jetstream::Message>,
        now: Millis,
    ) -> Result<Vec<Job>, StoreError> {
        let mut jobs = Vec::with_capacity(messages.len());
        let mut held = Vec::with_capacity(messages.len());
        for message in messages {
            let info = message.info().map_err(unavailable)?;
            let id = info.stream_sequence as JobId;
            let published = (info.published.unix_timestamp_nanos() / 1_000_000) as Millis;
            let queued_at = header(&message, "Switchyard-Received-At")
                .and_then(|v| v.parse().ok())
                .unwrap_or(published);
            jobs.push(Job {
                id,
                message_id: header(&message, "Switchyard-Message-Id")
                    .unwrap_or("")
                    .to_string(),
                event_type: header(&message, "Switchyard-Type")
                    .unwrap_or("track")
                    .to_string(),
                json: String::from_utf8_lossy(&message.payload).into_owned(),
                attempts: info.delivered.max(1) as u32,
                first_attempt_at: queued_at.min(now),
                queued_at,
            });
            held.push((id, message));
        }
        self.leased
            .lock()
            .expect("leased lock")
            .entry(destination.to_string())
            .or_default()
            .extend(held);
        Ok(jobs)
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
    ) -> Result<Vec<(DeadLetter, u64, Option<String>)>, StoreError> {
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
            out.push((
                DeadLetter {
                    id: seq as i64,
                    destination: destination.to_string(),
                    message_id: header(&message, "Switchyard-Message-Id")
                        .unwrap_or("")
                        .to_string(),
                    event_type: header(&message, "Switchyard-Type")
                        .unwrap_or("")
                        .to_string(),
                    reason: header(&message, "Switchyard-Reason")
                        .unwrap_or("")
                        .to_string(),
                    attempts: num("Switchyard-Attempts") as u32,
                    first_attempt_at: num("Switchyard-First-Attempt"),
                    last_attempt_at: num("Switchyard-Last-Attempt"),
                    dead_at: num("Switchyard-Dead-At"),
                    event_json: String::from_utf8_lossy(&message.payload).into_owned(),
                },
                seq,
                header(&message, "Switchyard-User").map(str::to_string),
            ));
        }
        Ok(out)
    }
}

impl Drop for NatsStore {
    fn drop(&mut self) {
        for puller in self.pullers.lock().expect("pullers lock").drain(..) {
            puller.abort();
        }
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
