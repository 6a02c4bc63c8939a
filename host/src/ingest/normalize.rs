//! Validation and normalisation of Segment messages: a request body (one call,
//! or a batch) into the events that are stored, as the book's
//! `concepts/ingest.md` describes them.
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
/// The fields that hold ids: no control character in them is taken.
pub const ID_FIELDS: [&str; 5] = [
    "userId",
    "anonymousId",
    "groupId",
    "previousId",
    "messageId",
];

/// Longest `messageId`.
pub const MAX_MESSAGE_ID_CHARS: usize = 100;
/// Most bytes one request may store, all its events together, as stored (a batch's
/// `context` and `integrations` are copied into every event, so a small body can
/// ask for much more).
pub const MAX_STORED_BYTES: usize = 4 << 20;
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
    /// The kind of an endpoint (`track`, ..., `alias`, `batch`, `import`, and the
    /// short paths `t`, `i`, `p`, `s`, `g`, `a`, `b` that analytics.js and the
    /// mobile SDKs post to); `None` for any other name.
    pub fn of_endpoint(name: &str) -> Option<BodyKind> {
        let long = match name {
            "t" => "track",
            "i" => "identify",
            "p" => "page",
            "s" => "screen",
            "g" => "group",
            "a" => "alias",
            "b" => "batch",
            other => other,
        };
        match long {
            "batch" | "import" => Some(BodyKind::Batch),
            other => EventType::parse(other).map(BodyKind::Single),
        }
    }
}

/// Why a whole body was refused: a message for the client, and the batch item it
/// is about. A batch none of whose events is valid is refused too, with every
/// rejected event listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Index of the batch item, when the message is about one.
    pub item: Option<usize>,
    /// A stable code for the kind of problem (`invalid_request`, or the event's code).
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
    /// Every refused event, when the body had no valid one.
    pub rejected: Vec<Rejected>,
}

/// Why one event was refused: a stable code and a message for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// `missing_field`, `invalid_field`, `too_large` or `not_an_object`.
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
}

impl Reject {
    fn missing(message: impl Into<String>) -> Reject {
        Reject {
            code: "missing_field",
            message: message.into(),
        }
    }
    fn invalid(message: impl Into<String>) -> Reject {
        Reject {
            code: "invalid_field",
            message: message.into(),
        }
    }
}

/// One event of a batch that was not stored, while its neighbours were.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rejected {
    /// Its index in the batch.
    pub index: usize,
    /// Its `messageId`, when it had a usable one.
    #[serde(rename = "messageId")]
    pub message_id: Option<String>,
    /// Why, as a code.
    pub code: &'static str,
    /// Why, for a person.
    pub message: String,
}

/// What a body holds once validated: the events to store and those refused.
#[derive(Debug, Clone, Default)]
pub struct Accepted {
    /// Valid, normalised events, in body order.
    pub events: Vec<Normalized>,
    /// Refused events of a batch, in body order.
    pub rejected: Vec<Rejected>,
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
            code: "invalid_request",
            message,
            rejected: Vec::new(),
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
    /// The client's address, for `context.ip` (see [`enrich`]).
    ip: Option<&'a str>,
}

/// A valid, normalised message.
#[derive(Debug, Clone)]
pub struct Normalized {
    /// The whole message, as stored and delivered.
    pub message: Map<String, Value>,
    /// The same as JSON text, as stored (at most [`MAX_EVENT_BYTES`]).
    pub json: String,
    /// Its `messageId` (given or assigned).
    pub message_id: String,
    /// Its `type`.
    pub event_type: EventType,
    /// `userId`, else `anonymousId`, as text.
    pub user_key: String,
}

