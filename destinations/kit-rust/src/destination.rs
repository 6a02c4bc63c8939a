//! What every Rust destination shares: implement [`Destination`] and the kit
//! provides the component's `describe`, `check` and the settings half of
//! `deliver` (a settings error rejects every event with the message). After a
//! delivery with failures, the kit writes one `warn` line: "N of M events
//! failed", with the first failure's reason.

use crate::deleting_bindings::exports::switchyard::destination::deletion::Guest as DeletionGuest;
use crate::deleting_bindings::Guest as DeletingGuest;
use crate::{reject, Event, Failure, Guest, Metadata, Outcome, Subject};

/// A destination: its description, its settings, and the delivery of a batch.
pub trait Destination {
    /// Name in `describe`.
    const NAME: &'static str;
    /// Version in `describe` (usually `env!("CARGO_PKG_VERSION")`).
    const VERSION: &'static str;
    /// JSON Schema of the settings, for `describe`.
    const SETTINGS_SCHEMA: &'static str;
    /// Largest batch `deliver` accepts.
    const MAX_BATCH: u32;
    /// The parsed, validated settings.
    type Settings;

    /// Parse and validate the settings (a JSON object); the message names the bad field.
    fn settings(raw: &str) -> Result<Self::Settings, String>;

    /// One outcome per event, in order.
    fn deliver(settings: Self::Settings, events: Vec<Event>) -> Vec<Outcome>;
}

/// A destination that can also delete users at its vendor (a privacy
/// regulation's `DELETE`): export it with
/// [`export_deleting_destination`](crate::export_deleting_destination).
pub trait Deletion: Destination {
    /// Ask the vendor to delete these users: one outcome per subject, in order
    /// (`Ok` once the vendor took the request; `retry` and `reject` as for
    /// events: the host tries a `retry` again within the retry window).
    fn delete_subjects(settings: Self::Settings, subjects: Vec<Subject>) -> Vec<Outcome>;
}

impl<T: Deletion> DeletionGuest for T {
    fn delete_subjects(settings: String, subjects: Vec<Subject>) -> Vec<Outcome> {
        match T::settings(&settings) {
            Ok(parsed) => <T as Deletion>::delete_subjects(parsed, subjects),
            Err(why) => vec![Err(reject(why)); subjects.len()],
        }
    }
}

impl<T: Destination> DeletingGuest for T {
    fn describe() -> Metadata {
        <T as Guest>::describe()
    }

    fn check(settings: String) -> Result<(), String> {
        <T as Guest>::check(settings)
    }

    fn deliver(settings: String, events: Vec<Event>) -> Vec<Outcome> {
        <T as Guest>::deliver(settings, events)
    }
}

impl<T: Destination> Guest for T {
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

    fn deliver(settings: String, events: Vec<Event>) -> Vec<Outcome> {
        match T::settings(&settings) {
            Ok(parsed) => {
                let outcomes = <T as Destination>::deliver(parsed, events);
                if let Some(line) = failure_summary(&outcomes) {
                    crate::warn(&line);
                }
                outcomes
            }
            Err(why) => vec![Err(reject(why)); events.len()],
        }
    }
}

/// "2 of 5 events failed; the first: retry: acme answered 503: ..." when any failed.
fn failure_summary(outcomes: &[Outcome]) -> Option<String> {
    let mut failures = outcomes.iter().filter_map(|o| o.as_ref().err());
    let first = failures.next()?;
    let failed = 1 + failures.count();
    let first = match first {
        Failure::Retry(hint) => format!("retry: {}", hint.reason),
        Failure::Reject(reason) => format!("reject: {reason}"),
    };
    Some(format!(
        "{failed} of {} events failed; the first: {first}",
        outcomes.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry;

    #[test]
    fn failures_are_summed_up_in_one_line() {
        assert_eq!(failure_summary(&[Ok(()), Ok(())]), None);
        assert_eq!(failure_summary(&[]), None);
        let outcomes = [
            Ok(()),
            Err(retry("acme answered 503: busy", Some(1000))),
            Err(reject("no user")),
        ];
        assert_eq!(
            failure_summary(&outcomes).unwrap(),
            "2 of 3 events failed; the first: retry: acme answered 503: busy"
        );
        assert_eq!(
            failure_summary(&[Err(reject("bad"))]).unwrap(),
            "1 of 1 events failed; the first: reject: bad"
        );
    }
}
