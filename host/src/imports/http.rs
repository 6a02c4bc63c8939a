//! The host side of the `http` import: the only way out of the sandbox.
//!
//! Where it sits: the runtime's host functions ([`runtime`](crate::runtime))
//! hand each `http.send` of a running destination to [`Egress::send`]. Every
//! request, and every redirect hop, is checked against the destination's
//! [`Allowlist`] (deny by default); the request has a timeout and the response
//! body a size cap. This module knows nothing of wasmtime: its [`Request`],
//! [`Response`] and [`Error`] mirror the WIT records, and the runtime converts.
//!
//! Addresses that are not public (loopback, private, link-local including the
//! 169.254.169.254 metadata service, CGNAT, unspecified, multicast) are reached
//! only through an entry that names the host exactly: an IP literal or a host
//! name matched by a `*.` wildcard entry is refused when it is (or resolves to)
//! such an address. The name is resolved for that check just before the request
//! (a rebinding between that look-up and the connection is not covered). In a dry run
//! (`switchyard try`) nothing is sent: requests are recorded and answered `200`.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use crate::allowlist::Allowlist;
use crate::allowlist::{is_public, Matched};

/// Most redirects followed for one request.
const MAX_REDIRECTS: usize = 5;

/// A request from a guest (the WIT `http.request`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// Header names and values, in order.
    pub headers: Vec<(String, String)>,
    /// Body (may be empty).
    pub body: Vec<u8>,
}

/// The answer to a guest, whatever its status (the WIT `http.response`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    /// Body, at most the size cap.
    pub body: Vec<u8>,
}

/// Why no response could be obtained (the WIT `http.error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Outside the allowlist, or a request the destination built wrong.
    #[error("denied: {0}")]
    Denied(String),
    /// The request did not finish in time.
    #[error("timed out")]
    Timeout,
    /// Connecting or talking to the server failed.
    #[error("connection failed: {0}")]
    Connection(String),
    /// The response body exceeded the cap.
    #[error("response too large")]
    TooLarge,
}

/// For a wildcard match: refuse a host name that resolves to a non-public address.
async fn check_resolution(url: &reqwest::Url) -> Result<(), Error> {
    let Some(host) = url.host_str() else {
        return Ok(());
    };
    if host.parse::<IpAddr>().is_ok() || host.starts_with('[') {
        return Ok(());
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| Error::Connection(format!("cannot resolve {host}: {e}")))?;
    for addr in addrs {
        if !is_public(addr.ip()) {
            return Err(Error::Denied(format!(
                "{host} resolves to {}, which is not a public address, and no entry names {host} exactly",
                addr.ip()
            )));
        }
    }
    Ok(())
}

/// The whole egress check of one hop: allowlist, then resolution for wildcard matches.
pub async fn permit(allowlist: &Allowlist, url: &reqwest::Url) -> Result<(), Error> {
    if allowlist.check(url).map_err(Error::Denied)? == Matched::Wildcard {
        check_resolution(url).await?;
    }
    Ok(())
}

/// Limits of outbound HTTP for one destination.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Whole-request deadline (connect, send, read).
    pub timeout: Duration,
    /// Largest response body accepted.
    pub max_response_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            max_response_bytes: 1 << 20,
        }
    }
}

/// How `http.send` behaves for one call into a guest.
#[derive(Clone)]
pub enum Egress {
    /// Really send, through the allowlist.
    Live {
        /// Shared connection pool.
        client: reqwest::Client,
        /// What this destination may reach.
        allowlist: Arc<Allowlist>,
        /// Timeout and size cap.
        limits: HttpLimits,
        /// Destination name, for log lines.
        destination: Arc<str>,
    },
    /// Record and answer `200 {}` without sending.
    DryRun(Arc<Mutex<Vec<Request>>>),
}

impl std::fmt::Debug for Egress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Egress::Live { destination, .. } => write!(f, "Egress::Live({destination})"),
            Egress::DryRun(_) => f.write_str("Egress::DryRun"),
        }
    }
}

/// The one HTTP client of the process: no automatic redirects (each hop is
/// re-checked against the allowlist here), no proxies from the environment.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!("switchyard/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the HTTP client builds")
}