/// What [`normalize_body`] promises of what it accepts, checked by the
/// properties in `make test` (`host/tests/properties.rs`) and the fuzz targets
/// of `make fuzz` (`fuzz/`): the first promise broken, if any.
pub fn broken_promise(accepted: &Accepted) -> Option<String> {
    if accepted.events.len() + accepted.rejected.len() > MAX_BATCH_EVENTS {
        return Some("more events than a batch may hold".into());
    }
    let mut stored = 0usize;
    for n in &accepted.events {
        stored += n.json.len();
        if n.json.len() > MAX_EVENT_BYTES {
            return Some(format!("{} stores {} bytes", n.message_id, n.json.len()));
        }
        match serde_json::from_str::<Value>(&n.json) {
            Ok(Value::Object(m)) if m == n.message => {}
            _ => return Some(format!("{}: stored JSON is not the message", n.message_id)),
        }
        if n.message_id.is_empty() || n.message_id.chars().count() > MAX_MESSAGE_ID_CHARS {
            return Some(format!("bad messageId {:?}", n.message_id));
        }
        if n.message.get("messageId").and_then(Value::as_str) != Some(n.message_id.as_str()) {
            return Some(format!(
                "{}: messageId differs from the message's",
                n.message_id
            ));
        }
        if n.message.get("type").and_then(Value::as_str) != Some(n.event_type.as_str()) {
            return Some(format!("{}: type differs from the message's", n.message_id));
        }
        let id_texts = ID_FIELDS
            .iter()
            .filter_map(|f| n.message.get(*f).and_then(Value::as_str))
            .chain([n.message_id.as_str(), n.user_key.as_str()]);
        for id in id_texts {
            if id.chars().any(char::is_control) {
                return Some(format!("{id:?}: an id with a control character"));
            }
        }
        for field in ["timestamp", "receivedAt"] {
            let ok = n
                .message
                .get(field)
                .and_then(Value::as_str)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .is_some_and(|t| (1..=9999).contains(&chrono::Datelike::year(&t)));
            if !ok {
                return Some(format!("{}: `{field}` is not RFC 3339", n.message_id));
            }
        }
    }
    (stored > MAX_STORED_BYTES).then(|| format!("{stored} bytes stored for one request"))
}

/// Validate and normalise a whole body (a JSON object).
///
/// A single call (`/v1/track`, ...) is all or nothing. A batch keeps its valid
/// events and lists the others in [`Accepted::rejected`], as Segment's API does,
/// so that one bad event does not sink its neighbours; a batch with no valid
/// event at all is refused whole. Problems of the body itself (`batch` missing
/// or not an array, too many events, a bad envelope) refuse it whole.
pub fn normalize_body(
    mut root: Map<String, Value>,
    kind: BodyKind,
    received_at: DateTime<Utc>,
    ip: Option<&str>,
) -> Result<Accepted, Invalid> {
    if let BodyKind::Single(event_type) = kind {
        let envelope = Envelope {
            ip,
            ..Envelope::default()
        };
        return match normalize(root, Some(event_type), envelope, received_at) {
            Ok(n) => Ok(Accepted {
                events: vec![n],
                rejected: Vec::new(),
            }),
            Err(r) => Err(Invalid {
                item: None,
                code: r.code,
                message: r.message,
                rejected: Vec::new(),
            }),
        };
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
        ip,
    };
    let mut accepted = Accepted::default();
    let mut stored = 0usize;
    for (index, item) in items.into_iter().enumerate() {
        let message_id = item
            .get("messageId")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty() && id.chars().count() <= MAX_MESSAGE_ID_CHARS)
            .map(str::to_string);
        let result = match item {
            Value::Object(item) => normalize(item, None, envelope, received_at),
            _ => Err(Reject {
                code: "not_an_object",
                message: "must be an object".into(),
            }),
        };
        match result {
            Ok(n) => {
                stored += n.json.len();
                if stored > MAX_STORED_BYTES {
                    return Err(Invalid {
                        item: Some(index),
                        code: "request_too_large",
                        message: format!(
                            "the events of this request take more than {MAX_STORED_BYTES} bytes \
                             as stored (the batch's context and integrations are copied into \
                             each event)"
                        ),
                        rejected: Vec::new(),
                    });
                }
                accepted.events.push(n)
            }
            Err(r) => accepted.rejected.push(Rejected {
                index,
                message_id,
                code: r.code,
                message: r.message,
            }),
        }
    }
    if accepted.events.is_empty() {
        if let Some(first) = accepted.rejected.first() {
            return Err(Invalid {
                item: Some(first.index),
                code: first.code,
                message: format!(
                    "no valid event in the batch ({} refused); the first: {}",
                    accepted.rejected.len(),
                    first.message
                ),
                rejected: accepted.rejected,
            });
        }
    }
    Ok(accepted)
}

