//! Which version serves a batch: the serving one alone, or beside a shadow
//! or a canary when its plugin has a version on trial ([`crate::trial`]), and
//! captured whole when its destination is being recorded.
//!
//! Where it sits: a batch in flight (`flight.rs`) hands [`deliver`] the events
//! its transformations kept. With nothing on trial and no recording it is one
//! plain call. Otherwise:
//! - a recording captures the call whole and keeps it as a delivery;
//! - a shadow version runs next, on the same events, its requests answered
//!   from the serving call's exchanges; the two are compared and counted. It
//!   costs the batch one more call with no network, before it settles;
//! - a canary's share of users (by `userId`, else `anonymousId`) goes to the
//!   canary in its own call, beside the serving call with the rest; both are
//!   tallied, and a verdict (rollback, promotion) is acted on at once.

use std::sync::Arc;

use super::call::call;
use super::shared::{Shared, Versions};
use crate::imports::http::Egress;
use crate::observe::attempts::Tape;
use crate::runtime::{CallContext, Event, Outcome};
use crate::trial::answers::Answers;
use crate::trial::capture::{Capture, Exchange};
use crate::trial::compare::{compare, OutcomeRecord};
use crate::trial::recording::{About, Delivery, RecordedEvent, Recorder};
use crate::trial::{in_canary, Stage, Trial};

/// What the calls of a batch gave.
pub(super) struct Delivered {
    /// One outcome per event, in order.
    pub outcomes: Vec<Outcome>,
    /// The serving call's error, if it failed.
    pub error: Option<String>,
    /// Per event: whether its outcome tells the destination's breaker, rate and
    /// concurrency limit (`false`: the canary delivered it).
    pub counted: Vec<bool>,
    /// When the serving version answered (before a shadow's call).
    pub answered: tokio::time::Instant,
}

/// Deliver `events` as this batch's versions say.
pub(super) async fn deliver(
    shared: &Shared,
    versions: &Versions,
    events: &[Event],
    tape: &Tape,
) -> Delivered {
    let recorder = shared.live.recording();
    let trial = versions.trial.as_deref();
    if let Some((trial, percent)) = trial.and_then(|t| t.canary().map(|c| (t, c.percent))) {
        return canary(shared, versions, trial, percent, events, tape, recorder).await;
    }
    let shadow = trial.filter(|t| matches!(t.stage, Stage::Shadow { .. }));
    let capture = (recorder.is_some() || shadow.is_some()).then(Capture::default);
    let ctx = context(shared, tape, capture.clone());
    let (outcomes, error) = call(shared, &ctx, &versions.destination, events).await;
    let answered = shared.clock.now();
    let (exchanges, clock) = match &capture {
        Some(c) => (c.take(), c.clock()),
        None => (None, Vec::new()),
    };
    let redacted: Option<Vec<Exchange>> = exchanges
        .as_ref()
        .map(|ex| ex.iter().map(|e| shared.redactor.exchange(e)).collect());
    if let (Some(rec), Some(ex)) = (&recorder, &redacted) {
        rec.add(
            delivery(shared, events, ex.clone(), &outcomes, clock.clone()),
            || about(shared, &versions.destination),
        );
    }
    if let Some(trial) = shadow {
        let serving = exchanges.zip(redacted);
        run_shadow(shared, trial, events, serving, &outcomes, clock).await;
    }
    Delivered {
        counted: vec![true; outcomes.len()],
        outcomes,
        error,
        answered,
    }
}

/// What every call of this batch runs with: the destination's context, this
/// batch's tape, and a capture when asked.
fn context(shared: &Shared, tape: &Tape, capture: Option<Capture>) -> CallContext {
    let mut ctx = shared.ctx.clone();
    ctx.observers.push(Arc::new(tape.clone()));
    if let Some(capture) = capture {
        ctx.observers.push(Arc::new(capture));
    }
    ctx
}

/// What a recorded call of `version` ran with.
fn about(shared: &Shared, version: &crate::runtime::Version) -> About {
    About {
        settings: shared.redactor.settings(&shared.dest.settings),
        plugin_sha256: version.plugin.sha256.clone(),
        plugin_version: version.plugin.metadata.version.clone(),
    }
}

/// One recorded delivery.
fn delivery(
    shared: &Shared,
    events: &[Event],
    requests: Vec<Exchange>,
    outcomes: &[Outcome],
    clock: Vec<u64>,
) -> Delivery {
    Delivery {
        events: events
            .iter()
            .map(|e| RecordedEvent {
                message_id: e.message_id.clone(),
                event_type: e.event_type.into(),
                json: e.json.clone(),
            })
            .collect(),
        requests,
        outcomes: outcomes
            .iter()
            .map(|o| shared.redactor.outcome(o))
            .collect(),
        clock,
    }
}

