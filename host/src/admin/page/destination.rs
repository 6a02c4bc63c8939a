//! The destination page of the status page: its figures and the hour's chart
//! (live), the newest delivery attempts (each with its own page), pause and
//! resume, the plugin with its swaps and a rollback, and dead letters by time
//! range with replay and purge. Every button goes through [`act`], which checks
//! the session's CSRF token and then calls the admin API's own handler.

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use maud::{html, Markup};
use serde::Deserialize;

use super::session::{csrf_ok, LoggedIn, Session};
use super::view::{button, figure, health, html_response, layout, ms, refused};
use super::{chart, destination_path, funnel, live_page, violations};
use crate::admin::{
    destination_row, find, pause, replay_dead_letters, resume, rollback_plugin, AdminError,
    AdminState, Range,
};
use crate::observe::attempts::Attempt;
use crate::store::now_ms;
use crate::store::view::{parse_time_or_age, DeadLetterView};

/// Dead letters shown per page.
const DEAD_LETTERS_SHOWN: usize = 50;
/// Attempts listed on the page (the ring keeps more of the failed ones).
const ATTEMPTS_SHOWN: usize = 20;

/// The page's query: the dead letters' range and page, the attempts' filter,
/// what the last button did, and `part=live`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PageQuery {
    part: Option<String>,
    since: Option<String>,
    until: Option<String>,
    after: Option<i64>,
    failed: Option<bool>,
    done: Option<String>,
    n: Option<u64>,
    window: Option<String>,
}

/// A range's bounds as ms (empty fields are no bound).
fn range(since: Option<&str>, until: Option<&str>) -> Result<(Option<i64>, Option<i64>), String> {
    let now = now_ms();
    let one = |t: Option<&str>| {
        t.map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| parse_time_or_age(t, now))
            .transpose()
    };
    Ok((one(since)?, one(until)?))
}

/// What the last button did, said in full.
fn flash(done: Option<&str>, n: Option<u64>) -> Option<String> {
    let n = n.unwrap_or(0);
    Some(match done? {
        "paused" => "Paused: nothing is delivered until you resume.".to_string(),
        "resumed" => "Resumed.".to_string(),
        "replayed" => format!("Replayed {n} dead letter(s): they are queued again."),
        "purged" => format!("Purged {n} dead letter(s)."),
        "rolled-back" => "Rolled back: the previous version serves.".to_string(),
        "retried-now" => format!("Retrying now: {n} waiting retries made due."),
        _ => return None,
    })
}

fn attempts_table(name: &str, list: &[std::sync::Arc<Attempt>]) -> Markup {
    html! {
        table #attempts {
            thead { tr {
                th { "#" } th { "Started" } th.num { "Duration" } th.num { "Events" }
                th { "Outcomes" } th.num { "Requests" } th { "Error" }
            } }
            tbody {
                @for a in list {
                    @let delivered = a.events.iter().filter(|e| e.outcome == "delivered").count();
                    tr data-attempt=(a.id) data-failed=(a.failed()) {
                        td { a href={(destination_path(name)) "/attempts/" (a.id)} { "#" (a.id) } }
                        td { (a.at) }
                        td.num { (super::view::duration(a.duration_ms)) }
                        td.num { (a.events.len()) }
                        td {
                            (delivered) " delivered"
                            @if delivered < a.events.len() {
                                ", " span.error { (a.events.len() - delivered) " not" }
                            }
                        }
                        td.num { (a.requests.len() + a.requests_not_kept) }
                        td {
                            // The call's error, else the first event's reason.
                            @if let Some(e) = a.error.as_ref().or_else(|| a.events.iter().find_map(|e| e.reason.as_ref())) {
                                code.error { (e) }
                            }
                        }
                    }
                }
            }
        }
        @if list.is_empty() { p.muted { "No attempt since the host started." } }
    }
}

