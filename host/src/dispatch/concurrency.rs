//! How many batches of one destination may be in flight: a fixed number, or an
//! adaptive limit that follows the vendor (README, "Delivery").
//!
//! Where it sits: the worker asks [`Limiter::has_room`] before it claims the
//! next batch, calls [`Limiter::started`] when a batch leaves and
//! [`Limiter::finished`] with the batch's round-trip time and whether the
//! destination pushed back. Nothing here sleeps or reads a clock: every call
//! takes `now`, so the policy is tested with paused tokio time.
//!
//! The adaptive policy, after Vector's Adaptive Request Concurrency and the
//! AIMD and gradient limiters it draws on, made to hold up against real
//! vendors (each point is a simulation below, against a vendor of that shape):
//! - **Windows of several round trips.** A window closes after about one
//!   reference round trip (at least [`MIN_WINDOW`]) *and* at least
//!   [`MIN_SAMPLES`] batches back, so a few fast answers (the first request on
//!   a new connection, a cache hit) are averaged with the rest instead of
//!   making a window of their own.
//! - **A reference that follows the vendor.** The reference is the lowest
//!   window mean of the last [`REFERENCE_WINDOWS`] windows: the latency the
//!   vendor shows with the least queueing of late. A vendor that became slower
//!   for good (or faster) is followed within that many windows.
//! - **A rise is judged against the noise.** A window's mean counts as a rise
//!   only when it exceeds the reference by more than the larger of
//!   [`TOLERANCE`] (plus [`TOLERANCE_FLOOR`]) and [`DEVIATION_SCALE`] standard
//!   errors of the mean (the deviation is a moving average of the spread of
//!   round trips inside each window: the vendor's jitter, not a trend across
//!   windows). Jitter does not read as queueing; a knee still does, since the
//!   round trips past it are all slower together.
//! - **Slow start.** The limit doubles per window until the first sign of
//!   congestion, then adds one per window (Vector adds one from the start).
//! - **Queueing is a rate that falls.** At the limit, Little's law gives the
//!   rate (limit ÷ median round trip). A window whose rate is below the best
//!   rate of the last windows *at a lower limit* (by [`MIN_GAIN`], or more
//!   for a noisy vendor) is past the knee: more in flight only waits longer.
//!   A vendor that is slower under load but serves more is given more, however
//!   its round trips rise. (Below the limit there is no rate to read: a rise in
//!   round trips past the tolerance lowers it.)
//! - **A decrease that fits the fall.** The limit is scaled by rate ÷ best
//!   rate (by reference ÷ mean when the limit was not reached; at least 1
//!   less, at most halved); back-pressure (a retry, a 429/5xx, a timeout)
//!   halves it at once. Both end slow start.
//! - **Only news is measured.** Batches that left before the limit last rose
//!   say nothing of the new limit and are not averaged; a window closes once
//!   enough batches sent at the new limit came back.
//! - **One decision per window.** The batches already in flight when the limit
//!   fell report the same congestion; they do not lower it again. A batch sent
//!   after a decrease that is pushed back lowers it again at once.
//! - **A refusal is not a round trip.** A batch pushed back comes back fast
//!   and says nothing of the vendor's service time: it is not averaged.
//! - **Increases only when the limit was reached.** A destination with little
//!   traffic never reaches its limit, so its round trips say nothing about more
//!   concurrency and the limit stays where it is.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::Concurrency;

/// How many past windows the reference is the minimum of.
pub const REFERENCE_WINDOWS: usize = 10;

/// Fewest round trips a window averages.
pub const MIN_SAMPLES: u32 = 4;

/// A rise must exceed this many deviations (the vendor's jitter) as well.
pub const DEVIATION_SCALE: f64 = 3.0;

/// The least fall of the rate, from the best of the last windows, that counts
/// as past the knee (more when the round trips are noisier).
pub const MIN_GAIN: f64 = 0.05;

/// Weight of the newest window in the deviation's moving average.
const DEVIATION_ALPHA: f64 = 0.2;

/// A window's mean may exceed the reference by this fraction before it counts
/// as a rise (plus [`TOLERANCE_FLOOR`], for vendors that answer in a millisecond).
pub const TOLERANCE: f64 = 0.25;

