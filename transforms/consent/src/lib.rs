//! The `consent` transformation: honour the consent an event carries before a
//! destination gets it.
//!
//! Where it sits in the flow: in a destination's chain of transformations.
//! Segment's consent object, `context.consent.categoryPreferences` (a map of
//! category → `true`/`false`, set by a consent manager such as OneTrust), is
//! compared with the `categories` configured for this destination: the event
//! goes on only when the user consented to every one of them, as Segment's
//! consent management decides. Otherwise, by `action`:
//! - `drop` (the default): the event is left out (settled as filtered);
//! - `strip`: a track, page or screen call goes on without what identifies
//!   the user: `userId`, `previousId`, `traits`, `context.traits`,
//!   `context.ip`, `context.device.id` and `context.device.advertisingId` are
//!   removed (`anonymousId` stays, as it is the SDK's random id; `properties`
//!   stay). An identify, group or alias call exists only to identify someone,
//!   so it is dropped.
//!
//! An event without a consent object passes (`missing = "allow"`, Segment's
//! rule: consent applies once a consent manager reports it) or is treated as
//! consenting to nothing (`missing = "deny"`).

use serde::Deserialize;
use switchyard_transform_kit::serde_json::Value;
use switchyard_transform_kit::{self as kit, Message, Step};

/// What to do with an event that lacks consent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Leave it out of the destination.
    #[default]
    Drop,
    /// Send it without what identifies the user.
    Strip,
}

/// What an event without a consent object means.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Missing {
    /// It passes.
    #[default]
    Allow,
    /// It consents to nothing.
    Deny,
}

/// Settings of one `consent` transformation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The consent categories this destination needs (all of them), e.g. `["Advertising"]`.
    pub categories: Vec<String>,
    /// `drop` (default) or `strip`.
    #[serde(default)]
    pub action: Action,
    /// `allow` (default) or `deny`.
    #[serde(default)]
    pub missing: Missing,
}

const SETTINGS_SCHEMA: &str = r#"{
  "type": "object",
  "required": ["categories"],
  "additionalProperties": false,
  "properties": {
    "categories": {"type": "array", "items": {"type": "string"}, "minItems": 1, "description": "Consent categories the destination needs, e.g. Advertising"},
    "action": {"enum": ["drop", "strip"], "default": "drop", "description": "What happens to an event without consent"},
    "missing": {"enum": ["allow", "deny"], "default": "allow", "description": "Whether an event without a consent object passes"}
  }
}"#;

/// What identifies a user, removed by `strip`.
const IDENTIFYING: [&str; 7] = [
    "userId",
    "previousId",
    "traits",
    "context.traits",
    "context.ip",
    "context.device.id",
    "context.device.advertisingId",
];

/// The transformation.
pub struct Consent;

impl kit::Transform for Consent {
    const NAME: &'static str = "consent";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SETTINGS_SCHEMA: &'static str = SETTINGS_SCHEMA;
    type Settings = Settings;

    fn settings(raw: &str) -> Result<Settings, String> {
        let s: Settings = kit::parse_settings(raw, "consent")?;
        if s.categories.is_empty() || s.categories.iter().any(|c| c.trim().is_empty()) {
            return Err("consent settings: categories must name at least one category".into());
        }
        Ok(s)
    }

    fn event(s: &Settings, mut event: Message) -> Step {
        let missing = match denied(s, &event) {
            None => return Step::Pass,
            Some(missing) => missing,
        };
        let identifies = matches!(
            event.get("type").and_then(Value::as_str),
            Some("identify" | "group" | "alias")
        );
        match s.action {
            Action::Drop => Step::Drop(format!("no consent for {missing}")),
            Action::Strip if identifies => Step::Drop(format!(
                "no consent for {missing} (an identifying call cannot be stripped)"
            )),
            Action::Strip => {
                for path in IDENTIFYING {
                    kit::take_path(&mut event, path);
                }
                Step::Keep(event)
            }
        }
    }
}

/// The categories the event does not consent to, as text (`None`: it may go).
fn denied(s: &Settings, event: &Message) -> Option<String> {
    let preferences = kit::get_path(event, "context.consent.categoryPreferences");
    let preferences = match preferences.and_then(Value::as_object) {
        Some(p) => p,
        None if s.missing == Missing::Allow => return None,
        None => return Some("any category (the event has no consent object)".into()),
    };
    let missing: Vec<&str> = s
        .categories
        .iter()
        .filter(|c| preferences.get(c.as_str()).and_then(Value::as_bool) != Some(true))
        .map(String::as_str)
        .collect();
    (!missing.is_empty()).then(|| missing.join(", "))
}

switchyard_transform_kit::export_transform!(Consent);

#[cfg(test)]
mod tests {
    use super::*;
    use kit::serde_json::json;
    use kit::Transform as _;

    fn step(settings: &str, event: Value) -> Step {
        let s = Consent::settings(settings).unwrap();
        Consent::event(&s, event.as_object().unwrap().clone())
    }

    fn with(prefs: Value) -> Value {
        json!({"type":"track","messageId":"m","userId":"u","traits":{"email":"e"},"anonymousId":"a",
               "properties":{"total":1},"context":{"ip":"1.2.3.4","consent":{"categoryPreferences":prefs}}})
    }

    #[test]
    fn every_category_must_be_consented() {
        let s = r#"{"categories":["Advertising","Analytics"]}"#;
        assert!(matches!(
            step(s, with(json!({"Advertising":true,"Analytics":true}))),
            Step::Pass
        ));
        match step(s, with(json!({"Advertising":true,"Analytics":false}))) {
            Step::Drop(why) => assert_eq!(why, "no consent for Analytics"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            step(s, with(json!({"Advertising":"yes"}))),
            Step::Drop(_)
        ));
    }

    #[test]
    fn strip_keeps_the_event_without_the_user() {
        let s = r#"{"categories":["Advertising"],"action":"strip"}"#;
        let Step::Keep(out) = step(s, with(json!({"Advertising":false}))) else {
            panic!("kept")
        };
        assert!(out.get("userId").is_none() && out.get("traits").is_none());
        assert!(out["context"].get("ip").is_none());
        assert_eq!(out["anonymousId"], "a");
        assert_eq!(out["properties"], json!({"total":1}));
        assert_eq!(out["messageId"], "m");
    }

    #[test]
    fn strip_drops_calls_that_only_identify() {
        let s = r#"{"categories":["Advertising"],"action":"strip"}"#;
        let mut alias = with(json!({"Advertising":false}));
        alias["type"] = json!("alias");
        alias["previousId"] = json!("old");
        assert!(matches!(step(s, alias), Step::Drop(why) if why.contains("identifying")));
    }

    #[test]
    fn an_event_without_consent_passes_unless_told_otherwise() {
        let bare = json!({"type":"track","messageId":"m"});
        assert!(matches!(
            step(r#"{"categories":["A"]}"#, bare.clone()),
            Step::Pass
        ));
        assert!(matches!(
            step(r#"{"categories":["A"],"missing":"deny"}"#, bare),
            Step::Drop(_)
        ));
    }

    #[test]
    fn settings_need_categories() {
        for raw in [
            r#"{}"#,
            r#"{"categories":[]}"#,
            r#"{"categories":["A"],"action":"hide"}"#,
        ] {
            assert!(Consent::settings(raw).is_err(), "{raw}");
        }
    }
}