pub(super) async fn page(
    LoggedIn(s): LoggedIn,
    State(state): State<AdminState>,
    Path(name): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return refused(
            StatusCode::BAD_REQUEST,
            Some(&s),
            "Unknown or malformed parameters.",
            &destination_path(&name),
        );
    };
    let Ok(d) = find(&state, &name) else {
        return refused(
            StatusCode::NOT_FOUND,
            Some(&s),
            &format!("No destination named `{name}`."),
            "/status",
        );
    };
    let window = match funnel::window(q.window.as_deref(), &s, &destination_path(&name)) {
        Ok(w) => w,
        Err(refusal) => return *refusal,
    };
    let row = destination_row(&state, &d).await;
    // The row just asked the store; the funnel shows the same figures.
    let queue = *d.last_queue.lock().expect("last queue lock");
    let funnel = crate::admin::funnel::of_destination(&state, &d, window, &queue);
    let failed_only = q.failed.unwrap_or(false);
    let mut attempts = d.live.stats.attempts.newest(failed_only);
    attempts.truncate(ATTEMPTS_SHOWN);
    let (v, detail) = violations(&row.violations);
    let moves = d
        .live
        .limiter
        .lock()
        .expect("limiter lock")
        .moves(tokio::time::Instant::now());
    let live = html! {
        div.figures {
            div { span.muted { "Health" } b { (health(row.health)) } }
            (figure("Queued", row.queued))
            (figure("In flight", row.in_flight))
            (figure("Delivered", row.delivered))
            (figure("Delivered/s", format!("{:.1}", row.delivered_per_second)))
            (figure("p50", ms(row.latency_p50_ms)))
            (figure("p99", ms(row.latency_p99_ms)))
            (figure("Retried", row.retried))
            (figure("Dead letters", row.dead_letters))
            (figure("Retrying", row.retrying))
            div #next-attempt {
                span.muted { "Next attempt" }
                b { @if let Some(wait) = row.next_retry_in_ms { "in " (super::view::duration(wait)) } @else { "–" } }
            }
            (figure("Oldest queued", ms(row.oldest_queued_age_ms)))
            (figure("Batches in flight", format!("{} of {}", row.batches_in_flight, row.concurrency.limit)))
            div title=(detail) { span.muted { "Violations" } b { (v) } }
            (figure("Peak memory", format!("{:.1} MiB", row.memory_peak_bytes as f64 / 1048576.0)))
        }
        @if let Some(r) = &row.health_reason {
            p { "Why: " code.error #health-reason { (r) } @if let Some(at) = row.last_error_at.as_ref().filter(|_| row.last_error.as_ref() == Some(r)) { " " span.muted { "(" (at) ")" } } }
        }
        @if let Some(e) = &row.store_error { p.error { "The store did not answer; figures may be stale: " (e) } }
        // The last error, unless it is the reason just above.
        @if let Some(e) = row.last_error.as_ref().filter(|e| row.health_reason.as_ref() != Some(*e)) {
            p.resolved[row.last_error_resolved] #last-error {
                "Last error" @if let Some(at) = &row.last_error_at { " (" (at) ")" } ": " code.error { (e) }
                @if row.last_error_resolved { " — deliveries have succeeded since." }
            }
        }
        h2 { "Delivery funnel" }
        section #funnel-section { (funnel::steps(&funnel.steps, window, &destination_path(&name))) }
        h2 { "Last hour" }
        section { (chart::per_minute(&d.live.stats.history.last_hour(now_ms()))) }
        @if row.concurrency.mode == "adaptive" {
            h2 { "Concurrency" }
            section { (chart::limit_steps(&moves, row.concurrency.limit, row.concurrency.max)) }
            p.muted #concurrency {
                "Concurrency: adaptive, " (row.concurrency.limit) " of at most " (row.concurrency.max)
                @if let Some(r) = row.concurrency.reference_rtt_ms { "; reference round trip " (format!("{r:.1}")) " ms" }
                @if let Some(j) = row.concurrency.rtt_deviation_ms { ", jitter " (format!("{j:.1}")) " ms" }
                @if let Some(why) = row.concurrency.last_change { "; last change: " (why) }
            }
        }
        h2 {
            "Delivery attempts "
            @if failed_only {
                a href=(destination_path(&name)) { "(show all)" }
            } @else {
                a href={(destination_path(&name)) "?failed=true"} { "(only failed)" }
            }
        }
        section { (attempts_table(&name, &attempts)) }
    };
    if q.part.as_deref() == Some("live") {
        return live_page("", &s, true, html! {}, live);
    }
    let head = html! {
        p { a href="/status" { "Overview" } " / " (name) }
        h1 { "Destination " (name) }
        @if let Some(f) = flash(q.done.as_deref(), q.n) { p.flash role="status" #flash { (f) } }
    };
    let rest = static_part(&state, &s, &name, &d, &q).await;
    let body = html! {
        (head)
        div #live data-refresh-ms="2000" { (live) }
        (rest)
    };
    html_response(
        StatusCode::OK,
        layout(&format!("Destination {name}"), Some(&s), body),
    )
}

