//! The six Segment calls, as one enum.
//!
//! Where it sits: a leaf. Ingest's normaliser ([`crate::ingest::normalize`])
//! gives every event its [`EventType`]; config checks filter types against it;
//! the runtime converts it into the WIT `event-type` a destination receives.

use std::fmt;
use std::str::FromStr;

/// The Segment call that produced an event (the endpoint it was sent to, or a
/// batch item's `type`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// `track`: an action, with an `event` name.
    Track,
    /// `identify`: who the user is, with `traits`.
    Identify,
    /// `page`: a web page view.
    Page,
    /// `screen`: a mobile screen view.
    Screen,
    /// `group`: the user joins a `groupId`.
    Group,
    /// `alias`: a new id for a `previousId`.
    Alias,
}

impl EventType {
    /// Every type, in the order of the Segment spec.
    pub const ALL: [EventType; 6] = [
        EventType::Track,
        EventType::Identify,
        EventType::Page,
        EventType::Screen,
        EventType::Group,
        EventType::Alias,
    ];

    /// The name as in `type` and in the endpoint (`track`, `identify`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Track => "track",
            EventType::Identify => "identify",
            EventType::Page => "page",
            EventType::Screen => "screen",
            EventType::Group => "group",
            EventType::Alias => "alias",
        }
    }

    /// The type of this name, if it is one.
    pub fn parse(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// `track, identify, page, screen, group, alias`, for messages.
    pub fn names() -> String {
        EventType::ALL.map(EventType::as_str).join(", ")
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of the six types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not one of track, identify, page, screen, group, alias")]
pub struct UnknownEventType(pub String);

impl FromStr for EventType {
    type Err = UnknownEventType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::parse(s).ok_or_else(|| UnknownEventType(s.to_string()))
    }
}

impl From<EventType> for String {
    fn from(t: EventType) -> String {
        t.as_str().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            assert_eq!(t.as_str().parse::<EventType>(), Ok(t));
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        }
        assert_eq!(EventType::parse("Track"), None);
        assert!("tracks"
            .parse::<EventType>()
            .unwrap_err()
            .to_string()
            .contains("not one of track, identify"));
        assert_eq!(
            EventType::names(),
            "track, identify, page, screen, group, alias"
        );
    }
}
