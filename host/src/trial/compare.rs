//! How two versions' handling of the same batch is compared: the requests they
//! sent and the outcomes they gave.
//!
//! Where it sits: a shadow version's batch (`dispatch/versions.rs`) and
//! `switchyard replay` (`cli/replay.rs`) both hand [`compare`] what was
//! expected (the serving version, the recording) and what the other version
//! did. Method, URL and headers are compared exactly (credentials redacted,
//! header names case-insensitively and in any order); bodies that are both JSON
//! are compared as JSON values (key order and spacing do not count), any other
//! body byte for byte; outcomes by kind (`delivered`, `retry`, `reject`), their
//! reasons shown but not compared.

use serde::{Deserialize, Serialize};

use super::capture::Exchange;
use crate::runtime::Outcome;

/// Characters of a value shown in a difference.
const SHOWN_CHARS: usize = 400;

/// How one event ended in one version's call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeRecord {
    /// `delivered`, `retry` or `reject`.
    pub outcome: String,
    /// Why, when not delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl super::capture::Redactor {
    /// An outcome fit to show and to store (its reason may quote an answer).
    pub fn outcome(&self, o: &Outcome) -> OutcomeRecord {
        let mut r = OutcomeRecord::from(o);
        r.reason = r.reason.map(|why| self.text(&why));
        r
    }
}

impl From<&Outcome> for OutcomeRecord {
    fn from(o: &Outcome) -> Self {
        let (outcome, reason) = match o {
            Outcome::Delivered => ("delivered", None),
            Outcome::Retry { reason, .. } => ("retry", Some(reason.clone())),
            Outcome::Reject(reason) => ("reject", Some(reason.clone())),
            Outcome::Filtered(reason) => ("filtered", Some(reason.clone())),
        };
        OutcomeRecord {
            outcome: outcome.into(),
            reason,
        }
    }
}

/// One thing two versions did differently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    /// What differs: `requests`, `request 2 url`, `event 3 outcome`, ...
    pub what: String,
    /// What was expected (the serving version, the recording).
    pub expected: String,
    /// What the other version did.
    pub got: String,
}

fn differ(what: String, expected: impl Into<String>, got: impl Into<String>) -> Difference {
    Difference {
        what,
        expected: shorten(expected.into()),
        got: shorten(got.into()),
    }
}

fn shorten(mut s: String) -> String {
    if let Some((at, _)) = s.char_indices().nth(SHOWN_CHARS) {
        s.truncate(at);
        s.push('…');
    }
    s
}

/// Every difference between what was expected and what was got (empty: the same).
pub fn compare(
    expected: (&[Exchange], &[OutcomeRecord]),
    got: (&[Exchange], &[OutcomeRecord]),
) -> Vec<Difference> {
    let mut diffs = Vec::new();
    let (want, have) = (expected.0, got.0);
    if want.len() != have.len() {
        diffs.push(differ(
            "requests".into(),
            format!("{} sent", want.len()),
            format!("{} sent", have.len()),
        ));
    }
    for (i, (w, h)) in want.iter().zip(have).enumerate() {
        let n = i + 1;
        if w.method != h.method {
            diffs.push(differ(format!("request {n} method"), &w.method, &h.method));
        }
        if w.url != h.url {
            diffs.push(differ(format!("request {n} url"), &w.url, &h.url));
        }
        let (wh, hh) = (headers(&w.headers), headers(&h.headers));
        if wh != hh {
            diffs.push(differ(
                format!("request {n} headers"),
                show_headers(&wh),
                show_headers(&hh),
            ));
        }
        match json_bodies(&w.body, &h.body) {
            Some((a, b)) => {
                if let Some((at, x, y)) = first_difference(&a, &b, String::new()) {
                    diffs.push(differ(format!("request {n} body at {}", slash(&at)), x, y));
                }
            }
            None if w.body != h.body => diffs.push(differ(
                format!("request {n} body"),
                String::from_utf8_lossy(&w.body),
                String::from_utf8_lossy(&h.body),
            )),
            None => {}
        }
    }
    let (want, have) = (expected.1, got.1);
    if want.len() != have.len() {
        diffs.push(differ(
            "outcomes".into(),
            format!("{} outcomes", want.len()),
            format!("{} outcomes", have.len()),
        ));
    }
    for (i, (w, h)) in want.iter().zip(have).enumerate() {
        if w.outcome != h.outcome {
            diffs.push(differ(
                format!("event {} outcome", i + 1),
                show_outcome(w),
                show_outcome(h),
            ));
        }
    }
    diffs
}

/// Headers with lower-case names, sorted: order and case do not count.
fn headers(list: &[(String, String)]) -> Vec<(String, String)> {
    let mut h: Vec<(String, String)> = list
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    h.sort();
    h
}

