//! Dead letters as an operator sees them: [`DeadLetterView`], the shape that
//! `GET /admin/destinations/{name}/dead-letters` answers and that
//! `switchyard dlq list --json` prints, and the times of their `since` and
//! `until` range.
//!
//! Where it sits: beside [`DeadLetter`], its outside view,
//! shared by the admin API and the `dlq` subcommand (which reads it from a
//! running host or makes it from a stopped host's store).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::store::{DeadLetter, Millis};

/// One dead letter, as JSON (`messageId`, `type`, `reason`, `attempts`,
/// `firstAttemptAt`, `lastAttemptAt`, `deadAt`, `event`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterView {
    /// Its id in the dead-letter list.
    pub id: i64,
    /// The destination that gave up on it.
    pub destination: String,
    /// Segment `messageId`.
    pub message_id: String,
    /// Segment `type`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The last failure.
    pub reason: String,
    /// Attempts made.
    pub attempts: u32,
    /// First attempt, RFC 3339.
    pub first_attempt_at: String,
    /// Last attempt, RFC 3339.
    pub last_attempt_at: String,
    /// When it was dead-lettered, RFC 3339.
    pub dead_at: String,
    /// The event as it would be delivered (`null` should the stored text not parse).
    pub event: Value,
}

impl From<&DeadLetter> for DeadLetterView {
    fn from(d: &DeadLetter) -> Self {
        DeadLetterView {
            id: d.id,
            destination: d.destination.clone(),
            message_id: d.message_id.clone(),
            event_type: d.event_type.to_string(),
            reason: d.reason.clone(),
            attempts: d.attempts,
            first_attempt_at: iso(d.first_attempt_at),
            last_attempt_at: iso(d.last_attempt_at),
            dead_at: iso(d.dead_at),
            event: serde_json::from_str(&d.event_json).unwrap_or(Value::Null),
        }
    }
}

/// A time of a dead-letter range: RFC 3339 or milliseconds since the epoch.
pub fn parse_time(t: &str) -> Result<Millis, String> {
    if let Ok(ms) = t.parse::<i64>() {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|d| d.timestamp_millis())
        .map_err(|_| format!("`{t}` is not an RFC 3339 time or milliseconds since the epoch"))
}

/// `T` as ms since the epoch: RFC 3339, milliseconds, or an age (`2h`, `30m`)
/// counted back from `now` (the CLI's `--since`/`--until`, the status page's range).
pub fn parse_time_or_age(t: &str, now: Millis) -> Result<Millis, String> {
    let t = t.trim();
    if t.chars().last().is_some_and(|c| c.is_ascii_alphabetic()) {
        if let Ok(age) = crate::config::parse_duration(t) {
            let age = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
            return Ok(now.saturating_sub(age));
        }
    }
    parse_time(t).map_err(|e| format!("{e}, nor an age like `2h`"))
}

/// A time of the store as RFC 3339 (UTC, milliseconds).
pub fn iso(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_view_has_the_documented_keys() {
        let d = DeadLetter {
            id: 7,
            destination: "hooks".into(),
            message_id: "m-1".into(),
            event_type: "track".into(),
            reason: "receiver answered 400: bad".into(),
            attempts: 2,
            first_attempt_at: 0,
            last_attempt_at: 1_000,
            dead_at: 1_500,
            event_json: r#"{"type":"track"}"#.into(),
        };
        let json = serde_json::to_value(DeadLetterView::from(&d)).unwrap();
        assert_eq!(json["messageId"], "m-1");
        assert_eq!(json["type"], "track");
        assert_eq!(json["attempts"], 2);
        assert_eq!(json["firstAttemptAt"], "1970-01-01T00:00:00.000Z");
        assert_eq!(json["deadAt"], "1970-01-01T00:00:01.500Z");
        assert_eq!(json["event"]["type"], "track");
        let back: DeadLetterView = serde_json::from_value(json).unwrap();
        assert_eq!(back.last_attempt_at, "1970-01-01T00:00:01.000Z");
    }

    #[test]
    fn times_are_rfc3339_or_millis() {
        assert_eq!(parse_time("1500"), Ok(1500));
        assert_eq!(parse_time("1970-01-01T00:00:01Z"), Ok(1000));
        assert!(parse_time("yesterday").is_err());
    }
}
