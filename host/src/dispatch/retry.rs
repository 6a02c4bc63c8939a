//! Retry policy: what becomes of an event after its outcome.
//!
//! Randomised ("full jitter") exponential backoff between `initial` and `max`
//! (one random draw per batch, so events that failed together stay together);
//! the destination's own hint (`Retry-After`) wins when it is longer; once the
//! next attempt would fall outside the retry window counted from the first
//! attempt, the event goes to dead letters instead.

use std::time::Duration;

use rand::Rng;

use crate::config::RetryPolicy;
use crate::runtime::Outcome;
use crate::store::{Job, Millis, Settle};

/// The backoff ceiling before attempt `attempts + 1`: `initial · 2^(attempts-1)`, capped at `max`.
pub fn backoff_ceiling(policy: &RetryPolicy, attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(32);
    policy
        .initial
        .checked_mul(1u32 << exp.min(31))
        .unwrap_or(policy.max)
        .min(policy.max)
}

/// A jitter draw: uniform in `[0, 1]`.
pub fn jitter(rng: &mut impl Rng) -> f64 {
    rng.random_range(0.0..=1.0)
}

/// Full jitter: `jitter · ceiling`, with `jitter` uniform in `[0, 1]`.
pub fn backoff(policy: &RetryPolicy, attempts: u32, jitter: f64) -> Duration {
    backoff_ceiling(policy, attempts).mul_f64(jitter.clamp(0.0, 1.0))
}

/// How to settle `job` after `outcome`, at time `now`, with this batch's `jitter` draw.
pub fn decide(
    policy: &RetryPolicy,
    job: &Job,
    outcome: Outcome,
    now: Millis,
    jitter: f64,
) -> Settle {
    match outcome {
        Outcome::Delivered | Outcome::Filtered(_) => Settle::Done,
        Outcome::Reject(reason) => Settle::Dead { reason },
        Outcome::Retry { reason, after } => {
            let delay = backoff(policy, job.attempts, jitter).max(after.unwrap_or_default());
            // Hints come from vendors and windows from the config: saturate, never wrap.
            let at = now.saturating_add(millis(delay));
            let deadline = job.first_attempt_at.saturating_add(millis(policy.window));
            if at >= deadline {
                Settle::Dead {
                    reason: format!(
                        "gave up after {} attempts (retry window {}): {reason}",
                        job.attempts,
                        humantime::format_duration(policy.window)
                    ),
                }
            } else {
                Settle::RetryAt { at, reason }
            }
        }
    }
}

/// A duration in [`Millis`], saturating at `i64::MAX`.
fn millis(d: Duration) -> Millis {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_retry_after_dead_letters_instead_of_wrapping_around() {
        let job = job(1, 1_000);
        let outcome = Outcome::Retry {
            reason: "slow down".into(),
            after: Some(Duration::from_millis(u64::MAX)),
        };
        let settle = decide(&policy(), &job, outcome, 2_000, 0.5);
        assert!(matches!(settle, Settle::Dead { .. }), "{settle:?}");
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(600),
            window: Duration::from_secs(4 * 3600),
        }
    }

    fn job(attempts: u32, first: Millis) -> Job {
        Job {
            id: 1,
            source: "web".into(),
            message_id: "m".into(),
            event_type: crate::event_type::EventType::Track,
            json: "{}".into(),
            attempts,
            first_attempt_at: first,
            queued_at: first,
        }
    }

    #[test]
    fn ceiling_doubles_and_caps() {
        let p = policy();
        assert_eq!(backoff_ceiling(&p, 1), Duration::from_secs(1));
        assert_eq!(backoff_ceiling(&p, 4), Duration::from_secs(8));
        assert_eq!(backoff_ceiling(&p, 40), Duration::from_secs(600));
    }

    #[test]
    fn jitter_stays_within_the_ceiling() {
        let mut rng = rand::rng();
        for attempts in 1..20 {
            let j = jitter(&mut rng);
            assert!(backoff(&policy(), attempts, j) <= backoff_ceiling(&policy(), attempts));
        }
        assert_eq!(backoff(&policy(), 4, 0.5), Duration::from_secs(4));
    }

    #[test]
    fn hint_wins_when_longer_and_window_ends_in_dead_letters() {
        let retry = |after| Outcome::Retry {
            reason: "429".into(),
            after,
        };
        match decide(
            &policy(),
            &job(1, 0),
            retry(Some(Duration::from_secs(30))),
            0,
            0.5,
        ) {
            Settle::RetryAt { at, .. } => assert_eq!(at, 30_000),
            other => panic!("{other:?}"),
        }
        let late = 4 * 3600 * 1000;
        match decide(&policy(), &job(9, 0), retry(None), late, 0.0) {
            Settle::Dead { reason } => {
                assert!(reason.contains("gave up after 9 attempts"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            decide(&policy(), &job(1, 0), Outcome::Reject("400".into()), 0, 0.5),
            Settle::Dead {
                reason: "400".into()
            }
        );
    }
}