/// The absolute part of the tolerance.
pub const TOLERANCE_FLOOR: Duration = Duration::from_millis(2);

/// The shortest measurement window.
pub const MIN_WINDOW: Duration = Duration::from_millis(20);

/// The kinds of change of the limit, as `/metrics` labels them (`kind`), and
/// the reason each gives in the admin API.
pub const CHANGE_KINDS: [(&str, &str); 4] = [
    ("raised", "round trips flat at the limit: raised"),
    ("raised_slower", "round trips rose with the rate: raised"),
    ("lowered", "round trips rose: lowered"),
    ("back_pressure", "back-pressure: halved"),
];

/// Moves of the limit kept for the status page's chart.
pub const MOVES_KEPT: usize = 256;

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
    /// The moving average of the spread (standard deviation) of round trips
    /// within a window.
    deviation: Duration,
    /// The limit and the rate (limit ÷ median round trip, batches a second)
    /// of the last windows that reached the limit.
    rates: VecDeque<(u32, f64)>,
    /// Why the limit last moved, for the admin API.
    last_change: Option<&'static str>,
    /// How many times it moved, by [`CHANGE_KINDS`] (for `/metrics`).
    changes: [u64; CHANGE_KINDS.len()],
    /// The newest moves: when, to what, and why (the status page's chart).
    moves: VecDeque<(Instant, u32, &'static str)>,
    /// When the limit last fell: batches that left before then report the
    /// congestion that lowered it and are not measured again.
    lowered_at: Option<Instant>,
    /// When the limit last rose: batches that left before then say nothing of
    /// the new limit and are not measured.
    raised_at: Option<Instant>,
}

#[derive(Debug, Clone)]
struct Window {
    /// When it began.
    started: Instant,
    /// The round trips measured in it.
    rtts: Vec<Duration>,
    /// The limit was reached at some point in it.
    saturated: bool,
    /// A batch in it was pushed back.
    pushed_back: bool,
}

impl Window {
    fn new(now: Instant) -> Window {
        Window {
            started: now,
            rtts: Vec::new(),
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
    /// The round trip the adaptive limit compares with, in ms.
    pub reference_rtt_ms: Option<f64>,
    /// The jitter a rise must exceed, in ms (adaptive only).
    pub rtt_deviation_ms: Option<f64>,
    /// Why the limit last moved.
    pub last_change: Option<&'static str>,
    /// How many times it moved, by [`CHANGE_KINDS`] (in `/metrics`, not in the API).
    #[serde(skip)]
    pub changes: [u64; CHANGE_KINDS.len()],
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
            deviation: Duration::ZERO,
            rates: VecDeque::with_capacity(REFERENCE_WINDOWS),
            last_change: None,
            changes: [0; CHANGE_KINDS.len()],
            moves: VecDeque::with_capacity(MOVES_KEPT),
            lowered_at: None,
            raised_at: None,
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
        if now.saturating_duration_since(self.window.started) >= length
            && (self.window.rtts.len() >= self.window_samples() || self.window.pushed_back)
        {
            self.close_window(now);
        }
        let left_at = now.checked_sub(rtt).unwrap_or(now);
        if self.lowered_at.is_some_and(|at| left_at < at) {
            return; // it was out when the limit fell: old news
        }
        let before_raise = self.raised_at.is_some_and(|at| left_at < at);
        if !pushed_back && !before_raise {
            // A refusal comes back fast and says nothing of the service time.
            self.window.rtts.push(rtt);
        }
        if pushed_back {
            // Back-pressure acts at once. Those already out when the limit fell
            // were passed over above; one sent since is news, even in this window.
            self.window.pushed_back = true;
            self.slow_start = false;
            self.lower(self.limit / 2, "back-pressure: halved", now);
        }
    }

    /// Round trips a window needs: two for each batch the limit allows, so
    /// every slot is heard from twice (and the first answers on connections
    /// opened for a raise are a minority), and never fewer than [`MIN_SAMPLES`].
    /// In slow start, one per slot (at least two) is enough: a window there
    /// only decides whether to double again, and a drain's first second is
    /// mostly slow start.
    fn window_samples(&self) -> usize {
        let limit = self.limit as usize;
        match self.slow_start {
            true => limit.max(2),
            false => (2 * limit).max(MIN_SAMPLES as usize),
        }
    }

    /// The round trip with the least queueing of late: the lowest window mean
    /// of the last [`REFERENCE_WINDOWS`].
    pub fn reference(&self) -> Option<Duration> {
        self.history.iter().min().copied()
    }

    /// The vendor's jitter: the spread of round trips within a window, on average.
    pub fn deviation(&self) -> Duration {
        self.deviation
    }

    /// The newest moves of the limit, oldest first: how long before `now`,
    /// the limit it moved to, and why.
    pub fn moves(&self, now: Instant) -> Vec<(Duration, u32, &'static str)> {
        self.moves
            .iter()
            .map(|(at, limit, why)| (now.saturating_duration_since(*at), *limit, *why))
            .collect()
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
            rtt_deviation_ms: self
                .adaptive
                .then(|| (self.deviation.as_secs_f64() * 10_000.0).round() / 10.0),
            last_change: self.last_change,
            changes: self.changes,
        }
    }

