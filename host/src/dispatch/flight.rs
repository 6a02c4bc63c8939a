//! One batch in flight: run the destination's transformations
//! ([`super::transform`]), call its component with what they kept, settle
//! every event by its outcome, and tell the destination's policies (breaker,
//! rate, concurrency) how it went.
//!
//! Where it sits: the worker ([`super::worker`]) claims a batch, waits for its
//! rate tokens and spawns [`fly`] for it; up to the concurrency limit of these
//! run at once. Each settles its own events, so one slow batch never holds up
//! the settling of another.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use super::health::BatchVerdict;
use super::retry::decide;
use super::shared::{Shared, Versions, STORE_ERROR_PAUSE};
use super::transform::{self, Fate};
use crate::observe::attempts::{Attempt, EventOutcome, Tape};
use crate::observe::history::Minute;
use crate::runtime::{Event, Outcome};
use crate::store::{Job, Settle};

/// Longest wait between two attempts to settle a batch while the store fails.
const MAX_SETTLE_PAUSE: Duration = Duration::from_secs(5);

/// What one batch told the destination's policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// For the breaker.
    pub verdict: BatchVerdict,
    /// The destination asked to slow down with a hint (`Retry-After`): for the rate.
    pub throttled: bool,
    /// Anything to retry, or a call that failed: for the concurrency limit.
    pub pushed_back: bool,
    /// From the batch's first transformation (or its `deliver`, without a
    /// chain) until the component answered.
    pub rtt: Duration,
}

/// How one event ended this attempt.
#[derive(Debug, Clone)]
enum Final {
    /// The destination's outcome, or a transformation's failure.
    Outcome(Outcome),
    /// A transformation dropped it, or the destination took it with nothing
    /// (`settle.filtered`), for this reason.
    Filtered(String),
    /// Handed back untouched, due now: its transformed form did not fit in
    /// this batch's `batch.max_bytes` (it goes in a later batch).
    HeldBack,
}

/// Deliver `jobs` on `versions`, settle them, and record the outcome. Whatever
/// happens inside (even a panic), the batch leaves the counts of batches and
/// events in flight, so the worker never waits for a batch that is gone.
pub async fn fly(shared: Arc<Shared>, versions: Versions, jobs: Vec<Job>) {
    use futures::FutureExt as _;
    let events = jobs.len() as u64;
    let flown = std::panic::AssertUnwindSafe(deliver_and_settle(&shared, &versions, jobs))
        .catch_unwind()
        .await;
    let report = flown.unwrap_or_else(|_| {
        tracing::error!(
            destination = shared.dest.name.as_str(),
            "a batch in flight panicked; its events stay leased until a restart"
        );
        Report {
            verdict: BatchVerdict::Neutral,
            throttled: false,
            pushed_back: true,
            rtt: Duration::ZERO,
        }
    });
    shared.live.stats.in_flight.fetch_sub(events, Relaxed);
    record(&shared, &report);
}

/// The round trip (from the first call into a component, the chain of
/// transformations included, with any wait for a free instance slot, which is
/// local congestion the limit should also back off from) and the settling, in
/// named steps: chain, fit, call, settle, keep the attempt.
async fn deliver_and_settle(shared: &Shared, versions: &Versions, jobs: Vec<Job>) -> Report {
    let tape = Tape::default();
    let at = chrono::Utc::now();
    let started = shared.clock.now();
    let fates = chain(shared, versions, events_of(&jobs), &tape).await;
    let mut batch = fit(shared, fates);
    let called = call_destination(shared, versions, &mut batch, &tape).await;
    // Until the serving version answered (a shadow's call comes after).
    let rtt = called
        .answered
        .unwrap_or_else(|| shared.clock.now())
        .saturating_duration_since(started);
    let finals: Vec<Final> = batch
        .finals
        .into_iter()
        .map(|f| f.expect("every event has an outcome"))
        .collect();
    let outcomes: Vec<Outcome> = finals
        .iter()
        .zip(&batch.counted)
        .filter_map(|(f, c)| match f {
            Final::Outcome(o) if *c => Some(o.clone()),
            _ => None,
        })
        .collect();
    let mut report = report(&outcomes, rtt);
    report.throttled = called.throttled;
    let settled = settle(shared, &jobs, finals).await;
    keep_attempt(
        shared,
        &versions.destination,
        at,
        rtt,
        &jobs,
        settled,
        &tape,
        called.error,
    );
    report
}

