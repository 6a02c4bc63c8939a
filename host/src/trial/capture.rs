//! Whole HTTP exchanges of one destination call, as the guest saw them, and
//! their redaction: what a shadow version is compared with and answered
//! from, and what a recording holds.
//!
//! Where it sits: a batch in flight (`dispatch/flight.rs`) hands the call a
//! [`Capture`] when its plugin has a shadow version or its destination is
//! being recorded; the `http` host function (`runtime/host.rs`) records each
//! request and answer on it with this call's secret tokens written back as
//! `${secret:NAME}` (`imports/secrets.rs`). Unlike the delivery debugger's
//! tape (`observe/attempts.rs`), bodies are kept whole.

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::imports::http::{Error, Request, Response};
use crate::observe::attempts::{
    is_secret_name, redact_headers, redact_url, Answer as TapeAnswer, Exchange as TapeExchange,
    REDACTED,
};

/// Exchanges kept per call; a call that sends more cannot be compared.
pub const MAX_EXCHANGES: usize = 100;

/// Wall-clock readings kept per call (a replay reads the last one again after them).
pub const MAX_CLOCK_READINGS: usize = 1024;

/// Shortest setting value redacted by value (shorter ones would match too much).
const MIN_REDACTED_CHARS: usize = 4;

/// One request a guest sent and what it got, bodies whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exchange {
    /// Method.
    pub method: String,
    /// URL, credentials redacted.
    pub url: String,
    /// Headers in order, credentials redacted.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// Body: text, or `{"base64": ...}` when it is not UTF-8.
    #[serde(default, with = "body")]
    pub body: Vec<u8>,
    /// The answer, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Reply>,
    /// Why there was none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Failed>,
}

/// The answer of an [`Exchange`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers, credentials redacted.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// Body: text, or `{"base64": ...}`.
    #[serde(default, with = "body")]
    pub body: Vec<u8>,
}

/// Why an exchange had no answer (the WIT `http.error`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "message", rename_all = "snake_case")]
pub enum Failed {
    /// Refused by the allowlist or a secret's hosts.
    Denied(String),
    /// No answer in time.
    Timeout,
    /// Connecting or talking failed.
    Connection(String),
    /// The answer passed the size cap.
    TooLarge,
}

impl From<&Error> for Failed {
    fn from(e: &Error) -> Failed {
        match e {
            Error::Denied(w) => Failed::Denied(w.clone()),
            Error::Timeout => Failed::Timeout,
            Error::Connection(w) => Failed::Connection(w.clone()),
            Error::TooLarge => Failed::TooLarge,
        }
    }
}

impl From<&Failed> for Error {
    fn from(e: &Failed) -> Error {
        match e {
            Failed::Denied(w) => Error::Denied(w.clone()),
            Failed::Timeout => Error::Timeout,
            Failed::Connection(w) => Error::Connection(w.clone()),
            Failed::TooLarge => Error::TooLarge,
        }
    }
}

impl Exchange {
    /// The exchange of `req` (secret tokens already named) and its answer, unredacted.
    pub fn of(req: &Request, answer: &Result<Response, Error>) -> Exchange {
        let (response, error) = match answer {
            Ok(r) => (
                Some(Reply {
                    status: r.status,
                    headers: r.headers.clone(),
                    body: r.body.clone(),
                }),
                None,
            ),
            Err(e) => (None, Some(Failed::from(e))),
        };
        Exchange {
            method: req.method.clone(),
            url: req.url.clone(),
            headers: req.headers.clone(),
            body: req.body.clone(),
            response,
            error,
        }
    }

    /// What the guest is answered when it sends this request again.
    pub fn answer(&self) -> Result<Response, Error> {
        match (&self.response, &self.error) {
            (Some(r), _) => Ok(Response {
                status: r.status,
                headers: r.headers.clone(),
                body: r.body.clone(),
            }),
            (None, Some(e)) => Err(e.into()),
            (None, None) => Err(Error::Connection("no answer was recorded".into())),
        }
    }
}

/// A request on its way, as a capture keeps it: whole, its secret tokens named.
struct OnCapture {
    capture: Capture,
    named: Request,
}

