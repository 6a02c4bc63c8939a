//! {{name}}: a Switchyard destination. One POST per batch to `settings.url`.
//!
//! The kit (`kit/`, the same `switchyard-destination-kit` as the bundled Rust
//! destinations use) turns the `kit::Destination` below into the component's
//! `describe`, `check` and `deliver`. A settings error rejects every event of the
//! batch with its message; the answer is classified the standard way (2xx
//! delivered; 408, 429 and 5xx retried with `Retry-After` as the hint; other
//! statuses rejected). Change `deliver` into your vendor's API.

use serde::Deserialize;
use switchyard_destination_kit::{self as kit, Event};

const NAME: &str = "{{name}}";

const SETTINGS_SCHEMA: &str = r#"{
  "type": "object",
  "required": ["url"],
  "additionalProperties": false,
  "properties": {
    "url": {"type": "string", "description": "Where to POST each batch, http:// or https://"},
    "token": {"type": "string", "description": "Sent as Authorization: Bearer <token>"}
  }
}"#;

/// The destination's settings (the `settings` table of its config).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// Where to POST.
    url: String,
    /// Optional bearer token.
    #[serde(default)]
    token: Option<String>,
}

struct Component;

impl kit::Destination for Component {
    const NAME: &'static str = NAME;
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SETTINGS_SCHEMA: &'static str = SETTINGS_SCHEMA;
    const MAX_BATCH: u32 = 100;
    type Settings = Settings;

    fn settings(raw: &str) -> Result<Settings, String> {
        let settings: Settings = kit::parse_settings(raw, NAME)?;
        kit::check_url(NAME, "url", &settings.url)?;
        Ok(settings)
    }

    fn deliver(settings: Settings, events: Vec<Event>) -> Vec<kit::Outcome> {
        // Each event's JSON is the whole normalised Segment message.
        let body: Vec<_> = events.iter().map(kit::event_json).collect();
        let mut headers = kit::Headers::new();
        if let Some(token) = &settings.token {
            headers.push(("authorization".into(), format!("Bearer {token}")));
        }
        let outcome = kit::classify_as(NAME, kit::post_json(&settings.url, &headers, &body));
        vec![outcome; events.len()]
    }
}

switchyard_destination_kit::export_destination!(Component);
