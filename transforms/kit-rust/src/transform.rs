//! What every Rust transformation shares: implement [`Transform`] and the kit
//! provides the component's `describe`, `check`, and `transform` around your
//! per-event [`Transform::event`] (or your whole-batch [`Transform::batch`]).

use serde_json::{Map, Value};

use crate::{Event, Failure, Guest, Metadata, RetryHint, Verdict};

/// One event as a JSON object: the normalised Segment message.
pub type Message = Map<String, Value>;

/// What becomes of one event, in the kit's terms.
#[derive(Debug, Clone)]
pub enum Step {
    /// Pass it on, as this message (the host checks that `messageId` and
    /// `type` did not change).
    Keep(Message),
    /// Pass it on exactly as it came (cheaper than `Keep`: nothing is
    /// serialised again).
    Pass,
    /// Leave it out of the destination, for this reason (counted as filtered).
    Drop(String),
    /// It cannot be transformed: [`retry`] or [`reject`].
    Fail(Failure),
}

/// A transient failure (a lookup timed out): retried with the destination's backoff.
pub fn retry(reason: impl Into<String>, after_ms: Option<u64>) -> Step {
    Step::Fail(Failure::Retry(RetryHint {
        reason: reason.into(),
        after_ms,
    }))
}

/// A permanent failure: the event goes to the destination's dead letters.
pub fn reject(reason: impl Into<String>) -> Step {
    Step::Fail(Failure::Reject(reason.into()))
}

/// A transformation: its description, its settings, and what it does to an event.
pub trait Transform {
    /// Name in `describe`.
    const NAME: &'static str;
    /// Version in `describe` (usually `env!("CARGO_PKG_VERSION")`).
    const VERSION: &'static str;
    /// JSON Schema of the settings, for `describe`.
    const SETTINGS_SCHEMA: &'static str;
    /// Largest batch it accepts.
    const MAX_BATCH: u32 = 1_000;
    /// The parsed, validated settings.
    type Settings;

    /// Parse and validate the settings (a JSON object); the message names the bad field.
    fn settings(raw: &str) -> Result<Self::Settings, String>;

    /// What becomes of one event.
    fn event(settings: &Self::Settings, event: Message) -> Step;

    /// What becomes of each event of a batch, in order; by default
    /// [`Transform::event`] on each. Override it to look things up once per batch.
    fn batch(settings: &Self::Settings, events: Vec<Message>) -> Vec<Step> {
        events
            .into_iter()
            .map(|e| Self::event(settings, e))
            .collect()
    }
}

impl<T: Transform> Guest for T {
    fn describe() -> Metadata {
        Metadata {
            name: T::NAME.into(),
            version: T::VERSION.into(),
            settings_schema: T::SETTINGS_SCHEMA.into(),
            max_batch: T::MAX_BATCH,
        }
    }

    fn check(settings: String) -> Result<(), String> {
        T::settings(&settings).map(|_| ())
    }

    fn transform(settings: String, events: Vec<Event>) -> Vec<Verdict> {
        let parsed = match T::settings(&settings) {
            Ok(parsed) => parsed,
            Err(why) => return vec![Verdict::Fail(Failure::Reject(why)); events.len()],
        };
        run::<T>(&parsed, events)
    }
}

/// The batch as messages through `T`, and the steps as verdicts.
pub(crate) fn run<T: Transform>(settings: &T::Settings, events: Vec<Event>) -> Vec<Verdict> {
    let n = events.len();
    let messages: Vec<Message> = events
        .iter()
        .map(|e| match serde_json::from_str::<Value>(&e.json) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        })
        .collect();
    let mut steps = T::batch(settings, messages);
    steps.resize(n, reject("the transformation gave no step for this event"));
    steps.truncate(n);
    steps
        .into_iter()
        .zip(events)
        .map(|(step, event)| verdict(step, event))
        .collect()
}

/// A step as the WIT verdict.
fn verdict(step: Step, event: Event) -> Verdict {
    match step {
        Step::Keep(message) => Verdict::Keep(Value::Object(message).to_string()),
        Step::Pass => Verdict::Keep(event.json),
        Step::Drop(reason) => Verdict::Drop(reason),
        Step::Fail(failure) => Verdict::Fail(failure),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EventType;

    struct Upper;
    impl Transform for Upper {
        const NAME: &'static str = "upper";
        const VERSION: &'static str = "1";
        const SETTINGS_SCHEMA: &'static str = "{}";
        type Settings = ();
        fn settings(_: &str) -> Result<(), String> {
            Ok(())
        }
        fn event(_: &(), mut e: Message) -> Step {
            match e
                .get("event")
                .and_then(Value::as_str)
                .map(str::to_uppercase)
            {
                Some(name) if name == "SKIP" => Step::Drop("skipped".into()),
                Some(name) if name == "SAME" => Step::Pass,
                Some(name) => {
                    e.insert("event".into(), name.into());
                    Step::Keep(e)
                }
                None => reject("no event name"),
            }
        }
    }

    fn event(json: &str) -> Event {
        Event {
            message_id: "m".into(),
            event_type: EventType::Track,
            json: json.into(),
        }
    }

    #[test]
    fn each_event_gets_its_verdict_in_order() {
        let verdicts = run::<Upper>(
            &(),
            vec![
                event(r#"{"event":"a"}"#),
                event(r#"{"event":"skip"}"#),
                event("{}"),
                event(r#"{ "event" : "same" }"#),
            ],
        );
        assert_eq!(verdicts.len(), 4);
        assert!(matches!(&verdicts[3], Verdict::Keep(j) if j == r#"{ "event" : "same" }"#));
        assert!(matches!(&verdicts[0], Verdict::Keep(j) if j == r#"{"event":"A"}"#));
        assert!(matches!(&verdicts[1], Verdict::Drop(r) if r == "skipped"));
        assert!(matches!(&verdicts[2], Verdict::Fail(Failure::Reject(_))));
    }
}
