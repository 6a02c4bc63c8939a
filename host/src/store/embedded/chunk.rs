//! The log's unit on disk: one chunk per appended request.
//!
//! Where it sits: [`super`]'s writer encodes the events of one `append` into a
//! chunk (one SQLite row, key = the sequence number of its first event) and
//! decodes chunks when a destination's cursor reads them. One row per request,
//! not per event and never per destination, keeps the write path to one B-tree
//! append per request. A small summary column (how many events go to which
//! set of destinations) sits before the body, so start-up counts each
//! destination's backlog without reading the bodies.
//!
//! Body format, per event: `u32` length then bytes, for the message id, the
//! type, the user key (length `u32::MAX` when absent), the JSON and the route
//! set. Summary format: per distinct route set, `u32` count, `u32` length, bytes.

use std::collections::HashMap;
use std::sync::Arc;

use crate::event_type::EventType;
use crate::route::RouteSet;

/// One stored event.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct StoredEvent {
    /// Segment `messageId`.
    pub message_id: String,
    /// Segment `type`.
    pub event_type: EventType,
    /// `userId` or `anonymousId`, for per-user ordering.
    pub user_key: Option<String>,
    /// The normalised message.
    pub json: String,
    /// The destinations it goes to.
    pub routes: RouteSet,
}

/// A decoded chunk.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Chunk {
    /// Sequence number of its first event; event `i` has `first + i`.
    pub first: i64,
    /// When it was received (ms since epoch).
    pub received_at: i64,
    /// The source that sent it (one request, one write key); a column of its
    /// own beside the body.
    pub source: Arc<str>,
    /// Its events, in order.
    pub events: Vec<StoredEvent>,
}

impl StoredEvent {
    /// What stays of an event a deletion erased: its place in the log, its
    /// type and the destinations it was routed to (so the cursors' counts and
    /// the summaries stay true), and nothing of its content.
    pub fn erased(&self) -> StoredEvent {
        StoredEvent {
            message_id: String::new(),
            event_type: self.event_type,
            user_key: None,
            json: String::new(),
            routes: self.routes.clone(),
        }
    }

    /// Whether a deletion erased it: a stored event always has JSON.
    pub fn is_erased(&self) -> bool {
        self.json.is_empty()
    }
}

impl Chunk {
    /// The event with sequence number `seq`, if this chunk holds it.
    pub fn get(&self, seq: i64) -> Option<&StoredEvent> {
        usize::try_from(seq - self.first)
            .ok()
            .and_then(|i| self.events.get(i))
    }

