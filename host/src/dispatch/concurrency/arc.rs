//! A model of Vector's Adaptive Request Concurrency, written from its
//! documentation, for the simulations to measure ours against on the same
//! simulated vendors (the issue measured the real one outside the repo).
//!
//! Its rule, once per window of one past round trip: when the limit was
//! reached, nothing pushed back and the window's mean round trip is at most
//! the moving average of past windows, add one; when something pushed back or
//! the mean is above that average by 2.5 deviations, multiply by 0.9. The
//! average and deviation are exponentially weighted (α = 0.4). A mean equal
//! to the average does not lower the model's limit (Vector's own tests round
//! round trips for vendors of a constant latency, whose deviation is zero):
//! the model is given the benefit of the doubt.

use std::time::Duration;

use tokio::time::Instant;

const ALPHA: f64 = 0.4;
const DEVIATION_SCALE: f64 = 2.5;
const DECREASE: f64 = 0.9;

#[derive(Debug)]
pub struct ArcModel {
    limit: u32,
    max: u32,
    in_flight: u32,
    reached: bool,
    pushed_back: bool,
    /// Sum and count of this window's round trips, in seconds.
    sum: f64,
    count: u32,
    /// The moving average of window means and its variance.
    past: Option<(f64, f64)>,
    next_update: Instant,
}

impl ArcModel {
    pub fn new(max: u32, now: Instant) -> ArcModel {
        ArcModel {
            limit: 1,
            max,
            in_flight: 0,
            reached: false,
            pushed_back: false,
            sum: 0.0,
            count: 0,
            past: None,
            next_update: now,
        }
    }
}

impl super::tests::Policy for ArcModel {
    fn limit(&self) -> u32 {
        self.limit
    }

    fn in_flight(&self) -> u32 {
        self.in_flight
    }

    fn started(&mut self) {
        self.in_flight += 1;
        if self.in_flight >= self.limit {
            self.reached = true;
        }
    }

    fn finished(&mut self, rtt: Duration, pushed_back: bool, now: Instant) {
        self.in_flight -= 1;
        if pushed_back {
            self.pushed_back = true;
        } else {
            self.sum += rtt.as_secs_f64();
            self.count += 1;
        }
        let current = (self.count > 0).then(|| self.sum / f64::from(self.count));
        let Some((mean, variance)) = self.past else {
            if let Some(c) = current {
                self.past = Some((c, 0.0));
                self.next_update = now + Duration::from_secs_f64(c);
            }
            return;
        };
        if now < self.next_update {
            return;
        }
        let threshold = variance.sqrt() * DEVIATION_SCALE;
        if self.limit < self.max
            && self.reached
            && !self.pushed_back
            && current.is_some_and(|c| c <= mean)
        {
            self.limit += 1;
        } else if self.limit > 1 && (self.pushed_back || current.unwrap_or(0.0) > mean + threshold)
        {
            self.limit = ((f64::from(self.limit) * DECREASE) as u32).max(1);
        }
        let (mean, variance) = match current {
            Some(c) => {
                let diff = c - mean;
                let step = ALPHA * diff;
                (mean + step, (1.0 - ALPHA) * (variance + diff * step))
            }
            None => (mean, variance),
        };
        self.past = Some((mean, variance));
        self.next_update = now + Duration::from_secs_f64(mean);
        self.sum = 0.0;
        self.count = 0;
        self.pushed_back = false;
        self.reached = false;
    }
}