impl crate::runtime::ExchangeObserver for Capture {
    fn sending(
        &self,
        req: &Request,
        secrets: Option<&crate::imports::secrets::Sealed>,
    ) -> Box<dyn crate::runtime::Sending> {
        // As the guest wrote it, its secret tokens named: comparable with another call's.
        let named = match secrets {
            Some(sealed) => sealed.name_request(req.clone()),
            None => req.clone(),
        };
        Box::new(OnCapture {
            capture: self.clone(),
            named,
        })
    }

    fn keeps_clock(&self) -> bool {
        true
    }

    fn clock_read(&self, ns: u64) {
        self.read_clock(ns);
    }
}

impl crate::runtime::Sending for OnCapture {
    fn answered(
        self: Box<Self>,
        answer: &Result<Response, Error>,
        secrets: Option<&crate::imports::secrets::Sealed>,
    ) {
        let seen = match (answer, secrets) {
            (Ok(r), Some(sealed)) => Ok(Response {
                status: r.status,
                headers: r
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), sealed.name_tokens(v)))
                    .collect(),
                body: match std::str::from_utf8(&r.body) {
                    Ok(text) => sealed.name_tokens(text).into_bytes(),
                    Err(_) => r.body.clone(),
                },
            }),
            (other, _) => other.clone(),
        };
        self.capture.record(Exchange::of(&self.named, &seen));
    }
}

/// Where one call's whole exchanges are recorded (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct Capture(Arc<Mutex<Captured>>);

#[derive(Debug, Default)]
struct Captured {
    exchanges: Vec<Exchange>,
    /// More than [`MAX_EXCHANGES`] were sent.
    overflowed: bool,
    /// The guest's wall-clock readings, ns since the epoch (`runtime/clock.rs`).
    clock: Vec<u64>,
}

impl Capture {
    /// Record one exchange.
    pub fn record(&self, exchange: Exchange) {
        let mut c = self.0.lock().expect("capture lock");
        if c.exchanges.len() < MAX_EXCHANGES {
            c.exchanges.push(exchange);
        } else {
            c.overflowed = true;
        }
    }

    /// Record a wall-clock reading of the guest.
    pub fn read_clock(&self, ns: u64) {
        let mut c = self.0.lock().expect("capture lock");
        if c.clock.len() < MAX_CLOCK_READINGS {
            c.clock.push(ns);
        }
    }

    /// The guest's wall-clock readings so far, in order.
    pub fn clock(&self) -> Vec<u64> {
        self.0.lock().expect("capture lock").clock.clone()
    }

    /// The exchanges, oldest first; `None` when there were too many to keep.
    pub fn take(&self) -> Option<Vec<Exchange>> {
        let mut c = self.0.lock().expect("capture lock");
        let exchanges = std::mem::take(&mut c.exchanges);
        (!c.overflowed).then_some(exchanges)
    }
}

/// Hides a destination's credentials in what it sent and got: credential
/// headers and URL parts ([`redact_headers`], [`redact_url`]), and the value of
/// every setting whose name says it is one (`api_key`, `token`, ...) wherever
/// it appears. Built once per destination from its settings.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// The values of credential-named settings, longest first.
    values: Vec<String>,
}

impl Redactor {
    /// The redactor of a destination with `settings`.
    pub fn new(settings: &serde_json::Value) -> Redactor {
        let mut values = Vec::new();
        collect(settings, false, &mut values);
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Redactor { values }
    }

    /// `text` with every credential value replaced by `[redacted]`, and any
    /// call's secret token written back as `${secret:NAME}`.
    pub fn text(&self, text: &str) -> String {
        hide(
            crate::imports::secrets::name_any_tokens(text),
            self.values.iter(),
        )
    }

    /// `bytes` redacted when they are text (binary bodies are left as they are).
    fn bytes(&self, bytes: &[u8]) -> Vec<u8> {
        match std::str::from_utf8(bytes) {
            Ok(text) if !self.values.is_empty() => self.text(text).into_bytes(),
            _ => bytes.to_vec(),
        }
    }

