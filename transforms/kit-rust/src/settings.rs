//! Settings: a JSON object, parsed with serde into the transformation's own struct.

use serde::de::DeserializeOwned;

/// Parse the settings JSON into `T`; `name` (the transformation's name) starts
/// every message, which names the bad field (`mask-pii settings: hash[0]: invalid
/// type: integer `1`, expected a string`). Use `#[serde(deny_unknown_fields)]`
/// on `T` so that a misspelt key is refused.
pub fn parse_settings<T: DeserializeOwned>(raw: &str, name: &str) -> Result<T, String> {
    let value: serde_json::Value =
        serde_json::from_str(raw).map_err(|e| format!("{name} settings: not JSON: {e}"))?;
    if !value.is_object() {
        return Err(format!("{name} settings: must be a JSON object"));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        if path == "." || path.is_empty() || message.starts_with("unknown field") {
            format!("{name} settings: {message}")
        } else {
            format!("{name} settings: {path}: {message}")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct S {
        hash: Vec<String>,
    }

    #[test]
    fn messages_name_the_field() {
        assert!(parse_settings::<S>(r#"{"hash":["a"]}"#, "t").is_ok());
        let e = parse_settings::<S>(r#"{"hash":[1]}"#, "t").unwrap_err();
        assert!(e.starts_with("t settings: hash[0]: invalid type"), "{e}");
        let e = parse_settings::<S>(r#"{"hsh":[]}"#, "t").unwrap_err();
        assert!(e.starts_with("t settings: unknown field `hsh`"), "{e}");
        assert_eq!(
            parse_settings::<S>("[]", "t").unwrap_err(),
            "t settings: must be a JSON object"
        );
    }
}
