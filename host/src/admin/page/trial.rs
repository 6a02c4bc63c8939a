//! The status page's view of a plugin's version on trial ([`crate::trial`]):
//! its stage and figures, a shadow's newest differences, a canary's failure
//! rates, and how the last trial ended. Part of the destination page
//! (`destination.rs`); promoted and discarded through the admin API.

use maud::{html, Markup};

use crate::plugins::PluginSlot;

/// The `#trial` section of the plugin of a destination.
pub fn section(slot: &PluginSlot) -> Markup {
    let trial = slot.trial().map(|t| t.report());
    let ended = slot.ended_trial();
    html! {
        h3 { "Version on trial" }
        section #trial {
            @if let Some(t) = &trial {
                table {
                    tr { th { "Stage" } td #trial-stage { (t.stage) @if let Some(p) = t.percent { " (" (p) "% of users)" } } }
                    tr { th { "Version" } td { (t.version) } }
                    tr { th { "sha256" } td { code { (t.sha256) } } }
                    tr { th { "Since" } td { (t.started_at) } }
                    @if let Some(s) = &t.shadow {
                        tr { th { "Batches" } td #trial-figures { (s.compared) " compared: " (s.matched) " the same, " (s.differed) " different; " (s.skipped) " skipped" } }
                    }
                    @if let Some(c) = &t.canary {
                        tr { th { "Canary" } td #trial-figures { "failed " (c.failed) " of " (c.events) " events (" (format!("{:.1}", c.failure_rate * 100.0)) "%)" } }
                        tr { th { "Serving" } td { "failed " (c.serving_failed) " of " (c.serving_events) " (" (format!("{:.1}", c.serving_failure_rate * 100.0)) "%); rollback above +" (format!("{:.1}", c.margin * 100.0)) " points after " (c.min_events) " events" } }
                    }
                }
                @if let Some(s) = &t.shadow {
                    @if !s.differences.is_empty() {
                        table #trial-differences {
                            thead { tr { th { "When" } th { "Destination" } th { "What" } th { "Serving" } th { "Shadow" } } }
                            tbody {
                                @for d in &s.differences {
                                    @for x in &d.differences {
                                        tr { td { (d.at) } td { (d.destination) } td { (x.what) } td { code { (x.expected) } } td { code { (x.got) } } }
                                    }
                                }
                            }
                        }
                    } @else {
                        p.muted { "No difference so far." }
                    }
                }
                p.muted { "Promote with POST /admin/plugins/" (slot.name) "/promote or `switchyard trial promote " (slot.name) "`; drop it with .../discard." }
            } @else {
                p.muted { "None. Stage one with PUT /admin/plugins/" (slot.name) "?stage=shadow or ?stage=canary&percent=10." }
            }
            @if let Some(e) = &ended {
                p #trial-ended { "Last trial (" (e.trial.stage) " " (e.trial.version) "): " (e.ending.as_str()) " at " (e.at) ": " (e.reason) }
            }
        }
    }
}