    fn headers(&self, headers: &[(String, String)]) -> Vec<(String, String)> {
        redact_headers(headers)
            .into_iter()
            .map(|(k, v)| (k, self.text(&v)))
            .collect()
    }

    /// An exchange fit to show and to store.
    pub fn exchange(&self, e: &Exchange) -> Exchange {
        Exchange {
            method: e.method.clone(),
            url: self.text(&redact_url(&e.url)),
            headers: self.headers(&e.headers),
            body: self.bytes(&e.body),
            response: e.response.as_ref().map(|r| Reply {
                status: r.status,
                headers: self.headers(&r.headers),
                body: self.bytes(&r.body),
            }),
            error: e.error.as_ref().map(|f| match f {
                Failed::Denied(w) => Failed::Denied(self.text(w)),
                Failed::Connection(w) => Failed::Connection(self.text(w)),
                other => other.clone(),
            }),
        }
    }

    /// The credential values written as they are (not `${secret:NAME}`
    /// placeholders: the guest holds only a per-call token for those).
    fn literal_values(&self) -> impl Iterator<Item = &String> {
        self.values.iter().filter(|v| !v.contains("${secret:"))
    }

    /// `text` with every literal credential value hidden; a call's secret
    /// tokens stay as they are (they are worthless after the call).
    pub fn literal(&self, text: &str) -> String {
        hide(text.to_string(), self.literal_values())
    }

    /// A delivery debugger's exchange fit to show: credential values hidden in
    /// its URL, headers, bodies and error. A body cut to its excerpt may end
    /// in the first characters of a credential: that tail is hidden too.
    pub fn tape_exchange(&self, e: TapeExchange) -> TapeExchange {
        if self.literal_values().next().is_none() {
            return e;
        }
        let body = self.excerpt(&e.body, e.body.len() < e.body_bytes);
        TapeExchange {
            url: self.literal(&e.url),
            headers: e
                .headers
                .into_iter()
                .map(|(k, v)| (k, self.literal(&v)))
                .collect(),
            body,
            response: e.response.map(|r| {
                let cut = r.body.len() < r.body_bytes;
                TapeAnswer {
                    headers: r
                        .headers
                        .into_iter()
                        .map(|(k, v)| (k, self.literal(&v)))
                        .collect(),
                    body: self.excerpt(&r.body, cut),
                    ..r
                }
            }),
            error: e.error.map(|why| self.literal(&why)),
            ..e
        }
    }

    /// `text` redacted; when it is the start of something longer (`cut`), an
    /// end that begins a credential value is hidden as well.
    fn excerpt(&self, text: &str, cut: bool) -> String {
        let mut out = self.literal(text);
        if cut {
            let tail = self
                .literal_values()
                .flat_map(|v| {
                    v.char_indices()
                        .map(|(i, _)| &v[..i])
                        .filter(|prefix| prefix.len() >= MIN_REDACTED_CHARS)
                })
                .filter(|prefix| out.ends_with(prefix))
                .map(str::len)
                .max();
            if let Some(n) = tail {
                out.truncate(out.len() - n);
                out.push_str(REDACTED);
            }
        }
        out
    }

    /// Settings with every credential-named value replaced by `[redacted]`
    /// (what a recording stores and a replay runs with: the replayed requests
    /// then carry `[redacted]` where the recorded ones had the value).
    pub fn settings(&self, settings: &serde_json::Value) -> serde_json::Value {
        redact_settings(settings, false)
    }
}

/// `text` with each of `values` replaced by `[redacted]`.
fn hide<'a>(mut text: String, values: impl Iterator<Item = &'a String>) -> String {
    for v in values {
        if text.contains(v.as_str()) {
            text = text.replace(v.as_str(), REDACTED);
        }
    }
    text
}

/// The string values under credential-named keys (at any depth).
fn collect(v: &serde_json::Value, secret: bool, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) if secret && s.chars().count() >= MIN_REDACTED_CHARS => {
            out.push(s.clone())
        }
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                collect(v, secret || is_secret_name(k), out);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect(v, secret, out)),
        _ => {}
    }
}

