//! Dead letters on NATS: the `SWITCHYARD_DLQ` stream, one subject per
//! destination; replaying one publishes it back into the events stream.

use super::*;

impl NatsStore {
    /// Move `message` into `destination`'s dead letters with `reason`, and
    /// take it off the destination's consumer for good.
    pub(super) async fn dead_letter(
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

    pub(super) async fn dead_letter_count(&self, destination: &str) -> Result<u64, StoreError> {
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
