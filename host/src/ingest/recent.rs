//! The source debugger's memory: the newest [`KEEP_PER_SOURCE`] events each
//! source sent, as stored (normalised, with what ingest added).
//!
//! Where it sits: ingest keeps each accepted request's events here after the
//! store acknowledged them (only the last [`KEEP_PER_SOURCE`] of a batch are
//! copied); `GET /admin/sources/{name}/events` reads them, beside the refused
//! ones of [`super::rejections`].

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;

/// Events kept per source.
pub const KEEP_PER_SOURCE: usize = 50;

/// The newest events of every source.
#[derive(Debug, Default)]
pub struct Recent {
    /// Per source name, oldest first.
    sources: Mutex<HashMap<String, VecDeque<Kept>>>,
}

#[derive(Debug, Clone)]
struct Kept {
    at: String,
    message_id: String,
    event_type: String,
    json: String,
}

/// One event as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ReceivedEvent {
    /// When it was received (RFC 3339).
    pub at: String,
    /// Its `messageId`.
    #[serde(rename = "messageId")]
    pub message_id: String,
    /// Its `type`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The event as stored.
    pub event: serde_json::Value,
}

/// One event to keep: `messageId`, `type` and the stored JSON.
pub type Incoming<'a> = (&'a str, &'a str, &'a str);

impl Recent {
    /// Keep the events of one accepted request of `source` (the last ones, if many).
    pub fn record<'a>(&self, source: &str, events: impl ExactSizeIterator<Item = Incoming<'a>>) {
        let skip = events.len().saturating_sub(KEEP_PER_SOURCE);
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let kept: Vec<Kept> = events
            .skip(skip)
            .map(|(message_id, event_type, json)| Kept {
                at: at.clone(),
                message_id: message_id.to_string(),
                event_type: event_type.to_string(),
                json: json.to_string(),
            })
            .collect();
        if kept.is_empty() {
            return;
        }
        let mut sources = self.sources.lock().expect("recent lock");
        let ring = sources.entry(source.to_string()).or_default();
        for k in kept {
            if ring.len() == KEEP_PER_SOURCE {
                ring.pop_front();
            }
            ring.push_back(k);
        }
    }

    /// Forget the kept events `matches` takes (asked with their source and
    /// JSON): a privacy deletion. How many were forgotten.
    pub fn forget(&self, matches: &dyn Fn(&str, &str) -> bool) -> u64 {
        let mut sources = self.sources.lock().expect("recent lock");
        let mut n = 0;
        for (source, ring) in sources.iter_mut() {
            let before = ring.len();
            ring.retain(|k| !matches(source, &k.json));
            n += (before - ring.len()) as u64;
        }
        n
    }

    /// The newest events of `source` first, at most `limit`.
    pub fn newest(&self, source: &str, limit: usize) -> Vec<ReceivedEvent> {
        let kept: Vec<Kept> = {
            let sources = self.sources.lock().expect("recent lock");
            sources
                .get(source)
                .map(|r| r.iter().rev().take(limit).cloned().collect())
                .unwrap_or_default()
        };
        kept.into_iter()
            .map(|k| ReceivedEvent {
                event: serde_json::from_str(&k.json).unwrap_or(serde_json::Value::Null),
                at: k.at,
                message_id: k.message_id,
                event_type: k.event_type,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_of_each_source_newest_first() {
        let recent = Recent::default();
        let ids: Vec<String> = (0..KEEP_PER_SOURCE + 7).map(|i| format!("m{i}")).collect();
        recent.record(
            "web",
            ids.iter()
                .map(|id| (id.as_str(), "track", r#"{"type":"track"}"#)),
        );
        recent.record(
            "web",
            [("last", "identify", r#"{"type":"identify"}"#)].into_iter(),
        );
        let newest = recent.newest("web", 100);
        assert_eq!(newest.len(), KEEP_PER_SOURCE);
        assert_eq!(newest[0].message_id, "last");
        assert_eq!(newest[0].event["type"], "identify");
        assert_eq!(newest[1].message_id, format!("m{}", KEEP_PER_SOURCE + 6));
        assert!(recent.newest("app", 10).is_empty());
        assert_eq!(recent.newest("web", 3).len(), 3);
    }

    #[test]
    fn a_deletion_forgets_the_events_it_takes_in_every_source() {
        let recent = Recent::default();
        let ev = |user: &str| format!(r#"{{"type":"track","userId":"{user}"}}"#);
        let (a, b) = (ev("alice"), ev("bob"));
        recent.record(
            "web",
            [("1", "track", a.as_str()), ("2", "track", b.as_str())].into_iter(),
        );
        recent.record("ios", [("3", "track", a.as_str())].into_iter());
        let n = recent.forget(&|_, json| json.contains("alice"));
        assert_eq!(n, 2);
        let web = recent.newest("web", 10);
        assert_eq!(web.len(), 1);
        assert_eq!(web[0].message_id, "2");
        assert!(recent.newest("ios", 10).is_empty());
    }
}