/// Validate and normalise `item`. `kind` is the endpoint's type (`None` for batch items,
/// which carry their own). Errors are messages for the client.
fn normalize(
    mut item: Map<String, Value>,
    kind: Option<EventType>,
    envelope: Envelope<'_>,
    received_at: DateTime<Utc>,
) -> Result<Normalized, Reject> {
    let event_type = match kind {
        Some(k) => k,
        None => {
            let given = item
                .get("type")
                .ok_or_else(|| Reject::missing("`type` is required in batch items"))?;
            given.as_str().and_then(EventType::parse).ok_or_else(|| {
                Reject::invalid(format!(
                    "`type` must be one of {}, got {given}",
                    EventType::names()
                ))
            })?
        }
    };
    item.insert("type".into(), Value::String(event_type.into()));
    item.remove("writeKey");
    // Identifiers sent as numbers are kept as their digits, as strings: a
    // destination that reads JSON numbers as doubles would round one beyond 2^53.
    // (Ingest reads integers up to 2^64 exactly; larger ones are read as doubles,
    // since `arbitrary_precision` cost 11 % of the ingest ceiling: BENCHMARKS.md.)
    for field in ["userId", "anonymousId", "groupId", "previousId"] {
        if let Some(Value::Number(n)) = item.get(field) {
            let digits = n.to_string();
            item.insert(field.into(), Value::String(digits));
        }
    }

    // Ids travel in NATS headers, log lines and the debugger's rows: a control
    // character in one (a line break, say) is refused here, before anything stores it.
    for field in ID_FIELDS {
        if let Some(Value::String(id)) = item.get(field) {
            refuse_control_characters(field, id)?;
        }
    }
    let user_key = id_text(&item, "userId")?
        .or(id_text(&item, "anonymousId")?)
        .ok_or_else(|| Reject::missing("`userId` or `anonymousId` is required"))?;
    if event_type == EventType::Track
        && !matches!(item.get("event"), Some(Value::String(e)) if !e.trim().is_empty())
    {
        return Err(Reject::missing("`event` is required for track calls"));
    }
    let required_id = match event_type {
        EventType::Group => Some("groupId"),
        EventType::Alias => Some("previousId"),
        _ => None,
    };
    if let Some(field) = required_id {
        if id_text(&item, field)?.is_none() {
            return Err(Reject::missing(format!(
                "`{field}` is required for {event_type} calls"
            )));
        }
    }
    for field in ["properties", "traits"] {
        if let Some(v) = item.get(field) {
            if !v.is_object() && !v.is_null() {
                return Err(Reject::invalid(format!("`{field}` must be an object")));
            }
        }
    }

    let message_id = match item.get("messageId") {
        None | Some(Value::Null) => uuid::Uuid::new_v4().to_string(),
        Some(Value::String(id)) if id.is_empty() => {
            return Err(Reject::invalid("`messageId` must not be empty"))
        }
        Some(Value::String(id)) if id.chars().count() > MAX_MESSAGE_ID_CHARS => {
            return Err(Reject::invalid(format!(
                "`messageId` is longer than {MAX_MESSAGE_ID_CHARS} characters"
            )))
        }
        Some(Value::String(id)) => id.clone(),
        Some(_) => return Err(Reject::invalid("`messageId` must be a string")),
    };
    item.insert("messageId".into(), Value::String(message_id.clone()));

    merge_under(&mut item, "context", envelope.context).map_err(Reject::invalid)?;
    merge_under(&mut item, "integrations", envelope.integrations).map_err(Reject::invalid)?;

    // Timestamps: receivedAt is ours; the client's clock is corrected by how far
    // its sentAt is from our receivedAt. A timestamp that cannot be read is not a
    // reason to refuse the event: it is left out (so receivedAt stands in) and
    // noted under `context.switchyard.warnings`.
    let mut warnings = Vec::new();
    let mut read = |field: &str, v: Option<&Value>| -> Option<DateTime<Utc>> {
        let v = v.filter(|v| !v.is_null())?;
        let parsed = parse_time(v).filter(in_range);
        if parsed.is_none() {
            warnings.push(Value::String(format!(
                "`{field}` {v} is not a date; receivedAt is used instead"
            )));
        }
        parsed
    };
    let original = match item.get("originalTimestamp").filter(|v| !v.is_null()) {
        Some(v) => read("originalTimestamp", Some(v)),
        None => read("timestamp", item.get("timestamp")),
    };
    let sent_at = match item.get("sentAt").filter(|v| !v.is_null()) {
        Some(v) => read("sentAt", Some(v)),
        None => read("sentAt", envelope.sent_at),
    };
    let corrected = match (original, sent_at) {
        (Some(orig), Some(sent)) => received_at.checked_sub_signed(sent - orig),
        (Some(orig), None) => Some(orig),
        (None, _) => Some(received_at),
    };
    let timestamp = match corrected.filter(in_range) {
        Some(t) => t,
        None => {
            warnings.push(Value::String(
                "the corrected timestamp falls outside years 1 to 9999; receivedAt is used instead"
                    .into(),
            ));
            received_at
        }
    };
    item.insert("receivedAt".into(), Value::String(iso(received_at)));
    item.insert("timestamp".into(), Value::String(iso(timestamp)));
    match original {
        Some(orig) => {
            item.insert("originalTimestamp".into(), Value::String(iso(orig)));
        }
        None => {
            item.remove("originalTimestamp");
        }
    }
    match sent_at {
        Some(sent) => {
            item.insert("sentAt".into(), Value::String(iso(sent)));
        }
        None => {
            item.remove("sentAt");
        }
    }
    if !warnings.is_empty() {
        note(&mut item, warnings);
    }
    enrich(&mut item, envelope.ip);
    // The limit holds on what is stored: after the batch's context and
    // integrations are merged in and ingest's own fields are added.
    let json = serde_json::to_string(&item).unwrap_or_default();
    if json.len() > MAX_EVENT_BYTES {
        return Err(Reject {
            code: "too_large",
            message: format!(
                "event is {} bytes as stored; the limit is {MAX_EVENT_BYTES} bytes",
                json.len()
            ),
        });
    }

    Ok(Normalized {
        message: item,
        json,
        message_id,
        event_type,
        user_key,
    })
}