/// The parts with buttons (not refreshed): operate, plugin, dead letters.
async fn static_part(
    state: &AdminState,
    s: &Session,
    name: &str,
    d: &crate::admin::DestinationInfo,
    q: &PageQuery,
) -> Markup {
    let path = destination_path(name);
    let act = |a: &str| format!("{path}/{a}");
    let slot = &d.plugin;
    let serving = slot.current();
    let previous = slot.previous_sha256();
    let swaps = slot.swap_history();
    // Every destination a rollback of this plugin moves.
    let all = state.destinations.load();
    let sharing: Vec<&str> = all
        .iter()
        .filter(|o| o.plugin.name == slot.name)
        .map(|o| o.name.as_str())
        .collect();
    let rollback = format!(
        "Roll back plugin {} to its previous version (for {})",
        slot.name,
        sharing.join(", ")
    );
    html! {
        h2 { "Operate" }
        section #operate {
            @if d.live.operator_paused() {
                p { "Paused by an operator." }
                (button(s, &act("resume"), "Resume", &[], false))
            } @else {
                (button(s, &act("pause"), "Pause", &[], true))
            }
            " "
            (button(s, &act("retry-now"), "Retry now", &[], false))
            p.muted { "Retry now makes every retry that waits for its time due at once (and sends a paused breaker's probe); the rate and concurrency limits still apply." }
        }
        h2 { "Plugin" }
        section #plugin {
            table {
                tr { th { "Plugin" } td { (slot.name) } }
                @if let Some(v) = &serving {
                    tr { th { "Version" } td { (v.plugin.metadata.version) } }
                    tr { th { "sha256" } td { code #sha256 { (v.plugin.sha256) } } }
                } @else {
                    tr { th { "Version" } td.error { "not loaded: nothing is delivered until a valid file is installed" } }
                }
                tr { th { "Previous" } td { @if let Some(p) = &previous { code { (p) } } @else { span.muted { "none" } } } }
                @if let Some(e) = slot.last_error() {
                    tr { th { @if serving.is_some() { "Last refused" } @else { "Why" } } td { code.error { (e) } } }
                }
            }
            @if previous.is_some() {
                p { (button(s, &act("rollback"), &rollback, &[], true)) }
            }
            h3 { "Swaps since start" }
            table #swaps {
                thead { tr { th { "When" } th { "Kind" } th { "From" } th { "To" } th { "Version" } } }
                tbody {
                    @for w in &swaps {
                        tr { td { (w.at) } td { (w.kind) } td { code { (short(w.from_sha256.as_deref().unwrap_or("(not loaded)"))) } }
                             td { code { (short(&w.to_sha256)) } } td { (w.to_version) } }
                    }
                }
            }
            @if swaps.is_empty() { p.muted { "No swap since the host started." } }
            (super::trial::section(slot))
        }
        @if !d.live.chain.is_empty() {
            h2 { "Transformations" }
            section #transforms {
                table {
                    thead { tr { th { "Order" } th { "Name" } th { "Plugin" } th { "Version" } th { "sha256" } th { "Filtered" } th { "Violations" } } }
                    tbody {
                        @for (i, l) in d.live.chain.iter().enumerate() {
                            @let v = l.stats.sandbox.violations();
                            tr {
                                td { (i + 1) } td { (l.config.name) } td { (l.config.plugin) }
                                @if let Some(cur) = l.slot.current() {
                                    td { (cur.plugin.metadata.version) } td { code { (short(&cur.plugin.sha256)) } }
                                } @else {
                                    td.error colspan="2" { "not loaded: " (l.slot.last_error().unwrap_or_default()) }
                                }
                                td { (l.stats.filtered.load(std::sync::atomic::Ordering::Relaxed)) }
                                td { (v.timeouts + v.traps + v.contract + v.egress_denied) }
                            }
                        }
                    }
                }
                p.muted { "They run in this order before the plugin's deliver. A transformation's plugin is hot-swapped like a destination's, and rolled back with POST /admin/plugins/{name}/rollback." }
            }
        }
        h2 { "Dead letters" }
        section #dead-letters { (dead_letters(state, s, name, q).await) }
    }
}

