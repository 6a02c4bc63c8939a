//! The delivery debugger's memory: the newest delivery attempts of a
//! destination, each with its events, every HTTP exchange its component had,
//! and what became of each event.
//!
//! Where it sits: a batch in flight (`dispatch/flight.rs`) hands its call a
//! [`Tape`], one of the call's observers ([`crate::runtime::ExchangeObserver`]):
//! the runtime tells it of each request and its answer, kept with credentials redacted ([`redact_headers`],
//! [`redact_url`]) and bodies cut to an excerpt; after settling, the batch
//! keeps the whole [`Attempt`] in its destination's [`Attempts`].
//! `GET /admin/destinations/{name}/attempts` reads them.
//!
//! Bounded: [`KEPT`] attempts and, apart, the newest [`KEPT`] that did not
//! deliver everything (a busy, healthy destination does not push its failures
//! out), at most [`MAX_EXCHANGES`] exchanges each, [`EXCERPT_BYTES`] of each body.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// Attempts kept per destination (and failed attempts, apart).
pub const KEPT: usize = 32;
/// Exchanges kept per attempt (the count of the others is kept).
pub const MAX_EXCHANGES: usize = 10;
/// Bytes of a request or response body kept.
pub const EXCERPT_BYTES: usize = 1024;

/// Header names whose values are credentials (and the parts of a name that say so).
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];
const SECRET_WORDS: &[&str] = &["key", "token", "secret", "password", "signature", "auth"];

/// What the redacted values read.
pub const REDACTED: &str = "[redacted]";

/// One HTTP request a component sent, and its answer.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Exchange {
    /// Method.
    pub method: String,
    /// URL, credentials in the query redacted.
    pub url: String,
    /// Request headers, credentials redacted.
    pub headers: Vec<(String, String)>,
    /// The start of the request body (UTF-8, lossy).
    pub body: String,
    /// The body's full size.
    pub body_bytes: usize,
    /// The answer, when there was one.
    pub response: Option<Answer>,
    /// Why there was none (denied, timed out, connection failed, too large).
    pub error: Option<String>,
    /// From the request to its answer.
    pub duration_ms: u64,
}

/// The answer to an [`Exchange`].
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Response headers, credentials redacted.
    pub headers: Vec<(String, String)>,
    /// The start of the body.
    pub body: String,
    /// The body's full size.
    pub body_bytes: usize,
}

/// Where one call's exchanges are recorded.
#[derive(Debug, Clone, Default)]
pub struct Tape(Arc<Mutex<TapeInner>>);

#[derive(Debug, Default)]
struct TapeInner {
    exchanges: Vec<Exchange>,
    more: usize,
}

impl Tape {
    /// Record one exchange (beyond [`MAX_EXCHANGES`], only counted).
    pub fn record(&self, exchange: Exchange) {
        let mut t = self.0.lock().expect("tape lock");
        if t.exchanges.len() < MAX_EXCHANGES {
            t.exchanges.push(exchange);
        } else {
            t.more += 1;
        }
    }

    /// Everything recorded, and how many more were not kept.
    pub fn take(&self) -> (Vec<Exchange>, usize) {
        let mut t = self.0.lock().expect("tape lock");
        (
            std::mem::take(&mut t.exchanges),
            std::mem::take(&mut t.more),
        )
    }
}

/// A request on its way, as the tape keeps it: the redacted excerpt only (a
/// body is not copied whole), and when it left.
struct OnTape {
    tape: Tape,
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: String,
    body_bytes: usize,
    started: std::time::Instant,
}

impl crate::runtime::ExchangeObserver for Tape {
    fn sending(
        &self,
        req: &crate::imports::http::Request,
        _secrets: Option<&crate::imports::secrets::Sealed>,
    ) -> Box<dyn crate::runtime::Sending> {
        Box::new(OnTape {
            tape: self.clone(),
            method: req.method.clone(),
            url: redact_url(&req.url),
            headers: redact_headers(&req.headers),
            body: excerpt(&req.body),
            body_bytes: req.body.len(),
            started: std::time::Instant::now(),
        })
    }
}

