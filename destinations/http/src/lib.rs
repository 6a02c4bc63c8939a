//! The `http` destination: a generic HTTP request per batch, or per event.
//!
//! Settings: `url`, `method` (POST, PUT or PATCH), `headers`, `batch` (one request with
//! a JSON array of the batch, or one request per event) and `body_template`.
//!
//! The body is the events' JSON (an array in batch mode, one object per request
//! otherwise), or `body_template` with its placeholders replaced (see [`Template`]).
//! Outcomes: the kit's standard classification, for the whole batch (batch mode) or for
//! each event (per-event mode).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use switchyard_destination_kit::{self as kit, Event, Outcome};

const NAME: &str = "http";
const MAX_BATCH: u32 = 100;
/// In per-event mode, stop starting requests once a call has run this long: the events
/// not yet sent are handed back as `retry`, well before the host's call deadline
/// (10 s by default) would cut the whole batch short.
const PER_EVENT_BUDGET_MS: i64 = 5_000;

const SETTINGS_SCHEMA: &str = r#"{
  "type": "object",
  "required": ["url"],
  "additionalProperties": false,
  "properties": {
    "url": {"type": "string", "description": "Receiver URL, http:// or https://"},
    "method": {"type": "string", "enum": ["POST", "PUT", "PATCH"], "default": "POST"},
    "headers": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Extra request headers (Content-Type defaults to application/json)"},
    "batch": {"type": "boolean", "default": true, "description": "true: one request per batch with a JSON array; false: one request per event"},
    "body_template": {"type": "string", "description": "Body with placeholders: {{events}} (JSON array), and with batch = false also {{event}} (JSON object), {{messageId}}, {{type}}, {{userId}} (JSON-escaped text)"}
  }
}"#;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    url: String,
    #[serde(default = "default_method")]
    method: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default = "default_batch")]
    batch: bool,
    #[serde(default)]
    body_template: Option<String>,
}

fn default_method() -> String {
    "POST".into()
}

fn default_batch() -> bool {
    true
}

/// Headers a destination must not set: the host's HTTP client owns them.
const FORBIDDEN_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
];

/// A settings object, checked, with its template parsed.
struct Config {
    settings: Settings,
    template: Option<Template>,
}

fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl Config {
    fn parse(raw: &str) -> Result<Config, String> {
        let mut settings: Settings = kit::parse_settings(raw, NAME)?;
        kit::check_url(NAME, "url", &settings.url)?;
        let method = settings.method.to_ascii_uppercase();
        if !matches!(method.as_str(), "POST" | "PUT" | "PATCH") {
            return Err(format!(
                "{NAME} settings: method must be POST, PUT or PATCH, got {:?}",
                settings.method
            ));
        }
        settings.method = method;
        for (name, value) in &settings.headers {
            if !is_token(name) {
                return Err(format!(
                    "{NAME} settings: headers: {name:?} is not a valid header name"
                ));
            }
            if FORBIDDEN_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(format!("{NAME} settings: headers: {name:?} cannot be set"));
            }
            if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                return Err(format!(
                    "{NAME} settings: headers.{name}: value must not contain line breaks"
                ));
            }
        }
        let template = match &settings.body_template {
            None => None,
            Some(text) => {
                let template = Template::parse(text)
                    .map_err(|why| format!("{NAME} settings: body_template: {why}"))?;
                if settings.batch {
                    if let Some(p) = template.per_event_placeholder() {
                        return Err(format!(
                            "{NAME} settings: body_template: {{{{{p}}}}} needs batch = false (in batch mode only {{{{events}}}} is available)"
                        ));
                    }
                }
                Some(template)
            }
        };
        Ok(Config { settings, template })
    }

    fn headers(&self) -> Vec<(String, String)> {
        let mut headers = Vec::with_capacity(self.settings.headers.len() + 1);
        if !self
            .settings
            .headers
            .keys()
            .any(|k| k.eq_ignore_ascii_case("content-type"))
        {
            headers.push(("content-type".to_string(), "application/json".to_string()));
        }
        headers.extend(
            self.settings
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        headers
    }
}

