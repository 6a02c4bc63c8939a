//! {{name}}: a Switchyard destination. One POST per batch to `settings.url`.
#![allow(unsafe_code)] // the code that wit-bindgen generates for the canonical ABI

use serde::Deserialize;

wit_bindgen::generate!({ world: "destination", path: "wit" });

use switchyard::destination::http;
use switchyard::destination::log;
use switchyard::destination::types::RetryHint;

/// The destination's settings (the `settings` table of its config).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// Where to POST.
    url: String,
    /// Optional bearer token.
    #[serde(default)]
    token: Option<String>,
}

fn settings(raw: &str) -> Result<Settings, String> {
    let s: Settings = serde_json::from_str(raw).map_err(|e| format!("{{name}} settings: {e}"))?;
    if !(s.url.starts_with("https://") || s.url.starts_with("http://")) {
        return Err("{{name}} settings: url must be an http:// or https:// URL".into());
    }
    Ok(s)
}

/// Retry-After (seconds) as milliseconds.
fn retry_after_ms(headers: &[(String, String)]) -> Option<u64> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
        .and_then(|(_, v)| v.trim().parse::<u64>().ok())
        .map(|s| s * 1000)
}

struct Component;

impl Guest for Component {
    fn describe() -> Metadata {
        Metadata {
            name: "{{name}}".into(),
            version: "0.1.0".into(),
            settings_schema: r#"{"type":"object","required":["url"],"properties":{"url":{"type":"string"},"token":{"type":"string"}}}"#.into(),
            max_batch: 100,
        }
    }

    fn check(raw: String) -> Result<(), String> {
        settings(&raw).map(|_| ())
    }

    fn deliver(raw: String, events: Vec<Event>) -> Vec<Result<(), Failure>> {
        let s = match settings(&raw) {
            Ok(s) => s,
            Err(e) => return vec![Err(Failure::Reject(e)); events.len()],
        };
        let body = format!("[{}]", events.iter().map(|e| e.json.as_str()).collect::<Vec<_>>().join(","));
        let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
        if let Some(token) = &s.token {
            headers.push(("authorization".into(), format!("Bearer {token}")));
        }
        let request = http::Request { method: "POST".into(), url: s.url, headers, body: body.into_bytes() };
        let outcome = match http::send(&request) {
            Ok(r) if (200..300).contains(&r.status) => Ok(()),
            Ok(r) if r.status == 429 || r.status >= 500 => Err(Failure::Retry(RetryHint {
                reason: format!("status {}", r.status),
                after_ms: retry_after_ms(&r.headers),
            })),
            Ok(r) => Err(Failure::Reject(format!("status {}: {}", r.status, String::from_utf8_lossy(&r.body)))),
            Err(http::Error::Denied(why)) => Err(Failure::Reject(why)),
            Err(e) => Err(Failure::Retry(RetryHint { reason: format!("{e:?}"), after_ms: None })),
        };
        if let Err(f) = &outcome {
            log::log(log::Level::Warn, &format!("batch failed: {f:?}"));
        }
        vec![outcome; events.len()]
    }
}

export!(Component);
