//! The host side of the `http` import: the only way out of the sandbox.
//!
//! Where it sits: called by a running destination component (through the
//! bindings in `runtime::bindings`). Every request, and every redirect hop, is
//! checked against the destination's [`Allowlist`] (deny by default); the
//! request has a timeout and the response body a size cap.
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

use crate::runtime::bindings::switchyard::destination::http::{
    Error as WitError, Request as WitRequest, Response as WitResponse,
};

/// Most redirects followed for one request.
const MAX_REDIRECTS: usize = 5;

/// One allowlist entry: `scheme://host[:port]`, host may start with `*.`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowRule {
    /// `http` or `https`.
    scheme: String,
    /// Lower-case host; for a wildcard, the suffix after `*.`.
    host: String,
    /// `*.example.com` matches any subdomain of `example.com` (not the apex).
    wildcard: bool,
    /// Port, defaulting to the scheme's.
    port: u16,
}

/// The hosts a destination may call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    rules: Vec<AllowRule>,
}

impl Allowlist {
    /// Parse entries; an error gives the index of the bad entry and why.
    pub fn parse(entries: &[String]) -> Result<Allowlist, (usize, String)> {
        let mut rules = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            rules.push(parse_rule(entry).map_err(|m| (i, m))?);
        }
        Ok(Allowlist { rules })
    }

    /// Whether `url` may be called, and through which kind of entry; `Err` says why not.
    pub fn check(&self, url: &reqwest::Url) -> Result<Matched, String> {
        let scheme = url.scheme();
        let host = url
            .host_str()
            .ok_or_else(|| format!("{url} has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = url
            .port_or_known_default()
            .ok_or_else(|| format!("{url} has no port"))?;
        let exact =
            |r: &&AllowRule| r.scheme == scheme && r.port == port && !r.wildcard && r.host == host;
        let wild = |r: &&AllowRule| {
            r.scheme == scheme
                && r.port == port
                && r.wildcard
                && host.len() > r.host.len() + 1
                && host.ends_with(&r.host)
                && host.as_bytes()[host.len() - r.host.len() - 1] == b'.'
        };
        if self.rules.iter().any(|r| exact(&r)) {
            return Ok(Matched::Exact);
        }
        if self.rules.iter().any(|r| wild(&r)) {
            if let Ok(ip) = host.parse::<IpAddr>() {
                if !is_public(ip) {
                    return Err(format!(
                        "{ip} is not a public address and no entry names it"
                    ));
                }
            }
            return Ok(Matched::Wildcard);
        }
        Err(format!(
            "{scheme}://{host}:{port} is not in this destination's allowed_hosts"
        ))
    }
}

/// How a URL passed the allowlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matched {
    /// An entry names this exact host: any address is fine.
    Exact,
    /// Only a `*.` entry matched: the host must resolve to public addresses.
    Wildcard,
}

/// Whether an address is on the public internet (not loopback, private,
/// link-local, CGNAT, unspecified, broadcast, documentation or multicast).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1])))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let seg = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00
                || (seg[0] & 0xffc0) == 0xfe80)
        }
    }
}

/// For a wildcard match: refuse a host name that resolves to a non-public address.
async fn check_resolution(url: &reqwest::Url) -> Result<(), WitError> {
    let Some(host) = url.host_str() else {
        return Ok(());
    };
    if host.parse::<IpAddr>().is_ok() || host.starts_with('[') {
        return Ok(());
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| WitError::Connection(format!("cannot resolve {host}: {e}")))?;
    for addr in addrs {
        if !is_public(addr.ip()) {
            return Err(WitError::Denied(format!(
                "{host} resolves to {}, which is not a public address, and no entry names {host} exactly",
                addr.ip()
            )));
        }
    }
    Ok(())
}

impl Allowlist {
    /// The whole egress check of one hop: allowlist, then resolution for wildcard matches.
    pub async fn permit(&self, url: &reqwest::Url) -> Result<(), WitError> {
        if self.check(url).map_err(WitError::Denied)? == Matched::Wildcard {
            check_resolution(url).await?;
        }
        Ok(())
    }
}

fn parse_rule(entry: &str) -> Result<AllowRule, String> {
    let (scheme, rest) = entry
        .split_once("://")
        .ok_or_else(|| format!("`{entry}`: expected scheme://host[:port]"))?;
    let default_port = match scheme {
        "http" => 80,
        "https" => 443,
        _ => return Err(format!("`{entry}`: scheme must be http or https")),
    };
    let rest = rest.trim_end_matches('/');
    if rest.contains('/') || rest.contains('@') || rest.contains('?') {
        return Err(format!("`{entry}`: only scheme://host[:port], no path"));
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, tail) = v6
            .split_once(']')
            .ok_or_else(|| format!("`{entry}`: unclosed ["))?;
        let port = match tail.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| format!("`{entry}`: bad port"))?,
            None if tail.is_empty() => default_port,
            None => return Err(format!("`{entry}`: bad host")),
        };
        (h.to_string(), port)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse()
                    .map_err(|_| format!("`{entry}`: bad port `{p}`"))?,
            ),
            None => (rest.to_string(), default_port),
        }
    };
    let host = host.to_ascii_lowercase();
    let (wildcard, host) = match host.strip_prefix("*.") {
        Some(suffix) => (true, suffix.to_string()),
        None => (false, host),
    };
    if host.is_empty() || host.contains('*') {
        return Err(format!(
            "`{entry}`: bad host (wildcards only as a leading `*.`)"
        ));
    }
    Ok(AllowRule {
        scheme: scheme.to_string(),
        host,
        wildcard,
        port,
    })
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