/// Run the shadow on `events` and compare it with the serving call
/// (`serving`: its exchanges as sent and redacted, `None` when too many to
/// keep; `clock`: its wall-clock readings, which the shadow reads too).
/// Credentials are compared as sent, but shown redacted.
async fn run_shadow(
    shared: &Shared,
    trial: &Trial,
    events: &[Event],
    serving: Option<(Vec<Exchange>, Vec<Exchange>)>,
    outcomes: &[Outcome],
    clock: Vec<u64>,
) {
    let name = shared.dest.name.as_str();
    let ids = || events.iter().map(|e| e.message_id.clone()).collect();
    let Stage::Shadow { default } = &trial.stage else {
        return;
    };
    let fits = events.len() <= trial.version.plugin.metadata.max_batch as usize;
    let Some((serving_raw, serving)) = serving.filter(|_| fits) else {
        trial.compared(name, ids(), None);
        return;
    };
    let answers = Answers::new(serving.clone(), shared.redactor.clone(), default.clone())
        .within(shared.dest.allowed_hosts.clone());
    let capture = Capture::default();
    let mut ctx = shared.ctx.clone();
    ctx.egress = Egress::Replay(Arc::new(answers));
    ctx.counters = trial.sandbox.clone();
    ctx.observers.push(Arc::new(capture.clone()));
    ctx.clock = Some(clock.into());
    let (got, _) = call(shared, &ctx, &trial.version, events).await;
    let Some(sent) = capture.take() else {
        trial.compared(name, ids(), None);
        return;
    };
    let sent_raw = sent;
    let sent: Vec<Exchange> = sent_raw
        .iter()
        .map(|e| shared.redactor.exchange(e))
        .collect();
    let want: Vec<OutcomeRecord> = outcomes
        .iter()
        .map(|o| shared.redactor.outcome(o))
        .collect();
    let got: Vec<OutcomeRecord> = got.iter().map(|o| shared.redactor.outcome(o)).collect();
    let mut diffs = compare((&serving, &want), (&sent, &got));
    // What differs only in a credential (a signature, a key) still differs.
    for raw in compare((&serving_raw, &want), (&sent_raw, &got)) {
        if !diffs.iter().any(|d| d.what == raw.what) {
            diffs.push(crate::trial::compare::Difference {
                what: format!("{} (a credential)", raw.what),
                expected: "[redacted]".into(),
                got: "[redacted], not the same".into(),
            });
        }
    }
    if !diffs.is_empty() {
        tracing::debug!(
            destination = name,
            plugin = %trial.version.plugin.name,
            differences = diffs.len(),
            "the shadow version did otherwise: {}",
            diffs[0].what
        );
    }
    trial.compared(name, ids(), Some(diffs));
}

/// A canary's batch: its users' events to the canary, the rest to the
/// serving version, both at once; tallied, and judged.
async fn canary(
    shared: &Shared,
    versions: &Versions,
    trial: &Trial,
    percent: u8,
    events: &[Event],
    tape: &Tape,
    recorder: Option<Arc<Recorder>>,
) -> Delivered {
    let (mine, theirs): (Vec<usize>, Vec<usize>) = (0..events.len())
        .partition(|&i| in_canary(&events[i].json, &events[i].message_id, percent));
    let part = |at: &[usize]| at.iter().map(|&i| events[i].clone()).collect::<Vec<_>>();
    let (for_canary, for_serving) = (part(&mine), part(&theirs));
    // A recording keeps the serving version's calls only: one version per file.
    let serving_capture = recorder.as_ref().map(|_| Capture::default());
    let serving_ctx = context(shared, tape, serving_capture.clone());
    let mut canary_ctx = context(shared, tape, None);
    canary_ctx.counters = trial.sandbox.clone();
    let nothing = || async { (Vec::new(), None) };
    let (served, tried) = tokio::join!(
        async {
            match for_serving.is_empty() {
                true => nothing().await,
                false => call(shared, &serving_ctx, &versions.destination, &for_serving).await,
            }
        },
        async {
            match for_canary.is_empty() {
                true => nothing().await,
                false => call(shared, &canary_ctx, &trial.version, &for_canary).await,
            }
        },
    );
    let answered = shared.clock.now();
    // A canary's rejection is not final: the serving version has the last word
    // after a rollback (and the canary itself again, if it stays).
    // (A failed canary call is not the destination's error: only its outcomes count.)
    let tried: Vec<Outcome> = tried
        .0
        .into_iter()
        .map(|o| match o {
            Outcome::Reject(reason) => Outcome::Retry {
                reason: format!("rejected by the canary version: {reason}"),
                after: None,
            },
            other => other,
        })
        .collect();
    let failed = |o: &[Outcome]| {
        o.iter()
            .filter(|o| !matches!(o, Outcome::Delivered | Outcome::Filtered(_)))
            .count() as u64
    };
    trial.settled(false, served.0.len() as u64, failed(&served.0));
    trial.settled(true, tried.len() as u64, failed(&tried));
    let sent = serving_capture.map(|c| (c.take(), c.clock()));
    if let (Some(rec), Some((Some(ex), clock))) = (&recorder, sent) {
        if !for_serving.is_empty() {
            let ex = ex.iter().map(|e| shared.redactor.exchange(e)).collect();
            rec.add(delivery(shared, &for_serving, ex, &served.0, clock), || {
                about(shared, &versions.destination)
            });
        }
    }
    if let (Some(verdict), Some(t)) = (trial.verdict(), &versions.trial) {
        versions.slot.conclude(t, verdict);
    }
    let mut outcomes: Vec<Option<Outcome>> = vec![None; events.len()];
    for (at, outs) in [(&theirs, served.0), (&mine, tried)] {
        for (&i, o) in at.iter().zip(outs) {
            outcomes[i] = Some(o);
        }
    }
    let outcomes = outcomes
        .into_iter()
        .map(|o| o.expect("each event went to one version"))
        .collect();
    let mut counted = vec![true; events.len()];
    for &i in &mine {
        counted[i] = false;
    }
    Delivered {
        outcomes,
        error: served.1,
        counted,
        answered,
    }
}