    fn close_window(&mut self, now: Instant) {
        let window = std::mem::replace(&mut self.window, Window::new(now));
        if window.rtts.is_empty() {
            return;
        }
        // The median: the first answers on new connections (fast) or a cache's
        // do not move it, where they would move a mean.
        let mut rtts = window.rtts;
        rtts.sort_unstable();
        let mean = rtts[rtts.len() / 2];
        let reference = self.reference().unwrap_or(mean);
        // The spread of this window's round trips feeds the jitter estimate;
        // a rise must stand out of the noise of a mean of this many.
        let n = rtts.len() as f64;
        let m = mean.as_secs_f64();
        let average = rtts.iter().map(Duration::as_secs_f64).sum::<f64>() / n;
        let spread = (rtts
            .iter()
            .map(|r| (r.as_secs_f64() - average).powi(2))
            .sum::<f64>()
            / n)
            .sqrt();
        let deviation = match self.history.is_empty() {
            true => spread,
            false => {
                let d = self.deviation.as_secs_f64();
                d + DEVIATION_ALPHA * (spread - d)
            }
        };
        self.deviation = Duration::from_secs_f64(deviation);
        let band = Duration::from_secs_f64(DEVIATION_SCALE * deviation / n.sqrt());
        if self.history.len() == REFERENCE_WINDOWS {
            self.history.pop_front();
        }
        self.history.push_back(mean);
        if window.pushed_back {
            return; // already lowered in this window
        }
        let tolerance = (reference.mul_f64(TOLERANCE) + TOLERANCE_FLOOR).max(band);
        let rose = mean > reference + tolerance;
        // At the limit, Little's law gives the rate: limit ÷ round trip. Round
        // trips that rose while the rate rose too are a vendor that is slower
        // under load but still serves more; past its knee the rate falls.
        let scale = if window.saturated {
            let rate = f64::from(self.limit) / m;
            let best = self
                .rates
                .iter()
                .filter(|(limit, _)| *limit < self.limit)
                .map(|(_, r)| *r)
                .fold(rate, f64::max);
            if self.rates.len() == REFERENCE_WINDOWS {
                self.rates.pop_front();
            }
            self.rates.push_back((self.limit, rate));
            // Two noisy rates compared, one the best of several: twice the band.
            let noise = (2.0 * DEVIATION_SCALE * deviation / n.sqrt() / m).max(MIN_GAIN);
            (rate < best * (1.0 - noise)).then_some(rate / best)
        } else {
            rose.then(|| reference.as_secs_f64() / m)
        };
        if let Some(scale) = scale {
            self.slow_start = false;
            let scale = scale.clamp(0.5, 0.95);
            let lowered = ((f64::from(self.limit) * scale).floor() as u32).min(self.limit - 1);
            self.lower(lowered, "round trips rose: lowered", now);
        } else if window.saturated {
            let raised = if self.slow_start && !rose {
                self.limit * 2
            } else {
                self.slow_start = false;
                self.limit + 1
            };
            let why = match rose {
                true => "round trips rose with the rate: raised",
                false => "round trips flat at the limit: raised",
            };
            if self.set(raised, why, now) {
                self.raised_at = Some(now);
            }
        }
    }

