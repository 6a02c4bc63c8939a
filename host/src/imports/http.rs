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
//! such an address. Names are resolved once, by the destination's client, through
//! [`super::resolve::CheckedResolver`], which checks every address it hands to
//! the connection (so DNS rebinding cannot slip a private address in). In a dry run
//! (`switchyard try`) nothing is sent: requests are recorded and answered from a
//! script, `200 {}` by default ([`DryRun`]).

use std::sync::{Arc, Mutex};

use std::time::Duration;

pub use super::exchange::{Error, Request, Response};
use super::resolve::{refusal_in, CheckedResolver, Lookup, ResolveError};
use super::secrets::Sealed;
pub use crate::allowlist::Allowlist;
use crate::allowlist::Matched;

/// Most redirects followed for one request.
const MAX_REDIRECTS: usize = 5;

/// The allowlist check of one hop (every redirect hop too). Whether the name
/// may resolve to addresses that are not public is checked by the destination's
/// resolver ([`super::resolve`]) as the connection is made.
pub fn permit(allowlist: &Allowlist, url: &reqwest::Url) -> Result<Matched, Error> {
    allowlist.check(url).map_err(Error::Denied)
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
        /// Shared connection pool, for URLs an entry names exactly (their
        /// hosts may resolve to addresses that are not public).
        client: reqwest::Client,
        /// The pool for URLs only a `*.` entry matched: every address its
        /// resolver hands out must be public, even for a host another entry
        /// (of another scheme or port) names exactly. Made on first use.
        public_only: Arc<std::sync::OnceLock<reqwest::Client>>,
        /// The look-up behind both pools.
        lookup: Arc<dyn Lookup>,
        /// What this destination may reach.
        allowlist: Arc<Allowlist>,
        /// Timeout and size cap.
        limits: HttpLimits,
        /// Destination name, for log lines.
        destination: Arc<str>,
        /// Vendor origins sent to loopback instead (tests and dry runs; empty by default).
        reroute: Arc<super::reroute::Reroute>,
    },
    /// Send nothing: record each request and answer it from a script
    /// (`switchyard try`, `switchyard check`, the bench).
    DryRun(Arc<DryRun>),
    /// Send nothing: answer each request from earlier exchanges (a shadow
    /// version's call, `switchyard replay`: [`crate::trial`]). The request is
    /// matched with this call's secret tokens written back as `${secret:NAME}`.
    Replay(Arc<dyn Answer>),
}

/// Answers a request without the network, from what was recorded.
pub trait Answer: Send + Sync {
    /// The answer to `req`, which carries `${secret:NAME}` placeholders, never tokens.
    fn answer(&self, req: &Request) -> Result<Response, Error>;
}

/// What a dry run does with the requests it is given.
#[derive(Debug, Default)]
pub struct DryRun {
    /// The requests, oldest first, each with the answer it got.
    exchanges: Mutex<Vec<(Request, Result<Response, Error>)>>,
    /// Answers still to give, in order; once they are used up, `200 {}`.
    script: Mutex<std::collections::VecDeque<Response>>,
    /// When set, a request outside it is denied as the host would deny it.
    allowlist: Option<Allowlist>,
}

impl DryRun {
    /// A dry run that answers `script` in order (then `200 {}`), denying what
    /// `allowlist` (when given) does not cover.
    pub fn new(script: Vec<Response>, allowlist: Option<Allowlist>) -> DryRun {
        DryRun {
            exchanges: Mutex::default(),
            script: Mutex::new(script.into()),
            allowlist,
        }
    }

    /// The answer to one request, and the record of the exchange.
    fn answer(&self, req: Request) -> Result<Response, Error> {
        let denied = match (&self.allowlist, reqwest::Url::parse(&req.url)) {
            (None, _) => None,
            (Some(_), Err(e)) => Some(Error::Denied(format!("bad URL `{}`: {e}", req.url))),
            (Some(list), Ok(url)) => permit(list, &url).err(),
        };
        let answer = match denied {
            Some(error) => Err(error),
            None => Ok(self
                .script
                .lock()
                .expect("dry-run script")
                .pop_front()
                .unwrap_or_else(|| Response {
                    status: 200,
                    headers: vec![("content-type".into(), "application/json".into())],
                    body: b"{}".to_vec(),
                })),
        };
        self.record(req, answer.clone());
        answer
    }