/// An id with a control character (C0, DEL or C1: a line break, a tab, an
/// escape) is refused, naming the first one.
fn refuse_control_characters(field: &str, id: &str) -> Result<(), Reject> {
    match id.chars().find(|c| c.is_control()) {
        Some(c) => Err(Reject::invalid(format!(
            "`{field}` must not contain control characters (found U+{:04X})",
            c as u32
        ))),
        None => Ok(()),
    }
}

/// An identifier field as text: a non-empty string or a number; absent/null is `None`.
fn id_text(item: &Map<String, Value>, field: &str) -> Result<Option<String>, Reject> {
    match item.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(Reject::invalid(format!("`{field}` must be a string"))),
    }
}

/// Add `warnings` to `context.switchyard.warnings`.
fn note(item: &mut Map<String, Value>, warnings: Vec<Value>) {
    let context = item
        .entry("context")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(context) = context {
        let ours = context
            .entry("switchyard")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(ours) = ours {
            match ours.get_mut("warnings") {
                Some(Value::Array(list)) => list.extend(warnings),
                _ => {
                    ours.insert("warnings".into(), Value::Array(warnings));
                }
            }
        }
    }
}

/// What ingest adds from the request, as Segment's API does: `context.ip` (the
/// client's address) and `context.library` when the client sent none.
pub fn enrich(message: &mut Map<String, Value>, ip: Option<&str>) {
    let context = message
        .entry("context")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(context) = context {
        if let Some(ip) = ip {
            if !matches!(context.get("ip"), Some(Value::String(s)) if !s.is_empty()) {
                context.insert("ip".into(), Value::String(ip.to_string()));
            }
        }
        if !matches!(context.get("library"), Some(Value::Object(_))) {
            context.insert(
                "library".into(),
                serde_json::json!({"name": "unknown", "version": "unknown"}),
            );
        }
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

/// Whether `t` is a year RFC 3339 can write (1 to 9999).
fn in_range(t: &DateTime<Utc>) -> bool {
    use chrono::Datelike;
    (1..=9999).contains(&t.year())
}

/// Read a date as the SDKs and Segment's API send them: RFC 3339, ISO 8601 with a
/// `+0000` offset or with no zone (taken as UTC), a space for the `T`, a date
/// alone (midnight UTC), or a number of milliseconds (or, below 10^11, seconds)
/// since the epoch, also as a string of digits.
pub fn parse_time(v: &Value) -> Option<DateTime<Utc>> {
    use chrono::{NaiveDate, NaiveDateTime, TimeZone};
    let epoch = |n: f64| -> Option<DateTime<Utc>> {
        let ms = if n.abs() >= 1e11 { n } else { n * 1000.0 };
        Utc.timestamp_millis_opt(ms as i64).single()
    };
    let text = match v {
        Value::Number(n) => return n.as_f64().and_then(epoch),
        Value::String(s) => s.trim(),
        _ => return None,
    };
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse::<f64>().ok().and_then(epoch);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%.f%:z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(text, format) {
            return Some(t.with_timezone(&Utc));
        }
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
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
            ip: None,
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
        for (short, long) in [
            ("t", "track"),
            ("i", "identify"),
            ("p", "page"),
            ("s", "screen"),
            ("g", "group"),
            ("a", "alias"),
            ("b", "batch"),
        ] {
            assert_eq!(
                BodyKind::of_endpoint(short),
                BodyKind::of_endpoint(long),
                "{short}"
            );
        }

        let one = obj(json!({"userId":"u","event":"E","type":"identify","writeKey":"wk"}));
        let n = normalize_body(one, BodyKind::Single(EventType::Track), now(), None)
            .unwrap()
            .events;
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].event_type, EventType::Track, "the endpoint decides");
        assert!(n[0].message.get("writeKey").is_none());

        let batch = obj(json!({"batch":[
            {"type":"track","userId":"u","event":"E"},
            {"type":"alias","userId":"u","previousId":"a"}
        ]}));
        let n = normalize_body(batch, BodyKind::Batch, now(), None)
            .unwrap()
            .events;
        let types: Vec<_> = n.iter().map(|n| n.event_type).collect();
        assert_eq!(types, [EventType::Track, EventType::Alias]);
        assert_eq!(n[1].user_key, "u");
    }

    #[test]
    fn a_bad_body_is_refused_whole_and_names_the_item() {
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
                json!({"batch": [{"type":"track","event":"E"}, 7]}),
                Some(0),
                "no valid event in the batch (2 refused)",
            ),
        ];
        for (body, item, needle) in cases {
            let err = normalize_body(obj(body.clone()), BodyKind::Batch, now(), None).unwrap_err();
            assert_eq!(err.item, item, "{body}");
            assert!(err.message.contains(needle), "{body}: {err}");
        }
        let too_many = vec![json!({}); MAX_BATCH_EVENTS + 1];
        let err = normalize_body(
            obj(json!({ "batch": too_many })),
            BodyKind::Batch,
            now(),
            None,
        );
        assert!(err.unwrap_err().to_string().contains("the limit is 2500"));
        let err = Invalid {
            item: Some(3),
            code: "invalid_request",
            message: "m".into(),
            rejected: Vec::new(),
        };
        assert_eq!(err.to_string(), "batch[3]: m");
    }

    #[test]
    fn a_bad_event_does_not_sink_its_neighbours() {
        let mut items: Vec<Value> = (0..99)
            .map(|i| json!({"type":"track","userId":"u","event":"E","messageId":format!("ok-{i}")}))
            .collect();
        items.insert(
            40,
            json!({"type":"track","event":"E","messageId":"no-user"}),
        );
        items.push(json!(7));
        let a =
            normalize_body(obj(json!({ "batch": items })), BodyKind::Batch, now(), None).unwrap();
        assert_eq!(a.events.len(), 99);
        assert_eq!(
            a.rejected,
            vec![
                Rejected {
                    index: 40,
                    message_id: Some("no-user".into()),
                    code: "missing_field",
                    message: "`userId` or `anonymousId` is required".into(),
                },
                Rejected {
                    index: 100,
                    message_id: None,
                    code: "not_an_object",
                    message: "must be an object".into(),
                },
            ]
        );
    }

    #[test]
    fn the_size_limits_hold_on_what_is_stored() {
        // A small item under a large batch context: over 32 KB once merged.
        let pad = "x".repeat(40 * 1024);
        let body = json!({"context": {"pad": pad}, "batch": [
            {"type":"track","userId":"u","event":"E","messageId":"a"},
            {"type":"track","userId":"u","event":"E","messageId":"b"}
        ]});
        let err = normalize_body(obj(body), BodyKind::Batch, now(), None).unwrap_err();
        assert_eq!(err.code, "too_large");
        assert_eq!(err.rejected.len(), 2, "{err}");
        assert!(err.rejected[0].message.contains("as stored"), "{err:?}");
        // Each event under 32 KB, but the request as stored over 4 MiB.
        let pad = "x".repeat(30 * 1024);
        let items: Vec<Value> = (0..200)
            .map(|i| json!({"type":"track","userId":"u","event":"E","messageId":format!("m{i}")}))
            .collect();
        let body = json!({"context": {"pad": pad}, "batch": items});
        let err = normalize_body(obj(body), BodyKind::Batch, now(), None).unwrap_err();
        assert_eq!(err.code, "request_too_large");
        assert!(err.rejected.is_empty());
        assert!(err.message.contains("as stored"), "{err}");
    }

    #[test]
    fn numeric_ids_keep_every_digit() {
        let item: Map<String, Value> = serde_json::from_str(
            r#"{"userId": 9007199254740993, "event": "E", "properties": {"big": 18446744073709551615}}"#,
        )
        .unwrap();
        let n = normalize(item, Some(EventType::Track), Envelope::default(), now()).unwrap();
        assert_eq!(
            n.message["userId"], "9007199254740993",
            "2^53 + 1, which a double rounds"
        );
        assert_eq!(n.user_key, "9007199254740993");
        assert!(
            n.json.contains(r#""big":18446744073709551615"#),
            "{}",
            n.json
        );
    }

    #[test]
    fn an_extreme_clock_falls_back_to_received_at() {
        let item = obj(json!({"userId":"u","event":"E",
            "originalTimestamp":"0001-01-01T00:00:00Z","sentAt":"9999-12-31T00:00:00Z"}));
        let n = normalize(item, Some(EventType::Track), Envelope::default(), now()).unwrap();
        assert_eq!(n.message["timestamp"], "2026-11-26T12:00:10.000Z");
        let item = obj(json!({"userId":"u","event":"E","timestamp": 1e18}));
        let n = normalize(item, Some(EventType::Track), Envelope::default(), now()).unwrap();
        assert_eq!(n.message["timestamp"], "2026-11-26T12:00:10.000Z");
        assert!(n.message["context"]["switchyard"]["warnings"]
            .to_string()
            .contains("not a date"));
    }

    #[test]
    fn every_timestamp_form_the_sdks_send_is_read() {
        let cases = [
            (json!("2026-11-30T10:00:00Z"), "2026-11-30T10:00:00.000Z"),
            (
                json!("2026-11-30T11:00:00+01:00"),
                "2026-11-30T10:00:00.000Z",
            ),
            (
                json!("2026-11-30T10:00:00+0000"),
                "2026-11-30T10:00:00.000Z",
            ),
            (
                json!("2026-11-30T10:00:00.250+0000"),
                "2026-11-30T10:00:00.250Z",
            ),
            (json!("2026-11-30T10:00:00"), "2026-11-30T10:00:00.000Z"),
            (json!("2026-11-30 10:00:00"), "2026-11-30T10:00:00.000Z"),
            (json!("2026-11-30"), "2026-11-30T00:00:00.000Z"),
            (json!(1_796_032_800_000_i64), "2026-11-30T10:00:00.000Z"),
            (json!(1_796_032_800), "2026-11-30T10:00:00.000Z"),
            (json!("1796032800000"), "2026-11-30T10:00:00.000Z"),
        ];
        for (given, want) in cases {
            let item = obj(json!({"userId":"u","event":"E","timestamp": given}));
            let n = normalize(item, Some(EventType::Track), Envelope::default(), now()).unwrap();
            assert_eq!(n.message["timestamp"], want, "{given}");
            assert!(
                n.message["context"].get("switchyard").is_none(),
                "{given}: no warning"
            );
        }
    }

    #[test]
    fn an_unreadable_timestamp_is_replaced_by_received_at_and_noted() {
        let item = obj(json!({"userId":"u","event":"E","timestamp":"yesterday","sentAt":"soon"}));
        let n = normalize(item, Some(EventType::Track), Envelope::default(), now()).unwrap();
        assert_eq!(n.message["timestamp"], "2026-11-26T12:00:10.000Z");
        assert!(n.message.get("originalTimestamp").is_none());
        assert!(n.message.get("sentAt").is_none());
        let warnings = n.message["context"]["switchyard"]["warnings"]
            .as_array()
            .unwrap();
        assert_eq!(warnings.len(), 2);
        assert!(
            warnings[0].as_str().unwrap().contains("yesterday"),
            "{warnings:?}"
        );
    }

    #[test]
    fn enrichment_adds_ip_and_library_only_when_missing() {
        let mut m =
            obj(json!({"context": {"ip": "1.2.3.4", "library": {"name": "analytics-python"}}}));
        enrich(&mut m, Some("9.9.9.9"));
        assert_eq!(m["context"]["ip"], "1.2.3.4");
        assert_eq!(m["context"]["library"]["name"], "analytics-python");
        let mut m = obj(json!({}));
        enrich(&mut m, Some("9.9.9.9"));
        assert_eq!(m["context"]["ip"], "9.9.9.9");
        assert_eq!(m["context"]["library"]["name"], "unknown");
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
            assert!(err.message.contains(needle), "{item}: {err:?}");
        }
    }

    #[test]
    fn ids_with_control_characters_are_refused() {
        for field in ID_FIELDS {
            for bad in [
                "u\nx",
                "u\r\nNats-Msg-Id: app/1",
                "\u{0}",
                "a\tb",
                "x\u{1b}[2J",
                "\u{85}",
            ] {
                let mut item = obj(json!({"userId":"u","anonymousId":"a","event":"E",
                    "groupId":"g","previousId":"p"}));
                item.insert(field.into(), json!(bad));
                let err = normalize(item, Some(EventType::Track), Envelope::default(), now())
                    .unwrap_err();
                assert_eq!(err.code, "invalid_field", "{field} {bad:?}");
                assert!(err.message.contains(field), "{field}: {}", err.message);
                assert!(
                    err.message.contains("control characters"),
                    "{}",
                    err.message
                );
            }
        }
        // Other unusual text stays an id: spaces, non-Latin letters, emoji.
        let item = obj(json!({"userId":" u\u{2028}ü 🙂 ","event":"E","messageId":"m 1"}));
        assert!(normalize(item, Some(EventType::Track), Envelope::default(), now()).is_ok());
    }
}
