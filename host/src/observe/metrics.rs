//! The instruments every stage updates as events pass: counters and
//! histograms (ingest per request, the store per commit, a batch in flight per
//! call and per delivered event), and their label sets.
//!
//! Where it sits: at the bottom, beside every stage of the flow. Clones share
//! their values, so each stage holds its own handle and nothing is global:
//! several hosts in one process (the tests) never mix their figures. The
//! registry that exposes them, with what is read at scrape time, is
//! `admin/scrape.rs`.
//!
//! The names are a contract (the book, `operating/metrics.md`): `switchyard_` prefix,
//! `_total` on counters, base units (`_seconds`, `_bytes`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

/// Label set: a source.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    /// Source name.
    pub source: String,
}

/// Label set: a source and an HTTP status.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Source name; empty when the request named no known write key.
    pub source: String,
    /// The answer's status code.
    pub status: u16,
}

/// Label set: a destination.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DestinationLabel {
    /// Destination name.
    pub destination: String,
}

/// A family of histograms, one per destination.
pub type PerDestination = Family<DestinationLabel, Histogram, fn() -> Histogram>;

pub use crate::store::CommitMetrics;

/// Counters and histograms updated as events pass. Clones share their values.
#[derive(Debug, Clone)]
pub struct Instruments {
    /// Ingest requests by source and status.
    pub ingest_requests: Family<RequestLabels, Counter>,
    /// Events stored per source.
    pub events_accepted: Family<SourceLabel, Counter>,
    /// Events refused per source (inside accepted batches, and whole refused batches).
    pub events_rejected: Family<SourceLabel, Counter>,
    /// Events acknowledged but not stored again: their `messageId` was seen.
    pub events_deduplicated: Family<SourceLabel, Counter>,
    /// Events accepted and dropped because their user is suppressed (a privacy regulation).
    pub events_suppressed: Family<SourceLabel, Counter>,
    /// The store's commits.
    pub commits: CommitMetrics,
    /// From receipt to delivery, per destination, in seconds.
    pub delivery_latency: PerDestination,
    /// One `deliver` call into a component, per destination, in seconds.
    pub plugin_call: PerDestination,
}

fn latency_histogram() -> Histogram {
    // 5 ms .. ~2 h: a delivery can wait out retries.
    Histogram::new(exponential_buckets(0.005, 2.5, 15))
}

fn call_histogram() -> Histogram {
    // 250 µs .. ~8 s
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

impl Default for Instruments {
    fn default() -> Self {
        Instruments {
            ingest_requests: Family::default(),
            events_accepted: Family::default(),
            events_rejected: Family::default(),
            events_deduplicated: Family::default(),
            events_suppressed: Family::default(),
            commits: CommitMetrics::default(),
            delivery_latency: Family::new_with_constructor(latency_histogram),
            plugin_call: Family::new_with_constructor(call_histogram),
        }
    }
}

impl Instruments {
    /// The histogram of `destination`'s deliveries (created on first use).
    pub fn latency_of(&self, destination: &str) -> Histogram {
        self.delivery_latency
            .get_or_create_owned(&DestinationLabel {
                destination: destination.to_string(),
            })
    }

    /// The histogram of `destination`'s calls (created on first use).
    pub fn calls_of(&self, destination: &str) -> Histogram {
        self.plugin_call.get_or_create_owned(&DestinationLabel {
            destination: destination.to_string(),
        })
    }
}
