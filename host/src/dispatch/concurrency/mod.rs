//! How many batches of one destination may be in flight: a fixed number, or an
//! adaptive limit that follows the vendor (the book, `concepts/delivery.md`).
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
//!   rate (limit ÷ median round trip). The newest rate seen at each limit is
//!   kept (for [`RATE_MEMORY`]); a window whose rate is below the best rate
//!   kept *at a lower limit* (by [`MIN_GAIN`], or more for a noisy vendor) is
//!   past the knee: more in flight only waits longer. A vendor that is slower
//!   under load but serves more is given more, however its round trips rise.
//!   Past a knee each step may cost only a few percent, less than the noise;
//!   the rate at the knee itself is what every higher limit is measured
//!   against, so the limit comes back to it instead of drifting up step by
//!   step. (Below the limit there is no rate to read: a rise in round trips
//!   past the tolerance lowers it.)
//! - **A vendor that changed is not a knee.** When the rate at a limit falls
//!   well below the rate last seen *at that same limit*, the vendor itself got
//!   slower (we sent no more than before): the rates kept from before say
//!   nothing any more and are forgotten, and the limit is not lowered for it.
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

/// How long the rate seen at a limit is kept for comparison, unless the limit
/// comes back to it first (then the newer rate replaces it).
pub const RATE_MEMORY: Duration = Duration::from_secs(60);

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
    /// The newest rate (limit ÷ median round trip, batches a second) measured
    /// at each limit that was reached, and when, by limit (index 0 is limit 1).
    rates: Vec<Option<Kept>>,
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

/// The rate kept for one limit: the mean of its last few windows.
#[derive(Debug, Clone, Copy)]
struct Kept {
    /// When it was last measured.
    at: Instant,
    /// Batches a second.
    rate: f64,
    /// Windows averaged (at most [`KEPT_WINDOWS`]).
    windows: u32,
}

/// Windows a kept rate averages: a limit the limiter keeps coming back to
/// (the knee) is known better than one seen once.
const KEPT_WINDOWS: u32 = 4;

impl Kept {
    fn new(rate: f64, at: Instant) -> Kept {
        Kept {
            at,
            rate,
            windows: 1,
        }
    }

    /// This and one more window's rate.
    fn and(self, rate: f64, at: Instant) -> Kept {
        let windows = (self.windows + 1).min(KEPT_WINDOWS);
        let rate = self.rate + (rate - self.rate) / f64::from(windows);
        Kept { at, rate, windows }
    }
}

/// A window's rate at the limit against the best kept at a lower limit.
enum Rate {
    /// Below it by more than the noise: past the knee (the rate ÷ the best).
    Fell(f64),
    /// Within the noise of it.
    Flat,
    /// Above it by more than the noise: the raise paid.
    Gained,
    /// Nothing to compare with (no lower limit kept, or the vendor changed).
    Unknown,
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
            // Only an adaptive limit reads rates.
            rates: vec![None; if adaptive { max as usize } else { 0 }],
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
    /// Slow start too: the first answers after a doubling are the fastest
    /// (those that met the vendor before the others arrived), and a window of
    /// one answer per slot reads a vendor that queues as one that does not.
    fn window_samples(&self) -> usize {
        (2 * self.limit as usize).max(MIN_SAMPLES as usize)
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
        let queued = reference.as_secs_f64() / m;
        let scale = match window.saturated {
            false => rose.then_some(queued),
            true => match self.judge(f64::from(self.limit) / m, deviation / n.sqrt() / m, now) {
                Rate::Fell(scale) => Some(scale),
                // Round trips rose and no more was served than at a lower
                // limit: the extra batches only queue at the vendor.
                Rate::Flat if rose => Some(queued),
                Rate::Flat | Rate::Gained | Rate::Unknown => None,
            },
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

    /// Record `rate`, measured at the limit with a relative standard error of
    /// `error`, and compare it with the best rate kept at a lower limit.
    fn judge(&mut self, rate: f64, error: f64, now: Instant) -> Rate {
        // Two noisy rates compared: the band of their difference.
        let noise = (std::f64::consts::SQRT_2 * DEVIATION_SCALE * error).max(MIN_GAIN);
        let here = self.limit as usize - 1;
        let fresh = |kept: &Option<Kept>| {
            kept.filter(|k| now.saturating_duration_since(k.at) < RATE_MEMORY)
        };
        let kept = match fresh(&self.rates[here]) {
            Some(before) if (rate - before.rate).abs() > before.rate * 2.0 * noise => {
                if before.windows < KEPT_WINDOWS {
                    // A rate seen in a window or two (slow start's, read from
                    // the first and fastest answers) is replaced, not averaged.
                    Kept::new(rate, now)
                } else {
                    // A limit it kept coming back to serves another rate: the
                    // vendor changed, and the other limits' rates are stale.
                    self.rates.iter_mut().for_each(|r| *r = None);
                    self.rates[here] = Some(Kept::new(rate, now));
                    return Rate::Unknown;
                }
            }
            Some(before) => before.and(rate, now),
            None => Kept::new(rate, now),
        };
        self.rates[here] = Some(kept);
        let rate = kept.rate;
        let best = |below: usize| {
            self.rates[..below]
                .iter()
                .filter_map(|r| fresh(r).map(|k| k.rate))
                .reduce(f64::max)
        };
        // Against every lower limit, a fall must stand out of the noise.
        if let Some(best) = best(here).filter(|best| rate < best * (1.0 - noise)) {
            return Rate::Fell(rate / best);
        }
        // Against half the limit or less: did doubling what is in flight pay?
        match best(self.limit as usize / 2) {
            None => Rate::Unknown,
            Some(half) if rate < half * (1.0 + MIN_GAIN) => Rate::Flat,
            Some(_) => Rate::Gained,
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
mod arc;
#[cfg(test)]
mod tests;
