//! Destination health: healthy → degraded → paused, a circuit breaker with a probe.
//!
//! A batch in which nothing was delivered and something must be retried (or
//! the component failed) is a failure; a batch that delivered anything is a
//! success; a batch of rejects alone says nothing about the destination's
//! health. After [`DEGRADE_AFTER`] failures in a row the destination is
//! `degraded`; after [`PAUSE_AFTER`] it is `paused`: its worker stops taking
//! batches and, after a probe interval, sends a single event as a probe. A probe
//! that succeeds makes it `healthy` again; one that fails doubles the interval.
//! An operator can also pause a destination (admin API), which only the operator
//! lifts. Each transition is logged once.

use std::time::Duration;

use serde::Serialize;

/// Failures in a row that make a destination degraded.
pub const DEGRADE_AFTER: u32 = 3;
/// Failures in a row that pause it.
pub const PAUSE_AFTER: u32 = 10;

/// The three states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Delivering normally.
    Healthy,
    /// Failing, still delivering.
    Degraded,
    /// Not delivering; probing (or held by an operator).
    Paused,
}

/// What the last batch told us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchVerdict {
    /// Something was delivered.
    Success,
    /// Nothing delivered, something to retry; with the reason.
    Failure(String),
    /// Only rejects: no signal.
    Neutral,
}

/// Health of one destination, as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    /// The state.
    pub state: Health,
    /// Why it is not healthy.
    pub reason: Option<String>,
    /// Failed batches in a row.
    pub consecutive_failures: u32,
    /// Held by an operator.
    pub operator_paused: bool,
}

/// The breaker of one destination.
#[derive(Debug, Clone)]
pub struct Breaker {
    /// Destination name, for the transition log lines.
    destination: String,
    /// State and reason.
    report: HealthReport,
    /// Wait before the next probe while paused.
    probe_interval: Duration,
    /// First probe interval (reset on recovery).
    initial_probe: Duration,
    /// Longest probe interval.
    max_probe: Duration,
}

impl Breaker {
    /// A healthy breaker; probes start after `initial_probe` and back off to `max_probe`.
    pub fn new(destination: &str, initial_probe: Duration, max_probe: Duration) -> Breaker {
        Breaker {
            destination: destination.to_string(),
            report: HealthReport {
                state: Health::Healthy,
                reason: None,
                consecutive_failures: 0,
                operator_paused: false,
            },
            probe_interval: initial_probe,
            initial_probe,
            max_probe: max_probe.max(initial_probe),
        }
    }

    /// The state for the admin API.
    pub fn report(&self) -> HealthReport {
        let mut r = self.report.clone();
        if r.operator_paused {
            r.state = Health::Paused;
            r.reason = Some("paused by an operator".into());
        }
        r
    }

    /// Whether the breaker is open (only probes go out).
    pub fn is_paused(&self) -> bool {
        self.report.state == Health::Paused
    }

    /// How long to wait before the next probe.
    pub fn probe_interval(&self) -> Duration {
        self.probe_interval
    }

    /// Hold or release by an operator.
    pub fn set_operator_paused(&mut self, paused: bool) {
        if self.report.operator_paused != paused {
            tracing::warn!(
                destination = self.destination.as_str(),
                "{} by an operator",
                if paused { "paused" } else { "resumed" }
            );
        }
        self.report.operator_paused = paused;
    }

    /// Whether an operator holds it.
    pub fn operator_paused(&self) -> bool {
        self.report.operator_paused
    }

    /// Record a batch (or a probe) and move between states.
    pub fn record(&mut self, verdict: BatchVerdict) {
        match verdict {
            BatchVerdict::Neutral => {}
            BatchVerdict::Success => {
                self.report.consecutive_failures = 0;
                self.probe_interval = self.initial_probe;
                self.transition(Health::Healthy, None);
            }
            BatchVerdict::Failure(reason) => {
                self.report.consecutive_failures =
                    self.report.consecutive_failures.saturating_add(1);
                let n = self.report.consecutive_failures;
                if self.report.state == Health::Paused {
                    self.probe_interval = self.probe_interval.saturating_mul(2).min(self.max_probe);
                    self.report.reason = Some(reason);
                } else if n >= PAUSE_AFTER {
                    self.transition(Health::Paused, Some(reason));
                } else if n >= DEGRADE_AFTER {
                    self.transition(Health::Degraded, Some(reason));
                } else {
                    self.report.reason = Some(reason);
                }
            }
        }
    }

    fn transition(&mut self, to: Health, reason: Option<String>) {
        if self.report.state != to {
            match &reason {
                Some(r) => {
                    tracing::warn!(destination = self.destination.as_str(), from = ?self.report.state, to = ?to, "health changed: {r}")
                }
                None => {
                    tracing::info!(destination = self.destination.as_str(), from = ?self.report.state, to = ?to, "health changed")
                }
            }
            self.report.state = to;
        }
        self.report.reason = reason;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degrades_pauses_backs_off_and_recovers() {
        let mut b = Breaker::new("d", Duration::from_millis(100), Duration::from_secs(1));
        for _ in 0..DEGRADE_AFTER {
            b.record(BatchVerdict::Failure("503".into()));
        }
        assert_eq!(b.report().state, Health::Degraded);
        b.record(BatchVerdict::Neutral);
        assert_eq!(b.report().state, Health::Degraded);
        for _ in DEGRADE_AFTER..PAUSE_AFTER {
            b.record(BatchVerdict::Failure("503".into()));
        }
        assert!(b.is_paused());
        assert_eq!(b.report().reason.as_deref(), Some("503"));
        b.record(BatchVerdict::Failure("still 503".into()));
        assert_eq!(b.probe_interval(), Duration::from_millis(200));
        b.record(BatchVerdict::Success);
        assert_eq!(b.report().state, Health::Healthy);
        assert_eq!(b.probe_interval(), Duration::from_millis(100));
    }

    #[test]
    fn probe_backoff_saturates_at_the_extremes() {
        let mut b = Breaker::new(
            "d",
            Duration::MAX / 2 + Duration::from_secs(1),
            Duration::MAX,
        );
        for _ in 0..PAUSE_AFTER + 3 {
            b.record(BatchVerdict::Failure("503".into()));
        }
        assert_eq!(b.probe_interval(), Duration::MAX);
    }

    #[test]
    fn an_operator_pause_overrides_and_is_lifted_only_by_the_operator() {
        let mut b = Breaker::new("d", Duration::from_millis(100), Duration::from_secs(1));
        b.set_operator_paused(true);
        b.record(BatchVerdict::Success);
        assert_eq!(b.report().state, Health::Paused);
        b.set_operator_paused(false);
        assert_eq!(b.report().state, Health::Healthy);
    }
}
