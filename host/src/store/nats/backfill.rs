//! Backfill on the NATS store (`[store] retention`): the events stream then
//! keeps every event for the retention (limits retention, `max_age`) instead
//! of only until every destination has acknowledged it.
//!
//! A backfill reads the stream from `since` with a consumer of its own (no
//! acks, removed once idle), takes the events received before `until` that the
//! destination's filter takes and that it was given already (published before
//! its consumer was made, or at or below its ack floor: the others are left to
//! their turn), and publishes a copy of each for it alone (`Switchyard-Only`),
//! with its messageId and `context.is_backfill = true`.

use std::time::Duration;

use async_nats::jetstream::consumer;

use super::headers::Headers;
use super::{event_subject, header, pull_batch, route_keys, unavailable, NatsStore};
use crate::store::{now_ms, Millis, StoreError};

/// Events read per pull of a backfill.
const STEP: usize = 256;

fn at(ms: Millis) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// The event JSON with `context.is_backfill = true` (unchanged if it is not an object).
fn marked(json: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<serde_json::Value>(json) {
        Ok(serde_json::Value::Object(mut event)) => {
            let context = event
                .entry("context")
                .or_insert_with(|| serde_json::json!({}));
            if let Some(c) = context.as_object_mut() {
                c.insert("is_backfill".into(), serde_json::Value::Bool(true));
            }
            serde_json::to_vec(&event).unwrap_or_else(|_| json.to_vec())
        }
        _ => json.to_vec(),
    }
}

impl NatsStore {
    /// What `destination` was given already: the time its consumer was made,
    /// and its lowest ack floor.
    async fn given(&self, destination: &str) -> Result<(time::OffsetDateTime, u64), StoreError> {
        let mut made = time::OffsetDateTime::UNIX_EPOCH;
        let mut floor = u64::MAX;
        for mut c in self.consumers(destination, false).await? {
            let info = c.info().await.map_err(unavailable)?;
            made = made.max(info.created);
            floor = floor.min(info.ack_floor.stream_sequence);
        }
        Ok((made, if floor == u64::MAX { 0 } else { floor }))
    }

    pub(super) async fn backfill_from_stream(
        &self,
        destination: &str,
        since: Millis,
        until: Millis,
    ) -> Result<u64, StoreError> {
        if self.retention.is_zero() {
            return Err(StoreError::Unavailable(
                "backfill needs `[store] retention` (the events stream keeps events that long)"
                    .into(),
            ));
        }
        if !self.serves(destination) || self.is_retired(destination) {
            return Err(StoreError::Unavailable(format!(
                "no destination `{destination}` delivers on this host"
            )));
        }
        let (made, floor) = self.given(destination).await?;
        let last = self.last_sequence().await?;
        let reader = self
            .events
            .create_consumer(consumer::pull::Config {
                deliver_policy: consumer::DeliverPolicy::ByStartTime {
                    start_time: at(since),
                },
                ack_policy: consumer::AckPolicy::None,
                filter_subject: "sy.ev.>".into(),
                inactive_threshold: Duration::from_secs(30),
                ..Default::default()
            })
            .await
            .map_err(unavailable)?;
        let router = self.router.load_full();
        let (until_at, run) = (at(until), now_ms());
        let mut enqueued = 0;
        'read: loop {
            let batch = pull_batch(&reader, STEP, "a backfill").await?;
            if batch.is_empty() {
                break;
            }
            for m in batch {
                let Ok(info) = m.info() else { continue };
                let (seq, published) = (info.stream_sequence, info.published);
                if seq > last || published >= until_at {
                    break 'read;
                }
                // Copies (replays, backfills) are not events of the range.
                if header(&m, "Switchyard-Only").is_some()
                    || !router.accepts(destination, &route_keys(&m))
                {
                    continue;
                }
                let given = published < made || seq <= floor;
                if !given {
                    continue;
                }
                let from = m.headers.as_ref();
                let headers = Headers::new()
                    .text(
                        "Nats-Msg-Id",
                        &format!("backfill/{destination}/{seq}/{run}"),
                    )
                    .text("Switchyard-Only", destination)
                    // Received now, as a replayed dead letter: its retry window starts now.
                    .number("Switchyard-Received-At", now_ms())
                    .copied("Switchyard-Message-Id", from)
                    .copied("Switchyard-Source", from)
                    .copied("Switchyard-Type", from)
                    .copied("Switchyard-User", from);
                let user = header(&m, "Switchyard-User")
                    .or_else(|| header(&m, "Switchyard-Message-Id"))
                    .unwrap_or_default()
                    .into_owned();
                self.js
                    .publish_with_headers(
                        event_subject(&user),
                        headers.into_map(),
                        marked(&m.payload).into(),
                    )
                    .await
                    .map_err(unavailable)?
                    .await
                    .map_err(unavailable)?;
                enqueued += 1;
            }
        }
        if enqueued > 0 {
            self.notify(destination);
        }
        Ok(enqueued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backfilled_event_is_marked_in_its_context() {
        let out: serde_json::Value =
            serde_json::from_slice(&marked(br#"{"messageId":"m","context":{"ip":"1"}}"#)).unwrap();
        assert_eq!(out["context"]["is_backfill"], true);
        assert_eq!(out["context"]["ip"], "1");
        let out: serde_json::Value =
            serde_json::from_slice(&marked(br#"{"messageId":"m"}"#)).unwrap();
        assert_eq!(out["context"]["is_backfill"], true);
    }
}