/// The dead letters of the range asked for, a page of them, and the buttons
/// that replay or purge the whole range (as absolute times: the range shown is
/// the range acted on, even when it was given as an age).
async fn dead_letters(state: &AdminState, s: &Session, name: &str, q: &PageQuery) -> Markup {
    let path = destination_path(name);
    let (since, until) = (q.since.as_deref(), q.until.as_deref());
    let form = html! {
        form method="get" action=(path) {
            label { "Dead-lettered since " input type="text" name="since" value=(since.unwrap_or("")) placeholder="2h, or 2026-12-01T00:00:00Z"; }
            " "
            label { "until " input type="text" name="until" value=(until.unwrap_or("")) placeholder="empty: now"; }
            " " button type="submit" { "Show" }
        }
    };
    let (since_ms, until_ms) = match range(since, until) {
        Ok(r) => r,
        Err(e) => return html! { (form) p.error role="alert" { (e) } },
    };
    let letters = match state
        .store
        .dead_letter_page(name, since_ms, until_ms, q.after, DEAD_LETTERS_SHOWN)
        .await
    {
        Ok(l) => l,
        Err(e) => return html! { (form) p.error { "The store did not answer: " (e) } },
    };
    let next = (letters.len() == DEAD_LETTERS_SHOWN)
        .then(|| letters.last().map(|l| l.id))
        .flatten();
    let letters: Vec<DeadLetterView> = letters.iter().map(DeadLetterView::from).collect();
    let next_link = next.map(|n| {
        let mut link = format!("{path}?after={n}");
        for (k, v) in [("since", since), ("until", until)] {
            if let Some(v) = v {
                link.push_str(&format!("&{k}={}", super::segment(v)));
            }
        }
        link
    });
    // Until now when no end is given, so that what arrives later is not purged.
    let until_ms = until_ms.unwrap_or_else(now_ms);
    let since_text = since_ms.map(|t| t.to_string()).unwrap_or_default();
    let until_text = until_ms.to_string();
    let fields = [
        ("since", since_text.as_str()),
        ("until", until_text.as_str()),
    ];
    let act = |a: &str| format!("{path}/{a}");
    html! {
        (form)
        p.muted { "Oldest first, " (DEAD_LETTERS_SHOWN) " a page." }
        table {
            thead { tr { th { "Id" } th { "Dead at" } th { "messageId" } th { "Type" } th.num { "Attempts" } th { "Reason" } th { "Event" } } }
            tbody {
                @for l in &letters {
                    tr data-dead-letter=(l.message_id) {
                        td { (l.id) } td { (l.dead_at) } td { code { (l.message_id) } } td { (l.event_type) }
                        td.num { (l.attempts) } td { code.error { (l.reason) } }
                        td { details { summary { "JSON" } pre { (serde_json::to_string_pretty(&l.event).unwrap_or_default()) } } }
                    }
                }
            }
        }
        @if letters.is_empty() { p.muted { "No dead letter in this range." } }
        @if let Some(link) = next_link { p { a href=(link) { "Next page" } } }
        p {
            (button(s, &act("replay"), "Replay every dead letter of this range", &fields, false))
        }
        form.inline method="post" action=(act("purge")) {
            (super::view::csrf_field(s))
            input type="hidden" name="since" value=(since_text);
            input type="hidden" name="until" value=(until_text);
            label { input type="checkbox" name="confirm" value="yes" required; " I mean it: delete them for good" }
            " "
            button.danger type="submit" { "Purge every dead letter of this range" }
        }
    }
}

pub(super) async fn attempt(
    LoggedIn(s): LoggedIn,
    State(state): State<AdminState>,
    Path((name, id)): Path<(String, String)>,
) -> Response {
    let back = destination_path(&name);
    let found = find(&state, &name)
        .ok()
        .and_then(|d| id.parse().ok().and_then(|id| d.live.stats.attempts.get(id)));
    let Some(a) = found else {
        return refused(
            StatusCode::NOT_FOUND,
            Some(&s),
            &format!("No attempt {id} of `{name}` is kept (the newest are)."),
            &back,
        );
    };
    let body = html! {
        p { a href="/status" { "Overview" } " / " a href=(back) { (name) } " / attempt " (a.id) }
        h1 { "Attempt #" (a.id) " of " (name) }
        p { "Started " (a.at) ", took " (a.duration_ms) " ms, by version " code { (a.sha256) } "." }
        @if let Some(e) = &a.error { p { "The call failed: " code.error { (e) } } }
        h2 { "Events" }
        section {
            table #outcomes {
                thead { tr { th { "messageId" } th { "Outcome" } th.num { "Attempt" } th { "Why" } } }
                tbody {
                    @for e in &a.events {
                        tr { td { code { (e.message_id) } } td { span class={"badge " (e.outcome)} { (e.outcome) } }
                             td.num { (e.attempt) } td { @if let Some(r) = &e.reason { code { (r) } } } }
                    }
                }
            }
        }
        h2 { "Requests" }
        @for (i, x) in a.requests.iter().enumerate() {
            section.exchange data-exchange=(i) {
                h3 { code { (x.method) " " (x.url) } }
                p.muted { (x.duration_ms) " ms, " (x.body_bytes) " bytes sent" }
                (headers(&x.headers))
                pre.request-body { (x.body) }
                @if let Some(r) = &x.response {
                    h3 { "Response " span class={"badge s" (r.status / 100)} .status { (r.status) } }
                    (headers(&r.headers))
                    pre.response-body { (r.body) }
                }
                @if let Some(e) = &x.error { p { "No response: " code.error { (e) } } }
            }
        }
        @if a.requests.is_empty() { p.muted { "The component sent no request." } }
        @if a.requests_not_kept > 0 { p.muted { (a.requests_not_kept) " more request(s) were not kept." } }
    };
    html_response(
        StatusCode::OK,
        layout(&format!("Attempt {} of {name}", a.id), Some(&s), body),
    )
}

