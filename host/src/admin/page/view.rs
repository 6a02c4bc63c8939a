//! The status page's frame and shared pieces: the layout every page shares,
//! the headers every answer carries (a strict Content-Security-Policy: no
//! inline script, nothing from elsewhere), the embedded stylesheet and script,
//! and the small widgets (health badges, CSRF-carrying buttons, figures).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

use super::session::Session;
use crate::dispatch::health::Health;

/// The stylesheet, embedded in the binary.
pub const STYLE: &str = include_str!("assets/style.css");
/// The script that keeps `#live` fresh, embedded in the binary.
pub const LIVE_JS: &str = include_str!("assets/live.js");
/// The icon browsers show in the tab (also at `/favicon.ico`, where they look first).
pub const FAVICON: &str = include_str!("assets/favicon.svg");

/// Only this origin's stylesheet and script, no framing, no inline script.
const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; \
    img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// An HTML answer with the page's security headers.
pub fn html_response(status: StatusCode, markup: Markup) -> Response {
    let mut r = (status, markup.into_string()).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

/// A whole page: header (with log out when logged in), title and body.
pub fn layout(title: &str, session: Option<&Session>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Switchyard" }
                link rel="stylesheet" href="/status/assets/style.css";
                link rel="icon" type="image/svg+xml" href="/status/assets/favicon.svg";
                script src="/status/assets/live.js" defer {}
            }
            body {
                header {
                    a href="/status" { "Switchyard" }
                    @if let Some(s) = session {
                        span.muted { "status" }
                        a href="/status/privacy" { "Privacy" }
                        form method="post" action="/status/logout" {
                            (csrf_field(s))
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The hidden field every changing form carries.
pub fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// A button that POSTs to `action` with the CSRF token and `fields`.
pub fn button(
    session: &Session,
    action: &str,
    label: &str,
    fields: &[(&str, &str)],
    danger: bool,
) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf_field(session))
            @for (k, v) in fields {
                input type="hidden" name=(k) value=(v);
            }
            button type="submit" class=[danger.then_some("danger")] { (label) }
        }
    }
}

/// A health state as a coloured badge.
pub fn health(h: Health) -> Markup {
    let name = match h {
        Health::Healthy => "healthy",
        Health::Degraded => "degraded",
        Health::Paused => "paused",
    };
    html! { span class={"badge " (name)} data-health=(name) { (name) } }
}

/// A labelled figure.
pub fn figure(label: &str, value: impl std::fmt::Display) -> Markup {
    html! { div { span.muted { (label) } b { (value) } } }
}

/// A latency in ms, or a dash when nothing was delivered yet.
pub fn ms(v: Option<u64>) -> String {
    v.map_or_else(|| "–".to_string(), duration)
}

pub use crate::observe::human::duration;

/// What needs a person beside the health (`dead-lettering`, `retrying`), as a badge.
pub fn attention(what: Option<&str>, count: u64) -> Markup {
    html! {
        @if let Some(what) = what {
            " " span class={"badge " (what)} data-attention=(what) { (what) " " (count) }
        }
    }
}

/// A page that says why something could not be done, with a way back.
pub fn refused(
    status: StatusCode,
    session: Option<&Session>,
    message: &str,
    back: &str,
) -> Response {
    html_response(
        status,
        layout(
            "Refused",
            session,
            html! {
                h1 { "Refused" }
                p.refused role="alert" { (message) }
                p { a href=(back) { "Back" } }
            },
        ),
    )
}
