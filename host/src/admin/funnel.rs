//! The delivery funnel: where a window's events went, step by step, for one
//! destination or one source (`GET /admin/destinations/{name}/funnel`,
//! `GET /admin/sources/{name}/funnel`, and both status pages).
//!
//! Where it sits: beside the admin API, reading the per-minute histories that
//! ingest (a source's sent, refused, duplicate events) and a destination's
//! batches in flight (delivered, retried, dead-lettered, dropped by a
//! transformation, kept from it by routing) keep in [`crate::observe::history`],
//! and the store's queue figures for what waits now.
//!
//! A step counts what happened in the window (the last hour or day, the
//! current minute so far). So over a window that holds a whole run, and once
//! nothing waits, a destination's steps add up: sent = refused + duplicates +
//! filtered by routing + filtered by a transformation + delivered +
//! dead-lettered. A replay or backfill sends events again, so it can deliver
//! more than the window received; a duplicate that routing keeps from the
//! destination counts twice, as routing looks before the store deduplicates. On
//! NATS each host counts what it ingested and what it delivered itself.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::{find, query_error, AdminError, AdminState, DestinationInfo};
use crate::observe::history::Minute;
use crate::store::now_ms;
use crate::store::view::iso;

/// The window a funnel counts over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Window {
    /// The last 60 minutes.
    #[default]
    Hour,
    /// The last 24 hours.
    Day,
}

impl Window {
    /// `1h` or `24h` (absent: `1h`); anything else is a clear error.
    pub fn parse(text: Option<&str>) -> Result<Window, String> {
        match text.map(str::trim) {
            None | Some("") | Some("1h") => Ok(Window::Hour),
            Some("24h") => Ok(Window::Day),
            Some(other) => Err(format!(
                "window `{other}` is not one the funnel keeps: use `1h` or `24h`"
            )),
        }
    }

    /// How it is written in a query.
    pub fn label(self) -> &'static str {
        match self {
            Window::Hour => "1h",
            Window::Day => "24h",
        }
    }

    fn minutes(self) -> usize {
        match self {
            Window::Hour => 60,
            Window::Day => 24 * 60,
        }
    }
}

/// One step of a funnel.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Step {
    /// Stable name (`sent`, `refused`, `duplicates`, `suppressed`, `received`,
    /// `filtered_by_routing`, `filtered_by_transformation`, `delivered`,
    /// `dead_lettered`, `retrying`, `waiting`).
    pub key: &'static str,
    /// What a person reads.
    pub label: &'static str,
    /// Events.
    pub count: u64,
    /// Whether it is a figure of now (what waits) rather than of the window.
    pub now: bool,
    /// The status page that lists these events or attempts, where one does.
    pub href: Option<String>,
}

/// The window a funnel counted over.
#[derive(Debug, Clone, Serialize)]
pub struct Span {
    /// `1h` or `24h`.
    pub window: &'static str,
    /// The window's first minute (RFC 3339).
    pub from: String,
    /// Now (RFC 3339).
    pub to: String,
}

impl Span {
    /// The `window` ending at `now` (ms).
    fn ending(window: Window, now: i64) -> Span {
        let first = now.div_euclid(60_000) - window.minutes() as i64 + 1;
        Span {
            window: window.label(),
            from: iso(first * 60_000),
            to: iso(now),
        }
    }
}

/// A destination's funnel.
#[derive(Debug, Clone, Serialize)]
pub struct DestinationFunnel {
    /// The destination.
    pub destination: String,
    /// Over what.
    #[serde(flatten)]
    pub span: Span,
    /// In order, from what sources sent to what is still waiting.
    pub steps: Vec<Step>,
    /// Retry attempts scheduled in the window (an event can be retried often;
    /// not a step).
    pub retried_attempts: u64,
}

/// What one destination did with one source's events.
#[derive(Debug, Clone, Serialize)]
pub struct SourceOutcome {
    /// The destination.
    pub destination: String,
    /// Delivered.
    pub delivered: u64,
    /// Dropped by one of its transformations.
    pub filtered_by_transformation: u64,
    /// Dead-lettered.
    pub dead_lettered: u64,
    /// Retry attempts scheduled.
    pub retried_attempts: u64,
    /// Its page.
    pub href: String,
}

/// A source's funnel: what it was sent, and what each destination did with it.
#[derive(Debug, Clone, Serialize)]
pub struct SourceFunnel {
    /// The source.
    pub source: String,
    /// Over what.
    #[serde(flatten)]
    pub span: Span,
    /// Sent, refused, duplicates, received (stored).
    pub steps: Vec<Step>,
    /// Per destination, in config order. Routing's filter is counted per
    /// destination, not per source: see the destination's funnel.
    pub destinations: Vec<SourceOutcome>,
}

/// The query of both endpoints and pages.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunnelQuery {
    /// `1h` (the default) or `24h`.
    pub window: Option<String>,
}

fn step(key: &'static str, label: &'static str, count: u64, href: Option<String>) -> Step {
    Step {
        key,
        label,
        count,
        now: false,
        href,
    }
}

/// The sum over every source of what ingest counted in the window.
fn ingest_sum(state: &AdminState, now: i64, window: Window) -> Minute {
    let mut total = Minute::default();
    for h in state.source_history.values() {
        total.absorb(&h.sum(now, window.minutes()));
    }
    total
}

