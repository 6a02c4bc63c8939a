//! `/status/privacy`: the privacy regulations as the audit log shows them,
//! and what they suppress on this host.
//!
//! Where it sits: one page of the status page, reading `crate::privacy` and
//! the ingest counters as `GET /admin/regulations` and `/metrics` do.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;

use super::session::LoggedIn;
use super::view::{figure, html_response, layout};
use crate::admin::AdminState;
use crate::observe::metrics::SourceLabel;

/// Deletions the page shows, newest first.
const DELETIONS_SHOWN: usize = 20;

pub(super) async fn page(LoggedIn(s): LoggedIn, State(state): State<AdminState>) -> Response {
    let regulations = state.privacy.list().await;
    let deletions = state.privacy.deletions(DELETIONS_SHOWN).await;
    let in_force = state.privacy.suppressions().load().len();
    let instruments = &state.metrics.instruments;
    let dropped: Vec<(String, u64)> = state
        .sources
        .iter()
        .map(|name| {
            let n = instruments
                .events_suppressed
                .get_or_create(&SourceLabel {
                    source: name.clone(),
                })
                .get();
            (name.clone(), n)
        })
        .collect();
    let body = html! {
        h1 { "Privacy" }
        div.figures {
            (figure("Subjects suppressed here", in_force))
            (figure("Regulations", regulations.len()))
        }
        h2 { "Suppressed events since start" }
        section {
            table #suppressed {
                thead { tr { th { "Source" } th.num { "Events answered and dropped" } } }
                tbody {
                    @for (name, n) in &dropped {
                        tr data-source=(name) { td { (name) } td.num { (n) } }
                    }
                }
            }
        }
        h2 { "Deletions" }
        section {
            p.muted { "The newest " (DELETIONS_SHOWN) ": what each erased from the store and this host's memory, and what each destination answered." }
            table #deletions {
                thead { tr {
                    th { "Id" } th { "State" } th.num { "Log" } th.num { "Retries" }
                    th.num { "Dead letters" } th.num { "In memory" } th { "Destinations" }
                } }
                tbody {
                    @for (r, p) in &deletions {
                        tr data-deletion=(r.id) {
                            td { code { (r.id) } }
                            td.state {
                                (r.state.as_str())
                                @if let Some(why) = &r.reason { br; span.error { (why) } }
                            }
                            @if let Some(p) = p {
                                td.num { (p.erased.log) }
                                td.num { (p.erased.retries) }
                                td.num { (p.erased.dead_letters) }
                                td.num { (p.memory.values().sum::<u64>()) }
                                td {
                                    @for (name, d) in &p.destinations {
                                        span data-destination=(name) { (name) ": " (d.state.as_str()) }
                                        @if let Some(why) = &d.reason { " (" span.muted { (why) } ")" }
                                        br;
                                    }
                                }
                            } @else {
                                td.num { "–" } td.num { "–" } td.num { "–" } td.num { "–" } td { "not started" }
                            }
                        }
                    }
                }
            }
            @if deletions.is_empty() { p.muted { "No deletion yet." } }
        }
        h2 { "Regulations (the audit log)" }
        section {
            p.muted { "Subjects are kept as keyed hashes only, never as ids." }
            table #regulations {
                thead { tr {
                    th { "Id" } th { "Type" } th { "Sources" } th.num { "Subjects" }
                    th { "Asked" } th { "By" } th { "State" }
                } }
                tbody {
                    @for r in regulations.iter().rev() {
                        tr data-regulation=(r.id) {
                            td { code { (r.id) } }
                            td { (r.kind.as_str()) }
                            td { (r.sources.as_ref().map_or("every source".to_string(), |s| s.join(", "))) }
                            td.num { (r.subjects) }
                            td { (r.requested_at) }
                            td { (r.requested_by) }
                            td.state {
                                (r.state.as_str())
                                @if let Some(why) = &r.reason { br; span.error { (why) } }
                                @if let Some(at) = &r.done_at { br; span.muted { (at) } }
                            }
                        }
                    }
                }
            }
            @if regulations.is_empty() { p.muted { "No regulation yet." } }
        }
    };
    html_response(StatusCode::OK, layout("Privacy", Some(&s), body))
}
