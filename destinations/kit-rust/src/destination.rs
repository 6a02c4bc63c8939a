//! What every Rust destination shares: implement [`Destination`] and the kit
//! provides the component's `describe`, `check` and the settings half of
//! `deliver` (a settings error rejects every event with the message).

use crate::{reject, Event, Guest, Metadata, Outcome};

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
            Ok(parsed) => <T as Destination>::deliver(parsed, events),
            Err(why) => vec![Err(reject(why)); events.len()],
        }
    }
}
