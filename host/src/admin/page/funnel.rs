//! The delivery funnel on the status pages (computed by [`crate::admin::funnel`]):
//! one row per step with its count, a bar against what sources sent, and a
//! link to the events or attempts behind it; the window chosen by `?window=`.

use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};

use super::session::Session;
use crate::admin::funnel::{SourceOutcome, Step, Window};

/// The window of `?window=`, or the page that says which ones there are
/// (with a link back to `back`).
pub fn window(text: Option<&str>, s: &Session, back: &str) -> Result<Window, Box<Response>> {
    Window::parse(text).map_err(|_| {
        Box::new(super::view::refused(
            StatusCode::BAD_REQUEST,
            Some(s),
            "The funnel's window is `1h` or `24h`.",
            back,
        ))
    })
}

/// Width of a step's bar at 100 % (SVG units; the page has no inline styles).
const BAR: u64 = 240;

/// The window's two choices, the chosen one in bold.
fn windows(chosen: Window, path: &str) -> Markup {
    html! {
        p.muted #funnel-window {
            "Window: "
            @for w in [Window::Hour, Window::Day] {
                @if w == chosen { b { (w.label()) } } @else { a href={(path) "?window=" (w.label())} { (w.label()) } }
                " "
            }
        }
    }
}

/// A bar `count` long against `of`.
fn bar(count: u64, of: u64, class: &str) -> Markup {
    let w = (count.min(of) * BAR).checked_div(of).unwrap_or(0);
    html! {
        svg.funnel-bar width=(BAR) height="10" viewBox={"0 0 " (BAR) " 10"} role="img" aria-label={(count) " of " (of)} {
            rect.track x="0" y="0" width=(BAR) height="10" {}
            @if w > 0 { rect class=(class) x="0" y="0" width=(w) height="10" {} }
        }
    }
}

fn class_of(key: &str) -> &'static str {
    match key {
        "delivered" | "received" | "sent" => "ok",
        "refused" | "dead_lettered" => "dead",
        "retrying" => "retried",
        _ => "muted",
    }
}

/// The steps, as a table (`#funnel`, a row per step with `data-step`).
pub fn steps(steps: &[Step], window: Window, path: &str) -> Markup {
    let sent = steps.first().map_or(0, |s| s.count);
    html! {
        (windows(window, path))
        table #funnel {
            thead { tr { th { "Step" } th.num { "Events" } th { } th { } } }
            tbody {
                @for s in steps {
                    tr data-step=(s.key) {
                        td { (s.label) @if s.now { " " span.muted { "(now)" } } }
                        td.num data-count { (s.count) }
                        td { (bar(s.count, sent, class_of(s.key))) }
                        td { @if let Some(h) = &s.href { a href=(h) { "see them" } } }
                    }
                }
            }
        }
    }
}

/// What each destination did with a source's events.
pub fn outcomes(list: &[SourceOutcome]) -> Markup {
    html! {
        table #funnel-destinations {
            thead { tr { th { "Destination" } th.num { "Delivered" } th.num { "Filtered by a transformation" } th.num { "Dead-lettered" } th.num { "Retry attempts" } } }
            tbody {
                @for o in list {
                    tr data-destination=(o.destination) {
                        td { a href=(o.href) { (o.destination) } }
                        td.num data-delivered { (o.delivered) }
                        td.num { (o.filtered_by_transformation) }
                        td.num data-dead { (o.dead_lettered) }
                        td.num { (o.retried_attempts) }
                    }
                }
            }
        }
        p.muted { "Routing's filter is counted per destination: each destination's page shows it." }
    }
}
