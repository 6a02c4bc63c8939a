//! Per-destination rate limit: a token bucket whose rate backs off on throttling.
//!
//! `rate = { per_second, burst }` sets the ceiling. When the destination signals
//! throttling (a `retry` with an `after` hint, i.e. the vendor's `Retry-After`),
//! the current rate halves (multiplicative decrease, down to 1/64 of the ceiling);
//! every batch delivered after that adds a tenth of the ceiling back (additive
//! increase) until the configured rate is reached again. One bucket serves all
//! of a destination's batches in flight: the worker takes a batch's tokens
//! before it leaves, and each batch reports back when it is settled.
//!
//! Several hosts on one NATS stream share the configured rate: each takes
//! `per_second / hosts` and `burst / hosts` (at least one event), where `hosts`
//! is the number of live hosts the operator follower counts (`operator.rs`).

use std::time::Duration;

use tokio::time::Instant;

use crate::config::RatePolicy;

/// A token bucket with AIMD on its refill rate.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// The configured rate (events/s): the ceiling of `rate`.
    ceiling: f64,
    /// The rate now, lowered by throttling.
    rate: f64,
    /// Bucket size (events).
    burst: f64,
    /// Tokens now; negative while a taken batch is being paid off.
    tokens: f64,
    /// When `tokens` was last refilled.
    last: Instant,
    /// The destination's configured limit, for all hosts together.
    policy: RatePolicy,
    /// Live hosts this bucket shares `policy` with (itself included).
    hosts: usize,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(policy: RatePolicy, now: Instant) -> TokenBucket {
        TokenBucket {
            ceiling: policy.per_second,
            rate: policy.per_second,
            burst: policy.burst as f64,
            tokens: policy.burst as f64,
            last: now,
            policy,
            hosts: 1,
        }
    }

    /// Take this host's share of the configured limit, among `hosts` live hosts.
    pub fn share(&mut self, hosts: usize) {
        let hosts = hosts.max(1);
        if hosts == self.hosts {
            return;
        }
        let scale = self.hosts as f64 / hosts as f64;
        self.hosts = hosts;
        self.ceiling = self.policy.per_second / hosts as f64;
        self.rate = (self.rate * scale).min(self.ceiling);
        self.burst = (self.policy.burst as f64 / hosts as f64).floor().max(1.0);
        self.tokens = self.tokens.min(self.burst);
    }

    /// Largest batch the bucket can ever pay for at once.
    pub fn burst(&self) -> usize {
        self.burst as usize
    }

    /// The current rate (events/s).
    pub fn rate(&self) -> f64 {
        self.rate
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
    }

    /// Take `n` tokens; returns how long to wait before sending them.
    pub fn take(&mut self, n: usize, now: Instant) -> Duration {
        self.refill(now);
        self.tokens -= n as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            // Saturates (an enormous batch against a tiny rate): never a panic.
            Duration::try_from_secs_f64(-self.tokens / self.rate).unwrap_or(Duration::MAX)
        }
    }

    /// The destination asked us to slow down: halve the rate.
    pub fn throttled(&mut self, now: Instant) {
        self.refill(now);
        self.rate = (self.rate / 2.0).max(self.ceiling / 64.0);
    }

    /// A batch went through: recover a tenth of the ceiling.
    pub fn succeeded(&mut self, now: Instant) {
        self.refill(now);
        self.rate = (self.rate + self.ceiling / 10.0).min(self.ceiling);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_share_the_rate_and_the_burst() {
        let t0 = Instant::now();
        let mut b = bucket(t0);
        b.share(2);
        assert_eq!(b.rate(), 5.0);
        assert_eq!(b.burst(), 2);
        // 2 tokens in the bucket, then 5/s: 7 events take 1 s.
        assert_eq!(b.take(7, t0), Duration::from_secs(1));
        b.share(1);
        assert_eq!((b.rate(), b.burst()), (10.0, 5));
        b.share(0);
        assert_eq!(b.rate(), 10.0);
    }

    #[test]
    fn extreme_batches_and_rates_saturate() {
        let now = Instant::now();
        let mut b = TokenBucket::new(
            RatePolicy {
                per_second: f64::MIN_POSITIVE,
                burst: 1,
            },
            now,
        );
        assert_eq!(b.take(usize::MAX, now), Duration::MAX);
        for _ in 0..100 {
            b.throttled(now);
        }
        assert!(b.rate() > 0.0);
        b.succeeded(now + Duration::from_secs(u32::MAX as u64));
    }

    fn bucket(now: Instant) -> TokenBucket {
        TokenBucket::new(
            RatePolicy {
                per_second: 10.0,
                burst: 5,
            },
            now,
        )
    }

    #[test]
    fn burst_then_the_sustained_rate() {
        let t0 = Instant::now();
        let mut b = bucket(t0);
        assert_eq!(b.take(5, t0), Duration::ZERO);
        // 5 more right away: they are paid off at 10/s.
        assert_eq!(b.take(5, t0), Duration::from_millis(500));
        // After a second the debt is paid and 5 tokens are back.
        assert_eq!(b.take(5, t0 + Duration::from_secs(1)), Duration::ZERO);
    }

    #[test]
    fn throttling_halves_and_success_recovers() {
        let t0 = Instant::now();
        let mut b = bucket(t0);
        b.throttled(t0);
        b.throttled(t0);
        assert_eq!(b.rate(), 2.5);
        for _ in 0..20 {
            b.throttled(t0);
        }
        assert_eq!(b.rate(), 10.0 / 64.0, "never below 1/64 of the ceiling");
        for _ in 0..20 {
            b.succeeded(t0);
        }
        assert_eq!(b.rate(), 10.0);
    }
}
