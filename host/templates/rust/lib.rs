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

// Unit tests: `make unit` (a plain `cargo test` on this machine). Outside a
// component the kit's `kit::mock` answers the requests `deliver` sends.
#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_destination_kit::{mock, Destination as _, EventType, Failure};

    fn events(n: usize) -> Vec<Event> {
        (0..n)
            .map(|i| Event {
                message_id: format!("m{i}"),
                event_type: EventType::Track,
                json: format!(r#"{{"type":"track","event":"Signed Up","messageId":"m{i}"}}"#),
            })
            .collect()
    }

    fn settings() -> Settings {
        Component::settings(include_str!("../sample-settings.json")).expect("sample settings")
    }

    #[test]
    fn a_batch_is_one_post_and_a_429_is_retried_when_the_vendor_says() {
        mock::respond(|_| mock::answer(200, &[], "{}"));
        let outcomes = Component::deliver(settings(), events(2));
        assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
        let sent = mock::requests();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].method, "POST");

        mock::respond(|_| mock::answer(429, &[("retry-after", "2")], "slow down"));
        let outcomes = Component::deliver(settings(), events(1));
        assert!(
            matches!(&outcomes[0], Err(Failure::Retry(hint)) if hint.after_ms == Some(2000)),
            "{outcomes:?}"
        );
    }

    #[test]
    fn unknown_settings_are_refused() {
        let why =
            Component::settings(r#"{"url":"https://api.example.com","tokn":"x"}"#).unwrap_err();
        assert!(why.contains("tokn"), "{why}");
    }
}