/// The events of `jobs`, as the components read them.
fn events_of(jobs: &[Job]) -> Vec<Event> {
    jobs.iter()
        .map(|j| Event {
            message_id: j.message_id.clone(),
            event_type: j.event_type.into(),
            json: j.json.clone(),
        })
        .collect()
}

/// Step 1: the destination's transformations, in order (their lookups on `tape`).
async fn chain(shared: &Shared, versions: &Versions, events: Vec<Event>, tape: &Tape) -> Vec<Fate> {
    if shared.live.chain.is_empty() {
        return events.into_iter().map(Fate::Go).collect();
    }
    transform::apply(&shared.live.chain, &versions.chain, events, tape).await
}

/// A batch between its transformations and its settling.
struct Batch {
    /// Per event, once decided.
    finals: Vec<Option<Final>>,
    /// Per event: whether its outcome tells the destination's policies (a
    /// canary's does not: it is judged apart, `dispatch/versions.rs`).
    counted: Vec<bool>,
    /// The events that go to the destination, and their places in the batch.
    going: Vec<(usize, Event)>,
}

/// Step 2: what goes out. Transformations may enrich events: the batch that
/// goes out still keeps to `batch.max_bytes` (the first event always goes, as
/// in a claim); an event that does not fit is held back for a later batch.
fn fit(shared: &Shared, fates: Vec<Fate>) -> Batch {
    let mut finals: Vec<Option<Final>> = vec![None; fates.len()];
    let mut going = Vec::new();
    let mut bytes = 0usize;
    let max_bytes = shared.dest.batch.max_bytes as usize;
    for (i, fate) in fates.into_iter().enumerate() {
        match fate {
            Fate::Go(event) if !going.is_empty() && bytes + event.json.len() > max_bytes => {
                finals[i] = Some(Final::HeldBack);
            }
            Fate::Go(event) => {
                bytes += event.json.len();
                going.push((i, event));
            }
            Fate::Filtered { transform, reason } => {
                finals[i] = Some(Final::Filtered(format!(
                    "transform `{transform}`: {reason}"
                )))
            }
            Fate::Failed(outcome) => finals[i] = Some(Final::Outcome(outcome)),
        }
    }
    Batch {
        counted: vec![true; finals.len()],
        finals,
        going,
    }
}

/// What the destination's call said of the batch as a whole.
#[derive(Default)]
struct Called {
    /// The destination asked to slow down (a transformation's retry hint
    /// delays its events, not the vendor's budget).
    throttled: bool,
    /// When the serving version answered.
    answered: Option<tokio::time::Instant>,
    /// Why the call failed as a whole, if it did.
    error: Option<String>,
}

/// Step 3: call the destination on what goes out (through the version choice:
/// serving, shadow, canary); each event's outcome goes into the batch.
async fn call_destination(
    shared: &Shared,
    versions: &Versions,
    batch: &mut Batch,
    tape: &Tape,
) -> Called {
    if batch.going.is_empty() {
        return Called::default();
    }
    let (at_index, to_deliver): (Vec<usize>, Vec<Event>) =
        std::mem::take(&mut batch.going).into_iter().unzip();
    let called = shared.clock.now();
    let d = super::versions::deliver(shared, versions, &to_deliver, tape).await;
    let took = d.answered.saturating_duration_since(called);
    shared.live.stats.calls.observe(took.as_secs_f64());
    let throttled = d
        .outcomes
        .iter()
        .zip(&d.counted)
        .any(|(o, c)| *c && matches!(o, Outcome::Retry { after: Some(_), .. }));
    for ((i, outcome), c) in at_index.into_iter().zip(d.outcomes).zip(d.counted) {
        batch.finals[i] = Some(match outcome {
            Outcome::Filtered(reason) => Final::Filtered(reason),
            outcome => Final::Outcome(outcome),
        });
        batch.counted[i] = c;
    }
    Called {
        throttled,
        answered: Some(d.answered),
        error: d.error,
    }
}