/// The first 12 characters of a sha256 (or all of a shorter text).
fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

fn headers(list: &[(String, String)]) -> Markup {
    html! {
        details { summary { "Headers (" (list.len()) ")" }
            table { @for (k, v) in list { tr { th { code { (k) } } td { code { (v) } } } } }
        }
    }
}

/// The buttons' form: the CSRF token, the range for replay and purge, and
/// purge's confirmation.
#[derive(Debug, Deserialize)]
pub(super) struct ActionForm {
    csrf: Option<String>,
    since: Option<String>,
    until: Option<String>,
    confirm: Option<String>,
}

pub(super) async fn act(
    LoggedIn(s): LoggedIn,
    State(state): State<AdminState>,
    Path((name, action)): Path<(String, String)>,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Response {
    let back = destination_path(&name);
    let Ok(Form(f)) = form else {
        return refused(
            StatusCode::BAD_REQUEST,
            Some(&s),
            "A malformed form.",
            &back,
        );
    };
    if !csrf_ok(&s, f.csrf.as_deref()) {
        tracing::warn!(
            destination = name.as_str(),
            action = action.as_str(),
            "status page: a form without the session's CSRF token was refused"
        );
        return refused(
            StatusCode::FORBIDDEN,
            Some(&s),
            "This form's CSRF token is missing or wrong: reload the page and try again.",
            &back,
        );
    }
    if action == "purge" && f.confirm.as_deref() != Some("yes") {
        return refused(
            StatusCode::BAD_REQUEST,
            Some(&s),
            "Tick the box to confirm the purge: it deletes the dead letters for good.",
            &back,
        );
    }
    let (since, until) = match range(f.since.as_deref(), f.until.as_deref()) {
        Ok(r) => r,
        Err(e) => return refused(StatusCode::BAD_REQUEST, Some(&s), &e, &back),
    };
    let range = || {
        Ok(Query(Range {
            since: since.map(|t| t.to_string()),
            until: until.map(|t| t.to_string()),
        }))
    };
    let (st, p) = (State(state.clone()), Path(name.clone()));
    let done: Result<(&str, u64), AdminError> = match action.as_str() {
        "pause" => pause(st, p).await.map(|_| ("paused", 0)),
        "resume" => resume(st, p).await.map(|_| ("resumed", 0)),
        "retry-now" => crate::admin::retry_now(st, p)
            .await
            .map(|Json(d)| ("retried-now", d.details.moved)),
        "replay" => replay_dead_letters(st, p, range())
            .await
            .map(|Json(d)| ("replayed", d.details.replayed)),
        "purge" => crate::admin::purge_dead_letters(st, p, range())
            .await
            .map(|Json(d)| ("purged", d.details.purged)),
        "rollback" => match find(&state, &name) {
            Ok(d) => rollback_plugin(st, Path(d.plugin.name.clone()))
                .await
                .map(|_| ("rolled-back", 0)),
            Err(e) => Err(e),
        },
        other => Err(AdminError::Missing(format!("no button `{other}`"))),
    };
    match done {
        Ok((code, n)) => {
            tracing::info!(
                destination = name.as_str(),
                action = action.as_str(),
                "status page: done"
            );
            Redirect::to(&format!("{back}?done={code}&n={n}")).into_response()
        }
        Err(e) => {
            let message = format!("{action} failed: {e}");
            refused(e.into_response().status(), Some(&s), &message, &back)
        }
    }
}
