//! Recordings of real deliveries: the file `switchyard record` writes and
//! `switchyard replay` reads, and the [`Recorder`] a destination fills.
//!
//! Where it sits: `POST /admin/destinations/{name}/record` arms a [`Recorder`]
//! on the destination's stats (`dispatch/mod.rs`); each batch in flight
//! (`dispatch/flight.rs`) that finds it armed captures its call and adds a
//! [`Delivery`]: the events the component got (after the transformations),
//! every request and answer whole, and each event's outcome. Credentials are
//! redacted ([`super::capture::Redactor`]) before anything is kept.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::capture::Exchange;
use super::compare::OutcomeRecord;

/// The `format` of the recordings this build writes and reads.
pub const FORMAT: u32 = 1;

/// Most deliveries one recording holds.
pub const MAX_DELIVERIES: usize = 1_000;

/// Most bytes of events and bodies one recording holds: it ends early past them.
pub const MAX_BYTES: usize = 64 << 20;

/// A recording file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recording {
    /// Always [`FORMAT`].
    pub format: u32,
    /// The destination recorded.
    pub destination: String,
    /// Its plugin.
    pub plugin: String,
    /// sha256 of the plugin version that made the recorded calls.
    pub plugin_sha256: String,
    /// Its version (from `describe`).
    pub plugin_version: String,
    /// When the recording ended (RFC 3339).
    pub recorded_at: String,
    /// The destination's settings, credentials redacted: what a replay runs with.
    pub settings: serde_json::Value,
    /// The calls, oldest first.
    pub deliveries: Vec<Delivery>,
}

/// One recorded call of the destination: a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    /// The events the component got, in order.
    pub events: Vec<RecordedEvent>,
    /// Every request it sent, with the answer it got.
    pub requests: Vec<Exchange>,
    /// Each event's outcome, in the order of `events`.
    pub outcomes: Vec<OutcomeRecord>,
    /// The wall-clock readings the component made, in order (ns since the
    /// epoch): a replay gives them back, so a time it stamps is the recorded one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clock: Vec<u64>,
}

/// One event of a recorded batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedEvent {
    /// Its `messageId`.
    #[serde(rename = "messageId")]
    pub message_id: String,
    /// Its Segment `type` (a file with another is refused when read).
    #[serde(rename = "type")]
    pub event_type: crate::event_type::EventType,
    /// The event exactly as the component read it (JSON text).
    pub json: String,
}

/// A destination being recorded: deliveries are added until it holds `want`.
#[derive(Debug)]
pub struct Recorder {
    /// How many deliveries are asked for.
    want: usize,
    /// Those recorded so far, and their bytes (events and bodies).
    kept: Mutex<Vec<Delivery>>,
    bytes: std::sync::atomic::AtomicUsize,
    /// What the first delivery said of its call: settings and plugin version.
    about: Mutex<Option<About>>,
    /// Signalled when `want` are kept.
    pub full: tokio::sync::Notify,
}

impl Recorder {
    /// A recorder of `want` deliveries (1 to [`MAX_DELIVERIES`]).
    pub fn new(want: usize) -> Recorder {
        Recorder {
            want: want.clamp(1, MAX_DELIVERIES),
            kept: Mutex::default(),
            bytes: Default::default(),
            about: Mutex::default(),
            full: tokio::sync::Notify::new(),
        }
    }

    /// Whether it still takes deliveries.
    pub fn wants_more(&self) -> bool {
        self.kept.lock().expect("recorder lock").len() < self.want
            && self.bytes.load(std::sync::atomic::Ordering::Relaxed) < MAX_BYTES
    }

    /// Add one delivery (ignored once full); `about` tells of its call.
    pub fn add(&self, delivery: Delivery, about: impl FnOnce() -> About) {
        let mut kept = self.kept.lock().expect("recorder lock");
        if kept.len() < self.want
            && self.bytes.load(std::sync::atomic::Ordering::Relaxed) < MAX_BYTES
        {
            let size: usize = delivery.events.iter().map(|e| e.json.len()).sum::<usize>()
                + delivery
                    .requests
                    .iter()
                    .map(|r| r.body.len() + r.response.as_ref().map_or(0, |a| a.body.len()))
                    .sum::<usize>();
            let total = self
                .bytes
                .fetch_add(size, std::sync::atomic::Ordering::Relaxed)
                + size;
            self.about
                .lock()
                .expect("recorder lock")
                .get_or_insert_with(about);
            kept.push(delivery);
            if kept.len() == self.want || total >= MAX_BYTES {
                self.full.notify_one();
            }
        }
    }

    /// Forget the deliveries with an event `matches` takes (asked with its
    /// JSON): a privacy deletion. How many were forgotten.
    pub fn forget(&self, matches: &dyn Fn(&str) -> bool) -> u64 {
        let mut kept = self.kept.lock().expect("recorder lock");
        let before = kept.len();
        kept.retain(|d| !d.events.iter().any(|e| matches(&e.json)));
        (before - kept.len()) as u64
    }

    /// What was recorded, and what its calls ran with (`None`: nothing recorded).
    pub fn take(&self) -> (Vec<Delivery>, Option<About>) {
        (
            std::mem::take(&mut *self.kept.lock().expect("recorder lock")),
            self.about.lock().expect("recorder lock").take(),
        )
    }
}

/// What a recorded call ran with.
#[derive(Debug, Clone)]
pub struct About {
    /// The destination's settings, credentials redacted.
    pub settings: serde_json::Value,
    /// sha256 of the plugin version.
    pub plugin_sha256: String,
    /// Its version (from `describe`).
    pub plugin_version: String,
}

/// Why a recording file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    /// Unreadable.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not a recording.
    #[error("{path}:{line}:{column}: not a Switchyard recording: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// Where.
        line: usize,
        /// Where.
        column: usize,
        /// Why.
        message: String,
    },
    /// A format this build does not read.
    #[error("{path}: recording format {found}; this build reads format {FORMAT}")]
    Format {
        /// The file.
        path: String,
        /// Its format.
        found: u32,
    },
}

impl Recording {
    /// Read and check a recording file.
    pub fn read(path: &std::path::Path) -> Result<Recording, RecordingError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| RecordingError::Read {
            path: shown.clone(),
            source,
        })?;
        let rec: Recording = serde_json::from_str(&text).map_err(|e| RecordingError::Invalid {
            path: shown.clone(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        if rec.format != FORMAT {
            return Err(RecordingError::Format {
                path: shown,
                found: rec.format,
            });
        }
        Ok(rec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(users: &[&str]) -> Delivery {
        Delivery {
            events: users
                .iter()
                .enumerate()
                .map(|(i, u)| RecordedEvent {
                    message_id: format!("m{i}"),
                    event_type: crate::event_type::EventType::Track,
                    json: format!(r#"{{"userId":"{u}"}}"#),
                })
                .collect(),
            requests: Vec::new(),
            outcomes: Vec::new(),
            clock: Vec::new(),
        }
    }

    #[test]
    fn a_deletion_forgets_every_delivery_that_carries_one_of_its_events() {
        let r = Recorder::new(10);
        let about = || About {
            settings: serde_json::Value::Null,
            plugin_sha256: String::new(),
            plugin_version: String::new(),
        };
        r.add(delivery(&["alice", "bob"]), about);
        r.add(delivery(&["bob"]), about);
        assert_eq!(r.forget(&|json| json.contains("alice")), 1);
        let (kept, _) = r.take();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].events[0].json, r#"{"userId":"bob"}"#);
    }
}
