//! The `segment` destination: forward events to any Segment-compatible tracking API
//! (Segment itself, RudderStack, or another Switchyard).
//!
//! `POST {endpoint}/v1/batch` with HTTP Basic auth `write_key:` and the body
//! `{"batch": [...], "sentAt": now}`. Each event goes as it was received, `messageId`
//! included (the receiving side deduplicates on it), with one change to its times: the
//! host's `receivedAt`, the item's own `sentAt` and `originalTimestamp` are removed and
//! the corrected `timestamp` kept, so that the receiver's clock-skew correction
//! (`timestamp = receivedAt - (sentAt - originalTimestamp)`) sees the batch's `sentAt`
//! and keeps the event's time.
//!
//! A request carries at most 500 KB (Segment's batch limit): a larger batch goes in
//! several requests. Outcomes: the kit's standard classification; since a receiver
//! takes or refuses a whole request, a 400 for several events is retried one event per
//! request, so that one bad event does not take the others with it.

use serde::Deserialize;
use serde_json::{json, Value};
use switchyard_destination_kit::{self as kit, Event, Outcome};

const NAME: &str = "segment";
const DEFAULT_ENDPOINT: &str = "https://api.segment.io";
const MAX_BATCH: u32 = 500;
/// Segment's limits: 500 KB per batch request, 32 KB per event.
const MAX_REQUEST_BYTES: usize = 500 * 1024;
const MAX_EVENT_BYTES: usize = 32 * 1024;
/// Room for `{"batch":[` ... `],"sentAt":"…"}`.
const ENVELOPE_BYTES: usize = 64;

const SETTINGS_SCHEMA: &str = r#"{
  "type": "object",
  "required": ["write_key"],
  "additionalProperties": false,
  "properties": {
    "write_key": {"type": "string", "description": "Write key of the receiving source (HTTP Basic user name, empty password)"},
    "endpoint": {"type": "string", "default": "https://api.segment.io", "description": "Base URL of the tracking API: https://api.segment.io, https://events.eu1.segmentapis.com, or any Segment-compatible receiver such as another Switchyard"}
  }
}"#;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    write_key: String,
    #[serde(default = "default_endpoint")]
    endpoint: String,
}

fn default_endpoint() -> String {
    DEFAULT_ENDPOINT.into()
}

impl Settings {
    fn parse(raw: &str) -> Result<Settings, String> {
        let mut s: Settings = kit::parse_settings(raw, NAME)?;
        kit::check_endpoint(NAME, "endpoint", &mut s.endpoint)?;
        if s.write_key.trim().is_empty() {
            return Err(format!("{NAME} settings: write_key must not be empty"));
        }
        if s.write_key.contains(':') {
            return Err(format!(
                "{NAME} settings: write_key must not contain ':' (it is the Basic auth user name)"
            ));
        }
        Ok(s)
    }
}

/// The event as forwarded: as received, without the times that belong to this hop.
fn forwarded(event: &Event) -> Value {
    let mut message = kit::event_json(event);
    if let Some(m) = message.as_object_mut() {
        m.remove("receivedAt");
        m.remove("sentAt");
        m.remove("originalTimestamp");
        m.remove("writeKey");
        m.entry("messageId")
            .or_insert_with(|| json!(event.message_id));
    }
    message
}

/// Send events (indices into the batch, with their serialised JSON) in one request.
fn send_request(
    settings: &Settings,
    items: &[(usize, String)],
) -> Result<kit::Response, kit::http::Error> {
    let mut body = String::with_capacity(
        items.iter().map(|(_, s)| s.len() + 1).sum::<usize>() + ENVELOPE_BYTES,
    );
    body.push_str("{\"batch\":[");
    for (n, (_, json)) in items.iter().enumerate() {
        if n > 0 {
            body.push(',');
        }
        body.push_str(json);
    }
    body.push_str("],\"sentAt\":\"");
    body.push_str(&kit::now_iso());
    body.push_str("\"}");
    let headers = vec![
        ("content-type".to_string(), "application/json".to_string()),
        (
            "authorization".to_string(),
            kit::basic_auth(&settings.write_key, ""),
        ),
    ];
    kit::send(
        "POST",
        &format!("{}/v1/batch", settings.endpoint),
        &headers,
        body.into_bytes(),
    )
}