    fn lower(&mut self, limit: u32, why: &'static str, now: Instant) {
        self.lowered_at = Some(now);
        let _ = self.set(limit, why, now);
    }

    /// Move the limit to `limit` (within 1 and the ceiling); whether it moved.
    fn set(&mut self, limit: u32, why: &'static str, now: Instant) -> bool {
        let limit = limit.clamp(1, self.max);
        if limit == self.limit {
            return false;
        }
        tracing::debug!(from = self.limit, to = limit, "concurrency: {why}");
        self.limit = limit;
        self.last_change = Some(why);
        if let Some(i) = CHANGE_KINDS.iter().position(|(_, w)| *w == why) {
            self.changes[i] += 1;
        }
        if self.moves.len() == MOVES_KEPT {
            self.moves.pop_front();
        }
        self.moves.push_back((now, limit, why));
        true
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

    /// What [`run`] saw: the limit every 100 ms, batches answered, and how many
    /// of them were pushed back.
    struct Run {
        limits: Vec<u32>,
        answered: u64,
        pushed_back: u64,
    }

    /// Run `policy` for `secs` of simulated time against a vendor that
    /// answers a batch sent with `n` in flight after `vendor(n).0`, pushing
    /// back when `.1`; work is always waiting.
    async fn run(
        policy: Concurrency,
        secs: u64,
        mut vendor: impl FnMut(u32) -> (Duration, bool),
    ) -> Run {
        let mut l = Limiter::new(policy, Instant::now());
        let t0 = Instant::now();
        let end = t0 + Duration::from_secs(secs);
        let mut out: Vec<(Instant, Duration, bool)> = Vec::new();
        let mut now = t0;
        let mut next_sample = t0;
        let mut r = Run {
            limits: Vec::new(),
            answered: 0,
            pushed_back: 0,
        };
        while now < end {
            while l.has_room() {
                l.started();
                let (took, pushed) = vendor(l.in_flight());
                out.push((now + took, took, pushed));
            }
            out.sort_by_key(|o| o.0);
            let (at, took, pushed) = out.remove(0);
            while next_sample <= at {
                r.limits.push(l.limit());
                next_sample += MS * 100;
            }
            tokio::time::advance(at - now).await;
            now = Instant::now();
            l.finished(took, pushed, now);
            r.answered += 1;
            r.pushed_back += u64::from(pushed);
        }
        r
    }

    /// The best fixed setting of 1, 2, 4, 8, 16 and 32 against a vendor,
    /// in batches answered and not pushed back.
    async fn best_fixed(secs: u64, vendor: impl Fn() -> Vendor) -> u64 {
        let mut best = 0;
        for n in [1, 2, 4, 8, 16, 32] {
            let r = run(Concurrency::Fixed(n), secs, vendor()).await;
            best = best.max(r.answered - r.pushed_back);
        }
        best
    }

    /// A simulated vendor: the round trip of a batch sent with `n` in flight,
    /// and whether it was pushed back.
    type Vendor = Box<dyn FnMut(u32) -> (Duration, bool)>;

    /// A vendor whose first request on a connection is fast (2 ms) and every
    /// later one slow (43 ms): Python's `http.server` with Nagle's algorithm on.
    fn nagle() -> Vendor {
        let mut opened = 0;
        Box::new(move |n| {
            if n > opened {
                opened = n;
                (MS * 2, false)
            } else {
                (MS * 43, false)
            }
        })
    }

    /// 50 ms ± 20 ms, uniformly (a fixed pseudo-random sequence).
    fn jitter() -> Vendor {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        Box::new(move |_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (MS * 30 + Duration::from_micros(x % 40_000), false)
        })
    }

    /// 1 ms, and 2 ms more per batch in flight.
    fn linear() -> Vendor {
        Box::new(|n| (MS + MS * 2 * n, false))
    }