impl crate::runtime::Sending for OnTape {
    fn answered(
        self: Box<Self>,
        answer: &Result<crate::imports::http::Response, crate::imports::http::Error>,
        _secrets: Option<&crate::imports::secrets::Sealed>,
    ) {
        let (response, error) = match answer {
            Ok(r) => (
                Some(Answer {
                    status: r.status,
                    headers: redact_headers(&r.headers),
                    body: excerpt(&r.body),
                    body_bytes: r.body.len(),
                }),
                None,
            ),
            Err(e) => (None, Some(e.to_string())),
        };
        self.tape.record(Exchange {
            method: self.method,
            url: self.url,
            headers: self.headers,
            body: self.body,
            body_bytes: self.body_bytes,
            response,
            error,
            duration_ms: self.started.elapsed().as_millis() as u64,
        });
    }
}

/// What became of one event of an attempt.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct EventOutcome {
    /// Its `messageId`.
    #[serde(rename = "messageId")]
    pub message_id: String,
    /// `delivered`, `filtered` (a transformation dropped it), `retry` or `dead_letter`.
    pub outcome: &'static str,
    /// Why, when not delivered.
    pub reason: Option<String>,
    /// Attempts of this event so far, this one included.
    pub attempt: u32,
}

/// One delivery attempt: one call into the component with a batch.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Attempt {
    /// A number, increasing per destination from the host's start.
    pub id: u64,
    /// When the call started (RFC 3339).
    pub at: String,
    /// From the call to its answer.
    pub duration_ms: u64,
    /// sha256 of the component version that ran it.
    pub sha256: String,
    /// Every event of the batch, with its outcome.
    pub events: Vec<EventOutcome>,
    /// The HTTP exchanges, in order.
    pub requests: Vec<Exchange>,
    /// Exchanges beyond [`MAX_EXCHANGES`], not kept.
    pub requests_not_kept: usize,
    /// Why the call itself failed (trap, deadline, contract), if it did.
    pub error: Option<String>,
}

impl Attempt {
    /// Whether any event was not delivered.
    pub fn failed(&self) -> bool {
        self.error.is_some()
            || self
                .events
                .iter()
                .any(|e| !matches!(e.outcome, "delivered" | "filtered"))
    }
}

/// The newest attempts of one destination.
#[derive(Debug, Default)]
pub struct Attempts {
    inner: Mutex<Rings>,
}

#[derive(Debug, Default)]
struct Rings {
    next_id: u64,
    all: VecDeque<Arc<Attempt>>,
    failed: VecDeque<Arc<Attempt>>,
}

impl Attempts {
    /// The id for the next attempt.
    pub fn next_id(&self) -> u64 {
        let mut r = self.inner.lock().expect("attempts lock");
        r.next_id += 1;
        r.next_id
    }

    /// Keep `attempt` (the oldest goes when full).
    pub fn keep(&self, attempt: Attempt) {
        let attempt = Arc::new(attempt);
        let mut r = self.inner.lock().expect("attempts lock");
        if attempt.failed() {
            if r.failed.len() == KEPT {
                r.failed.pop_front();
            }
            r.failed.push_back(attempt.clone());
        }
        if r.all.len() == KEPT {
            r.all.pop_front();
        }
        r.all.push_back(attempt);
    }

    /// Forget every attempt kept (a privacy deletion: a vendor's request or
    /// answer can hold a user's data in forms the host cannot tell apart,
    /// such as hashes or the vendor's own ids); how many were kept.
    pub fn forget_all(&self) -> u64 {
        let mut r = self.inner.lock().expect("attempts lock");
        let n = r.all.len() + r.failed.iter().filter(|f| !r.all.contains(f)).count();
        r.all.clear();
        r.failed.clear();
        n as u64
    }

    /// The newest first; only failed ones with `failed_only`.
    pub fn newest(&self, failed_only: bool) -> Vec<Arc<Attempt>> {
        let r = self.inner.lock().expect("attempts lock");
        let ring = if failed_only { &r.failed } else { &r.all };
        ring.iter().rev().cloned().collect()
    }

    /// One attempt by id, if still kept.
    pub fn get(&self, id: u64) -> Option<Arc<Attempt>> {
        let r = self.inner.lock().expect("attempts lock");
        r.all
            .iter()
            .chain(r.failed.iter())
            .find(|a| a.id == id)
            .cloned()
    }
}

/// Whether a header's value is a credential, by its name.
pub fn is_secret_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_HEADERS.contains(&name.as_str()) || SECRET_WORDS.iter().any(|w| name.contains(w))
}