    /// Record one exchange.
    fn record(&self, req: Request, answer: Result<Response, Error>) {
        self.exchanges
            .lock()
            .expect("dry-run log")
            .push((req, answer));
    }

    /// Take the exchanges recorded so far, oldest first.
    pub fn take(&self) -> Vec<(Request, Result<Response, Error>)> {
        std::mem::take(&mut *self.exchanges.lock().expect("dry-run log"))
    }
}

impl std::fmt::Debug for Egress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Egress::Live { destination, .. } => write!(f, "Egress::Live({destination})"),
            Egress::DryRun(_) => f.write_str("Egress::DryRun"),
            Egress::Replay(_) => f.write_str("Egress::Replay"),
        }
    }
}

/// A destination's HTTP client: its own connection pool, no automatic redirects
/// (each hop is re-checked against the allowlist here), no proxies from the
/// environment, and names resolved only through a [`CheckedResolver`] of its
/// allowlist (so a connection goes only to addresses checked for it).
pub fn client_for(allowlist: Arc<Allowlist>, lookup: Arc<dyn Lookup>) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(CheckedResolver::new(allowlist, lookup)))
        .user_agent(concat!("switchyard/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the HTTP client builds")
}

impl Egress {
    /// Real egress for `name` (a destination, or `destination/transform`): its
    /// own client and allowlist, and a request timeout no longer than the
    /// guest's call deadline.
    pub fn live(
        name: Arc<str>,
        allowlist: &Allowlist,
        lookup: Arc<dyn Lookup>,
        call_deadline: std::time::Duration,
    ) -> Egress {
        let allowlist = Arc::new(allowlist.clone());
        Egress::Live {
            client: client_for(allowlist.clone(), lookup.clone()),
            public_only: Arc::default(),
            lookup,
            allowlist,
            limits: HttpLimits {
                timeout: call_deadline.min(HttpLimits::default().timeout),
                ..HttpLimits::default()
            },
            destination: name,
            reroute: Arc::default(),
        }
    }

    /// This egress with `reroute`'s vendor origins sent to loopback (live only).
    pub fn rerouted(mut self, with: &super::reroute::Reroute) -> Egress {
        if let Egress::Live { reroute, .. } = &mut self {
            *reroute = Arc::new(with.clone());
        }
        self
    }

    /// Carry out one `http.send` from a guest. With `sealed` (the call's
    /// secrets), the request is opened first (each token replaced by its value,
    /// or denied when bound for a host the secret may not reach), the answer is
    /// sealed before the guest reads it, and error texts are redacted. A dry
    /// run checks the same, but records the request as the guest wrote it.
    pub async fn send(&self, req: Request, sealed: Option<&Sealed>) -> Result<Response, Error> {
        if let Egress::Replay(answers) = self {
            let req = match sealed {
                Some(sealed) => sealed.name_request(req),
                None => req,
            };
            return answers.answer(&req);
        }
        let result = match sealed {
            None => self.send_open(req, &[]).await,
            Some(sealed) => self.send_sealed(req, sealed).await,
        };
        if let (Err(Error::Denied(why)), Egress::Live { destination, .. }) = (&result, self) {
            tracing::warn!(destination = &**destination, "egress denied: {why}");
        }
        result
    }

    /// [`Egress::send`] with the call's secrets.
    async fn send_sealed(&self, req: Request, sealed: &Sealed) -> Result<Response, Error> {
        let result = match self {
            Egress::DryRun(dry) => match sealed.open(req.clone()) {
                // What the guest wrote is recorded and printed, never the values.
                Ok(opened) => dry
                    .answer(req)
                    .and_then(|resp| sealed.seal_response(&opened, resp)),
                Err(denied) => {
                    dry.record(req, Err(denied.clone()));
                    Err(denied)
                }
            },
            Egress::Replay(answers) => answers.answer(&sealed.name_request(req)),
            Egress::Live { .. } => match sealed.open(req) {
                Ok(opened) => match sealed.refreshing(&opened) {
                    // An OAuth2 refresh (`imports/oauth.rs`): one at a time, and
                    // answered from the last one when it was a moment ago.
                    Some(target) => {
                        let gate = target.refresh.as_ref().map(|r| r.gate.lock());
                        let _one_at_a_time = match gate {
                            Some(g) => Some(g.await),
                            None => None,
                        };
                        let answer = if sealed.refreshed_recently(target) {
                            Ok(sealed.answer_from_recent(target))
                        } else {
                            let answer =
                                self.send_open(opened.request.clone(), &opened.bound).await;
                            if let Ok(resp) = &answer {
                                sealed.take_refreshed(target, resp);
                            }
                            answer
                        };
                        answer.and_then(|resp| sealed.seal_response(&opened, resp))
                    }
                    None => {
                        let answer = self.send_open(opened.request.clone(), &opened.bound).await;
                        answer.and_then(|resp| sealed.seal_response(&opened, resp))
                    }
                },
                Err(denied) => Err(denied),
            },
        };
        match result {
            Err(Error::Denied(why)) => Err(Error::Denied(sealed.redact(&why))),
            Err(Error::Connection(why)) => Err(Error::Connection(sealed.redact(&why))),
            other => other,
        }
    }

