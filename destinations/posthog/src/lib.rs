//! The `posthog` destination: one `POST {endpoint}/batch/` per batch.
//!
//! Body: `{"api_key": …, "historical_migration": false, "batch": [{"event", "distinct_id",
//! "properties", "timestamp", "uuid"?}]}`, where each Segment call becomes:
//! - `track` → the event by its name;
//! - `page` → `$pageview` with `$current_url` (and `$pathname`, `$referrer`, `title`);
//! - `screen` → `$screen` with `$screen_name`;
//! - `identify` → `$identify` with `$set` = traits (and `$anon_distinct_id` = the
//!   anonymous id, which merges the anonymous person into the identified one);
//! - `group` → `$groupidentify` with `$group_type` (traits.group_type, else "company"),
//!   `$group_key` = groupId and `$group_set` = traits;
//! - `alias` → `$create_alias` with `distinct_id` = previousId and `alias` = userId.
//!
//! Every event carries `$lib: "switchyard"`; `uuid` is the messageId when it is a UUID,
//! which PostHog deduplicates on. Outcomes: the kit's standard classification (PostHog
//! answers 200 `{"status":1}`; 400 invalid, 401 bad key, 413 too large: reject;
//! 429 and 5xx: retry).
//!
//! Deletion (a privacy regulation's `DELETE`): [`deletion`], through PostHog's
//! persons API.

use serde::Deserialize;
use serde_json::{json, Map, Value};
use switchyard_destination_kit::{self as kit, Event, EventType, Failure};

const NAME: &str = "posthog";
const DEFAULT_ENDPOINT: &str = "https://us.i.posthog.com";
/// Largest batch; PostHog takes up to 20 MB per /batch/ request.
const MAX_BATCH: u32 = 1000;

const SETTINGS_SCHEMA: &str = r#"{
  "type": "object",
  "required": ["api_key"],
  "additionalProperties": false,
  "properties": {
    "api_key": {"type": "string", "description": "Project API key (phc_...)"},
    "endpoint": {"type": "string", "default": "https://us.i.posthog.com", "description": "Ingestion host: https://us.i.posthog.com, https://eu.i.posthog.com, a self-hosted instance, or a reverse proxy"},
    "historical_migration": {"type": "boolean", "default": false, "description": "Send as a historical migration (PostHog routes such batches apart from live ingestion)"},
    "personal_api_key": {"type": "string", "description": "Personal API key (phx_...) with the person:write scope: required to delete users (privacy regulations)"},
    "project_id": {"type": ["string", "integer"], "description": "Project id: required to delete users"},
    "api_host": {"type": "string", "default": "https://us.posthog.com", "description": "Host of PostHog's private API (deletions): https://us.posthog.com, https://eu.posthog.com, or a self-hosted instance"}
  }
}"#;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    api_key: String,
    #[serde(default = "default_endpoint")]
    endpoint: String,
    #[serde(default)]
    historical_migration: bool,
    #[serde(default)]
    personal_api_key: Option<String>,
    #[serde(default, deserialize_with = "kit::string_or_integer")]
    project_id: Option<String>,
    #[serde(default = "deletion::default_api_host")]
    api_host: String,
}

mod deletion;

fn default_endpoint() -> String {
    DEFAULT_ENDPOINT.into()
}

impl Settings {
    fn parse(raw: &str) -> Result<Settings, String> {
        let mut s: Settings = kit::parse_settings(raw, NAME)?;
        kit::check_endpoint(NAME, "endpoint", &mut s.endpoint)?;
        kit::check_endpoint(NAME, "api_host", &mut s.api_host)?;
        if s.api_key.trim().is_empty() {
            return Err(format!("{NAME} settings: api_key must not be empty"));
        }
        Ok(s)
    }
}

