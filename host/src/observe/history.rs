//! Recent history of one destination or source, for the overview, the charts
//! and the delivery funnel: counts per minute over the last day, and the
//! latencies of the newest deliveries.
//!
//! Where it sits: a batch in flight adds its outcomes and latencies (a
//! destination's), ingest its accepted and refused events (a source's), and a
//! destination's worker folds in what routing kept from it
//! ([`History::fold_unrouted`]); the admin API (`delivered_per_second`,
//! `latency_p50_ms`, `latency_p99_ms`, the funnel), the status page's chart and
//! `switchyard status` read it. Bounded: at most [`MINUTES_KEPT`] minutes of
//! counters (only the minutes that had anything) and the newest
//! [`LATENCIES_KEPT`] latencies.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// Minutes in the chart (the last hour).
pub const MINUTES: usize = 60;
/// Minutes of counters kept: a day, the funnel's longest window.
pub const MINUTES_KEPT: usize = 24 * 60;
/// Latencies kept for the percentiles.
pub const LATENCIES_KEPT: usize = 1024;

/// Counts of one minute. For a destination: delivered, retried, dead-lettered,
/// dropped by a transformation, kept from it by routing; for a source:
/// accepted (stored), refused, dropped as duplicates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Minute {
    /// Minutes since the Unix epoch.
    pub minute: i64,
    /// Delivered (a destination) or accepted and stored (a source).
    pub ok: u64,
    /// Retried (a destination) or refused (a source).
    pub retried: u64,
    /// Dead-lettered (a destination) or dropped as a duplicate (a source).
    pub dead: u64,
    /// Dropped by one of its transformations (a destination), or answered and
    /// dropped because a privacy regulation suppresses its user (a source).
    pub filtered: u64,
    /// Kept from it by its filter or an `integrations` object (a destination).
    pub unrouted: u64,
}

impl Minute {
    /// Counts without a minute, to add with [`History::add`].
    pub fn counts(ok: u64, retried: u64, dead: u64) -> Minute {
        Minute {
            ok,
            retried,
            dead,
            ..Minute::default()
        }
    }

    fn is_empty(&self) -> bool {
        self.ok == 0
            && self.retried == 0
            && self.dead == 0
            && self.filtered == 0
            && self.unrouted == 0
    }

    /// Add `other`'s counts to these.
    pub fn absorb(&mut self, other: &Minute) {
        self.ok += other.ok;
        self.retried += other.retried;
        self.dead += other.dead;
        self.filtered += other.filtered;
        self.unrouted += other.unrouted;
    }
}

/// The history of one destination or source.
#[derive(Debug, Default)]
pub struct History {
    /// Oldest first; at most [`MINUTES_KEPT`], one per minute that had anything.
    minutes: Mutex<VecDeque<Minute>>,
    /// Newest last, in milliseconds.
    latencies: Mutex<VecDeque<u64>>,
    /// The routing counter's value at the last [`History::fold_unrouted`].
    unrouted_seen: Mutex<u64>,
}

impl History {
    /// Add counts (its `minute` is ignored) at `now_ms`.
    pub fn add(&self, now_ms: i64, counts: Minute) {
        if counts.is_empty() {
            return;
        }
        let minute = now_ms.div_euclid(60_000);
        let mut minutes = self.minutes.lock().expect("history lock");
        match minutes.back_mut() {
            Some(last) if last.minute == minute => last.absorb(&counts),
            _ => minutes.push_back(Minute { minute, ..counts }),
        }
        while minutes
            .front()
            .is_some_and(|m| m.minute <= minute - MINUTES_KEPT as i64)
        {
            minutes.pop_front();
        }
    }

    /// Routing counts what it keeps from a destination on the hot path, in one
    /// atomic counter that only grows ([`crate::route::Router::filtered`]); this
    /// adds what it counted since the last fold to the minute of `now_ms`. A
    /// counter lower than last time was started again (a reload built a new
    /// router): all of it is new.
    pub fn fold_unrouted(&self, now_ms: i64, counter: u64) {
        let mut seen = self.unrouted_seen.lock().expect("history lock");
        let new = counter.checked_sub(*seen).unwrap_or(counter);
        *seen = counter;
        drop(seen);
        self.add(
            now_ms,
            Minute {
                unrouted: new,
                ..Minute::default()
            },
        );
    }