    /// Sequence number of its last event.
    pub fn last(&self) -> i64 {
        self.first + self.events.len() as i64 - 1
    }
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// The body of a chunk.
pub(super) fn encode_body(events: &[StoredEvent]) -> Vec<u8> {
    let size: usize = events.iter().map(|e| e.json.len() + 64).sum();
    let mut out = Vec::with_capacity(size);
    for e in events {
        put(&mut out, e.message_id.as_bytes());
        put(&mut out, e.event_type.as_str().as_bytes());
        match &e.user_key {
            Some(u) => put(&mut out, u.as_bytes()),
            None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
        }
        put(&mut out, e.json.as_bytes());
        put(&mut out, &e.routes.to_bytes());
    }
    out
}

/// A chunk body that does not decode: the store's file was changed behind its back.
#[derive(Debug, thiserror::Error)]
#[error("chunk {first}: corrupt body at byte {at}")]
pub(super) struct Corrupt {
    first: i64,
    at: usize,
}

/// Decode a chunk body.
pub(super) fn decode(first: i64, received_at: i64, body: &[u8]) -> Result<Chunk, Corrupt> {
    let mut at = 0usize;
    let corrupt = |at| Corrupt { first, at };
    let take = |at: &mut usize| -> Result<Option<&[u8]>, Corrupt> {
        let len_bytes = body.get(*at..*at + 4).ok_or(corrupt(*at))?;
        let len = u32::from_le_bytes(len_bytes.try_into().expect("4 bytes"));
        *at += 4;
        if len == u32::MAX {
            return Ok(None);
        }
        let bytes = body.get(*at..*at + len as usize).ok_or(corrupt(*at))?;
        *at += len as usize;
        Ok(Some(bytes))
    };
    let text = |b: Option<&[u8]>, at: usize| -> Result<String, Corrupt> {
        String::from_utf8(b.ok_or(corrupt(at))?.to_vec()).map_err(|_| corrupt(at))
    };
    let mut events = Vec::new();
    while at < body.len() {
        let message_id = text(take(&mut at)?, at)?;
        let event_type = EventType::parse(&text(take(&mut at)?, at)?).ok_or(corrupt(at))?;
        let user_key = match take(&mut at)? {
            None => None,
            Some(b) => Some(text(Some(b), at)?),
        };
        let json = text(take(&mut at)?, at)?;
        let routes = RouteSet::from_bytes(take(&mut at)?.ok_or(corrupt(at))?);
        events.push(StoredEvent {
            message_id,
            event_type,
            user_key,
            json,
            routes,
        });
    }
    Ok(Chunk {
        first,
        received_at,
        source: Arc::from(""),
        events,
    })
}

/// How many events of a chunk go to each distinct set of destinations.
pub(super) fn encode_summary(events: &[StoredEvent]) -> Vec<u8> {
    let mut counts: Vec<(&RouteSet, u32)> = Vec::new();
    for e in events {
        match counts.iter_mut().find(|(r, _)| **r == e.routes) {
            Some((_, n)) => *n += 1,
            None => counts.push((&e.routes, 1)),
        }
    }
    let mut out = Vec::new();
    for (routes, n) in counts {
        out.extend_from_slice(&n.to_le_bytes());
        put(&mut out, &routes.to_bytes());
    }
    out
}

/// The inverse of [`encode_summary`]; a corrupt tail is ignored (counts are advisory).
pub(super) fn decode_summary(bytes: &[u8]) -> Vec<(RouteSet, u32)> {
    let mut out = Vec::new();
    let mut at = 0;
    while let (Some(n), Some(len)) = (bytes.get(at..at + 4), bytes.get(at + 4..at + 8)) {
        let n = u32::from_le_bytes(n.try_into().expect("4 bytes"));
        let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
        let Some(set) = bytes.get(at + 8..at + 8 + len) else {
            break;
        };
        out.push((RouteSet::from_bytes(set), n));
        at += 8 + len;
    }
    out
}

/// Recently read or written chunks, shared by every cursor (most cursors read
/// the same chunks at about the same time), bounded in bytes.
#[derive(Debug, Default)]
pub(super) struct ChunkCache {
    /// Chunks by first sequence number.
    chunks: HashMap<i64, (Arc<Chunk>, usize, u64)>,
    /// Bytes of JSON held.
    bytes: usize,
    /// Use counter, for eviction of the least recently used.
    tick: u64,
}

/// Most JSON bytes the cache holds.
const CACHE_BYTES: usize = 64 << 20;

impl ChunkCache {
    /// The cached chunk starting at `first`.
    pub fn get(&mut self, first: i64) -> Option<Arc<Chunk>> {
        self.tick += 1;
        let tick = self.tick;
        self.chunks.get_mut(&first).map(|(c, _, used)| {
            *used = tick;
            c.clone()
        })
    }

    /// Keep a chunk, evicting the least recently used ones beyond the budget.
    pub fn put(&mut self, chunk: Arc<Chunk>) {
        let size: usize = chunk.events.iter().map(|e| e.json.len() + 64).sum();
        self.tick += 1;
        if let Some((_, old, _)) = self.chunks.insert(chunk.first, (chunk, size, self.tick)) {
            self.bytes -= old;
        }
        self.bytes += size;
        while self.bytes > CACHE_BYTES && self.chunks.len() > 1 {
            let oldest = self
                .chunks
                .iter()
                .min_by_key(|(_, (_, _, used))| *used)
                .map(|(k, _)| *k)
                .expect("not empty");
            self.remove(oldest);
        }
    }

    /// Forget a chunk.
    pub fn remove(&mut self, first: i64) {
        if let Some((_, size, _)) = self.chunks.remove(&first) {
            self.bytes -= size;
        }
    }

    /// Forget everything.
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: &str, user: Option<&str>, dests: &[u32]) -> StoredEvent {
        let mut routes = RouteSet::empty();
        for d in dests {
            routes.insert(*d);
        }
        StoredEvent {
            message_id: id.into(),
            event_type: EventType::Track,
            user_key: user.map(str::to_string),
            json: format!(r#"{{"messageId":"{id}"}}"#),
            routes,
        }
    }

    #[test]
    fn bodies_and_summaries_round_trip() {
        let events = vec![
            ev("a", Some("u1"), &[0, 1]),
            ev("b", None, &[0, 1]),
            ev("c", Some(""), &[130]),
        ];
        let chunk = decode(7, 42, &encode_body(&events)).unwrap();
        assert_eq!(chunk.events, events);
        assert_eq!(chunk.get(9).unwrap().message_id, "c");
        assert!(chunk.get(10).is_none() && chunk.get(6).is_none());
        assert_eq!(chunk.last(), 9);
        let summary = decode_summary(&encode_summary(&events));
        assert_eq!(summary.len(), 2);
        assert_eq!(summary[0].1, 2);
        assert!(summary[1].0.contains(130));
    }

    #[test]
    fn a_truncated_body_is_corrupt_not_a_panic() {
        let body = encode_body(&[ev("a", Some("u"), &[0])]);
        for cut in 0..body.len() {
            let r = decode(1, 0, &body[..cut]);
            assert!(cut == 0 || r.is_err(), "cut at {cut}");
        }
    }
}
