//! Validation and normalisation of Segment messages: a request body (one call,
//! or a batch) into the events that are stored, as the README's "Ingest:
//! Segment's tracking API" describes them.
//!
//! Where it sits: inside ingest, and the one place that decides what a valid
//! event is: `/v1/*` ([`super`]) and `switchyard try` both call
//! [`normalize_body`]. Pure functions of the body and the server clock, so that
//! they are tested without HTTP.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

use crate::event_type::EventType;

/// Most bytes of one event (Segment's limit).
pub const MAX_EVENT_BYTES: usize = 32 * 1024;
/// Longest `messageId`.
pub const MAX_MESSAGE_ID_CHARS: usize = 100;
/// Most events in one batch (Segment's limit).
pub const MAX_BATCH_EVENTS: usize = 2_500;

/// What a body holds, by the endpoint it was sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `/v1/track`, `/v1/identify`, ...: one message; its type is the endpoint's.
    Single(EventType),
    /// `/v1/batch` and `/v1/import`: `{"batch": [...]}`, each item with its own `type`,
    /// and batch-level `context`, `integrations` and `sentAt`.
    Batch,
}

impl BodyKind {
    /// The kind of an endpoint (`track`, ..., `alias`, `batch`, `import`); `None` for
    /// any other name.
    pub fn of_endpoint(name: &str) -> Option<BodyKind> {
        match name {
            "batch" | "import" => Some(BodyKind::Batch),
            other => EventType::parse(other).map(BodyKind::Single),
        }
    }
}

/// Why a body was refused: a message for the client, and the batch item it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Index of the batch item, when the message is about one.
    pub item: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.item {
            Some(i) => write!(f, "batch[{i}]: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Invalid {}

impl From<String> for Invalid {
    fn from(message: String) -> Self {
        Invalid {
            item: None,
            message,
        }
    }
}

/// Fields a batch envelope gives every item that lacks them.
#[derive(Debug, Default, Clone, Copy)]
struct Envelope<'a> {
    /// Batch-level `context`, merged under each item's.
    context: Option<&'a Map<String, Value>>,
    /// Batch-level `integrations`, merged under each item's.
    integrations: Option<&'a Map<String, Value>>,
    /// Batch-level `sentAt`, used when the item has none.
    sent_at: Option<&'a Value>,
}

/// A valid, normalised message.
#[derive(Debug, Clone)]
pub struct Normalized {
    /// The whole message, as stored and delivered.
    pub message: Map<String, Value>,
    /// Its `messageId` (given or assigned).
    pub message_id: String,
    /// Its `type`.
    pub event_type: EventType,
    /// `userId`, else `anonymousId`, as text.
    pub user_key: String,
}

/// Validate and normalise a whole body (a JSON object). All or nothing: the first
/// bad message refuses the body, and the error names the batch item.
pub fn normalize_body(
    mut root: Map<String, Value>,
    kind: BodyKind,
    received_at: DateTime<Utc>,
) -> Result<Vec<Normalized>, Invalid> {
    if let BodyKind::Single(event_type) = kind {
        let n = normalize(root, Some(event_type), Envelope::default(), received_at)?;
        return Ok(vec![n]);
    }
    let items = match root.remove("batch") {
        Some(Value::Array(items)) => items,
        Some(_) => return Err(String::from("`batch` must be an array").into()),
        None => return Err(String::from("`batch` is required").into()),
    };
    if items.len() > MAX_BATCH_EVENTS {
        return Err(format!(
            "batch has {} events; the limit is {MAX_BATCH_EVENTS}",
            items.len()
        )
        .into());
    }
    let object = |field: &str| match root.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(Invalid::from(format!("`{field}` must be an object"))),
    };
    let envelope = Envelope {
        context: object("context")?,
        integrations: object("integrations")?,
        sent_at: root.get("sentAt"),
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let at = |message: String| Invalid {
                item: Some(i),
                message,
            };
            let Value::Object(item) = item else {
                return Err(at("must be an object".into()));
            };
            normalize(item, None, envelope, received_at).map_err(at)
        })
        .collect()
}