/// Whether a setting's or a field's value is a credential, by its name
/// (`api_key`, `authToken`, `client_secret`, ...).
pub fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| name.contains(w))
}

/// Headers with the values of credentials replaced by [`REDACTED`].
pub fn redact_headers(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            let v = if is_secret_header(k) {
                REDACTED.to_string()
            } else {
                v.clone()
            };
            (k.clone(), v)
        })
        .collect()
}

/// `url` with the user info and the values of credential-like query
/// parameters (`api_key`, `token`, ...) replaced by [`REDACTED`].
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = reqwest::Url::parse(url) else {
        return url.to_string();
    };
    if !parsed.username().is_empty() {
        let _ = parsed.set_username(REDACTED);
    }
    if parsed.password().is_some() {
        let _ = parsed.set_password(None);
    }
    if parsed.query().is_some() {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_secret_header(&k) {
                    REDACTED.to_string()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

/// The first [`EXCERPT_BYTES`] of `body` as text (cut at a character boundary).
pub fn excerpt(body: &[u8]) -> String {
    let head = &body[..body.len().min(EXCERPT_BYTES)];
    let mut text = String::from_utf8_lossy(head).into_owned();
    if body.len() > EXCERPT_BYTES {
        // A character cut in two shows as U+FFFD at the end: drop it.
        if text.ends_with('\u{FFFD}') {
            text.pop();
        }
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(id: u64, delivered: bool) -> Attempt {
        Attempt {
            id,
            at: String::new(),
            duration_ms: 1,
            sha256: String::new(),
            events: vec![EventOutcome {
                message_id: format!("m{id}"),
                outcome: if delivered { "delivered" } else { "retry" },
                reason: None,
                attempt: 1,
            }],
            requests: Vec::new(),
            requests_not_kept: 0,
            error: None,
        }
    }

    #[test]
    fn the_rings_keep_the_newest_and_failures_apart() {
        let a = Attempts::default();
        a.keep(attempt(1, false));
        for id in 2..(KEPT as u64 + 10) {
            a.keep(attempt(id, true));
        }
        let all = a.newest(false);
        assert_eq!(all.len(), KEPT);
        assert_eq!(all[0].id, KEPT as u64 + 9);
        assert!(a.get(1).is_some(), "the failure outlives the busy ring");
        assert_eq!(a.newest(true).len(), 1);
        // A deletion forgets them all, each counted once.
        assert_eq!(a.forget_all(), KEPT as u64 + 1);
        assert!(a.newest(false).is_empty() && a.newest(true).is_empty());
    }

    #[test]
    fn credentials_are_redacted_in_headers_and_urls() {
        let h = redact_headers(&[
            ("Authorization".into(), "Bearer abc".into()),
            ("X-Api-Key".into(), "k".into()),
            ("Content-Type".into(), "application/json".into()),
        ]);
        assert_eq!(h[0].1, REDACTED);
        assert_eq!(h[1].1, REDACTED);
        assert_eq!(h[2].1, "application/json");
        let u = redact_url("https://user:pw@api.example.com/v1?api_key=s3&page=2");
        assert!(
            !u.contains("s3") && !u.contains("pw") && !u.contains("user"),
            "{u}"
        );
        assert!(u.contains("page=2"), "{u}");
    }

    #[test]
    fn excerpts_stop_at_the_limit_on_a_character_boundary() {
        let body = "é".repeat(EXCERPT_BYTES);
        let e = excerpt(body.as_bytes());
        assert!(e.ends_with('…'));
        assert!(!e.contains('\u{FFFD}'));
        assert!(e.len() <= EXCERPT_BYTES + '…'.len_utf8());
        assert_eq!(excerpt(b"{}"), "{}");
    }

    #[test]
    fn a_tape_keeps_the_first_exchanges_and_counts_the_rest() {
        let tape = Tape::default();
        for i in 0..(MAX_EXCHANGES + 3) {
            tape.record(Exchange {
                method: "POST".into(),
                url: format!("http://x/{i}"),
                headers: vec![],
                body: String::new(),
                body_bytes: 0,
                response: None,
                error: Some("timed out".into()),
                duration_ms: 0,
            });
        }
        let (kept, more) = tape.take();
        assert_eq!((kept.len(), more), (MAX_EXCHANGES, 3));
    }
}