/// Whether `id` is a UUID in its canonical 8-4-4-4-12 hexadecimal form.
fn is_uuid(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// The PostHog event of one Segment call.
fn posthog_event(event: &Event) -> Result<Value, Failure> {
    let message = kit::event_json(event);
    let user = kit::id_field(&message, "userId");
    let anon = kit::id_field(&message, "anonymousId");
    let mut distinct = user
        .clone()
        .or_else(|| anon.clone())
        .ok_or_else(|| kit::reject("event has no userId or anonymousId"))?;
    let mut props = kit::object_at(&message, "properties");
    let name = match event.event_type {
        EventType::Track => kit::str_at(&message, "event")
            .filter(|e| !e.trim().is_empty())
            .ok_or_else(|| kit::reject("track event has no name"))?
            .to_string(),
        EventType::Page => {
            let url = kit::str_at(&message, "context.page.url")
                .or_else(|| kit::str_at(&message, "properties.url"));
            let path = kit::str_at(&message, "context.page.path")
                .or_else(|| kit::str_at(&message, "properties.path"));
            let referrer = kit::str_at(&message, "context.page.referrer")
                .or_else(|| kit::str_at(&message, "properties.referrer"));
            for (key, value) in [
                ("$current_url", url),
                ("$pathname", path),
                ("$referrer", referrer),
            ] {
                if let Some(v) = value {
                    props.insert(key.into(), json!(v));
                }
            }
            if let Some(title) = kit::str_at(&message, "name") {
                props.entry("title").or_insert_with(|| json!(title));
            }
            "$pageview".to_string()
        }
        EventType::Screen => {
            if let Some(screen) = kit::str_at(&message, "name") {
                props.insert("$screen_name".into(), json!(screen));
            }
            "$screen".to_string()
        }
        EventType::Identify => {
            props.insert(
                "$set".into(),
                Value::Object(kit::object_at(&message, "traits")),
            );
            if let (Some(_), Some(anon)) = (&user, &anon) {
                props.insert("$anon_distinct_id".into(), json!(anon));
            }
            "$identify".to_string()
        }
        EventType::Group => {
            let group_key = kit::id_field(&message, "groupId")
                .ok_or_else(|| kit::reject("group call has no groupId"))?;
            let mut traits = kit::object_at(&message, "traits");
            let group_type = match traits.remove("group_type") {
                Some(Value::String(t)) if !t.trim().is_empty() => t,
                _ => "company".to_string(),
            };
            props.insert("$group_type".into(), json!(group_type));
            props.insert("$group_key".into(), json!(group_key));
            props.insert("$group_set".into(), Value::Object(traits));
            "$groupidentify".to_string()
        }
        EventType::Alias => {
            let previous = kit::id_field(&message, "previousId")
                .ok_or_else(|| kit::reject("alias call has no previousId"))?;
            let alias = user.ok_or_else(|| kit::reject("alias call has no userId"))?;
            props.insert("alias".into(), json!(alias));
            distinct = previous;
            "$create_alias".to_string()
        }
    };
    if let Some(ip) = kit::str_at(&message, "context.ip") {
        props.entry("$ip").or_insert_with(|| json!(ip));
    }
    props.insert("$lib".into(), json!("switchyard"));
    props.insert("$lib_version".into(), json!(env!("CARGO_PKG_VERSION")));
    let mut out = Map::new();
    out.insert("event".into(), json!(name));
    out.insert("distinct_id".into(), json!(distinct));
    out.insert("properties".into(), Value::Object(props));
    if let Some(ts) = kit::str_at(&message, "timestamp") {
        out.insert("timestamp".into(), json!(ts));
    }
    if is_uuid(&event.message_id) {
        out.insert("uuid".into(), json!(event.message_id));
    }
    Ok(Value::Object(out))
}

struct PostHog;

impl kit::Destination for PostHog {
    const NAME: &'static str = NAME;
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SETTINGS_SCHEMA: &'static str = SETTINGS_SCHEMA;
    const MAX_BATCH: u32 = MAX_BATCH;
    type Settings = Settings;

    fn settings(raw: &str) -> Result<Settings, String> {
        Settings::parse(raw)
    }

    fn deliver(settings: Settings, events: Vec<Event>) -> Vec<kit::Outcome> {
        let mut outcomes: Vec<Result<(), Failure>> = vec![Ok(()); events.len()];
        let mut sent = Vec::new();
        let mut batch = Vec::new();
        for (i, event) in events.iter().enumerate() {
            match posthog_event(event) {
                Ok(e) => {
                    sent.push(i);
                    batch.push(e);
                }
                Err(failure) => outcomes[i] = Err(failure),
            }
        }
        if !batch.is_empty() {
            let body = json!({
                "api_key": settings.api_key,
                "historical_migration": settings.historical_migration,
                "batch": batch,
            });
            let url = format!("{}/batch/", settings.endpoint);
            let outcome = kit::classify_as(NAME, kit::post_json(&url, &[], &body));
            for i in sent {
                outcomes[i] = outcome.clone();
            }
        }
        outcomes
    }
}

switchyard_destination_kit::export_deleting_destination!(PostHog);

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventType, message: Value) -> Event {
        Event {
            message_id: message["messageId"].as_str().unwrap_or("m-1").to_string(),
            event_type: kind,
            json: message.to_string(),
        }
    }

    #[test]
    fn uuids_are_recognised() {
        assert!(is_uuid("0b8a5f4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"));
        assert!(!is_uuid("ajs-next-0b8a5f4e-1c2d-4e5f-8a9b"));
        assert!(!is_uuid("0b8a5f4e1c2d4e5f8a9b0c1d2e3f4a5b"));
    }

    #[test]
    fn calls_map_to_posthog_events() {
        let e = posthog_event(&event(
            EventType::Identify,
            json!({"userId": "u1", "anonymousId": "a1", "traits": {"plan": "pro"}, "timestamp": "2024-05-01T12:00:00.000Z"}),
        ))
        .unwrap();
        assert_eq!(e["event"], "$identify");
        assert_eq!(e["distinct_id"], "u1");
        assert_eq!(e["properties"]["$set"]["plan"], "pro");
        assert_eq!(e["properties"]["$anon_distinct_id"], "a1");
        assert_eq!(e["timestamp"], "2024-05-01T12:00:00.000Z");
        assert!(e.get("uuid").is_none());

        let e = posthog_event(&event(
            EventType::Group,
            json!({"userId": "u1", "groupId": "acme", "traits": {"name": "Acme", "group_type": "org"}}),
        ))
        .unwrap();
        assert_eq!(e["event"], "$groupidentify");
        assert_eq!(e["properties"]["$group_type"], "org");
        assert_eq!(e["properties"]["$group_key"], "acme");
        assert_eq!(e["properties"]["$group_set"], json!({"name": "Acme"}));

        let e = posthog_event(&event(
            EventType::Alias,
            json!({"userId": "u1", "previousId": "a1"}),
        ))
        .unwrap();
        assert_eq!(e["event"], "$create_alias");
        assert_eq!(e["distinct_id"], "a1");
        assert_eq!(e["properties"]["alias"], "u1");

        let e = posthog_event(&event(
            EventType::Page,
            json!({"anonymousId": "a1", "name": "Pricing", "properties": {"url": "https://x/p"},
                   "messageId": "0b8a5f4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"}),
        ))
        .unwrap();
        assert_eq!(e["event"], "$pageview");
        assert_eq!(e["distinct_id"], "a1");
        assert_eq!(e["properties"]["$current_url"], "https://x/p");
        assert_eq!(e["uuid"], "0b8a5f4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b");
    }
}