/// What a placeholder stands for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Placeholder {
    /// `{{events}}`: the JSON array of the request's events.
    Events,
    /// `{{event}}`: the JSON object of the event.
    Event,
    /// `{{messageId}}`, `{{type}}`, `{{userId}}`: text, JSON-escaped without quotes.
    MessageId,
    Type,
    UserId,
}

/// The body template language, tiny on purpose:
///
/// - `{{events}}` → the JSON array of the request's events (in per-event mode, an
///   array of the one event);
/// - `{{event}}` → the JSON object of the event (per-event mode only);
/// - `{{messageId}}`, `{{type}}`, `{{userId}}` → that field as text (per-event mode only;
///   `userId` is empty for an anonymous event), escaped as inside a JSON string, so
///   `"id": "{{messageId}}"` stays valid JSON whatever the value;
/// - spaces inside the braces are allowed (`{{ event }}`); any other `{{...}}` is an
///   error, and there is no escape, loop or condition.
#[derive(Debug)]
struct Template {
    parts: Vec<Part>,
}

#[derive(Debug)]
enum Part {
    Text(String),
    Hole(Placeholder),
}

impl Template {
    fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| format!("unclosed {{{{ at {:?}", clip(&rest[start..])))?;
            let name = after[..end].trim();
            let hole = match name {
                "events" => Placeholder::Events,
                "event" => Placeholder::Event,
                "messageId" => Placeholder::MessageId,
                "type" => Placeholder::Type,
                "userId" => Placeholder::UserId,
                other => {
                    return Err(format!(
                        "unknown placeholder {{{{{other}}}}} (known: events, event, messageId, type, userId)"
                    ))
                }
            };
            parts.push(Part::Hole(hole));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// The first placeholder that only makes sense for one event.
    fn per_event_placeholder(&self) -> Option<&'static str> {
        self.parts.iter().find_map(|p| match p {
            Part::Hole(Placeholder::Event) => Some("event"),
            Part::Hole(Placeholder::MessageId) => Some("messageId"),
            Part::Hole(Placeholder::Type) => Some("type"),
            Part::Hole(Placeholder::UserId) => Some("userId"),
            _ => None,
        })
    }

    /// Render for the request's events (one event in per-event mode).
    fn render(&self, events: &[&Event]) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Hole(Placeholder::Events) => out.push_str(&array_of(events)),
                Part::Hole(Placeholder::Event) => {
                    out.push_str(events.first().map_or("null", |e| e.json.as_str()))
                }
                Part::Hole(hole) => {
                    let Some(event) = events.first() else {
                        continue;
                    };
                    let text = match hole {
                        Placeholder::MessageId => event.message_id.clone(),
                        Placeholder::Type => kit::str_at(&kit::event_json(event), "type")
                            .unwrap_or_default()
                            .to_string(),
                        _ => kit::id_field(&kit::event_json(event), "userId").unwrap_or_default(),
                    };
                    out.push_str(&json_escaped(&text));
                }
            }
        }
        out
    }
}

fn clip(text: &str) -> String {
    text.chars().take(20).collect()
}

/// `text` escaped as the inside of a JSON string (no surrounding quotes).
fn json_escaped(text: &str) -> String {
    let quoted = Value::String(text.to_string()).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

/// The events' JSON objects as one array, in order.
fn array_of(events: &[&Event]) -> String {
    let mut out = String::with_capacity(events.iter().map(|e| e.json.len() + 1).sum::<usize>() + 2);
    out.push('[');
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&e.json);
    }
    out.push(']');
    out
}

fn body_of(config: &Config, events: &[&Event]) -> Vec<u8> {
    match &config.template {
        Some(t) => t.render(events).into_bytes(),
        None if config.settings.batch => array_of(events).into_bytes(),
        None => events
            .first()
            .map_or_else(Vec::new, |e| e.json.as_bytes().to_vec()),
    }
}

fn send(config: &Config, headers: &[(String, String)], events: &[&Event]) -> Outcome {
    let body = body_of(config, events);
    kit::classify(kit::send(
        &config.settings.method,
        &config.settings.url,
        headers,
        body,
    ))
}

struct Http;

impl kit::Destination for Http {
    const NAME: &'static str = NAME;
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SETTINGS_SCHEMA: &'static str = SETTINGS_SCHEMA;
    const MAX_BATCH: u32 = MAX_BATCH;
    type Settings = Config;