/// Send one request's events and write their outcomes; a 400 for several events is
/// tried again one event per request.
fn deliver_chunk(settings: &Settings, items: &[(usize, String)], outcomes: &mut [Outcome]) {
    let answer = send_request(settings, items);
    if items.len() > 1 && matches!(&answer, Ok(resp) if resp.status == 400) {
        kit::warn(&format!(
            "receiver refused a batch of {} with 400; sending them one by one",
            items.len()
        ));
        for item in items {
            deliver_chunk(settings, std::slice::from_ref(item), outcomes);
        }
        return;
    }
    let outcome = kit::classify_as(NAME, answer);
    for (i, _) in items {
        outcomes[*i] = outcome.clone();
    }
}

/// Split events into requests of at most `MAX_REQUEST_BYTES`.
fn chunks(items: Vec<(usize, String)>) -> Vec<Vec<(usize, String)>> {
    let mut out: Vec<Vec<(usize, String)>> = Vec::new();
    let mut size = ENVELOPE_BYTES;
    for item in items {
        let len = item.1.len() + 1;
        match out.last_mut() {
            Some(chunk) if size + len <= MAX_REQUEST_BYTES => chunk.push(item),
            _ => {
                size = ENVELOPE_BYTES;
                out.push(vec![item]);
            }
        }
        size += len;
    }
    out
}

struct Segment;

impl kit::Destination for Segment {
    const NAME: &'static str = NAME;
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SETTINGS_SCHEMA: &'static str = SETTINGS_SCHEMA;
    const MAX_BATCH: u32 = MAX_BATCH;
    type Settings = Settings;

    fn settings(raw: &str) -> Result<Settings, String> {
        Settings::parse(raw)
    }

    fn deliver(settings: Settings, events: Vec<Event>) -> Vec<kit::Outcome> {
        let mut outcomes: Vec<Outcome> = vec![Ok(()); events.len()];
        let mut items = Vec::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            let json = forwarded(event).to_string();
            if json.len() > MAX_EVENT_BYTES {
                outcomes[i] = Err(kit::reject(format!(
                    "event is {} bytes; Segment takes at most {MAX_EVENT_BYTES}",
                    json.len()
                )));
            } else {
                items.push((i, json));
            }
        }
        for chunk in chunks(items) {
            deliver_chunk(&settings, &chunk, &mut outcomes);
        }
        outcomes
    }
}

switchyard_destination_kit::export_destination!(Segment);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_destination_kit::EventType;

    #[test]
    fn forwarded_events_keep_their_id_and_time() {
        let e = Event {
            message_id: "m-1".into(),
            event_type: EventType::Track,
            json: json!({
                "type": "track", "messageId": "m-1", "event": "X", "userId": "u",
                "timestamp": "2024-05-01T12:00:00.000Z",
                "originalTimestamp": "2024-05-01T11:59:00.000Z",
                "sentAt": "2024-05-01T11:59:01.000Z",
                "receivedAt": "2024-05-01T12:00:01.000Z"
            })
            .to_string(),
        };
        let f = forwarded(&e);
        assert_eq!(f["messageId"], "m-1");
        assert_eq!(f["timestamp"], "2024-05-01T12:00:00.000Z");
        assert!(f.get("sentAt").is_none());
        assert!(f.get("receivedAt").is_none());
        assert!(f.get("originalTimestamp").is_none());
    }

    #[test]
    fn requests_stay_under_500_kb() {
        let big = "x".repeat(30_000);
        let items: Vec<(usize, String)> = (0..40).map(|i| (i, big.clone())).collect();
        let chunks = chunks(items);
        assert_eq!(chunks.len(), 3);
        for c in &chunks {
            let size: usize = c.iter().map(|(_, s)| s.len() + 1).sum::<usize>() + ENVELOPE_BYTES;
            assert!(size <= MAX_REQUEST_BYTES);
        }
        assert_eq!(chunks.iter().map(Vec::len).sum::<usize>(), 40);
    }

    #[test]
    fn settings_are_checked() {
        assert!(Settings::parse(r#"{"write_key":"wk"}"#).is_ok());
        let e = Settings::parse(r#"{"writeKey":"wk"}"#).unwrap_err();
        assert!(e.contains("unknown field `writeKey`"), "{e}");
        let e = Settings::parse(r#"{"write_key":"wk","endpoint":"api.segment.io"}"#).unwrap_err();
        assert!(e.contains("endpoint"), "{e}");
    }
}