    /// Take over the minutes and latencies of `old` (the same destination
    /// before a reload changed it); the routing counter starts again.
    pub fn carry_from(&self, old: &History) {
        let minutes = old.minutes.lock().expect("history lock").clone();
        *self.minutes.lock().expect("history lock") = minutes;
        let latencies = old.latencies.lock().expect("history lock").clone();
        *self.latencies.lock().expect("history lock") = latencies;
    }

    /// The sum of the last `minutes` minutes up to `now_ms` (the current one
    /// counted so far); its `minute` is the first minute of the window.
    pub fn sum(&self, now_ms: i64, minutes: usize) -> Minute {
        let now = now_ms.div_euclid(60_000);
        let first = now - minutes as i64 + 1;
        let mut total = Minute {
            minute: first,
            ..Minute::default()
        };
        let kept = self.minutes.lock().expect("history lock");
        for m in kept.iter().filter(|m| (first..=now).contains(&m.minute)) {
            total.absorb(m);
        }
        total
    }

    /// Keep delivery latencies (ms).
    pub fn latencies(&self, ms: impl IntoIterator<Item = u64>) {
        let mut l = self.latencies.lock().expect("history lock");
        for v in ms {
            if l.len() == LATENCIES_KEPT {
                l.pop_front();
            }
            l.push_back(v);
        }
    }

    /// One entry per minute of the hour ending at `now_ms`, oldest first (zeros
    /// for quiet minutes).
    pub fn last_hour(&self, now_ms: i64) -> Vec<Minute> {
        let now = now_ms.div_euclid(60_000);
        let minutes = self.minutes.lock().expect("history lock");
        // Sorted by minute: the hour starts at the first kept minute inside it.
        let start = minutes.partition_point(|m| m.minute <= now - MINUTES as i64);
        let mut kept = minutes.range(start..).peekable();
        (0..MINUTES as i64)
            .rev()
            .map(|back| {
                let minute = now - back;
                match kept.next_if(|m| m.minute == minute) {
                    Some(m) => *m,
                    None => Minute {
                        minute,
                        ..Minute::default()
                    },
                }
            })
            .collect()
    }

    /// `ok` per second over the last full minute and the current one so far.
    pub fn ok_per_second(&self, now_ms: i64) -> f64 {
        let now = now_ms.div_euclid(60_000);
        let minutes = self.minutes.lock().expect("history lock");
        let counted: u64 = minutes
            .iter()
            .filter(|m| m.minute >= now - 1)
            .map(|m| m.ok)
            .sum();
        let seconds = 60.0 + (now_ms.rem_euclid(60_000) as f64 / 1000.0);
        counted as f64 / seconds
    }

    /// The `q` quantile (0..=1) of the newest latencies, in ms.
    pub fn latency_quantile(&self, q: f64) -> Option<u64> {
        let mut l: Vec<u64> = self
            .latencies
            .lock()
            .expect("history lock")
            .iter()
            .copied()
            .collect();
        if l.is_empty() {
            return None;
        }
        l.sort_unstable();
        let rank = ((l.len() as f64 * q).ceil() as usize).clamp(1, l.len());
        Some(l[rank - 1])
    }
}

/// A destination's outcomes per source (the source's funnel): one history per
/// source it has had events from (sources are configured, so few).
#[derive(Debug, Default)]
pub struct BySource(Mutex<HashMap<String, Arc<History>>>);

impl BySource {
    /// The history of `source`, made on first use.
    pub fn of(&self, source: &str) -> Arc<History> {
        let mut map = self.0.lock().expect("history lock");
        if let Some(h) = map.get(source) {
            return h.clone();
        }
        let h = Arc::new(History::default());
        map.insert(source.to_string(), h.clone());
        h
    }

