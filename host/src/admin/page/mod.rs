//! The status page, served by the binary under `/status`: server-rendered HTML
//! (maud, every value escaped), one embedded stylesheet and one small script,
//! nothing from elsewhere.
//!
//! Where it sits: beside the admin API, reading the same state
//! ([`AdminState`]) and doing its changes through the same handlers.
//!
//! - `GET  /status/login`, `POST /status/login` (the admin token, for a
//!   session cookie), `POST /status/logout` ([`session`])
//! - `GET  /status`: the overview, sources and destinations, live
//! - `GET  /status/destinations/{name}`: figures, the hour's chart ([`chart`]),
//!   delivery attempts, plugin and swaps, its version on trial ([`trial`]),
//!   dead letters by time range
//! - `GET  /status/destinations/{name}/attempts/{id}`: one attempt's requests and responses
//! - `POST /status/destinations/{name}/{pause|resume|replay|purge|rollback}`:
//!   each needs the session's CSRF token
//! - `GET  /status/sources/{name}`: the source debugger, live
//!
//! A page's `#live` element is refreshed by `assets/live.js` from the same URL
//! with `?part=live`, which answers that element's contents only.

mod chart;
mod destination;
mod funnel;
mod privacy;
pub mod session;
mod trial;
mod view;

use axum::extract::rejection::{FormRejection, QueryRejection};
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{html, Markup};
use serde::Deserialize;

use self::session::{clear_cookie, csrf_ok, set_cookie, LoggedIn};
use self::view::{figure, health, html_response, layout, refused};
use super::{constant_time_eq, destination_row, guard, source_rows, AdminState};
use crate::runtime::Violations;

/// The status page's routes.
pub fn routes(state: AdminState) -> Router {
    Router::new()
        .route("/status", get(overview))
        .route("/status/login", get(login_form).post(login))
        .route("/status/logout", post(logout))
        .route("/status/assets/{file}", get(asset))
        .route("/favicon.ico", get(favicon))
        .route("/status/destinations/{name}", get(destination::page))
        .route(
            "/status/destinations/{name}/attempts/{id}",
            get(destination::attempt),
        )
        .route(
            "/status/destinations/{name}/{action}",
            post(destination::act),
        )
        .route("/status/sources/{name}", get(source))
        .route("/status/privacy", get(privacy::page))
        .with_state(state)
}

/// `?part=live`: only the `#live` element's contents; `?window=1h|24h`: the
/// source page's funnel window.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Part {
    part: Option<String>,
    window: Option<String>,
}

impl Part {
    fn live(&self) -> bool {
        self.part.as_deref() == Some("live")
    }
}

/// The whole page, or only its live part when asked.
fn live_page(
    title: &str,
    s: &session::Session,
    part: bool,
    head: Markup,
    live: Markup,
) -> Response {
    if part {
        return html_response(StatusCode::OK, live);
    }
    html_response(
        StatusCode::OK,
        layout(
            title,
            Some(s),
            html! {
                (head)
                div #live data-refresh-ms="2000" { (live) }
            },
        ),
    )
}

pub(super) use super::links::{destination_path, segment, source_path};

/// Every sandbox violation of a destination, and its breakdown.
fn violations(v: &Violations) -> (u64, String) {
    let total = v.timeouts + v.traps + v.contract + v.egress_denied;
    let detail = format!(
        "{} timeouts, {} traps, {} contract, {} egress denied, {} log lines dropped",
        v.timeouts, v.traps, v.contract, v.egress_denied, v.log_lines_dropped
    );
    (total, detail)
}

