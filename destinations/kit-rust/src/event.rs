//! Events: the normalised Segment message of an [`Event`], and small accessors.

use serde_json::{Map, Value};

use crate::Event;

/// The whole normalised Segment message of an event (`type`, `messageId`, `userId`,
/// `anonymousId`, `event`, `name`, `properties`, `traits`, `context`, `timestamp`, ...).
///
/// The host always hands over a valid JSON object; should the text not parse, this is
/// an empty object (so the destination's own checks, such as a missing id, decide).
pub fn event_json(event: &Event) -> Value {
    match serde_json::from_str::<Value>(&event.json) {
        Ok(value @ Value::Object(_)) => value,
        _ => Value::Object(Map::new()),
    }
}

/// The value at a dotted path (`"context.page.url"`), if every step is an object key.
pub fn value_at<'a>(message: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(message, |value, key| value.as_object()?.get(key))
}

/// The string at a dotted path, if it is a string.
pub fn str_at<'a>(message: &'a Value, path: &str) -> Option<&'a str> {
    value_at(message, path).and_then(Value::as_str)
}

/// A copy of the object at a dotted path (`"properties"`, `"context.traits"`); empty when
/// absent, `null` or not an object.
pub fn object_at(message: &Value, path: &str) -> Map<String, Value> {
    match value_at(message, path) {
        Some(Value::Object(map)) => map.clone(),
        _ => Map::new(),
    }
}

/// An identifier field (`userId`, `anonymousId`, `groupId`, `previousId`) as text:
/// a non-empty string, or a number written as text (ingest accepts both).
pub fn id_field(message: &Value, path: &str) -> Option<String> {
    match value_at(message, path)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EventType;
    use serde_json::json;

    #[test]
    fn accessors_follow_dotted_paths() {
        let m = json!({"userId": 42, "anonymousId": "", "context": {"page": {"url": "https://x"}}});
        assert_eq!(id_field(&m, "userId").as_deref(), Some("42"));
        assert_eq!(id_field(&m, "anonymousId"), None);
        assert_eq!(str_at(&m, "context.page.url"), Some("https://x"));
        assert_eq!(str_at(&m, "context.page.title"), None);
        assert!(object_at(&m, "properties").is_empty());
        assert_eq!(object_at(&m, "context.page").len(), 1);
    }

    #[test]
    fn event_json_is_always_an_object() {
        let e = |json: &str| Event {
            message_id: "m".into(),
            event_type: EventType::Track,
            json: json.into(),
        };
        assert_eq!(event_json(&e(r#"{"a":1}"#)), json!({"a": 1}));
        assert_eq!(event_json(&e("[1]")), json!({}));
        assert_eq!(event_json(&e("{")), json!({}));
    }
}