    fn settings(raw: &str) -> Result<Config, String> {
        Config::parse(raw)
    }

    fn deliver(config: Config, events: Vec<Event>) -> Vec<kit::Outcome> {
        if events.is_empty() {
            return Vec::new();
        }
        let headers = config.headers();
        let outcomes: Vec<Outcome> = if config.settings.batch {
            let all: Vec<&Event> = events.iter().collect();
            vec![send(&config, &headers, &all); events.len()]
        } else {
            let started = kit::now_ms();
            events
                .iter()
                .map(|event| {
                    if kit::now_ms() - started > PER_EVENT_BUDGET_MS {
                        Err(kit::retry(
                            "not sent: this call's time budget for one request per event was used",
                            None,
                        ))
                    } else {
                        send(&config, &headers, &[event])
                    }
                })
                .collect()
        };
        outcomes
    }
}

switchyard_destination_kit::export_destination!(Http);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use switchyard_destination_kit::EventType;

    fn event(id: &str, user: Option<&str>) -> Event {
        let mut m = json!({"type": "track", "messageId": id, "event": "X", "anonymousId": "a"});
        if let Some(u) = user {
            m["userId"] = json!(u);
        }
        Event {
            message_id: id.into(),
            event_type: EventType::Track,
            json: m.to_string(),
        }
    }

    #[test]
    fn templates_render_placeholders() {
        let t = Template::parse(
            r#"{"id":"{{ messageId }}","user":"{{userId}}","kind":"{{type}}","data":{{event}}}"#,
        )
        .unwrap();
        let e = event("m-1", Some("u\"1"));
        let body = t.render(&[&e]);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["id"], "m-1");
        assert_eq!(v["user"], "u\"1");
        assert_eq!(v["kind"], "track");
        assert_eq!(v["data"]["messageId"], "m-1");

        let t = Template::parse(r#"{"records":{{events}}}"#).unwrap();
        let (a, b) = (event("a", None), event("b", None));
        let v: Value = serde_json::from_str(&t.render(&[&a, &b])).unwrap();
        assert_eq!(v["records"].as_array().unwrap().len(), 2);

        let t = Template::parse(r#"{"u":"{{userId}}"}"#).unwrap();
        assert_eq!(t.render(&[&a]), r#"{"u":""}"#);
    }

    #[test]
    fn templates_are_checked() {
        assert!(Template::parse("{{nope}}")
            .unwrap_err()
            .contains("unknown placeholder"));
        assert!(Template::parse("{{event").unwrap_err().contains("unclosed"));
        let e = Config::parse(r#"{"url":"https://x","body_template":"{{event}}"}"#)
            .err()
            .unwrap();
        assert!(
            e.contains("body_template") && e.contains("batch = false"),
            "{e}"
        );
        assert!(
            Config::parse(r#"{"url":"https://x","batch":false,"body_template":"{{event}}"}"#)
                .is_ok()
        );
    }

    #[test]
    fn settings_are_checked() {
        let c = Config::parse(r#"{"url":"https://x","method":"put"}"#)
            .ok()
            .unwrap();
        assert_eq!(c.settings.method, "PUT");
        assert_eq!(c.headers()[0].1, "application/json");
        let e = Config::parse(r#"{"url":"https://x","method":"GET"}"#)
            .err()
            .unwrap();
        assert!(e.contains("method"), "{e}");
        let e = Config::parse(r#"{"url":"https://x","headers":{"Host":"y"}}"#)
            .err()
            .unwrap();
        assert!(e.contains("headers"), "{e}");
        let e = Config::parse(r#"{"url":"https://x","headers":{"Bad Name":"y"}}"#)
            .err()
            .unwrap();
        assert!(e.contains("headers"), "{e}");
        let e = Config::parse(r#"{"url":"https://x","bacth":false}"#)
            .err()
            .unwrap();
        assert!(e.contains("unknown field `bacth`"), "{e}");
        let c = Config::parse(r#"{"url":"https://x","headers":{"Content-Type":"text/csv"}}"#)
            .ok()
            .unwrap();
        assert_eq!(c.headers().len(), 1);
    }
}