impl Egress {
    /// Carry out one `http.send` from a guest.
    pub async fn send(&self, req: Request) -> Result<Response, Error> {
        match self {
            Egress::DryRun(log) => {
                log.lock().expect("dry-run log").push(req);
                Ok(Response {
                    status: 200,
                    headers: vec![("content-type".into(), "application/json".into())],
                    body: b"{}".to_vec(),
                })
            }
            Egress::Live {
                client,
                allowlist,
                limits,
                destination,
            } => {
                let result =
                    tokio::time::timeout(limits.timeout, send_live(client, allowlist, limits, req))
                        .await
                        .unwrap_or(Err(Error::Timeout));
                if let Err(Error::Denied(why)) = &result {
                    tracing::warn!(destination = &**destination, "egress denied: {why}");
                }
                result
            }
        }
    }
}

async fn send_live(
    client: &reqwest::Client,
    allowlist: &Allowlist,
    limits: &HttpLimits,
    req: Request,
) -> Result<Response, Error> {
    // A malformed request is the destination's mistake, never fixed by a retry: denied.
    let mut method = reqwest::Method::from_bytes(req.method.as_bytes())
        .map_err(|_| Error::Denied(format!("invalid request: bad method `{}`", req.method)))?;
    let mut url = reqwest::Url::parse(&req.url)
        .map_err(|e| Error::Denied(format!("bad URL `{}`: {e}", req.url)))?;
    let mut body = req.body;
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in &req.headers {
        let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Error::Denied(format!("invalid request: bad header name `{name}`")))?;
        let value = reqwest::header::HeaderValue::from_str(value)
            .map_err(|_| Error::Denied(format!("invalid request: bad value of header `{name}`")))?;
        headers.append(name, value);
    }
    for _hop in 0..=MAX_REDIRECTS {
        permit(allowlist, &url).await?;
        let resp = client
            .request(method.clone(), url.clone())
            .headers(headers.clone())
            .body(body.clone())
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    Error::Timeout
                } else {
                    Error::Connection(error_chain(&e))
                }
            })?;
        let status = resp.status();
        if status.is_redirection() {
            if let Some(location) = resp.headers().get(reqwest::header::LOCATION) {
                let location = location
                    .to_str()
                    .map_err(|_| Error::Connection("bad Location header".into()))?;
                url = url
                    .join(location)
                    .map_err(|e| Error::Connection(format!("bad redirect `{location}`: {e}")))?;
                // 301/302/303 turn a POST into a GET without a body, as browsers and curl do.
                if matches!(status.as_u16(), 301..=303) && method != reqwest::Method::HEAD {
                    method = reqwest::Method::GET;
                    body = Vec::new();
                    headers.remove(reqwest::header::CONTENT_TYPE);
                }
                continue;
            }
        }
        return read_response(resp, limits.max_response_bytes).await;
    }
    Err(Error::Connection(format!(
        "more than {MAX_REDIRECTS} redirects"
    )))
}

async fn read_response(mut resp: reqwest::Response, cap: usize) -> Result<Response, Error> {
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    if resp.content_length().is_some_and(|n| n as usize > cap) {
        return Err(Error::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| Error::Connection(error_chain(&e)))?
    {
        if body.len() + chunk.len() > cap {
            return Err(Error::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `permit` of `url` through the allowlist of one `entry`.
    async fn permit_one(entry: &str, url: &str) -> Result<(), Error> {
        let list = Allowlist::parse(&[entry.to_string()]).unwrap();
        permit(&list, &reqwest::Url::parse(url).unwrap()).await
    }

    #[tokio::test]
    async fn wildcard_names_resolving_to_loopback_are_refused() {
        // `localhost` resolves to loopback; a wildcard cannot reach it, an exact entry can.
        match permit_one("http://*.localhost:80", "http://app.localhost/").await {
            // Where the resolver knows `*.localhost` (RFC 6761), it is loopback: denied.
            Err(Error::Denied(why)) => assert!(why.contains("not a public address"), "{why}"),
            // Where it does not, the request fails as a (retryable) connection error.
            Err(Error::Connection(why)) => assert!(why.contains("cannot resolve"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(permit_one("http://localhost:80", "http://localhost/")
            .await
            .is_ok());
    }
}