    /// Send `req` (opened, when it carries secrets; `bound` are their hosts,
    /// which every redirect hop must be one of).
    async fn send_open(&self, req: Request, bound: &[Allowlist]) -> Result<Response, Error> {
        match self {
            Egress::DryRun(dry) => dry.answer(req),
            Egress::Replay(answers) => answers.answer(&req),
            Egress::Live {
                client,
                public_only,
                lookup,
                allowlist,
                limits,
                reroute,
                ..
            } => {
                let clients = Clients {
                    reroute,
                    exact: client,
                    public_only: || {
                        public_only.get_or_init(|| {
                            client_for(Arc::new(Allowlist::default()), lookup.clone())
                        })
                    },
                };
                tokio::time::timeout(
                    limits.timeout,
                    send_live(&clients, allowlist, limits, req, bound),
                )
                .await
                .unwrap_or(Err(Error::Timeout))
            }
        }
    }
}

/// Headers that say how the request travels rather than what it says: the
/// client sets them from the URL and the body. A guest that sets `Host` could
/// send an allowed URL to another virtual host of a shared ingress (with a
/// secret in its body); one that sets `Transfer-Encoding` or `Content-Length`
/// could smuggle a second request. `Host` equal to the URL's authority and
/// `Content-Length` equal to the body's size are harmless and dropped (`Ok(true)`:
/// the client writes its own); any other value, and every hop-by-hop header,
/// is refused.
fn connection_level(
    name: &reqwest::header::HeaderName,
    value: &reqwest::header::HeaderValue,
    url: &reqwest::Url,
    body_len: usize,
) -> Result<bool, Error> {
    use reqwest::header::{
        CONNECTION, CONTENT_LENGTH, HOST, PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING,
        UPGRADE,
    };
    let refused = |why: &str| {
        Err(Error::Denied(format!(
            "invalid request: header `{name}` {why}"
        )))
    };
    if name == HOST {
        // The URL's authority, with or without its scheme's default port.
        let host = url.host_str().unwrap_or_default();
        let with_port = url
            .port_or_known_default()
            .map(|port| format!("{host}:{port}"));
        return match value.to_str() {
            Ok(v) if v.eq_ignore_ascii_case(host) && url.port().is_none() => Ok(true),
            Ok(v) if with_port.is_some_and(|a| v.eq_ignore_ascii_case(&a)) => Ok(true),
            _ => refused("must name the URL's own host (the client sets it)"),
        };
    }
    if name == CONTENT_LENGTH {
        return match value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
        {
            Some(n) if n == body_len => Ok(true),
            _ => refused("must be the body's size (the client sets it)"),
        };
    }
    let hop_by_hop = [
        CONNECTION,
        TRANSFER_ENCODING,
        TE,
        TRAILER,
        UPGRADE,
        PROXY_AUTHORIZATION,
    ];
    if hop_by_hop.contains(name)
        || name.as_str().eq_ignore_ascii_case("keep-alive")
        || name.as_str().eq_ignore_ascii_case("proxy-connection")
    {
        return refused("is set by the client, not by a destination");
    }
    Ok(false)
}

/// A destination's two connection pools (see [`Egress::Live`]).
struct Clients<'a, F: Fn() -> &'a reqwest::Client> {
    /// Vendor origins sent to loopback instead, through `exact` (an IP or
    /// `localhost`, never a name the allowlist's resolver would refuse).
    reroute: &'a super::reroute::Reroute,
    /// For URLs an entry names exactly.
    exact: &'a reqwest::Client,
    /// For URLs only a `*.` entry matched.
    public_only: F,
}

