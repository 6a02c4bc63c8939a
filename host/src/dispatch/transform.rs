//! A destination's chain of transformations: run in order on a claimed batch,
//! before its `deliver`.
//!
//! Where it sits: inside a batch in flight ([`super::flight`]), between the
//! claim and the call of the destination's component. Each link is a
//! `[[transforms]]` entry with its own component (from the shared catalog, so
//! hot-swapped and rolled back like a destination's), its own limits and
//! egress, and its own counters for this destination. Every event ends the
//! chain with a [`Fate`]: on to `deliver` (as the last link left it), filtered
//! (a link dropped it), or failed (a link asked to retry or reject it, or broke
//! its contract). A link that traps, runs past its deadline or breaks the
//! contract fails the events it had: they are retried like a failed delivery,
//! so the destination's breaker sees it, and nothing else is touched.
//!
//! What a link keeps is checked again ([`recheck`]): still a JSON object, the
//! same `messageId` and `type`, within [`MAX_EVENT_BYTES`]. The store keeps the
//! event as received, so a retry runs the whole chain again.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crate::config::TransformConfig;
use crate::imports::http::Egress;
use crate::imports::resolve::Lookup;
use crate::ingest::normalize::MAX_EVENT_BYTES;
use crate::observe::attempts::Tape;
use crate::plugins::PluginSlot;
use crate::runtime::Version;
use crate::runtime::{CallContext, CallError, Event, Outcome, SandboxCounters, Verdict};

/// What one transformation did for one destination (admin API, `/metrics`).
#[derive(Debug, Default)]
pub struct TransformStats {
    /// Events it dropped (settled as filtered).
    pub filtered: AtomicU64,
    /// Its sandbox violations while serving this destination.
    pub sandbox: Arc<SandboxCounters>,
}

/// One link of a destination's chain.
#[derive(Debug)]
pub struct Link {
    /// Its `[[transforms]]` entry (name, plugin, limits).
    pub config: TransformConfig,
    /// Its settings as JSON text, serialised once.
    settings: String,
    /// Its component's serving version, shared with every user of the plugin.
    pub slot: Arc<PluginSlot>,
    /// What each call runs with: its limits, its allowlist, its counters.
    ctx: CallContext,
    /// Its counters for this destination.
    pub stats: Arc<TransformStats>,
}

impl Link {
    /// The link of `config` in `destination`'s chain, served by `slot`.
    pub fn new(
        destination: &str,
        config: TransformConfig,
        slot: Arc<PluginSlot>,
        lookup: Arc<dyn Lookup>,
    ) -> Link {
        let stats = Arc::new(TransformStats::default());
        let tag: Arc<str> = Arc::from(format!("{destination}/{}", config.name).as_str());
        let ctx = CallContext {
            destination: Arc::from(destination),
            transform: Some(Arc::from(config.name.as_str())),
            limits: config.limits,
            egress: Egress::live(tag, &config.allowed_hosts, lookup, config.limits.timeout),
            counters: stats.sandbox.clone(),
            observers: Default::default(),
            clock: None,
            secrets: Default::default(),
            warm: true,
        };
        Link {
            settings: config.settings.to_string(),
            config,
            slot,
            ctx,
            stats,
        }
    }
}

/// Where an event stands after the chain.
#[derive(Debug, Clone)]
pub enum Fate {
    /// On to `deliver`, as the last link left it.
    Go(Event),
    /// A link dropped it: settle it as filtered.
    Filtered {
        /// Which link.
        transform: String,
        /// Its reason.
        reason: String,
    },
    /// A link failed it (or failed itself): settle it by this outcome.
    Failed(Outcome),
}

/// The serving version of every link, taken once per batch (a batch runs the
/// whole chain on the versions it started with); `None` while one has not loaded.
pub fn versions(chain: &[Arc<Link>]) -> Option<Vec<Arc<Version>>> {
    chain.iter().map(|l| l.slot.current()).collect()
}

/// Run `events` through the chain (`links` with their `versions`), recording
/// any lookups on `tape`.
pub async fn apply(
    links: &[Arc<Link>],
    versions: &[Arc<Version>],
    events: Vec<Event>,
    tape: &Tape,
) -> Vec<Fate> {
    let mut fates: Vec<Fate> = events.into_iter().map(Fate::Go).collect();
    for (link, version) in links.iter().zip(versions) {
        let (at, batch): (Vec<usize>, Vec<Event>) = fates
            .iter()
            .enumerate()
            .filter_map(|(i, f)| match f {
                Fate::Go(e) => Some((i, e.clone())),
                _ => None,
            })
            .unzip();
        if batch.is_empty() {
            break;
        }
        let mut ctx = link.ctx.clone();
        ctx.observers.push(Arc::new(tape.clone()));
        let name = &link.config.name;
        match version.plugin.transform(&ctx, &link.settings, &batch).await {
            Ok(verdicts) => {
                for ((i, event), verdict) in at.into_iter().zip(batch).zip(verdicts) {
                    fates[i] = fate_of(link, event, verdict);
                }
            }
            Err(e) => {
                tracing::warn!(
                    destination = &*link.ctx.destination,
                    transform = name.as_str(),
                    batch = batch.len(),
                    "transform failed: {e}"
                );
                let reason = format!("transform `{name}`: {e}");
                let outcome = match e {
                    CallError::Invalid(_) => Outcome::Reject(reason),
                    _ => Outcome::Retry {
                        reason,
                        after: None,
                    },
                };
                for i in at {
                    fates[i] = Fate::Failed(outcome.clone());
                }
            }
        }
    }
    fates
}

