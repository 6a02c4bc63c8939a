//! The README's example destination, compiled as a crate of its own: the export macro
//! works from outside the kit, with no `unsafe` and no `wit-bindgen` in the destination.

use serde::Deserialize;
use switchyard_destination_kit::{self as kit, Event, EventType, Failure, Guest, Metadata};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    url: String,
}

fn settings(raw: &str) -> Result<Settings, String> {
    let s: Settings = kit::parse_settings(raw, "acme")?;
    kit::check_url("acme", "url", &s.url)?;
    Ok(s)
}

struct Acme;

impl Guest for Acme {
    fn describe() -> Metadata {
        Metadata {
            name: "acme".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            settings_schema: r#"{"type":"object"}"#.into(),
            max_batch: 100,
        }
    }
    fn check(raw: String) -> Result<(), String> {
        settings(&raw).map(|_| ())
    }
    fn deliver(raw: String, events: Vec<Event>) -> Vec<Result<(), Failure>> {
        let s = match settings(&raw) {
            Ok(s) => s,
            Err(why) => return vec![Err(kit::reject(why)); events.len()],
        };
        let body: Vec<_> = events.iter().map(kit::event_json).collect();
        let outcome = kit::classify_as("acme", kit::post_json(&s.url, &[], &body));
        vec![outcome; events.len()]
    }
}

switchyard_destination_kit::export_destination!(Acme);

#[test]
fn the_example_checks_and_describes() {
    assert_eq!(Acme::describe().name, "acme");
    assert!(Acme::check(r#"{"url":"https://example.com"}"#.into()).is_ok());
    assert_eq!(
        Acme::check("{}".into()).unwrap_err(),
        "acme settings: missing field `url`"
    );
    let bad = Acme::deliver(
        r#"{"url":"ftp://x"}"#.into(),
        vec![Event {
            message_id: "m".into(),
            event_type: EventType::Track,
            json: "{}".into(),
        }],
    );
    assert!(matches!(&bad[0], Err(Failure::Reject(why)) if why.contains("url")));
}
