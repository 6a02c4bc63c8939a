//! The headers of the events and dead-letter streams: how a text value is
//! written so that it reads back exactly, and how it is read.
//!
//! Where it sits: under every publish and every fetch of the NATS store. Ids,
//! event names and reasons come from clients and vendors; written raw, a line
//! break in one ends the header and starts another (`Switchyard-Only: …`,
//! `Nats-Msg-Id: …`), and the client's parser, which trims values and joins
//! folded lines, would change others. So every text value goes through
//! [`Headers::text`]: plain text as it is, anything else as `json:` and a JSON
//! string in printable ASCII. [`read`] undoes it; a value written by an older
//! version (always plain) reads as it was.

use std::borrow::Cow;
use std::str::FromStr as _;

use async_nats::{HeaderMap, HeaderValue};

/// What starts an encoded value.
const ENCODED: &str = "json:\"";

/// Headers of one message, built only through validating constructors.
#[derive(Debug, Default)]
pub struct Headers(HeaderMap);

impl Headers {
    /// No headers yet.
    pub fn new() -> Headers {
        Headers::default()
    }

    /// `name: text`, written so that [`read`] gives `text` back exactly.
    pub fn text(mut self, name: &'static str, text: &str) -> Headers {
        self.0.insert(name, encode(text));
        self
    }

    /// `name: n`.
    pub fn number(mut self, name: &'static str, n: i64) -> Headers {
        self.0.insert(name, HeaderValue::from(n));
        self
    }

    /// `name` with the value another message has for it, as it was stored.
    pub fn copied(mut self, name: &'static str, from: Option<&HeaderMap>) -> Headers {
        if let Some(v) = from.and_then(|h| h.get(name)) {
            self.0.insert(name, v.clone());
        }
        self
    }

    /// The map to publish.
    pub fn into_map(self) -> HeaderMap {
        self.0
    }
}

/// Whether `text` survives the NATS header format unchanged: no control
/// character, no whitespace at either end, and not the start of an encoded value.
fn is_plain(text: &str) -> bool {
    !text.chars().any(char::is_control)
        && !text.starts_with(char::is_whitespace)
        && !text.ends_with(char::is_whitespace)
        && !text.starts_with(ENCODED)
}

/// The header value of `text` (see the module's doc).
pub fn encode(text: &str) -> HeaderValue {
    let written = if is_plain(text) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(encoded(text))
    };
    // Both forms hold no line break, so the validating constructor takes them;
    // if it ever refused one, the value is dropped rather than sent raw.
    HeaderValue::from_str(&written).unwrap_or_default()
}

/// `json:` and `text` as a JSON string of printable ASCII (everything else `\uXXXX`).
fn encoded(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    out.push_str(ENCODED);
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
    out
}

/// The text a header value stands for.
pub fn decode(value: &str) -> Cow<'_, str> {
    match value.strip_prefix("json:") {
        Some(json) if value.starts_with(ENCODED) => match serde_json::from_str::<String>(json) {
            Ok(text) => Cow::Owned(text),
            Err(_) => Cow::Borrowed(value),
        },
        _ => Cow::Borrowed(value),
    }
}

/// The text of header `name`, if the message has it.
pub fn read<'a>(headers: Option<&'a HeaderMap>, name: &str) -> Option<Cow<'a, str>> {
    headers?.get(name).map(|v| decode(v.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the client's parser does to a value it reads: no line may hold a
    /// break, and it trims both ends.
    fn wire_round_trip(v: &HeaderValue) -> Option<String> {
        let s = v.as_str();
        if s.contains(['\r', '\n']) {
            return None;
        }
        Some(s.trim().to_string())
    }

    #[test]
    fn every_text_reads_back_exactly_and_holds_no_line_break() {
        let mut cases: Vec<String> = [
            "u",
            "user-1",
            "",
            "u\nx",
            "u\r\nSwitchyard-Only: billing",
            "u\r\nNats-Msg-Id: app/1",
            " padded ",
            "\tu",
            "u\u{2028}",
            "json:\"x\"",
            "json:x",
            "ü 🙂 \u{85}\u{7f}\u{1b}[2J",
            "\"quoted\\\"",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        cases.extend(
            (0u32..0x100)
                .filter_map(char::from_u32)
                .map(|c| format!("a{c}b{c}")),
        );
        for text in cases {
            let v = encode(&text);
            let read_back = wire_round_trip(&v).unwrap_or_else(|| panic!("{text:?}: {v:?}"));
            assert_eq!(decode(&read_back), text.as_str(), "{text:?} as {v:?}");
        }
    }

    #[test]
    fn plain_text_is_written_as_it_is() {
        for text in ["user-1", "Order Completed", "ü 🙂", "app/9f"] {
            assert_eq!(encode(text).as_str(), text);
        }
        // A value an older version wrote reads as it was.
        assert_eq!(decode("json:x"), "json:x");
    }
}