/// Validate and normalise `item`. `kind` is the endpoint's type (`None` for batch items,
/// which carry their own). Errors are messages for the client.
fn normalize(
    mut item: Map<String, Value>,
    kind: Option<EventType>,
    envelope: Envelope<'_>,
    received_at: DateTime<Utc>,
) -> Result<Normalized, String> {
    let size = serde_json::to_vec(&item)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > MAX_EVENT_BYTES {
        return Err(format!(
            "event is {size} bytes; the limit is {MAX_EVENT_BYTES} bytes"
        ));
    }
    let event_type = match kind {
        Some(k) => k,
        None => {
            let given = item
                .get("type")
                .ok_or("`type` is required in batch items")?;
            given.as_str().and_then(EventType::parse).ok_or_else(|| {
                format!("`type` must be one of {}, got {given}", EventType::names())
            })?
        }
    };
    item.insert("type".into(), Value::String(event_type.into()));
    item.remove("writeKey");

    let user_key = id_text(&item, "userId")?
        .or(id_text(&item, "anonymousId")?)
        .ok_or("`userId` or `anonymousId` is required")?;
    if event_type == EventType::Track
        && !matches!(item.get("event"), Some(Value::String(e)) if !e.trim().is_empty())
    {
        return Err("`event` is required for track calls".into());
    }
    let required_id = match event_type {
        EventType::Group => Some("groupId"),
        EventType::Alias => Some("previousId"),
        _ => None,
    };
    if let Some(field) = required_id {
        if id_text(&item, field)?.is_none() {
            return Err(format!("`{field}` is required for {event_type} calls"));
        }
    }
    for field in ["properties", "traits"] {
        if let Some(v) = item.get(field) {
            if !v.is_object() && !v.is_null() {
                return Err(format!("`{field}` must be an object"));
            }
        }
    }

    let message_id = match item.get("messageId") {
        None | Some(Value::Null) => uuid::Uuid::new_v4().to_string(),
        Some(Value::String(id)) if id.is_empty() => {
            return Err("`messageId` must not be empty".into())
        }
        Some(Value::String(id)) if id.chars().count() > MAX_MESSAGE_ID_CHARS => {
            return Err(format!(
                "`messageId` is longer than {MAX_MESSAGE_ID_CHARS} characters"
            ))
        }
        Some(Value::String(id)) => id.clone(),
        Some(_) => return Err("`messageId` must be a string".into()),
    };
    item.insert("messageId".into(), Value::String(message_id.clone()));

    merge_under(&mut item, "context", envelope.context)?;
    merge_under(&mut item, "integrations", envelope.integrations)?;

    // Timestamps: receivedAt is ours; the client's clock is corrected by how far
    // its sentAt is from our receivedAt.
    let original = match item.get("originalTimestamp").filter(|v| !v.is_null()) {
        Some(v) => Some(("originalTimestamp", v)),
        None => item
            .get("timestamp")
            .filter(|v| !v.is_null())
            .map(|v| ("timestamp", v)),
    };
    let original = original
        .map(|(field, v)| parse_time(field, v))
        .transpose()?;
    let sent_at = item
        .get("sentAt")
        .filter(|v| !v.is_null())
        .or(envelope.sent_at.filter(|v| !v.is_null()))
        .map(|v| parse_time("sentAt", v))
        .transpose()?;
    let timestamp = match (original, sent_at) {
        (Some(orig), Some(sent)) => received_at - (sent - orig),
        (Some(orig), None) => orig,
        (None, _) => received_at,
    };
    item.insert("receivedAt".into(), Value::String(iso(received_at)));
    item.insert("timestamp".into(), Value::String(iso(timestamp)));
    if let Some(orig) = original {
        item.insert("originalTimestamp".into(), Value::String(iso(orig)));
    }
    if let Some(sent) = sent_at {
        item.insert("sentAt".into(), Value::String(iso(sent)));
    }

    Ok(Normalized {
        message: item,
        message_id,
        event_type,
        user_key,
    })
}

/// An identifier field as text: a non-empty string or a number; absent/null is `None`.
fn id_text(item: &Map<String, Value>, field: &str) -> Result<Option<String>, String> {
    match item.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(format!("`{field}` must be a string")),
    }
}