fn show_headers(list: &[(String, String)]) -> String {
    list.iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn show_outcome(o: &OutcomeRecord) -> String {
    match &o.reason {
        Some(r) => format!("{} ({r})", o.outcome),
        None => o.outcome.clone(),
    }
}

/// Both bodies as JSON values, when both are JSON.
fn json_bodies(a: &[u8], b: &[u8]) -> Option<(serde_json::Value, serde_json::Value)> {
    let x = serde_json::from_slice(a).ok()?;
    let y = serde_json::from_slice(b).ok()?;
    Some((x, y))
}

fn slash(at: &str) -> &str {
    if at.is_empty() {
        "/"
    } else {
        at
    }
}

/// Where two JSON values first differ (a JSON Pointer), and the two values
/// there (`(absent)` for a missing member); `None` when they are equal.
fn first_difference(
    a: &serde_json::Value,
    b: &serde_json::Value,
    at: String,
) -> Option<(String, String, String)> {
    use serde_json::Value;
    const ABSENT: &str = "(absent)";
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|k| {
                let here = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                match (x.get(k), y.get(k)) {
                    (Some(v), Some(w)) => first_difference(v, w, here),
                    (Some(v), None) => Some((here, v.to_string(), ABSENT.into())),
                    (None, Some(w)) => Some((here, ABSENT.into(), w.to_string())),
                    (None, None) => None,
                }
            })
        }
        (Value::Array(x), Value::Array(y)) => {
            let inner = x
                .iter()
                .zip(y)
                .enumerate()
                .find_map(|(i, (v, w))| first_difference(v, w, format!("{at}/{i}")));
            inner.or_else(|| {
                (x.len() != y.len()).then(|| {
                    (
                        at.clone(),
                        format!("{} items", x.len()),
                        format!("{} items", y.len()),
                    )
                })
            })
        }
        _ if a == b => None,
        _ => Some((at, a.to_string(), b.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(url: &str, headers: &[(&str, &str)], body: &str) -> Exchange {
        Exchange {
            method: "POST".into(),
            url: url.into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
            response: None,
            error: None,
        }
    }

    fn delivered() -> OutcomeRecord {
        OutcomeRecord::from(&Outcome::Delivered)
    }

    #[test]
    fn json_bodies_compare_as_values_and_headers_in_any_order() {
        let a = post(
            "https://a.example/v1",
            &[("Content-Type", "application/json"), ("x-a", "1")],
            r#"{"a":1,"b":[1,2]}"#,
        );
        let b = post(
            "https://a.example/v1",
            &[("x-a", "1"), ("content-type", "application/json")],
            r#"{ "b": [1, 2], "a": 1 }"#,
        );
        let diffs = compare((&[a], &[delivered()]), (&[b], &[delivered()]));
        assert!(diffs.is_empty(), "{diffs:?}");
    }

    #[test]
    fn each_kind_of_difference_is_named() {
        let a = post("https://a.example/v1", &[("x-a", "1")], r#"{"a":1}"#);
        let b = post("https://a.example/v2", &[("x-a", "2")], r#"{"a":2}"#);
        let reject = OutcomeRecord::from(&Outcome::Reject("bad".into()));
        let diffs = compare(
            (std::slice::from_ref(&a), &[delivered()]),
            (&[b, a.clone()], &[reject]),
        );
        let whats: Vec<&str> = diffs.iter().map(|d| d.what.as_str()).collect();
        assert_eq!(
            whats,
            [
                "requests",
                "request 1 url",
                "request 1 headers",
                "request 1 body at /a",
                "event 1 outcome"
            ]
        );
        assert_eq!(diffs[4].got, "reject (bad)");
    }

    #[test]
    fn a_json_body_difference_names_where_it_is() {
        let a = post(
            "https://a.example",
            &[],
            r#"{"batch":[{"id":1,"sentAt":"x"}],"n":2}"#,
        );
        let b = post("https://a.example", &[], r#"{"n":2,"batch":[{"id":1}]}"#);
        let diffs = compare((&[a], &[]), (&[b], &[]));
        assert_eq!(diffs.len(), 1, "{diffs:?}");
        assert_eq!(diffs[0].what, "request 1 body at /batch/0/sentAt");
        assert_eq!(
            (diffs[0].expected.as_str(), diffs[0].got.as_str()),
            (r#""x""#, "(absent)")
        );
    }

    #[test]
    fn non_json_bodies_compare_byte_for_byte() {
        let a = post("https://a.example", &[], "a=1&b=2");
        let b = post("https://a.example", &[], "b=2&a=1");
        assert_eq!(compare((&[a], &[]), (&[b], &[])).len(), 1);
    }
}
