//! How many batches of one destination may be in flight: a fixed number, or an
//! adaptive limit that follows the vendor (README, "Delivery").
//!
//! Where it sits: the worker asks [`Limiter::has_room`] before it claims the
//! next batch, calls [`Limiter::started`] when a batch leaves and
//! [`Limiter::finished`] with the batch's round-trip time and whether the
//! destination pushed back. Nothing here sleeps or reads a clock: every call
//! takes `now`, so the policy is tested with paused tokio time.
//!
//! The adaptive policy, after Vector's Adaptive Request Concurrency, with these
//! changes (each is a test below):
//! - **A no-load reference.** Vector compares a window's mean round trip with
//!   a moving average of past ones, which rises with the queueing it should
//!   detect. Here the reference is the lowest window mean of the last
//!   [`REFERENCE_WINDOWS`] windows: latency the vendor shows when it is not
//!   queueing. A vendor that becomes slower for good raises it once the old
//!   windows age out.
//! - **Slow start.** The limit doubles per window until the first sign of
//!   congestion (Vector adds one per window, so reaching 16 takes 15 round trips).
//! - **A decrease that fits the rise.** When round trips rise past the
//!   tolerance, the limit is scaled by reference ÷ mean (at most halved), not
//!   by a fixed ratio; back-pressure (a retry, a 429/5xx, a timeout) halves it.
//! - **One decision per window.** The batches already in flight when the limit
//!   fell report the same congestion; they do not lower it again.
//! - **Increases only when the limit was reached.** A destination with little
//!   traffic never reaches its limit, so its round trips say nothing about more
//!   concurrency and the limit stays where it is.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::Concurrency;

/// How many past windows the no-load reference is the minimum of.
pub const REFERENCE_WINDOWS: usize = 50;

/// A window's mean may exceed the reference by this fraction before it counts
/// as a rise (plus [`TOLERANCE_FLOOR`], for vendors that answer in a millisecond).
pub const TOLERANCE: f64 = 0.25;

/// The absolute part of the tolerance.
pub const TOLERANCE_FLOOR: Duration = Duration::from_millis(2);

/// The shortest measurement window.
pub const MIN_WINDOW: Duration = Duration::from_millis(20);

/// The limit of one destination and its measurements.
#[derive(Debug, Clone)]
pub struct Limiter {
    /// Adaptive (with its ceiling) or fixed.
    adaptive: bool,
    /// The ceiling (the fixed value, or `max`).
    max: u32,
    /// Batches allowed in flight now.
    limit: u32,
    /// Batches in flight now.
    in_flight: u32,
    /// Still doubling (no congestion seen yet).
    slow_start: bool,
    /// The window being measured.
    window: Window,
    /// Means of the last windows (the reference is their minimum).
    history: VecDeque<Duration>,
    /// Why the limit last moved, for the admin API.
    last_change: Option<&'static str>,
    /// When the limit last fell: batches that left before then report the
    /// congestion that lowered it and are not measured again.
    lowered_at: Option<Instant>,
}

#[derive(Debug, Clone)]
struct Window {
    /// When it began.
    started: Instant,
    /// Round trips summed, and how many.
    rtt_sum: Duration,
    samples: u32,
    /// The limit was reached at some point in it.
    saturated: bool,
    /// A batch in it was pushed back.
    pushed_back: bool,
}

impl Window {
    fn new(now: Instant) -> Window {
        Window {
            started: now,
            rtt_sum: Duration::ZERO,
            samples: 0,
            saturated: false,
            pushed_back: false,
        }
    }
}

/// What the admin API shows of the limiter.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct LimitReport {
    /// `adaptive` or `fixed`.
    pub mode: &'static str,
    /// Batches allowed in flight now.
    pub limit: u32,
    /// The ceiling.
    pub max: u32,
    /// Batches in flight now.
    pub in_flight: u32,
    /// The no-load round trip the adaptive limit compares with, in ms.
    pub reference_rtt_ms: Option<f64>,
    /// Why the limit last moved.
    pub last_change: Option<&'static str>,
}

impl Limiter {
    /// A limiter for `policy`; an adaptive one starts at 1.
    pub fn new(policy: Concurrency, now: Instant) -> Limiter {
        let (adaptive, max, limit) = match policy {
            Concurrency::Fixed(n) => (false, n.max(1), n.max(1)),
            Concurrency::Adaptive { max } => (true, max.max(1), 1),
        };
        Limiter {
            adaptive,
            max,
            limit,
            in_flight: 0,
            slow_start: true,
            window: Window::new(now),
            history: VecDeque::with_capacity(REFERENCE_WINDOWS),
            last_change: None,
            lowered_at: None,
        }
    }