/// One verdict of `link` on `event`.
fn fate_of(link: &Link, event: Event, verdict: Verdict) -> Fate {
    let name = &link.config.name;
    match verdict {
        Verdict::Keep(json) => match recheck(&event, json) {
            Ok(event) => Fate::Go(event),
            Err(why) => {
                link.stats.sandbox.contract.fetch_add(1, Relaxed);
                tracing::warn!(
                    destination = &*link.ctx.destination,
                    transform = name.as_str(),
                    message_id = %event.message_id,
                    "transform broke the contract: {why}"
                );
                Fate::Failed(Outcome::Retry {
                    reason: format!("transform `{name}` broke the contract: {why}"),
                    after: None,
                })
            }
        },
        Verdict::Drop(reason) | Verdict::Fail(Outcome::Filtered(reason)) => {
            link.stats.filtered.fetch_add(1, Relaxed);
            Fate::Filtered {
                transform: name.clone(),
                reason,
            }
        }
        Verdict::Fail(Outcome::Retry { reason, after }) => Fate::Failed(Outcome::Retry {
            reason: format!("transform `{name}`: {reason}"),
            after,
        }),
        Verdict::Fail(Outcome::Reject(reason)) => {
            Fate::Failed(Outcome::Reject(format!("transform `{name}`: {reason}")))
        }
        Verdict::Fail(Outcome::Delivered) => Fate::Go(event),
    }
}

/// The two fields of a kept event that must not change. A key given twice is
/// refused (serde's duplicate-field error), so no reader can see another one.
#[derive(serde::Deserialize)]
struct Head<'a> {
    #[serde(rename = "messageId", borrow, default)]
    message_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "type", borrow, default)]
    kind: Option<std::borrow::Cow<'a, str>>,
}

/// What a transformation kept is still this event: a JSON object with the
/// same `messageId` and `type`, within the size limit of a stored event.
pub fn recheck(before: &Event, json: String) -> Result<Event, String> {
    if json.len() > MAX_EVENT_BYTES {
        return Err(format!(
            "the event it kept is {} bytes; the limit is {MAX_EVENT_BYTES}",
            json.len()
        ));
    }
    // Only the two fields are read; the rest is scanned (so the text must be
    // JSON) but not built, which keeps the check cheap on every event.
    if !json.trim_start().starts_with('{') {
        return Err(match serde_json::from_str::<serde::de::IgnoredAny>(&json) {
            Ok(_) => "the event it kept is not a JSON object".into(),
            Err(e) => format!("the event it kept is not JSON: {e}"),
        });
    }
    let head: Head<'_> = serde_json::from_str(&json).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            format!("the event it kept is not a Segment message: {e}")
        }
        _ => format!("the event it kept is not JSON: {e}"),
    })?;
    if head.message_id.as_deref() != Some(before.message_id.as_str()) {
        return Err("the event it kept has another `messageId`".into());
    }
    let kept_type = head.kind.as_deref();
    let same_type = kept_type
        .and_then(crate::runtime::bindings::switchyard::destination::types::EventType::parse)
        .is_some_and(|t| t == before.event_type);
    if !same_type {
        return Err(format!(
            "the event it kept has another `type` ({})",
            kept_type.unwrap_or("none")
        ));
    }
    Ok(Event {
        json,
        ..before.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::bindings::switchyard::destination::types::EventType;

    fn event() -> Event {
        Event {
            message_id: "m1".into(),
            event_type: EventType::Track,
            json: r#"{"type":"track","messageId":"m1","event":"A"}"#.into(),
        }
    }

    #[test]
    fn a_kept_event_must_stay_the_same_event() {
        let e = event();
        let kept = recheck(
            &e,
            r#"{"type":"track","messageId":"m1","event":"B"}"#.into(),
        )
        .unwrap();
        assert!(kept.json.contains("\"B\""));
        assert_eq!(kept.message_id, "m1");
        for (json, why) in [
            ("[1]", "not a JSON object"),
            ("{", "not JSON"),
            (r#"{"type":"track","messageId":"m2"}"#, "`messageId`"),
            (r#"{"type":"track"}"#, "`messageId`"),
            (
                r#"{"type":"identify","messageId":"m1"}"#,
                "`type` (identify)",
            ),
            (r#"{"messageId":"m1"}"#, "`type` (none)"),
            (
                r#"{"type":"track","messageId":"m1","messageId":"m2"}"#,
                "duplicate field",
            ),
            (r#"{"type":"track","messageId":7}"#, "not a Segment message"),
            (r#"{"type":"track","messageId":"m1","x":[}"#, "not JSON"),
        ] {
            let err = recheck(&e, json.into()).unwrap_err();
            assert!(err.contains(why), "{json}: {err}");
        }
        let huge = format!(
            r#"{{"type":"track","messageId":"m1","p":"{}"}}"#,
            "x".repeat(MAX_EVENT_BYTES)
        );
        assert!(recheck(&e, huge).unwrap_err().contains("bytes"));
    }
}