/// Step 5: keep the attempt for the delivery debugger: its events and what
/// became of each, and the exchanges on its tape, redacted.
#[allow(clippy::too_many_arguments)]
fn keep_attempt(
    shared: &Shared,
    version: &crate::runtime::Version,
    at: chrono::DateTime<chrono::Utc>,
    rtt: Duration,
    jobs: &[Job],
    settled: Vec<(Settle, Option<String>)>,
    tape: &Tape,
    error: Option<String>,
) {
    let (requests, requests_not_kept) = tape.take();
    // The tape hid credential headers and URL parts; the values of its
    // credential-named settings are hidden wherever they appear.
    let requests = requests
        .into_iter()
        .map(|e| shared.redactor.tape_exchange(e))
        .collect();
    shared.live.stats.attempts.keep(Attempt {
        id: shared.live.stats.attempts.next_id(),
        at: at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        duration_ms: rtt.as_millis() as u64,
        sha256: version.plugin.sha256.clone(),
        events: jobs
            .iter()
            .zip(settled)
            .map(|(job, (settle, filtered))| {
                let (outcome, reason) = match (settle, filtered) {
                    (Settle::Done, Some(why)) => ("filtered", Some(why)),
                    (Settle::Done, None) => ("delivered", None),
                    (Settle::RetryAt { reason, .. }, _) => ("retry", Some(reason)),
                    (Settle::Dead { reason }, _) => ("dead_letter", Some(reason)),
                };
                EventOutcome {
                    message_id: job.message_id.clone(),
                    outcome,
                    reason: reason.map(|why| shared.redactor.literal(&why)),
                    attempt: job.attempts,
                }
            })
            .collect(),
        requests,
        requests_not_kept,
        error,
    });
}

/// What the outcomes say about the destination.
pub fn report(outcomes: &[Outcome], rtt: Duration) -> Report {
    let delivered = outcomes.contains(&Outcome::Delivered);
    let first_retry = outcomes.iter().find_map(|o| match o {
        Outcome::Retry { reason, .. } => Some(reason.clone()),
        _ => None,
    });
    let throttled = outcomes
        .iter()
        .any(|o| matches!(o, Outcome::Retry { after: Some(_), .. }));
    let pushed_back = first_retry.is_some();
    let verdict = match (delivered, first_retry) {
        (true, _) => BatchVerdict::Success,
        (false, Some(reason)) => BatchVerdict::Failure(reason),
        (false, None) => BatchVerdict::Neutral,
    };
    Report {
        verdict,
        throttled,
        pushed_back,
        rtt,
    }
}

/// Settled outcomes, counted for the history: in all, and per source for the
/// sources' funnels (a batch mostly holds one source).
#[derive(Default)]
struct Tally<'a> {
    total: Minute,
    by_source: Vec<(&'a str, Minute)>,
}

impl<'a> Tally<'a> {
    fn add(&mut self, source: &'a str, count: fn(&mut Minute)) {
        count(&mut self.total);
        match self.by_source.iter_mut().find(|(s, _)| *s == source) {
            Some((_, m)) => count(m),
            None => {
                let mut m = Minute::default();
                count(&mut m);
                self.by_source.push((source, m));
            }
        }
    }
}

