//! The README's example destination, compiled as a crate of its own: the export macro
//! works from outside the kit, with no `unsafe` and no `wit-bindgen` in the destination.

use serde::Deserialize;
use switchyard_destination_kit::{self as kit, Event, EventType, Failure, Guest};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    url: String,
}

struct Acme;

impl kit::Destination for Acme {
    const NAME: &'static str = "acme";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SETTINGS_SCHEMA: &'static str = r#"{"type":"object","required":["url"]}"#;
    const MAX_BATCH: u32 = 100;
    type Settings = Settings;

    fn settings(raw: &str) -> Result<Settings, String> {
        let s: Settings = kit::parse_settings(raw, "acme")?;
        kit::check_url("acme", "url", &s.url)?;
        Ok(s)
    }

    fn deliver(s: Settings, events: Vec<Event>) -> Vec<kit::Outcome> {
        let body: Vec<_> = events.iter().map(kit::event_json).collect();
        let outcome = kit::classify_as("acme", kit::post_json(&s.url, &[], &body));
        vec![outcome; events.len()]
    }
}

switchyard_destination_kit::export_destination!(Acme);

#[test]
fn the_example_checks_and_describes() {
    assert_eq!(<Acme as Guest>::describe().name, "acme");
    assert!(<Acme as Guest>::check(r#"{"url":"https://example.com"}"#.into()).is_ok());
    assert_eq!(
        <Acme as Guest>::check("{}".into()).unwrap_err(),
        "acme settings: missing field `url`"
    );
    let bad = <Acme as Guest>::deliver(
        r#"{"url":"ftp://x"}"#.into(),
        vec![Event {
            message_id: "m".into(),
            event_type: EventType::Track,
            json: "{}".into(),
        }],
    );
    assert!(matches!(&bad[0], Err(Failure::Reject(why)) if why.contains("url")));
}