fn redact_settings(v: &serde_json::Value, secret: bool) -> serde_json::Value {
    match v {
        serde_json::Value::String(s) if secret && s.chars().count() >= MIN_REDACTED_CHARS => {
            serde_json::Value::String(REDACTED.into())
        }
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), redact_settings(v, secret || is_secret_name(k))))
                .collect(),
        ),
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(|v| redact_settings(v, secret)).collect())
        }
        other => other.clone(),
    }
}

/// A body as JSON: text when it is UTF-8, else `{"base64": "..."}`.
mod body {
    use super::*;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        Text(String),
        Binary { base64: String },
    }

    pub fn serialize<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(bytes) {
            Ok(text) => s.serialize_str(text),
            Err(_) => {
                use serde::ser::SerializeMap as _;
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry(
                    "base64",
                    &base64::engine::general_purpose::STANDARD.encode(bytes),
                )?;
                m.end()
            }
        }
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        match Form::deserialize(d)? {
            Form::Text(t) => Ok(t.into_bytes()),
            Form::Binary { base64 } => base64::engine::general_purpose::STANDARD
                .decode(base64)
                .map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted_by_name_and_by_value() {
        let settings = serde_json::json!({"api_key": "k-123456", "region": "eu", "nested": {"token": "tok-9999"}});
        let r = Redactor::new(&settings);
        let e = Exchange {
            method: "POST".into(),
            url: "https://api.example.com/v1?key=k-123456&x=1".into(),
            headers: vec![
                ("authorization".into(), "Bearer tok-9999".into()),
                ("x-note".into(), "k-123456".into()),
            ],
            body: br#"{"api_key":"k-123456","region":"eu"}"#.to_vec(),
            response: None,
            error: Some(Failed::Timeout),
        };
        let shown = serde_json::to_string(&r.exchange(&e)).unwrap();
        assert!(
            !shown.contains("k-123456") && !shown.contains("tok-9999"),
            "{shown}"
        );
        assert!(shown.contains("eu"), "{shown}");
        let s = r.settings(&settings);
        assert_eq!(s["api_key"], REDACTED);
        assert_eq!(s["nested"]["token"], REDACTED);
        assert_eq!(s["region"], "eu");
    }

    #[test]
    fn the_debuggers_exchanges_hide_credential_values_even_when_cut() {
        let r = Redactor::new(&serde_json::json!({"api_key": "k-1234567890", "region": "eu"}));
        let body = r#"{"api_key":"k-1234567890","region":"eu","again":"k-12345"#;
        let e = TapeExchange {
            method: "POST".into(),
            url: "https://api.example.com/v1/k-1234567890/track".into(),
            headers: vec![("x-note".into(), "k-1234567890".into())],
            body: body.into(),
            body_bytes: body.len() + 100,
            response: Some(TapeAnswer {
                status: 400,
                headers: vec![],
                body: "bad key k-1234567890".into(),
                body_bytes: 20,
            }),
            error: None,
            duration_ms: 1,
        };
        let shown = serde_json::to_string(&r.tape_exchange(e)).unwrap();
        assert!(!shown.contains("k-12345"), "{shown}");
        assert!(shown.contains("eu") && shown.contains("/track"), "{shown}");
    }

    #[test]
    fn binary_bodies_round_trip_as_base64() {
        let e = Exchange {
            method: "GET".into(),
            url: "https://a.example".into(),
            headers: vec![],
            body: vec![0xff, 0x00, 0x80],
            response: Some(Reply {
                status: 200,
                headers: vec![],
                body: b"ok".to_vec(),
            }),
            error: None,
        };
        let text = serde_json::to_string(&e).unwrap();
        assert!(text.contains("base64"), "{text}");
        let back: Exchange = serde_json::from_str(&text).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn a_capture_that_overflows_cannot_be_compared() {
        let c = Capture::default();
        let req = Request {
            method: "GET".into(),
            url: "https://a.example".into(),
            headers: vec![],
            body: vec![],
        };
        for _ in 0..=MAX_EXCHANGES {
            c.record(Exchange::of(&req, &Err(Error::Timeout)));
        }
        assert!(c.take().is_none());
    }
}
