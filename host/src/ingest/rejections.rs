//! Events refused inside accepted batches, kept for inspection: a count per
//! source and reason, and the newest [`KEEP_PER_SOURCE`] per source.
//!
//! Where it sits: ingest records every refused event here (the client got its
//! index and reason in the answer, but a browser or a mobile SDK does not show
//! it to anybody); `GET /admin/sources` and
//! `GET /admin/sources/{name}/rejected` read it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;

use super::normalize::Rejected;

/// Refused events kept per source.
pub const KEEP_PER_SOURCE: usize = 100;

/// Refused events of every source.
#[derive(Debug, Default)]
pub struct Rejections {
    /// Per source name.
    sources: Mutex<HashMap<String, PerSource>>,
}

#[derive(Debug, Default)]
struct PerSource {
    /// Refused events per reason code, since start.
    counts: BTreeMap<&'static str, u64>,
    /// The newest refused events, oldest first.
    recent: VecDeque<RejectedRecord>,
}

/// One refused event, as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RejectedRecord {
    /// When it was refused (RFC 3339).
    pub at: String,
    /// Its index in its batch, its `messageId`, code and message.
    #[serde(flatten)]
    pub event: Rejected,
}

/// What the admin API shows of one source.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceRejections {
    /// Refused events since start.
    pub total: u64,
    /// Per reason code.
    pub counts: BTreeMap<&'static str, u64>,
    /// The newest first, at most [`KEEP_PER_SOURCE`].
    pub recent: Vec<RejectedRecord>,
}

impl Rejections {
    /// Count and keep the refused events of one request of `source`.
    pub fn record(&self, source: &str, rejected: &[Rejected]) {
        if rejected.is_empty() {
            return;
        }
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut sources = self.sources.lock().expect("rejections lock");
        let s = sources.entry(source.to_string()).or_default();
        for r in rejected {
            *s.counts.entry(r.code).or_default() += 1;
            if s.recent.len() == KEEP_PER_SOURCE {
                s.recent.pop_front();
            }
            s.recent.push_back(RejectedRecord {
                at: at.clone(),
                event: r.clone(),
            });
        }
    }

    /// What has been refused for `source`.
    pub fn report(&self, source: &str) -> SourceRejections {
        let sources = self.sources.lock().expect("rejections lock");
        match sources.get(source) {
            Some(s) => SourceRejections {
                total: s.counts.values().sum(),
                counts: s.counts.clone(),
                recent: s.recent.iter().rev().cloned().collect(),
            },
            None => SourceRejections::default(),
        }
    }
}