    /// 50 ms, and 2 ms more per batch in flight.
    fn linear_slow() -> Vendor {
        Box::new(|n| (MS * 50 + MS * 2 * n, false))
    }

    /// Flat 50 ms up to 8 in flight, then 10 ms more per extra batch.
    fn knee() -> Vendor {
        Box::new(|n| (MS * 50 + MS * 10 * n.saturating_sub(8), false))
    }

    #[tokio::test(start_paused = true)]
    async fn adaptive_keeps_up_with_the_best_fixed_setting_against_each_vendor() {
        let shapes = [
            ("nagle", nagle as fn() -> Vendor),
            ("jitter", jitter),
            ("linear", linear),
            ("linear from 50 ms", linear_slow),
            ("knee", knee),
        ];
        for (name, vendor) in shapes {
            let best = best_fixed(30, vendor).await;
            let r = run(Concurrency::Adaptive { max: 32 }, 30, vendor()).await;
            let ratio = r.answered as f64 / best as f64;
            eprintln!(
                "{name}: adaptive {} / best fixed {best} = {ratio:.2}",
                r.answered
            );
            assert!(
                ratio >= 0.85,
                "{name}: adaptive answered {} against the best fixed {best} ({ratio:.2}); limits {:?}",
                r.answered,
                &r.limits[..r.limits.len().min(60)]
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn fast_first_requests_on_new_connections_do_not_collapse_the_limit() {
        let r = run(Concurrency::Adaptive { max: 16 }, 20, nagle()).await;
        // Within 5 s it holds at least 90 % of where it ends, and it ends high.
        let last = *r.limits.last().unwrap();
        assert!(last >= 14, "{:?}", r.limits);
        assert!(
            r.limits[50..]
                .iter()
                .all(|&n| f64::from(n) >= 0.9 * f64::from(last)),
            "{:?}",
            r.limits
        );
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_is_not_read_as_queueing() {
        let r = run(Concurrency::Adaptive { max: 16 }, 20, jitter()).await;
        let tail = &r.limits[50..];
        let mean = tail.iter().sum::<u32>() as f64 / tail.len() as f64;
        assert!(mean >= 14.0, "mean {mean}: {tail:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_vendor_that_refuses_above_ten_in_flight_wastes_few_requests() {
        let mut service = jitter();
        let above_ten = move |n: u32| {
            if n > 10 {
                (MS * 5, true)
            } else {
                service(n)
            }
        };
        let r = run(Concurrency::Adaptive { max: 32 }, 30, above_ten).await;
        let wasted = r.pushed_back as f64 / r.answered as f64;
        assert!(
            wasted <= 0.05,
            "{:.1} % pushed back: {:?}",
            wasted * 100.0,
            &r.limits[..100]
        );
        let tail = &r.limits[50..];
        assert!(tail.iter().all(|&n| n <= 11), "{tail:?}");
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
        let limits = drive(&mut l, 16, |_| MS * 50).await;
        // In slow start a window hears once from every slot (at least two
        // round trips), from batches sent at the new limit: each doubling
        // takes two rounds (the round that was out, then one).
        assert_eq!(
            limits,
            vec![1, 1, 2, 2, 4, 4, 8, 8, 16, 16, 16, 16, 16, 16, 16, 16]
        );
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
        drive(&mut l, 20, |_| MS * 50).await;
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
        // After slow start is over, it climbs one per window (a window hears
        // twice from every slot).
        let limits = drive(&mut l, 6, |_| MS * 50).await;
        assert_eq!(limits, vec![16, 16, 17, 17, 17, 18]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_destination_does_not_grow() {
        let t0 = Instant::now();
        let mut l = Limiter::new(Concurrency::Adaptive { max: 16 }, t0);
        drive(&mut l, 6, |_| MS * 50).await;
        let mut before = 0;
        for i in 0..24 {
            if i == 4 {
                // The window the busy rounds left open has closed.
                before = l.limit();
            }
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
        drive(&mut l, 8 * REFERENCE_WINDOWS, |_| MS * 80).await;
        assert_eq!(l.reference(), Some(MS * 80));
        assert_eq!(l.limit(), 8, "back at the ceiling once 80 ms is the norm");
    }
}
