//! The `mask-pii` transformation: hash or remove personal data before a
//! destination gets an event.
//!
//! Where it sits in the flow: in a destination's chain of transformations
//! (`[[destinations]] transforms`), before its `deliver`. For each event:
//! - every field named in `hash` is replaced by the hex SHA-256 of its
//!   normalised value, the way the Facebook Conversions API expects it: text is
//!   trimmed and lower-cased; a field whose name contains `phone` keeps its
//!   digits only (country code included), without leading zeros; a value that
//!   is already a SHA-256 (64 hex digits) is left as it is (lower-cased); a
//!   value that normalises to nothing becomes `null` rather than the hash of
//!   an empty string; numbers and booleans are hashed as their text, arrays
//!   element by element;
//! - every field named in `remove` is deleted.
//!
//! Absent fields are skipped; the event always goes on. Paths are dotted
//! (`traits.email`, `context.traits.email`); `messageId` and `type` cannot be
//! named, since the host checks they stay as they were.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use switchyard_transform_kit::serde_json::Value;
use switchyard_transform_kit::{self as kit, Message, Step};

/// Settings of one `mask-pii` transformation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Dotted paths whose values are replaced by their normalised SHA-256.
    #[serde(default)]
    pub hash: Vec<String>,
    /// Dotted paths deleted from the event.
    #[serde(default)]
    pub remove: Vec<String>,
    /// Normalise before hashing (trim, lower case, phone digits); default true.
    #[serde(default = "yes")]
    pub normalize: bool,
}

fn yes() -> bool {
    true
}

const SETTINGS_SCHEMA: &str = r#"{
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "hash": {"type": "array", "items": {"type": "string"}, "description": "Dotted paths hashed with SHA-256, e.g. traits.email"},
    "remove": {"type": "array", "items": {"type": "string"}, "description": "Dotted paths deleted, e.g. context.ip"},
    "normalize": {"type": "boolean", "default": true, "description": "Trim and lower-case text, keep a phone's digits, before hashing"}
  }
}"#;

/// The transformation.
pub struct MaskPii;

impl kit::Transform for MaskPii {
    const NAME: &'static str = "mask-pii";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SETTINGS_SCHEMA: &'static str = SETTINGS_SCHEMA;
    type Settings = Settings;

    fn settings(raw: &str) -> Result<Settings, String> {
        let s: Settings = kit::parse_settings(raw, "mask-pii")?;
        if s.hash.is_empty() && s.remove.is_empty() {
            return Err("mask-pii settings: name at least one field in `hash` or `remove`".into());
        }
        for (key, paths) in [("hash", &s.hash), ("remove", &s.remove)] {
            for (i, path) in paths.iter().enumerate() {
                if path.is_empty() || path.split('.').any(str::is_empty) {
                    return Err(format!(
                        "mask-pii settings: {key}[{i}]: `{path}` is not a dotted path"
                    ));
                }
                if path == "messageId" || path == "type" {
                    return Err(format!(
                        "mask-pii settings: {key}[{i}]: `{path}` identifies the event and cannot be masked"
                    ));
                }
            }
        }
        Ok(s)
    }

    fn event(s: &Settings, mut event: Message) -> Step {
        for path in &s.hash {
            if let Some(value) = kit::take_path(&mut event, path) {
                let phone = path
                    .rsplit('.')
                    .next()
                    .is_some_and(|k| k.to_ascii_lowercase().contains("phone"));
                let hashed = hash_value(value, s.normalize, phone);
                kit::set_path(&mut event, path, hashed);
            }
        }
        for path in &s.remove {
            kit::take_path(&mut event, path);
        }
        Step::Keep(event)
    }
}

