//! Deletions on NATS: a user's events are found by reading the events stream
//! and the dead-letter stream, and each one found is erased from its stream
//! by its sequence (JetStream's message delete, which overwrites the message
//! in the server's files rather than only marking it gone).
//!
//! Where it sits: [`NatsStore`]'s answer to `Regulations::erase_step`. A step
//! reads up to [`READ_PER_STEP`] events with a consumer of its own (no acks,
//! removed once idle); the step that reaches the end of the events stream
//! also reads the dead letters. Retries on NATS are the events stream's own
//! messages (a nak with a delay), so they are erased with it.

use std::time::Duration;

use async_nats::jetstream::{consumer, stream::Stream};

use super::{header, pull_batch, unavailable, NatsStore};
use crate::store::{EraseStep, Erased, Matches, StoreError};

/// Events one step reads.
const READ_PER_STEP: u64 = 10_000;

/// Messages read per pull.
const PULL: usize = 256;

/// One message read: its sequence, its source and its JSON.
type Read = (u64, String, Vec<u8>);

impl NatsStore {
    /// One step of a deletion from stream sequence `from` (0: the start).
    pub(super) async fn erase_from_streams(
        &self,
        matches: &Matches,
        from: u64,
    ) -> Result<EraseStep, StoreError> {
        let last = self.last_sequence().await?;
        let mut erased = Erased::default();
        let mut next = None;
        if from < last {
            let upto = last.min(from.saturating_add(READ_PER_STEP));
            for (seq, source, json) in read(&self.events, "sy.ev.>", from + 1, upto).await? {
                if matches(&source, &String::from_utf8_lossy(&json))
                    && erase(&self.events, seq).await?
                {
                    erased.log += 1;
                }
            }
            next = (upto < last).then_some(upto);
        }
        if next.is_none() {
            let mut dlq = self.dlq.clone();
            let dlq_last = dlq.info().await.map_err(unavailable)?.state.last_sequence;
            for (seq, source, json) in read(&self.dlq, "sy.dlq.>", 1, dlq_last).await? {
                if matches(&source, &String::from_utf8_lossy(&json))
                    && erase(&self.dlq, seq).await?
                {
                    erased.dead_letters += 1;
                }
            }
        }
        Ok(EraseStep { erased, next })
    }
}

/// Erase message `seq` of `stream`: `false` when it was gone already (acked
/// by every destination, or erased by another host's run of the deletion).
async fn erase(stream: &Stream, seq: u64) -> Result<bool, StoreError> {
    match stream.delete_message(seq).await {
        Ok(done) => Ok(done),
        Err(e) if e.to_string().contains("no message found") => Ok(false),
        Err(e) => Err(unavailable(e)),
    }
}

/// The messages of `stream` on `subjects` with sequences in `[start, upto]`.
async fn read(
    stream: &Stream,
    subjects: &str,
    start: u64,
    upto: u64,
) -> Result<Vec<Read>, StoreError> {
    if start > upto {
        return Ok(Vec::new());
    }
    let reader = stream
        .create_consumer(consumer::pull::Config {
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: start,
            },
            ack_policy: consumer::AckPolicy::None,
            filter_subject: subjects.into(),
            inactive_threshold: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .map_err(unavailable)?;
    let mut out = Vec::new();
    loop {
        let batch = pull_batch(&reader, PULL, "a deletion").await?;
        if batch.is_empty() {
            break;
        }
        for m in batch {
            let Ok(info) = m.info() else { continue };
            let seq = info.stream_sequence;
            if seq > upto {
                return Ok(out);
            }
            let source = header(&m, "Switchyard-Source")
                .unwrap_or_default()
                .into_owned();
            out.push((seq, source, m.payload.to_vec()));
        }
    }
    Ok(out)
}