/// Step 4: settle every job by its outcome, all in one store call; what was decided
/// for each (with the reason when a transformation filtered it).
async fn settle(
    shared: &Shared,
    jobs: &[Job],
    finals: Vec<Final>,
) -> Vec<(Settle, Option<String>)> {
    let name = shared.dest.name.as_str();
    let stats = &shared.live.stats;
    let now = shared.clock.wall_ms();
    let jitter = super::retry::jitter(&mut rand::rng());
    let mut latencies = Vec::with_capacity(jobs.len());
    let mut tally = Tally::default();
    let mut filtered = Vec::new();
    let settles: Vec<_> = jobs
        .iter()
        .zip(finals)
        .map(|(job, last)| {
            let outcome = match last {
                Final::Outcome(outcome) => outcome,
                Final::Filtered(reason) => {
                    tracing::debug!(source = %job.source, destination = name, message_id = %job.message_id, "filtered: {reason}");
                    stats.filtered.fetch_add(1, Relaxed);
                    tally.add(&job.source, |m| m.filtered += 1);
                    filtered.push(Some(reason));
                    return (job.id, Settle::Done);
                }
                Final::HeldBack => {
                    filtered.push(None);
                    let reason = "held back: after its transformations the batch would pass batch.max_bytes";
                    return (
                        job.id,
                        Settle::RetryAt {
                            at: now,
                            reason: reason.into(),
                        },
                    );
                }
            };
            filtered.push(None);
            let settle = decide(&shared.dest.retry, job, outcome, now, jitter);
            match &settle {
                Settle::Done => {
                    let waited = now.saturating_sub(job.queued_at).max(0);
                    stats.latency.observe(waited as f64 / 1000.0);
                    latencies.push(waited as u64);
                    tally.add(&job.source, |m| m.ok += 1);
                    stats.delivered.fetch_add(1, Relaxed)
                }
                Settle::RetryAt { at, reason } => {
                    tracing::debug!(source = %job.source, destination = name, message_id = %job.message_id, in_ms = at - now, "retry: {reason}");
                    tally.add(&job.source, |m| m.retried += 1);
                    stats.retried.fetch_add(1, Relaxed)
                }
                Settle::Dead { reason } => {
                    tracing::warn!(source = %job.source, destination = name, message_id = %job.message_id, "dead-lettered: {reason}");
                    tally.add(&job.source, |m| m.dead += 1);
                    stats.dead_lettered.fetch_add(1, Relaxed)
                }
            };
            (job.id, settle)
        })
        .collect();
    stats.history.add(now, tally.total);
    for (source, counts) in tally.by_source {
        stats.by_source.of(source).add(now, counts);
    }
    stats.history.latencies(latencies);
    // Settling must not be lost: retry until the store takes it (a full disk
    // frees up, a NATS server comes back). Meanwhile the events count as in
    // flight and stay leased; at shutdown they stay leased and are delivered
    // again after the restart (at-least-once).
    let mut shutdown = shared.shutdown.clone();
    let mut pause = STORE_ERROR_PAUSE;
    for attempt in 1u32.. {
        match shared.store.settle(name, settles.clone()).await {
            Ok(()) => {
                if attempt > 1 {
                    tracing::info!(
                        destination = name,
                        attempt,
                        "settled after the store came back"
                    );
                }
                break;
            }
            Err(e) => {
                tracing::warn!(
                    destination = name,
                    attempt,
                    events = jobs.len(),
                    "settle failed, will retry: {e}"
                );
                if *shutdown.borrow() {
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.changed() => break,
                }
                pause = (pause * 2).min(MAX_SETTLE_PAUSE);
            }
        }
    }
    settles
        .into_iter()
        .zip(filtered)
        .map(|((_, settle), filtered)| (settle, filtered))
        .collect()
}

/// Tell the breaker, the rate and the concurrency limit. (The worker wakes when
/// this batch's task ends: it waits on its set of batches in flight.)
fn record(shared: &Shared, report: &Report) {
    let now = shared.clock.now();
    if let Some(bucket) = &shared.bucket {
        let mut b = bucket.lock().expect("bucket lock");
        if report.throttled {
            b.throttled(now);
            tracing::debug!(
                destination = shared.dest.name.as_str(),
                rate = b.rate(),
                "throttled: rate lowered"
            );
        } else if report.verdict == BatchVerdict::Success {
            b.succeeded(now);
        }
    }
    shared
        .live
        .limiter
        .lock()
        .expect("limiter lock")
        .finished(report.rtt, report.pushed_back, now);
    shared
        .live
        .breaker
        .lock()
        .expect("breaker lock")
        .record(report.verdict.clone());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_say_success_failure_or_nothing() {
        let ms = Duration::from_millis(5);
        let retry = |after| Outcome::Retry {
            reason: "503".into(),
            after,
        };
        let r = report(&[Outcome::Delivered, retry(None)], ms);
        assert_eq!(r.verdict, BatchVerdict::Success);
        assert!(r.pushed_back && !r.throttled);
        let r = report(&[retry(Some(Duration::from_secs(1)))], ms);
        assert_eq!(r.verdict, BatchVerdict::Failure("503".into()));
        assert!(r.pushed_back && r.throttled);
        let r = report(&[Outcome::Reject("bad".into())], ms);
        assert_eq!(r.verdict, BatchVerdict::Neutral);
        assert!(!r.pushed_back);
    }
}