async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "style.css" => (view::STYLE, "text/css; charset=utf-8"),
        "live.js" => (view::LIVE_JS, "text/javascript; charset=utf-8"),
        "favicon.svg" => (view::FAVICON, "image/svg+xml"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "max-age=300"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// `/favicon.ico`: the same icon (an SVG; browsers take it by its type).
async fn favicon() -> Response {
    asset(Path("favicon.svg".to_string())).await
}

fn login_page(status: StatusCode, enabled: bool, error: Option<&str>) -> Response {
    html_response(
        status,
        layout(
            "Log in",
            None,
            html! {
                section.login {
                    h1 { "Switchyard status" }
                    @if !enabled {
                        p.refused role="alert" {
                            "The status page is disabled: set " code { "[server] admin_token" } "."
                        }
                    } @else {
                        @if let Some(e) = error {
                            p.refused role="alert" #login-error { (e) }
                        }
                        form method="post" action="/status/login" {
                            p {
                                label for="token" { "Admin token" } br;
                                input #token type="password" name="token" autocomplete="current-password" autofocus required;
                            }
                            button type="submit" { "Log in" }
                        }
                    }
                }
            },
        ),
    )
}

async fn login_form(State(state): State<AdminState>) -> Response {
    login_page(StatusCode::OK, state.token.is_some(), None)
}

/// `token=…`.
#[derive(Debug, Deserialize)]
struct Login {
    token: String,
}

async fn login(
    State(state): State<AdminState>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    form: Result<Form<Login>, FormRejection>,
) -> Response {
    let Some(token) = &state.token else {
        return login_page(StatusCode::UNAUTHORIZED, false, None);
    };
    let now = crate::store::now_ms();
    let peer = peer.map(|axum::Extension(p)| p);
    let client = guard::client_ip(peer.as_ref(), &headers, &state.guard);
    if let Some(wait) = client.and_then(|ip| state.guard.logins.may_try(ip, now).err()) {
        let mut page = login_page(
            StatusCode::TOO_MANY_REQUESTS,
            true,
            Some(&format!(
                "Too many wrong tokens from your address: try again in {wait} s."
            )),
        );
        if let Ok(v) = header::HeaderValue::from_str(&wait.to_string()) {
            page.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return page;
    }
    let Ok(Form(form)) = form else {
        return login_page(StatusCode::BAD_REQUEST, true, Some("Give the admin token."));
    };
    if !constant_time_eq(form.token.as_bytes(), token.as_bytes()) {
        if let Some(ip) = client {
            state.guard.logins.failed(ip, now);
        }
        tracing::warn!(
            client = client.map(|ip| ip.to_string()).unwrap_or_default(),
            "status page: a login with a wrong admin token was refused"
        );
        return login_page(
            StatusCode::UNAUTHORIZED,
            true,
            Some("That is not the admin token."),
        );
    }
    let session = state.sessions.open(now);
    let secure = guard::over_https(peer.as_ref(), &headers, &state.guard);
    (
        [(header::SET_COOKIE, set_cookie(&session, secure))],
        Redirect::to("/status"),
    )
        .into_response()
}

/// `csrf=…`.
#[derive(Debug, Deserialize)]
struct Csrf {
    csrf: Option<String>,
}

async fn logout(
    LoggedIn(s): LoggedIn,
    State(state): State<AdminState>,
    form: Result<Form<Csrf>, FormRejection>,
) -> Response {
    let given = form.ok().and_then(|Form(f)| f.csrf);
    if !csrf_ok(&s, given.as_deref()) {
        return refused(
            StatusCode::FORBIDDEN,
            Some(&s),
            "This form's CSRF token is missing or wrong: reload the page and try again.",
            "/status",
        );
    }
    state.sessions.close(&s.id);
    (
        [(header::SET_COOKIE, clear_cookie())],
        Redirect::to("/status/login"),
    )
        .into_response()
}

async fn overview(
    LoggedIn(s): LoggedIn,
    State(state): State<AdminState>,
    part: Result<Query<Part>, QueryRejection>,
) -> Response {
    let Ok(Query(part)) = part else {
        return refused(
            StatusCode::BAD_REQUEST,
            Some(&s),
            "Unknown parameters.",
            "/status",
        );
    };
    let mut rows = Vec::new();
    for d in state.destinations.load().iter() {
        rows.push(destination_row(&state, d).await);
    }
    let sources = source_rows(&state);
    let live = html! {
        h2 { "Sources" }
        section {
            table #sources {
                thead { tr {
                    th { "Source" } th.num { "Accepted/s" } th.num { "Rejected" } th { "Rejected by reason" }
                } }
                tbody {
                    @for src in &sources {
                        tr data-source=(src.name) {
                            td { a href={"/status/sources/" (segment(&src.name))} { (src.name) } }
                            td.num { (format!("{:.1}", src.accepted_per_second)) }
                            td.num { (src.rejected) }
                            td {
                                @for (code, n) in &src.rejected_by_code {
                                    code { (code) } " " (n) " "
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Destinations" }
        section {
            table #destinations {
                thead { tr {
                    th { "Destination" } th { "Health" } th.num { "Queued" } th.num { "Retrying" }
                    th.num { "Dead letters" } th.num { "Oldest" } th { "Next attempt" } th.num { "In flight" }
                    th.num { "Delivered/s" } th.num { "p50" } th.num { "p99" } th.num { "Violations" }
                    th { "Last error" }
                } }
                tbody {
                    @for row in &rows {
                        @let (v, detail) = violations(&row.violations);
                        tr data-destination=(row.name) {
                            td {
                                a href=(destination_path(&row.name)) { (row.name) } br;
                                @if row.plugin_error.is_some() {
                                    span.error { (row.plugin) " did not load" }
                                } @else {
                                    span.muted { (row.plugin) " " (row.version) }
                                }
                            }
                            td {
                                (health(row.health))
                                (view::attention(row.attention, match row.attention {
                                    Some("dead-lettering") => row.dead_letters,
                                    _ => row.retrying,
                                }))
                            }
                            td.num { (row.queued) }
                            td.num data-retrying=(row.retrying) { (row.retrying) }
                            td.num data-dead-letters=(row.dead_letters) { (row.dead_letters) }
                            td.num { (view::ms(row.oldest_queued_age_ms)) }
                            td data-next-attempt=[row.next_retry_at.as_deref()] {
                                @if let (Some(at), Some(wait)) = (&row.next_retry_at, row.next_retry_in_ms) {
                                    "in " (view::duration(wait)) br; span.muted { (at) }
                                } @else { span.muted { "–" } }
                            }
                            td.num { (row.in_flight) }
                            td.num { (format!("{:.1}", row.delivered_per_second)) }
                            td.num { (view::ms(row.latency_p50_ms)) }
                            td.num { (view::ms(row.latency_p99_ms)) }
                            td.num title=(detail) { (v) }
                            td.last-error.resolved[row.last_error_resolved] {
                                @if let Some(e) = &row.last_error {
                                    code.error { (e) }
                                    @if let Some(at) = &row.last_error_at { br; span.muted { (at) @if row.last_error_resolved { ", delivering since" } } }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    live_page(
        "Overview",
        &s,
        part.live(),
        html! { h1 { "Overview" } },
        live,
    )
}

async fn source(
    LoggedIn(s): LoggedIn,
    State(state): State<AdminState>,
    Path(name): Path<String>,
    part: Result<Query<Part>, QueryRejection>,
) -> Response {
    let back = "/status";
    let Ok(Query(part)) = part else {
        return refused(
            StatusCode::BAD_REQUEST,
            Some(&s),
            "Unknown parameters.",
            back,
        );
    };
    if !state.sources.contains(&name) {
        return refused(
            StatusCode::NOT_FOUND,
            Some(&s),
            &format!("No source named `{name}`."),
            back,
        );
    }
    let window = match funnel::window(part.window.as_deref(), &s, &source_path(&name)) {
        Ok(w) => w,
        Err(refusal) => return *refusal,
    };
    let funnel = crate::admin::funnel::of_source(&state, &name, window);
    let events = state
        .recent
        .newest(&name, crate::ingest::recent::KEEP_PER_SOURCE);
    let rejected = state.rejections.report(&name);
    let rate = state
        .source_history
        .get(&name)
        .map_or(0.0, |h| h.ok_per_second(crate::store::now_ms()));
    let live = html! {
        div.figures {
            (figure("Accepted/s", format!("{rate:.1}")))
            (figure("Rejected since start", rejected.total))
        }
        h2 { "Delivery funnel" }
        section #funnel-section {
            (funnel::steps(&funnel.steps, window, &source_path(&name)))
            (funnel::outcomes(&funnel.destinations))
        }
        h2 { "Newest events" }
        section {
            table #events {
                thead { tr { th { "Received" } th { "Type" } th { "Event" } th { "User" } th { "messageId" } th { "Event, as stored" } } }
                tbody {
                    @for e in &events {
                        @let name = e.event["event"].as_str().or(e.event["name"].as_str()).unwrap_or("–");
                        @let user = e.event["userId"].as_str().or(e.event["anonymousId"].as_str()).unwrap_or("–");
                        tr data-message-id=(e.message_id) {
                            td { (e.at) } td { (e.event_type) } td.event-name { (name) } td.user { code { (user) } }
                            td { code { (e.message_id) } }
                            td { details data-key=(e.message_id) { summary { "JSON" } pre { (serde_json::to_string_pretty(&e.event).unwrap_or_default()) } } }
                        }
                    }
                }
            }
            @if events.is_empty() { p.muted { "Nothing received since the host started." } }
        }
        h2 { "Newest refused" }
        section {
            table #rejected {
                thead { tr { th { "Refused" } th.num { "Index" } th { "messageId" } th { "Code" } th { "Why" } } }
                tbody {
                    @for r in &rejected.recent {
                        tr {
                            td { (r.at) } td.num { (r.event.index) }
                            td { code { (r.event.message_id.as_deref().unwrap_or("–")) } }
                            td { code { (r.event.code) } } td { (r.event.message) }
                        }
                    }
                }
            }
            @if rejected.recent.is_empty() { p.muted { "Nothing refused since the host started." } }
        }
    };
    let head = html! {
        p { a href="/status" { "Overview" } " / " (name) }
        h1 { "Source " (name) }
        p.muted { "Where its events went, the newest events as stored, and the newest refused ones with why; refreshed every 2 seconds." }
    };
    live_page(&format!("Source {name}"), &s, part.live(), head, live)
}
