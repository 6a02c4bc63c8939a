//! Outbound HTTP through the host's `http.send` import, and lookups on its answers.

use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::http;
use crate::Response;

/// Header names and values, in order (the shape of `http.request.headers`).
pub type Headers = Vec<(String, String)>;

/// Send one request through the host (which applies the allowlist, a timeout and a
/// response-size cap). A 4xx or 5xx is an `Ok` response, not an error. Natively,
/// in `cargo test`, [`crate::mock`] answers.
pub fn send(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> Result<Response, http::Error> {
    let request = http::Request {
        method: method.to_string(),
        url: url.to_string(),
        headers: headers.to_vec(),
        body,
    };
    // On the build machine (`cargo test`) there is no host: the stand-in answers.
    #[cfg(not(target_family = "wasm"))]
    return crate::mock::send(request);
    #[cfg(target_family = "wasm")]
    http::send(&request)
}

/// `POST` `body` serialised as JSON to `url`, with `Content-Type: application/json`
/// (unless `headers` already names a content type) followed by `headers`.
pub fn post_json<T: Serialize + ?Sized>(
    url: &str,
    headers: &[(String, String)],
    body: &T,
) -> Result<Response, http::Error> {
    // Serialising a `serde_json::Value` or a derived struct cannot fail; a map with
    // non-string keys could, and is then sent as `null` rather than panicking.
    let body = serde_json::to_vec(body).unwrap_or_else(|_| b"null".to_vec());
    let mut all = Vec::with_capacity(headers.len() + 1);
    if header(headers, "content-type").is_none() {
        all.push(("content-type".to_string(), "application/json".to_string()));
    }
    all.extend_from_slice(headers);
    send("POST", url, &all, body)
}

/// The first value of a header, by case-insensitive name.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// `Basic base64(user:password)`, the value of an `Authorization` header.
pub fn basic_auth(user: &str, password: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}

/// Percent-encode `text` for a URL query value or path segment (everything but
/// `A-Z a-z 0-9 - . _ ~` is escaped).
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Response {
    /// The first value of a response header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// The start of the body on one line, for failure reasons (see [`crate::excerpt`]).
    pub fn excerpt(&self) -> String {
        crate::excerpt(&self.body)
    }

    /// The `Retry-After` header in milliseconds (see [`crate::retry_after_ms`]).
    pub fn retry_after_ms(&self) -> Option<u64> {
        crate::retry_after_ms(&self.headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_encodes_user_and_password() {
        assert_eq!(basic_auth("wk", ""), "Basic d2s6");
        assert_eq!(basic_auth("user", "pass"), "Basic dXNlcjpwYXNz");
    }

    #[test]
    fn url_encode_escapes_reserved_bytes() {
        assert_eq!(url_encode("G-ABC_1.~"), "G-ABC_1.~");
        assert_eq!(url_encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn headers_are_found_by_any_case() {
        let h = vec![("Retry-After".to_string(), "3".to_string())];
        assert_eq!(header(&h, "retry-after"), Some("3"));
        let resp = Response {
            status: 204,
            headers: h,
            body: Vec::new(),
        };
        assert_eq!(resp.header("RETRY-AFTER"), Some("3"));
        assert!(resp.is_success());
        assert_eq!(resp.retry_after_ms(), Some(3000));
    }
}