/// The first steps, from what ingest counted: sent, refused, duplicates,
/// suppressed (a privacy regulation), received.
fn ingest_steps(ingest: &Minute, refused_href: Option<String>) -> Vec<Step> {
    vec![
        step(
            "sent",
            "Sent by sources",
            ingest.ok + ingest.retried + ingest.dead + ingest.filtered,
            None,
        ),
        step("refused", "Refused at ingest", ingest.retried, refused_href),
        step("duplicates", "Dropped as duplicates", ingest.dead, None),
        step(
            "suppressed",
            "Suppressed (privacy)",
            ingest.filtered,
            Some("/status/privacy".into()),
        ),
        step("received", "Received and stored", ingest.ok, None),
    ]
}

/// The funnel of `d` over `window`; `queue` is the store's figures of its
/// queue now (what waits).
pub fn of_destination(
    state: &AdminState,
    d: &DestinationInfo,
    window: Window,
    queue: &crate::store::QueueStats,
) -> DestinationFunnel {
    let now = now_ms();
    // What routing counted since the worker last looked.
    d.live
        .stats
        .history
        .fold_unrouted(now, state.store.filtered(&d.name));
    let ingest = ingest_sum(state, now, window);
    let ours = d.live.stats.history.sum(now, window.minutes());
    let page = super::links::destination_path(&d.name);
    let refused_href = match state.sources.as_slice() {
        [one] => Some(super::links::source_path(one)),
        _ => Some("/status#sources".to_string()),
    };
    let mut steps = ingest_steps(&ingest, refused_href);
    steps.extend([
        step(
            "filtered_by_routing",
            "Filtered by routing (its filter or an integrations object)",
            ours.unrouted,
            None,
        ),
        step(
            "filtered_by_transformation",
            "Filtered by a transformation",
            ours.filtered,
            Some(format!("{page}#attempts")),
        ),
        step(
            "delivered",
            "Delivered",
            ours.ok,
            Some(format!("{page}#attempts")),
        ),
        step(
            "dead_lettered",
            "Dead-lettered",
            ours.dead,
            Some(format!("{page}#dead-letters")),
        ),
        Step {
            now: true,
            ..step(
                "retrying",
                "Waiting for a retry",
                queue.retrying,
                Some(format!("{page}?failed=true#attempts")),
            )
        },
        Step {
            now: true,
            ..step(
                "waiting",
                "Waiting for a first try, or in flight",
                queue.queued.saturating_sub(queue.retrying) + queue.in_flight,
                None,
            )
        },
    ]);
    DestinationFunnel {
        destination: d.name.clone(),
        span: Span::ending(window, now),
        steps,
        retried_attempts: ours.retried,
    }
}

/// The funnel of the source `name` over `window`.
pub fn of_source(state: &AdminState, name: &str, window: Window) -> SourceFunnel {
    let now = now_ms();
    let ingest = state
        .source_history
        .get(name)
        .map(|h| h.sum(now, window.minutes()))
        .unwrap_or_default();
    let destinations = state
        .destinations
        .load()
        .iter()
        .filter(|d| !d.retired)
        .map(|d| {
            let m = d
                .live
                .stats
                .by_source
                .get(name)
                .map(|h| h.sum(now, window.minutes()))
                .unwrap_or_default();
            SourceOutcome {
                destination: d.name.clone(),
                delivered: m.ok,
                filtered_by_transformation: m.filtered,
                dead_lettered: m.dead,
                retried_attempts: m.retried,
                href: super::links::destination_path(&d.name),
            }
        })
        .collect();
    SourceFunnel {
        source: name.to_string(),
        span: Span::ending(window, now),
        steps: ingest_steps(&ingest, Some(super::links::source_path(name))),
        destinations,
    }
}

/// `GET /admin/destinations/{name}/funnel?window=1h|24h`.
pub(super) async fn destination(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    query: Result<Query<FunnelQuery>, QueryRejection>,
) -> Result<Json<DestinationFunnel>, AdminError> {
    let Query(q) = query.map_err(query_error)?;
    let window = Window::parse(q.window.as_deref()).map_err(AdminError::BadRequest)?;
    let d = find(&state, &name)?;
    let (queue, _) = super::queue_stats(&state, &d).await;
    Ok(Json(of_destination(&state, &d, window, &queue)))
}

/// `GET /admin/sources/{name}/funnel?window=1h|24h`.
pub(super) async fn source(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    query: Result<Query<FunnelQuery>, QueryRejection>,
) -> Result<Json<SourceFunnel>, AdminError> {
    let Query(q) = query.map_err(query_error)?;
    let window = Window::parse(q.window.as_deref()).map_err(AdminError::BadRequest)?;
    if !state.sources.contains(&name) {
        return Err(AdminError::NoSource(name));
    }
    Ok(Json(of_source(&state, &name, window)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_an_hour_or_a_day_and_nothing_else() {
        assert_eq!(Window::parse(None), Ok(Window::Hour));
        assert_eq!(Window::parse(Some("24h")), Ok(Window::Day));
        assert_eq!(Window::Day.minutes(), 1440);
        let e = Window::parse(Some("7d")).unwrap_err();
        assert!(e.contains("`7d`") && e.contains("24h"), "{e}");
    }

    #[test]
    fn ingest_steps_split_what_was_sent() {
        let ingest = Minute {
            filtered: 3,
            ..Minute::counts(7, 2, 1)
        };
        let steps = ingest_steps(&ingest, None);
        let counts: Vec<_> = steps.iter().map(|s| (s.key, s.count)).collect();
        assert_eq!(
            counts,
            [
                ("sent", 13),
                ("refused", 2),
                ("duplicates", 1),
                ("suppressed", 3),
                ("received", 7)
            ]
        );
    }
}
