//! A destination that drifted from the webhook: it takes the webhook's
//! settings (`url`, `secret`, `headers`) but wraps the batch as
//! `{"events": [...]}` and marks each request with `x-drift: 1`. It is the
//! "new version with a bug" of the trial tests (`tests/trial.rs`): a shadow of
//! it differs from the webhook, and a receiver that refuses `x-drift`
//! requests makes a canary of it fail. Never bundled.

use std::collections::BTreeMap;

use serde::Deserialize;
use switchyard_destination_kit::{self as kit, Event};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    url: String,
    #[serde(default)]
    #[allow(dead_code)] // accepted as the webhook accepts it; this version forgot to sign
    secret: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

struct Drift;

impl kit::Destination for Drift {
    const NAME: &'static str = "drift";
    const VERSION: &'static str = "0.0.1";
    const SETTINGS_SCHEMA: &'static str = r#"{"type":"object","required":["url"]}"#;
    const MAX_BATCH: u32 = 500;
    type Settings = Settings;

    fn settings(raw: &str) -> Result<Settings, String> {
        kit::parse_settings(raw, "drift")
    }

    fn deliver(settings: Settings, events: Vec<Event>) -> Vec<kit::Outcome> {
        if events.is_empty() {
            return Vec::new();
        }
        let mut body = b"{\"events\":[".to_vec();
        for (i, e) in events.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(e.json.as_bytes());
        }
        body.extend_from_slice(b"]}");
        let mut headers = vec![
            ("content-type".to_string(), "application/json".to_string()),
            ("x-drift".to_string(), "1".to_string()),
        ];
        headers.extend(settings.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
        let outcome = kit::classify(kit::send("POST", &settings.url, &headers, body));
        vec![outcome; events.len()]
    }
}

switchyard_destination_kit::export_destination!(Drift);