/// The hashed form of a value (`null` stays `null`).
fn hash_value(value: Value, normalize: bool, phone: bool) -> Value {
    match value {
        Value::Null => Value::Null,
        Value::String(s) => hash_text(&s, normalize, phone).map_or(Value::Null, Value::String),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|v| hash_value(v, normalize, phone))
                .collect(),
        ),
        Value::Object(_) => {
            hash_text(&value.to_string(), false, false).map_or(Value::Null, Value::String)
        }
        other => hash_text(&other.to_string(), normalize, phone).map_or(Value::Null, Value::String),
    }
}

/// Hex SHA-256 of normalised text; already-hashed text is kept; `None` when
/// nothing is left to hash.
pub fn hash_text(text: &str, normalize: bool, phone: bool) -> Option<String> {
    if is_sha256(text.trim()) {
        return Some(text.trim().to_ascii_lowercase());
    }
    let normal = match (normalize, phone) {
        (false, _) => text.to_string(),
        (true, true) => {
            let digits: String = text.chars().filter(char::is_ascii_digit).collect();
            digits.trim_start_matches('0').to_string()
        }
        (true, false) => text.trim().to_lowercase(),
    };
    (!normal.is_empty()).then(|| hex::encode(Sha256::digest(normal.as_bytes())))
}

fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.chars().all(|c| c.is_ascii_hexdigit())
}

switchyard_transform_kit::export_transform!(MaskPii);

#[cfg(test)]
mod tests {
    use super::*;
    use kit::serde_json::json;
    use kit::Transform as _;

    fn run(settings: &str, event: Value) -> Message {
        let s = MaskPii::settings(settings).unwrap();
        match MaskPii::event(&s, event.as_object().unwrap().clone()) {
            Step::Keep(m) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn fields_are_hashed_normalised_or_removed() {
        let out = run(
            r#"{"hash":["traits.email","traits.phone","traits.age","traits.none"],"remove":["context.ip"]}"#,
            json!({"type":"identify","messageId":"m","traits":{"email":"  Jane.Doe@Example.COM ","phone":"+1 (650) 555-0100","age":42},"context":{"ip":"1.2.3.4","locale":"en"}}),
        );
        // sha256("jane.doe@example.com") and sha256("16505550100"), as the vendors document them.
        assert_eq!(
            out["traits"]["email"],
            hex::encode(Sha256::digest(b"jane.doe@example.com"))
        );
        assert_eq!(
            out["traits"]["phone"],
            hex::encode(Sha256::digest(b"16505550100"))
        );
        assert_eq!(out["traits"]["age"], hex::encode(Sha256::digest(b"42")));
        assert!(out["traits"].get("none").is_none());
        assert_eq!(out["context"], json!({"locale":"en"}));
        assert_eq!(out["messageId"], "m");
    }

    #[test]
    fn hashed_values_are_not_hashed_twice() {
        let once = hash_text("a@b.c", true, false).unwrap();
        assert_eq!(hash_text(&once, true, false).unwrap(), once);
        assert_eq!(hash_text(&once.to_uppercase(), true, false).unwrap(), once);
        assert_eq!(hash_text(&format!(" {once}\n"), true, false).unwrap(), once);
    }

    #[test]
    fn nothing_left_to_hash_is_null() {
        let out = run(
            r#"{"hash":["traits.phone","traits.email"]}"#,
            json!({"type":"identify","messageId":"m","traits":{"phone":"n/a","email":"   "}}),
        );
        assert_eq!(out["traits"]["phone"], Value::Null);
        assert_eq!(out["traits"]["email"], Value::Null);
    }

    #[test]
    fn bad_settings_name_the_field() {
        for (raw, part) in [
            (r#"{}"#, "at least one field"),
            (r#"{"hash":["traits..email"]}"#, "hash[0]"),
            (r#"{"remove":["messageId"]}"#, "remove[0]: `messageId`"),
            (r#"{"hash":"traits.email"}"#, "hash: invalid type"),
            (r#"{"hashes":[]}"#, "unknown field `hashes`"),
        ] {
            let e = MaskPii::settings(raw).unwrap_err();
            assert!(e.contains(part), "{raw}: {e}");
        }
    }
}
