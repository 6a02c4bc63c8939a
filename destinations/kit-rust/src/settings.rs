//! Settings: a JSON object, parsed with serde into the destination's own struct.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

/// For `#[serde(default, deserialize_with = "kit::string_or_integer")]`: an id
/// that a vendor's UI shows as a number (a project id) given as a JSON number
/// or as a string, kept as its text.
pub fn string_or_integer<'de, D: Deserializer<'de>>(de: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Number(u64),
    }
    Ok(Option::<Id>::deserialize(de)
        .map_err(|_| serde::de::Error::custom("expected a string or a non-negative integer"))?
        .map(|id| match id {
            Id::Text(s) => s,
            Id::Number(n) => n.to_string(),
        }))
}

/// Parse the settings JSON into `T`; `name` (the destination's name) starts every
/// message. Use `#[serde(deny_unknown_fields)]` on `T` so that a misspelt key is refused.
///
/// The message names the bad field, e.g.
/// - `mixpanel settings: missing field `project_id``
/// - `mixpanel settings: unknown field `tokn`, expected one of ...`
/// - `http settings: headers.X-Team: invalid type: integer `1`, expected a string`
pub fn parse_settings<T: DeserializeOwned>(raw: &str, name: &str) -> Result<T, String> {
    let value: serde_json::Value = serde_json::from_str(raw)
        .map_err(|e| format!("{name} settings: not JSON: {}", without_position(&e)))?;
    if !value.is_object() {
        return Err(format!("{name} settings: must be a JSON object"));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut path = e.path().to_string();
        let message = without_position(e.inner());
        if message.starts_with("unknown field") {
            // The path ends with the unknown key, which the message names already.
            path = path
                .rsplit_once('.')
                .map_or(String::new(), |(p, _)| p.into());
        }
        if path == "." || path.is_empty() {
            format!("{name} settings: {message}")
        } else {
            format!("{name} settings: {path}: {message}")
        }
    })
}

/// serde_json's message without its " at line L column C" suffix (the settings are one
/// JSON value built by the host, so positions mean nothing to the operator).
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    if e.line() == 0 {
        return text;
    }
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// Check that a URL setting is an absolute `http://` or `https://` URL with a host.
/// The message names the destination and the field.
pub fn check_url(name: &str, field: &str, url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => {
            if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
                Err(format!(
                    "{name} settings: {field} must not contain spaces, got {url:?}"
                ))
            } else {
                Ok(())
            }
        }
        _ => Err(format!(
            "{name} settings: {field} must be an http:// or https:// URL, got {url:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct S {
        url: String,
        #[serde(default)]
        headers: BTreeMap<String, String>,
        #[serde(default)]
        batch: Option<bool>,
    }

    #[test]
    fn messages_name_the_field() {
        let e = parse_settings::<S>(r#"{}"#, "x").unwrap_err();
        assert_eq!(e, "x settings: missing field `url`");
        let e = parse_settings::<S>(r#"{"url":"u","tokn":1}"#, "x").unwrap_err();
        assert!(e.starts_with("x settings: unknown field `tokn`"), "{e}");
        let e = parse_settings::<S>(r#"{"url":"u","headers":{"A":1}}"#, "x").unwrap_err();
        assert_eq!(
            e,
            "x settings: headers.A: invalid type: integer `1`, expected a string"
        );
        let e = parse_settings::<S>(r#"{"url":"u","batch":"yes"}"#, "x").unwrap_err();
        assert!(e.starts_with("x settings: batch: invalid type"), "{e}");
        let e = parse_settings::<S>(r#"[]"#, "x").unwrap_err();
        assert_eq!(e, "x settings: must be a JSON object");
        let e = parse_settings::<S>(r#"{"url":"#, "x").unwrap_err();
        assert!(e.starts_with("x settings: not JSON: EOF"), "{e}");
        assert!(parse_settings::<S>(r#"{"url":"u"}"#, "x").is_ok());
    }

    #[test]
    fn urls_must_be_http() {
        assert!(check_url("x", "url", "https://example.com/hook").is_ok());
        assert!(check_url("x", "url", "http://127.0.0.1:9999").is_ok());
        assert!(check_url("x", "url", "ftp://example.com").is_err());
        assert!(check_url("x", "url", "https://").is_err());
        let e = check_url("x", "endpoint", "example.com").unwrap_err();
        assert_eq!(
            e,
            "x settings: endpoint must be an http:// or https:// URL, got \"example.com\""
        );
    }
}

/// [`check_url`] for a base URL (an `endpoint` setting), with its trailing `/`s
/// removed so that paths can be appended.
pub fn check_endpoint(name: &str, field: &str, url: &mut String) -> Result<(), String> {
    check_url(name, field, url)?;
    while url.ends_with('/') {
        url.pop();
    }
    Ok(())
}

#[cfg(test)]
mod endpoint_tests {
    use super::check_endpoint;

    #[test]
    fn an_endpoint_is_checked_and_loses_its_trailing_slashes() {
        let mut url = "https://api.example.com//".to_string();
        check_endpoint("x", "endpoint", &mut url).unwrap();
        assert_eq!(url, "https://api.example.com");
        let mut bad = "api.example.com".to_string();
        assert!(check_endpoint("x", "endpoint", &mut bad)
            .unwrap_err()
            .contains("endpoint"));
    }
}