    /// Batches allowed in flight now.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Batches in flight now.
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// Whether another batch may leave.
    pub fn has_room(&self) -> bool {
        self.in_flight < self.limit
    }

    /// A batch left.
    pub fn started(&mut self) {
        self.in_flight += 1;
        if self.in_flight >= self.limit {
            self.window.saturated = true;
        }
    }

    /// A batch came back after `rtt`; `pushed_back` when the destination asked
    /// to retry any of it (a 429, a 5xx, a `Retry-After`) or the call timed out.
    pub fn finished(&mut self, rtt: Duration, pushed_back: bool, now: Instant) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if !self.adaptive {
            return;
        }
        let length = self.reference().unwrap_or(rtt).max(MIN_WINDOW);
        if now.saturating_duration_since(self.window.started) >= length {
            self.close_window(now);
        }
        let left_at = now.checked_sub(rtt).unwrap_or(now);
        if self.lowered_at.is_some_and(|at| left_at < at) {
            return; // it was out when the limit fell: old news
        }
        self.window.rtt_sum += rtt;
        self.window.samples += 1;
        if pushed_back && !self.window.pushed_back {
            // Back-pressure acts at once, and once per window.
            self.window.pushed_back = true;
            self.slow_start = false;
            self.lower(self.limit / 2, "back-pressure: halved", now);
        }
    }

    /// The no-load round trip: the lowest window mean of late.
    pub fn reference(&self) -> Option<Duration> {
        self.history.iter().min().copied()
    }

    /// For the admin API.
    pub fn report(&self) -> LimitReport {
        LimitReport {
            mode: if self.adaptive { "adaptive" } else { "fixed" },
            limit: self.limit,
            max: self.max,
            in_flight: self.in_flight,
            reference_rtt_ms: self
                .reference()
                .filter(|_| self.adaptive)
                .map(|d| (d.as_secs_f64() * 10_000.0).round() / 10.0),
            last_change: self.last_change,
        }
    }

    fn close_window(&mut self, now: Instant) {
        let window = std::mem::replace(&mut self.window, Window::new(now));
        if window.samples == 0 {
            return;
        }
        let mean = window.rtt_sum / window.samples;
        let reference = self.reference().unwrap_or(mean);
        if self.history.len() == REFERENCE_WINDOWS {
            self.history.pop_front();
        }
        self.history.push_back(mean);
        if window.pushed_back {
            return; // already lowered in this window
        }
        let threshold = reference.mul_f64(1.0 + TOLERANCE) + TOLERANCE_FLOOR;
        if mean > threshold {
            self.slow_start = false;
            let scale = (reference.as_secs_f64() / mean.as_secs_f64()).clamp(0.5, 0.95);
            let lowered = ((f64::from(self.limit) * scale).floor() as u32).min(self.limit - 1);
            self.lower(lowered, "round trips rose: lowered", now);
        } else if window.saturated {
            let raised = if self.slow_start {
                self.limit * 2
            } else {
                self.limit + 1
            };
            self.set(raised, "round trips flat at the limit: raised");
        }
    }

    fn lower(&mut self, limit: u32, why: &'static str, now: Instant) {
        self.lowered_at = Some(now);
        self.set(limit, why);
    }

    fn set(&mut self, limit: u32, why: &'static str) {
        let limit = limit.clamp(1, self.max);
        if limit != self.limit {
            tracing::debug!(from = self.limit, to = limit, "concurrency: {why}");
            self.limit = limit;
            self.last_change = Some(why);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Run the limiter as the worker does for `secs` of simulated time against
    /// a vendor whose round trip is `rtt(batches in flight)`, with work always
    /// waiting: each batch that comes back is replaced while there is room.
    /// Returns the limit sampled every 100 ms.
    async fn simulate(l: &mut Limiter, secs: u64, rtt: impl Fn(u32) -> Duration) -> Vec<u32> {
        let t0 = Instant::now();
        let end = t0 + Duration::from_secs(secs);
        let mut out: Vec<(Instant, Duration)> = Vec::new(); // (back at, rtt)
        let mut now = t0;
        let mut next_sample = t0;
        let mut samples = Vec::new();
        while now < end {
            while l.has_room() {
                l.started();
                let took = rtt(l.in_flight());
                out.push((now + took, took));
            }
            out.sort();
            let (at, took) = out.remove(0);
            while next_sample <= at {
                samples.push(l.limit());
                next_sample += MS * 100;
            }
            tokio::time::advance(at - now).await;
            now = Instant::now();
            l.finished(took, false, now);
        }
        samples
    }

    /// Run `rounds` rounds of batches that all leave together and come back
    /// together after `rtt(n)`; returns the limit after each round.
    async fn drive(l: &mut Limiter, rounds: usize, rtt: impl Fn(u32) -> Duration) -> Vec<u32> {
        let mut limits = Vec::new();
        for _ in 0..rounds {
            let n = l.limit();
            for _ in 0..n {
                l.started();
            }
            let took = rtt(n);
            tokio::time::advance(took).await;
            for _ in 0..n {
                l.finished(took, false, Instant::now());
            }
            limits.push(l.limit());
        }
        limits
    }

    #[tokio::test(start_paused = true)]
    async fn fixed_stays_fixed() {
        let mut l = Limiter::new(Concurrency::Fixed(4), Instant::now());
        assert_eq!(drive(&mut l, 5, |n| MS * 50 * n).await, vec![4; 5]);
        assert!(l.has_room());
        for _ in 0..4 {
            l.started();
        }
        assert!(!l.has_room());
    }

    #[tokio::test(start_paused = true)]
    async fn slow_start_doubles_to_the_ceiling_while_round_trips_stay_flat() {
        let mut l = Limiter::new(Concurrency::Adaptive { max: 16 }, Instant::now());
        let limits = drive(&mut l, 7, |_| MS * 50).await;
        assert_eq!(limits, vec![1, 2, 4, 8, 16, 16, 16]);
    }

    #[tokio::test(start_paused = true)]
    async fn settles_near_the_knee_of_a_vendor_that_queues() {
        // Flat 50 ms up to 8 in flight, then 10 ms more per extra batch.
        let knee = |n: u32| MS * 50 + MS * 10 * n.saturating_sub(8);
        let mut l = Limiter::new(Concurrency::Adaptive { max: 64 }, Instant::now());
        let limits = simulate(&mut l, 60, knee).await;
        let tail = &limits[100..];
        let mean = tail.iter().sum::<u32>() as f64 / tail.len() as f64;
        assert!(
            tail.iter().all(|&n| (5..=12).contains(&n)) && (7.0..=10.5).contains(&mean),
            "the limit stays near 8 (mean {mean}): {tail:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn reaches_the_ceiling_against_a_flat_vendor() {
        let mut l = Limiter::new(Concurrency::Adaptive { max: 16 }, Instant::now());
        let limits = simulate(&mut l, 5, |_| MS * 50).await;
        assert!(limits[20..].iter().all(|&n| n == 16), "{limits:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn back_pressure_halves_once_per_window() {
        let t0 = Instant::now();
        let mut l = Limiter::new(Concurrency::Fixed(1), t0);
        l.finished(MS, true, t0);
        assert_eq!(l.limit(), 1, "a fixed limit ignores back-pressure");

        let mut l = Limiter::new(Concurrency::Adaptive { max: 32 }, t0);
        drive(&mut l, 7, |_| MS * 50).await;
        assert_eq!(l.limit(), 32);
        for _ in 0..32 {
            l.started();
        }
        tokio::time::advance(MS * 5).await;
        // Every batch in flight answers 429; the limit halves once.
        for _ in 0..32 {
            l.finished(MS * 5, true, Instant::now());
        }
        assert_eq!(l.limit(), 16);
        assert_eq!(l.report().last_change, Some("back-pressure: halved"));
        // After slow start is over, it climbs one per window.
        let limits = drive(&mut l, 3, |_| MS * 50).await;
        assert_eq!(limits, vec![16, 17, 18]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_destination_does_not_grow() {
        let t0 = Instant::now();
        let mut l = Limiter::new(Concurrency::Adaptive { max: 16 }, t0);
        drive(&mut l, 2, |_| MS * 50).await;
        let before = l.limit();
        for _ in 0..20 {
            l.started(); // one at a time: never at the limit
            tokio::time::advance(MS * 60).await;
            l.finished(MS * 50, false, Instant::now());
        }
        assert_eq!(l.limit(), before);
    }

    #[tokio::test(start_paused = true)]
    async fn a_vendor_that_slows_for_good_becomes_the_new_reference() {
        let mut l = Limiter::new(Concurrency::Adaptive { max: 8 }, Instant::now());
        drive(&mut l, 10, |_| MS * 20).await;
        assert_eq!(l.reference(), Some(MS * 20));
        drive(&mut l, 3 * REFERENCE_WINDOWS, |_| MS * 80).await;
        assert_eq!(l.reference(), Some(MS * 80));
        assert_eq!(l.limit(), 8, "back at the ceiling once 80 ms is the norm");
    }
}