/// The client for rerouted requests (`vendor_origins`): loopback only, so no
/// resolver of an allowlist; no redirects, no proxies, like every other.
fn rerouted_client() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("switchyard/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client builds")
    })
}

async fn send_live<'a, F: Fn() -> &'a reqwest::Client>(
    clients: &Clients<'a, F>,
    allowlist: &Allowlist,
    limits: &HttpLimits,
    req: Request,
    bound: &[Allowlist],
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
        if connection_level(&name, &value, &url, body.len())? {
            continue;
        }
        headers.append(name, value);
    }
    for _hop in 0..=MAX_REDIRECTS {
        // Scheme and port are part of the match: a host that one entry names
        // exactly, reached under another entry's `*.`, must resolve to public
        // addresses like any other wildcard match.
        let client = match permit(allowlist, &url)? {
            Matched::Exact => clients.exact,
            Matched::Wildcard => (clients.public_only)(),
        };
        // A request that carries a secret follows a redirect only to that secret's hosts.
        if bound.iter().any(|hosts| hosts.check(&url).is_err()) {
            return Err(Error::Denied(format!(
                "a redirect to {}://{} would carry a secret to a host that is not one of its hosts",
                url.scheme(),
                url.host_str().unwrap_or("")
            )));
        }
        let (client, target) = match clients.reroute.apply(&url) {
            Some(stand_in) => (rerouted_client(), stand_in),
            None => (client, url.clone()),
        };
        let resp = client
            .request(method.clone(), target)
            .headers(headers.clone())
            .body(body.clone())
            .send()
            .await
            .map_err(|e| {
                if let Some(refused) = refusal_in(&e) {
                    match refused {
                        ResolveError::NotPublic { .. } => Error::Denied(refused.to_string()),
                        ResolveError::Failed { .. } => Error::Connection(refused.to_string()),
                    }
                } else if e.is_timeout() {
                    Error::Timeout
                } else {
                    // Without the URL: an opened one carries the values of secrets.
                    Error::Connection(error_chain(&e.without_url()))
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
        .map_err(|e| Error::Connection(error_chain(&e.without_url())))?
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
    use std::collections::HashMap;
    use std::future::Future;
    use std::net::IpAddr;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A DNS server of the test's: fixed answers per name, and a count of look-ups.
    #[derive(Default)]
    struct TestDns {
        answers: HashMap<String, IpAddr>,
        lookups: AtomicUsize,
    }

    impl Lookup for TestDns {
        fn lookup(
            &self,
            host: String,
        ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>> {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            let answer = self.answers.get(&host).copied();
            Box::pin(async move {
                answer
                    .map(|ip| vec![ip])
                    .ok_or_else(|| std::io::Error::other("no such name"))
            })
        }
    }

    /// A receiver on loopback counting its requests; `/hop` redirects to `location`.
    async fn receiver(location: Option<String>) -> (u16, Arc<AtomicUsize>) {
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            let counted = counted.clone();
            let location = location.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                match (uri.path(), location) {
                    ("/hop", Some(to)) => (
                        axum::http::StatusCode::FOUND,
                        [(axum::http::header::LOCATION, to)],
                    )
                        .into_response(),
                    _ => "ok".into_response(),
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (port, hits)
    }
    use axum::response::IntoResponse as _;

    fn egress(entries: &[String], dns: Arc<TestDns>) -> Egress {
        Egress::live(
            Arc::from("test"),
            &Allowlist::parse(entries).unwrap(),
            dns,
            HttpLimits::default().timeout,
        )
    }

    fn get(url: String) -> Request {
        Request {
            method: "GET".into(),
            url,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn loopback_dns(names: &[&str]) -> Arc<TestDns> {
        Arc::new(TestDns {
            answers: names
                .iter()
                .map(|n| (n.to_string(), IpAddr::from([127, 0, 0, 1])))
                .collect(),
            lookups: AtomicUsize::new(0),
        })
    }

    #[tokio::test]
    async fn a_wildcard_name_resolving_to_loopback_is_denied_before_any_byte_is_sent() {
        let (port, hits) = receiver(None).await;
        let dns = loopback_dns(&["api.vendor.test"]);
        let e = egress(&[format!("http://*.vendor.test:{port}")], dns.clone());
        match e
            .send(get(format!("http://api.vendor.test:{port}/")), None)
            .await
        {
            Err(Error::Denied(why)) => assert!(
                why.contains("127.0.0.1") && why.contains("not a public address"),
                "{why}"
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(hits.load(Ordering::SeqCst), 0, "the receiver was reached");
        // One look-up, made by the connection itself: there is no earlier check to rebind after.
        assert_eq!(dns.lookups.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_exact_entry_connects_through_the_checked_resolver() {
        // `api.vendor.test` exists only in the test's DNS: reaching the receiver
        // shows the connection used the addresses the resolver checked.
        let (port, hits) = receiver(None).await;
        let dns = loopback_dns(&["api.vendor.test"]);
        let e = egress(&[format!("http://api.vendor.test:{port}")], dns.clone());
        let resp = e
            .send(get(format!("http://api.vendor.test:{port}/")), None)
            .await
            .unwrap();
        assert_eq!((resp.status, resp.body), (200, b"ok".to_vec()));
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        assert_eq!(dns.lookups.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_redirect_to_a_wildcard_name_on_loopback_is_denied() {
        let (target_port, target_hits) = receiver(None).await;
        let (port, _) = receiver(Some(format!("http://evil.vendor.test:{target_port}/"))).await;
        let dns = loopback_dns(&["start.test", "evil.vendor.test"]);
        let e = egress(
            &[
                format!("http://start.test:{port}"),
                format!("http://*.vendor.test:{target_port}"),
            ],
            dns,
        );
        match e
            .send(get(format!("http://start.test:{port}/hop")), None)
            .await
        {
            Err(Error::Denied(why)) => assert!(why.contains("evil.vendor.test"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(target_hits.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_host_named_exactly_for_another_port_is_only_public_under_a_wildcard() {
        // The entry names metrics.corp.test for its port A only; on port B it is
        // the wildcard's match, and its private address is refused.
        let (port_b, hits) = receiver(None).await;
        let dns = loopback_dns(&["metrics.corp.test"]);
        let e = egress(
            &[
                "http://metrics.corp.test:9".to_string(),
                format!("http://*.corp.test:{port_b}"),
            ],
            dns,
        );
        match e
            .send(get(format!("http://metrics.corp.test:{port_b}/")), None)
            .await
        {
            Err(Error::Denied(why)) => assert!(why.contains("not a public address"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            hits.load(Ordering::SeqCst),
            0,
            "the private address was reached"
        );
    }

    #[tokio::test]
    async fn a_guest_cannot_choose_the_host_header_or_the_framing() {
        let (port, hits) = receiver(None).await;
        let dns = loopback_dns(&["api.vendor.test"]);
        let e = egress(&[format!("http://api.vendor.test:{port}")], dns);
        let with = |name: &str, value: &str| {
            let mut req = get(format!("http://api.vendor.test:{port}/"));
            req.method = "POST".into();
            req.body = b"{}".to_vec();
            req.headers = vec![(name.to_string(), value.to_string())];
            req
        };
        for (name, value) in [
            ("Host", "attacker.example"),
            ("host", "api.vendor.test"),
            ("Transfer-Encoding", "chunked"),
            ("Content-Length", "0"),
            ("Connection", "close"),
            ("Keep-Alive", "timeout=5"),
            ("Upgrade", "websocket"),
            ("TE", "trailers"),
        ] {
            match e.send(with(name, value), None).await {
                Err(Error::Denied(why)) => {
                    assert!(why.contains(&name.to_ascii_lowercase()), "{name}: {why}")
                }
                other => panic!("{name}: {value}: {other:?}"),
            }
        }
        assert_eq!(hits.load(Ordering::SeqCst), 0);
        // What the client would write anyway is taken (and written by the client).
        for (name, value) in [
            ("Host", format!("api.vendor.test:{port}")),
            ("Content-Length", "2".to_string()),
        ] {
            let resp = e.send(with(name, &value), None).await.unwrap();
            assert_eq!(resp.status, 200, "{name}");
        }
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_unknown_name_is_a_connection_error_to_retry() {
        let e = egress(&["https://*.vendor.test".into()], loopback_dns(&[]));
        match e.send(get("https://nx.vendor.test/".into()), None).await {
            Err(Error::Connection(why)) => assert!(why.contains("cannot resolve"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}
