//! {{name}}: a Switchyard transformation. Drops the events named in
//! `settings.drop_events` and removes the dotted paths in `settings.remove`.
//!
//! The kit (`kit/`, the same `switchyard-transform-kit` as the bundled Rust
//! transformations use) turns the `kit::Transform` below into the component's
//! `describe`, `check` and `transform`. A settings error rejects every event of
//! the batch with its message. Change `event` into what you need.

use serde::Deserialize;
use switchyard_transform_kit::{self as kit, Message, Step};

const NAME: &str = "{{name}}";

const SETTINGS_SCHEMA: &str = r#"{
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "drop_events": {"type": "array", "items": {"type": "string"}, "description": "track event names not sent"},
    "remove": {"type": "array", "items": {"type": "string"}, "description": "dotted paths removed, e.g. context.ip"}
  }
}"#;

/// The transformation's settings (the `settings` table of its `[[transforms]]`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// `track` event names left out of the destination.
    #[serde(default)]
    drop_events: Vec<String>,
    /// Dotted paths removed from every other event.
    #[serde(default)]
    remove: Vec<String>,
}

struct Component;

impl kit::Transform for Component {
    const NAME: &'static str = NAME;
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SETTINGS_SCHEMA: &'static str = SETTINGS_SCHEMA;
    type Settings = Settings;

    fn settings(raw: &str) -> Result<Settings, String> {
        kit::parse_settings(raw, NAME)
    }

    fn event(settings: &Settings, mut event: Message) -> Step {
        // The event is the whole normalised Segment message, as a JSON object.
        let name = event.get("event").and_then(|e| e.as_str()).unwrap_or_default();
        if settings.drop_events.iter().any(|d| d == name) {
            return Step::Drop(format!("{NAME} drops `{name}`"));
        }
        for path in &settings.remove {
            kit::take_path(&mut event, path);
        }
        Step::Keep(event)
    }
}

switchyard_transform_kit::export_transform!(Component);