    /// The history of `source`, if it has had any events here.
    pub fn get(&self, source: &str) -> Option<Arc<History>> {
        self.0.lock().expect("history lock").get(source).cloned()
    }

    /// Take over the histories of `old` (see [`History::carry_from`]).
    pub fn carry_from(&self, old: &BySource) {
        let map = old.0.lock().expect("history lock").clone();
        *self.0.lock().expect("history lock") = map;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_roll_over_the_hour_and_quiet_ones_are_zero() {
        let h = History::default();
        let t0 = 1_000 * 60_000;
        h.add(t0, Minute::counts(5, 1, 0));
        h.add(t0 + 30_000, Minute::counts(5, 0, 1));
        h.add(t0 + 120_000, Minute::counts(2, 0, 0));
        let hour = h.last_hour(t0 + 120_000);
        assert_eq!(hour.len(), MINUTES);
        assert_eq!(hour[MINUTES - 1].ok, 2);
        assert_eq!(hour[MINUTES - 2].ok, 0);
        assert_eq!(
            (
                hour[MINUTES - 3].ok,
                hour[MINUTES - 3].retried,
                hour[MINUTES - 3].dead
            ),
            (10, 1, 1)
        );
        // An hour later the first minutes are out of the chart, and a day
        // later out of the history.
        h.add(t0 + 61 * 60_000, Minute::counts(1, 0, 0));
        assert!(h.last_hour(t0 + 61 * 60_000).iter().all(|m| m.ok <= 2));
        assert_eq!(h.minutes.lock().unwrap().len(), 3);
        assert_eq!(h.sum(t0 + 61 * 60_000, MINUTES_KEPT).ok, 13);
        h.add(t0 + 24 * 60 * 60_000 + 60_000, Minute::counts(1, 0, 0));
        assert_eq!(h.minutes.lock().unwrap().len(), 3);
        assert_eq!(h.sum(t0 + 24 * 60 * 60_000 + 60_000, MINUTES_KEPT).ok, 4);
    }

    #[test]
    fn percentiles_of_the_newest_latencies() {
        let h = History::default();
        assert_eq!(h.latency_quantile(0.5), None);
        h.latencies(1..=100);
        assert_eq!(h.latency_quantile(0.5), Some(50));
        assert_eq!(h.latency_quantile(0.99), Some(99));
        h.latencies(std::iter::repeat_n(1_000, LATENCIES_KEPT));
        assert_eq!(h.latency_quantile(0.5), Some(1_000));
    }

    #[test]
    fn the_rate_counts_the_last_minute_and_this_one() {
        let h = History::default();
        let t0 = 1_000 * 60_000;
        h.add(t0, Minute::counts(60, 0, 0));
        h.add(t0 + 60_000, Minute::counts(30, 0, 0));
        let rate = h.ok_per_second(t0 + 90_000);
        assert!((rate - 1.0).abs() < 1e-9, "{rate}");
    }

    #[test]
    fn a_window_sums_its_minutes_only() {
        let h = History::default();
        let t0 = 1_000 * 60_000;
        h.add(t0, Minute::counts(7, 0, 0));
        h.add(t0 + 10 * 60_000, Minute::counts(1, 2, 3));
        let now = t0 + 65 * 60_000;
        // The last hour starts after t0's minute.
        assert_eq!(
            h.sum(now, MINUTES),
            Minute {
                minute: 1_006,
                ..Minute::counts(1, 2, 3)
            }
        );
        assert_eq!(h.sum(now, MINUTES_KEPT).ok, 8);
    }

    #[test]
    fn routing_counts_are_folded_in_as_they_grow_and_after_a_restart() {
        let h = History::default();
        let t0 = 1_000 * 60_000;
        h.fold_unrouted(t0, 5);
        h.fold_unrouted(t0 + 1_000, 5);
        h.fold_unrouted(t0 + 60_000, 8);
        // A reload's new router counts from 0 again.
        h.fold_unrouted(t0 + 120_000, 2);
        assert_eq!(h.sum(t0 + 120_000, MINUTES).unrouted, 10);
        assert_eq!(h.minutes.lock().unwrap().len(), 3);
    }
}
