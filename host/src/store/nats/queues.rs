//! Append, claim and settle on NATS: publishing events, pulling each
//! destination's jobs, holding their leases and settling them.

use super::*;

impl NatsStore {
    /// The most deliveries `destination`'s consumers should make of one
    /// message ([`max_deliveries`] of its retry policy).
    pub(super) fn delivery_bound(&self, destination: &str) -> i64 {
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

    fn commits(&self) -> Arc<crate::store::Commits> {
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

/// Every `every`, tell the server that this host still works on the jobs it
/// holds (`+WPI`, an in-progress ack, which restarts a job's `ack_wait`): those
/// claimed and not yet settled, and those pulled for an ordered destination and
/// waiting in its inbox. A host that dies stops renewing, and its jobs go to
/// another host after `ack_wait`.
pub(super) async fn renew_leases(
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
pub(super) async fn pull_forever(
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
