//! Recent history of one destination or source, for the overview and the charts:
//! counts per minute over the last hour, and the latencies of the newest deliveries.
//!
//! Where it sits: a batch in flight adds its outcomes and latencies (a
//! destination's), ingest its accepted and refused events (a source's); the
//! admin API (`delivered_per_second`, `latency_p50_ms`, `latency_p99_ms`), the
//! status page's chart and `switchyard status` read it. Fixed size: 60 minutes
//! of counters and the newest [`LATENCIES_KEPT`] latencies.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;

/// Minutes of counters kept.
pub const MINUTES: usize = 60;
/// Latencies kept for the percentiles.
pub const LATENCIES_KEPT: usize = 1024;

/// Counts of one minute. For a destination: delivered, retried, dead-lettered;
/// for a source: accepted, refused, and unused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Minute {
    /// Minutes since the Unix epoch.
    pub minute: i64,
    /// Delivered (a destination) or accepted (a source).
    pub ok: u64,
    /// Retried (a destination) or refused (a source).
    pub retried: u64,
    /// Dead-lettered (a destination).
    pub dead: u64,
}

/// The history of one destination or source.
#[derive(Debug, Default)]
pub struct History {
    /// Oldest first; at most [`MINUTES`], one per minute that had anything.
    minutes: Mutex<VecDeque<Minute>>,
    /// Newest last, in milliseconds.
    latencies: Mutex<VecDeque<u64>>,
}

impl History {
    /// Add counts at `now_ms`.
    pub fn add(&self, now_ms: i64, ok: u64, retried: u64, dead: u64) {
        if ok == 0 && retried == 0 && dead == 0 {
            return;
        }
        let minute = now_ms.div_euclid(60_000);
        let mut minutes = self.minutes.lock().expect("history lock");
        match minutes.back_mut() {
            Some(last) if last.minute == minute => {
                last.ok += ok;
                last.retried += retried;
                last.dead += dead;
            }
            _ => {
                minutes.push_back(Minute {
                    minute,
                    ok,
                    retried,
                    dead,
                });
            }
        }
        while minutes
            .front()
            .is_some_and(|m| m.minute <= minute - MINUTES as i64)
        {
            minutes.pop_front();
        }
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
        (0..MINUTES as i64)
            .rev()
            .map(|back| {
                let minute = now - back;
                minutes
                    .iter()
                    .find(|m| m.minute == minute)
                    .copied()
                    .unwrap_or(Minute {
                        minute,
                        ..Minute::default()
                    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_roll_over_the_hour_and_quiet_ones_are_zero() {
        let h = History::default();
        let t0 = 1_000 * 60_000;
        h.add(t0, 5, 1, 0);
        h.add(t0 + 30_000, 5, 0, 1);
        h.add(t0 + 120_000, 2, 0, 0);
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
        // An hour later the first minutes are gone.
        h.add(t0 + 61 * 60_000, 1, 0, 0);
        assert!(h.last_hour(t0 + 61 * 60_000).iter().all(|m| m.ok <= 2));
        assert_eq!(h.minutes.lock().unwrap().len(), 2);
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
        h.add(t0, 60, 0, 0);
        h.add(t0 + 60_000, 30, 0, 0);
        let rate = h.ok_per_second(t0 + 90_000);
        assert!((rate - 1.0).abs() < 1e-9, "{rate}");
    }
}