/// Merge the batch-level object under the item's own (the item's keys win).
fn merge_under(
    item: &mut Map<String, Value>,
    field: &str,
    batch: Option<&Map<String, Value>>,
) -> Result<(), String> {
    match item.get_mut(field) {
        Some(Value::Object(own)) => {
            if let Some(batch) = batch {
                for (k, v) in batch {
                    own.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
        None | Some(Value::Null) => {
            if let Some(batch) = batch {
                item.insert(field.into(), Value::Object(batch.clone()));
            }
        }
        Some(_) => return Err(format!("`{field}` must be an object")),
    }
    Ok(())
}

fn parse_time(field: &str, v: &Value) -> Result<DateTime<Utc>, String> {
    let text = v
        .as_str()
        .ok_or_else(|| format!("`{field}` must be an ISO-8601 date string"))?;
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| format!("`{field}` is not an ISO-8601 date: {text:?}"))
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-26T12:00:10Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn corrects_client_clock_skew() {
        // The client's clock is 1 h behind: it stamped the event 5 s before sending.
        let item = obj(
            json!({"userId":"u","event":"E","timestamp":"2026-11-26T10:59:55Z","sentAt":"2026-11-26T11:00:00Z"}),
        );
        let n = normalize(item, Some(EventType::Track), Envelope::default(), now()).unwrap();
        assert_eq!(n.message["timestamp"], "2026-11-26T12:00:05.000Z");
        assert_eq!(n.message["originalTimestamp"], "2026-11-26T10:59:55.000Z");
        assert_eq!(n.message["receivedAt"], "2026-11-26T12:00:10.000Z");
        assert_eq!(n.message["type"], "track");
        assert_eq!(n.message_id.len(), 36, "a UUID is assigned");
    }

    #[test]
    fn merges_batch_context_and_integrations_under_the_items() {
        let ctx = obj(json!({"library":{"name":"analytics-node"},"ip":"1.2.3.4"}));
        let integrations = obj(json!({"All":true}));
        let env = Envelope {
            context: Some(&ctx),
            integrations: Some(&integrations),
            sent_at: None,
        };
        let item = obj(json!({"type":"identify","userId":"u","context":{"ip":"5.6.7.8"}}));
        let n = normalize(item, None, env, now()).unwrap();
        assert_eq!(n.message["context"]["ip"], "5.6.7.8");
        assert_eq!(n.message["context"]["library"]["name"], "analytics-node");
        assert_eq!(n.message["integrations"]["All"], true);
    }

    #[test]
    fn a_body_is_one_call_or_a_batch() {
        assert_eq!(
            BodyKind::of_endpoint("page"),
            Some(BodyKind::Single(EventType::Page))
        );
        assert_eq!(BodyKind::of_endpoint("import"), Some(BodyKind::Batch));
        assert_eq!(BodyKind::of_endpoint("purchase"), None);

        let one = obj(json!({"userId":"u","event":"E","type":"identify","writeKey":"wk"}));
        let n = normalize_body(one, BodyKind::Single(EventType::Track), now()).unwrap();
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].event_type, EventType::Track, "the endpoint decides");
        assert!(n[0].message.get("writeKey").is_none());

        let batch = obj(json!({"batch":[
            {"type":"track","userId":"u","event":"E"},
            {"type":"alias","userId":"u","previousId":"a"}
        ]}));
        let n = normalize_body(batch, BodyKind::Batch, now()).unwrap();
        let types: Vec<_> = n.iter().map(|n| n.event_type).collect();
        assert_eq!(types, [EventType::Track, EventType::Alias]);
        assert_eq!(n[1].user_key, "u");
    }

    #[test]
    fn a_bad_batch_is_refused_whole_and_names_the_item() {
        let cases = [
            (json!({}), None, "`batch` is required"),
            (json!({"batch": {}}), None, "`batch` must be an array"),
            (
                json!({"batch": [], "context": "web"}),
                None,
                "`context` must be an object",
            ),
            (
                json!({"batch": [], "integrations": [1]}),
                None,
                "`integrations` must be an object",
            ),
            (
                json!({"batch": [{"type":"track","userId":"u","event":"E"}, 7]}),
                Some(1),
                "must be an object",
            ),
            (
                json!({"batch": [{"type":"track","event":"E"}]}),
                Some(0),
                "userId",
            ),
        ];
        for (body, item, needle) in cases {
            let err = normalize_body(obj(body.clone()), BodyKind::Batch, now()).unwrap_err();
            assert_eq!(err.item, item, "{body}");
            assert!(err.message.contains(needle), "{body}: {err}");
        }
        let too_many = vec![json!({}); MAX_BATCH_EVENTS + 1];
        let err = normalize_body(obj(json!({ "batch": too_many })), BodyKind::Batch, now());
        assert!(err.unwrap_err().to_string().contains("the limit is 2500"));
        let err = Invalid {
            item: Some(3),
            message: "m".into(),
        };
        assert_eq!(err.to_string(), "batch[3]: m");
    }

    #[test]
    fn rejects_what_segment_rejects() {
        let cases = [
            (json!({"event":"E"}), Some(EventType::Track), "userId"),
            (json!({"userId":"u"}), Some(EventType::Track), "event"),
            (
                json!({"userId":"u","event":"E","messageId":"x".repeat(101)}),
                Some(EventType::Track),
                "messageId",
            ),
            (json!({"userId":"u","type":"bogus"}), None, "type"),
            (json!({"userId":"u"}), None, "type"),
            (json!({"userId":"u"}), Some(EventType::Group), "groupId"),
            (json!({"userId":"u"}), Some(EventType::Alias), "previousId"),
            (
                json!({"userId":"u","event":"E","timestamp":"yesterday"}),
                Some(EventType::Track),
                "timestamp",
            ),
            (
                json!({"userId":"u","event":"E","properties":"x"}),
                Some(EventType::Track),
                "properties",
            ),
            (
                json!({"userId":"u","event":"E","properties":{"p":"x".repeat(40_000)}}),
                Some(EventType::Track),
                "bytes",
            ),
        ];
        for (item, kind, needle) in cases {
            let err = normalize(obj(item.clone()), kind, Envelope::default(), now()).unwrap_err();
            assert!(err.contains(needle), "{item}: {err}");
        }
    }
}
