//! The `webhook` destination: one signed `POST` per batch.
//!
//! Where it sits in the flow: the host's dispatcher hands a batch of normalised
//! events to `deliver`; this component serialises them as one JSON array, signs
//! the body with HMAC-SHA256 of `settings.secret`, and sends it through the host's
//! `http` import (which enforces the allowlist). The receiver's answer decides the
//! outcome of every event in the batch, by the kit's standard classification:
//! - 2xx: delivered;
//! - 408, 429, 5xx, timeouts and connection errors: retry (with `Retry-After` as the hint);
//! - any other status, or a request the allowlist denies: reject.

use std::collections::BTreeMap;

use serde::Deserialize;
use switchyard_destination_kit::{self as kit, Event};

/// Settings of one webhook destination (the `settings` table of its config).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// Where to POST each batch (`http://` or `https://`).
    url: String,
    /// Key of the `X-Switchyard-Signature` HMAC; without it, no signature header is sent.
    #[serde(default)]
    secret: Option<String>,
    /// Extra headers sent with every request (e.g. an `Authorization` header).
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

const SETTINGS_SCHEMA: &str = r#"{
  "type": "object",
  "required": ["url"],
  "additionalProperties": false,
  "properties": {
    "url": {"type": "string", "description": "Receiver URL, http:// or https://"},
    "secret": {"type": "string", "description": "HMAC-SHA256 key for X-Switchyard-Signature"},
    "headers": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Extra request headers"}
  }
}"#;

/// Largest batch one request carries.
const MAX_BATCH: u32 = 500;

fn parse_settings(raw: &str) -> Result<Settings, String> {
    let settings: Settings = kit::parse_settings(raw, "webhook")?;
    if !(settings.url.starts_with("http://") || settings.url.starts_with("https://")) {
        return Err(format!(
            "webhook settings: url must start with http:// or https://, got {:?}",
            settings.url
        ));
    }
    if settings.secret.as_deref() == Some("") {
        return Err("webhook settings: secret must not be empty when given".into());
    }
    for name in settings.headers.keys() {
        let lower = name.to_ascii_lowercase();
        if name.is_empty() || lower == "content-type" || lower == "x-switchyard-signature" {
            return Err(format!("webhook settings: header {name:?} cannot be set"));
        }
    }
    Ok(settings)
}

/// The body: the events' JSON objects as one array, in batch order.
fn body_of(events: &[Event]) -> Vec<u8> {
    let len = events.iter().map(|e| e.json.len() + 1).sum::<usize>() + 2;
    let mut body = Vec::with_capacity(len);
    body.push(b'[');
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(event.json.as_bytes());
    }
    body.push(b']');
    body
}

/// `sha256=<hex HMAC-SHA256(body, secret)>`, computed by the host (at native
/// speed); `secret` may be the token of a `${secret:NAME}` of the config, whose
/// value this component never sees.
fn signature(secret: &str, body: &[u8]) -> Result<String, String> {
    kit::crypto::hmac_sha256(&kit::crypto::key(secret), body)
        .map(|mac| format!("sha256={}", kit::crypto::hex(&mac)))
}

struct Webhook;

impl kit::Destination for Webhook {
    const NAME: &'static str = "webhook";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SETTINGS_SCHEMA: &'static str = SETTINGS_SCHEMA;
    const MAX_BATCH: u32 = MAX_BATCH;
    type Settings = Settings;

    fn settings(raw: &str) -> Result<Settings, String> {
        parse_settings(raw)
    }

    fn deliver(settings: Settings, events: Vec<Event>) -> Vec<kit::Outcome> {
        if events.is_empty() {
            return Vec::new();
        }
        let body = body_of(&events);
        let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
        if let Some(secret) = &settings.secret {
            match signature(secret, &body) {
                Ok(sig) => headers.push(("x-switchyard-signature".into(), sig)),
                Err(why) => {
                    return vec![Err(kit::reject(format!("signing failed: {why}"))); events.len()]
                }
            }
        }
        headers.extend(settings.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
        let outcome = kit::classify(kit::send("POST", &settings.url, &headers, body));
        vec![outcome; events.len()]
    }
}

switchyard_destination_kit::export_destination!(Webhook);