/// A request a dry run would have sent.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// Method.
    pub method: String,
    /// URL.
    pub url: String,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

/// How `http.send` behaves for one store.
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
    DryRun(Arc<Mutex<Vec<RecordedRequest>>>),
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
    pub async fn send(&self, req: WitRequest) -> Result<WitResponse, WitError> {
        match self {
            Egress::DryRun(log) => {
                log.lock().expect("dry-run log").push(RecordedRequest {
                    method: req.method,
                    url: req.url,
                    headers: req.headers,
                    body: req.body,
                });
                Ok(WitResponse {
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
                        .unwrap_or(Err(WitError::Timeout));
                if let Err(WitError::Denied(why)) = &result {
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
    req: WitRequest,
) -> Result<WitResponse, WitError> {
    // A malformed request is the destination's mistake, never fixed by a retry: denied.
    let mut method = reqwest::Method::from_bytes(req.method.as_bytes())
        .map_err(|_| WitError::Denied(format!("invalid request: bad method `{}`", req.method)))?;
    let mut url = reqwest::Url::parse(&req.url)
        .map_err(|e| WitError::Denied(format!("bad URL `{}`: {e}", req.url)))?;
    let mut body = req.body;
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in &req.headers {
        let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| WitError::Denied(format!("invalid request: bad header name `{name}`")))?;
        let value = reqwest::header::HeaderValue::from_str(value).map_err(|_| {
            WitError::Denied(format!("invalid request: bad value of header `{name}`"))
        })?;
        headers.append(name, value);
    }
    for _hop in 0..=MAX_REDIRECTS {
        allowlist.permit(&url).await?;
        let resp = client
            .request(method.clone(), url.clone())
            .headers(headers.clone())
            .body(body.clone())
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    WitError::Timeout
                } else {
                    WitError::Connection(error_chain(&e))
                }
            })?;
        let status = resp.status();
        if status.is_redirection() {
            if let Some(location) = resp.headers().get(reqwest::header::LOCATION) {
                let location = location
                    .to_str()
                    .map_err(|_| WitError::Connection("bad Location header".into()))?;
                url = url
                    .join(location)
                    .map_err(|e| WitError::Connection(format!("bad redirect `{location}`: {e}")))?;
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
    Err(WitError::Connection(format!(
        "more than {MAX_REDIRECTS} redirects"
    )))
}

async fn read_response(mut resp: reqwest::Response, cap: usize) -> Result<WitResponse, WitError> {
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
        return Err(WitError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| WitError::Connection(error_chain(&e)))?
    {
        if body.len() + chunk.len() > cap {
            return Err(WitError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(WitResponse {
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

    fn list(entries: &[&str]) -> Allowlist {
        Allowlist::parse(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn url(s: &str) -> reqwest::Url {
        reqwest::Url::parse(s).unwrap()
    }

    #[test]
    fn deny_by_default() {
        assert!(list(&[]).check(&url("https://example.com/")).is_err());
    }

    #[test]
    fn scheme_host_and_port_must_all_match() {
        let l = list(&["http://127.0.0.1:9999", "https://api.example.com"]);
        assert!(l.check(&url("http://127.0.0.1:9999/hook")).is_ok());
        assert!(l.check(&url("http://127.0.0.1:9998/hook")).is_err());
        assert!(l.check(&url("https://127.0.0.1:9999/hook")).is_err());
        assert!(l.check(&url("https://api.example.com/x")).is_ok());
        assert!(l.check(&url("https://api.example.com:8443/x")).is_err());
        assert!(l.check(&url("http://api.example.com/x")).is_err());
    }

    #[test]
    fn wildcards_match_subdomains_only() {
        let l = list(&["https://*.example.com"]);
        assert!(l.check(&url("https://a.example.com/")).is_ok());
        assert!(l.check(&url("https://a.b.example.com/")).is_ok());
        assert!(l.check(&url("https://example.com/")).is_err());
        assert!(l.check(&url("https://badexample.com/")).is_err());
    }

    #[test]
    fn non_public_addresses_need_an_entry_that_names_them() {
        let l = list(&[
            "http://*.0.1:80",
            "http://10.0.0.5:8080",
            "https://*.example.com",
        ]);
        assert!(
            l.check(&url("http://127.0.0.1/")).is_err(),
            "loopback through a wildcard"
        );
        assert_eq!(l.check(&url("http://10.0.0.5:8080/")), Ok(Matched::Exact));
        assert_eq!(
            l.check(&url("https://api.example.com/")),
            Ok(Matched::Wildcard)
        );
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn wildcard_names_resolving_to_loopback_are_refused() {
        // `localhost` resolves to loopback; a wildcard cannot reach it, an exact entry can.
        let wild = list(&["http://*.localhost:80"]);
        match wild.permit(&url("http://app.localhost/")).await {
            // Where the resolver knows `*.localhost` (RFC 6761), it is loopback: denied.
            Err(WitError::Denied(why)) => assert!(why.contains("not a public address"), "{why}"),
            // Where it does not, the request fails as a (retryable) connection error.
            Err(WitError::Connection(why)) => assert!(why.contains("cannot resolve"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(list(&["http://localhost:80"])
            .permit(&url("http://localhost/"))
            .await
            .is_ok());
    }

    #[test]
    fn bad_entries_are_refused() {
        for bad in [
            "example.com",
            "ftp://x",
            "http://x/path",
            "http://x:port",
            "http://a*.b",
        ] {
            assert!(Allowlist::parse(&[bad.to_string()]).is_err(), "{bad}");
        }
    }
}
