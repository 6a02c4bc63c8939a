//! What stands in front of the admin API, the status page and `/metrics`,
//! before any handler runs.
//!
//! Where it sits: layers on those routes (`admin::app`, `probes::metrics_app`).
//! - [`check_host`]: the `Host` a request names must be an IP address,
//!   `localhost`, or one of `[server] admin_hosts`. A web page the operator
//!   opens can point its own name at 127.0.0.1 (DNS rebinding) and then call
//!   these routes as same-origin; its requests still carry its own name, and
//!   are refused here.
//! - [`bounded_body`]: a request body is read whole within `request_timeout`
//!   and up to [`SMALL_BODY_BYTES`] (a plugin upload: [`super::MAX_UPLOAD_BYTES`]; a
//!   regulation: [`MAX_REGULATION_BYTES`]),
//!   so slow or endless bodies cannot hold connections.
//! - [`Logins`]: failed status-page logins per client address are limited.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AdminError;

/// Largest body of an admin or status-page request other than a plugin upload.
pub const SMALL_BODY_BYTES: usize = 64 * 1024;

/// Largest body of `POST /admin/regulations`: its most subjects, each of the
/// longest id with every byte escaped as JSON allows (`\u00XX`: 6 bytes),
/// quoted, with room for the rest.
pub const MAX_REGULATION_BYTES: usize = crate::privacy::regulation::MAX_SUBJECTS
    * (6 * crate::privacy::regulation::MAX_ID_BYTES + 4)
    + 4096;

/// Longest a plugin upload's body may take to arrive (it may be 64 MiB).
const UPLOAD_BODY_TIMEOUT: Duration = Duration::from_secs(300);

/// Failed logins one client address may make per [`LOGIN_WINDOW_MS`].
pub const MAX_FAILED_LOGINS: u32 = 5;

/// The window of [`MAX_FAILED_LOGINS`].
pub const LOGIN_WINDOW_MS: i64 = 60_000;

/// Addresses whose failed logins are remembered at once; past it, the oldest
/// windows are forgotten first.
const MAX_LOGIN_ADDRESSES: usize = 4_096;

/// The checks' settings, from `[server]`.
#[derive(Debug, Default)]
pub struct Guard {
    /// Host names besides IP addresses and `localhost` (`[server] admin_hosts`).
    pub hosts: Vec<String>,
    /// Proxies whose `X-Forwarded-*` headers are believed (`[server] trusted_proxies`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// How long a body may take to arrive (`[server] request_timeout`).
    pub body_timeout: Duration,
    /// Failed logins per client address.
    pub logins: Logins,
}

impl Guard {
    /// The checks of a host with these settings.
    pub fn new(
        hosts: Vec<String>,
        trusted_proxies: Vec<ipnet::IpNet>,
        body_timeout: Duration,
    ) -> Guard {
        Guard {
            hosts,
            trusted_proxies,
            body_timeout,
            logins: Logins::default(),
        }
    }

    /// Whether a request naming `host` (the `Host` header) may be served.
    pub fn host_allowed(&self, host: Option<&str>) -> bool {
        // Not a browser's request (every browser sends one).
        let Some(host) = host else { return true };
        let name = match host.strip_prefix('[') {
            // An IPv6 literal.
            Some(rest) => return rest.split_once(']').is_some(),
            None => match host.rsplit_once(':') {
                Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
                _ => host,
            },
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        name.parse::<IpAddr>().is_ok()
            || name == "localhost"
            || name.ends_with(".localhost")
            || self.hosts.contains(&name)
    }
}

/// Refuse a request whose `Host` is not one the admin routes answer under.
pub async fn check_host(
    State(guard): State<std::sync::Arc<Guard>>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .map(|v| v.to_str().unwrap_or("\u{fffd}"));
    if guard.host_allowed(host) {
        return next.run(request).await;
    }
    AdminError::WrongHost(format!(
        "`Host: {}` is not an address of this host, `localhost` or one of [server] admin_hosts",
        host.unwrap_or_default().escape_debug()
    ))
    .into_response()
}

/// Read the body whole, within the guard's time and size, before the handler.
pub async fn bounded_body(
    State(guard): State<std::sync::Arc<Guard>>,
    request: Request,
    next: Next,
) -> Response {
    let upload =
        request.method() == Method::PUT && request.uri().path().starts_with("/admin/plugins/");
    let regulation =
        request.method() == Method::POST && request.uri().path() == "/admin/regulations";
    let (limit, timeout) = if regulation {
        (MAX_REGULATION_BYTES, guard.body_timeout)
    } else if upload {
        (
            super::MAX_UPLOAD_BYTES,
            guard.body_timeout.max(UPLOAD_BODY_TIMEOUT),
        )
    } else {
        (SMALL_BODY_BYTES, guard.body_timeout)
    };
    let (parts, body) = request.into_parts();
    let read = tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await;
    let bytes = match read {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => {
            return AdminError::TooLarge(format!("the body is larger than {limit} bytes"))
                .into_response()
        }
        Err(_) => {
            return AdminError::TooSlow(format!(
                "the body did not arrive within {}",
                humantime::format_duration(timeout)
            ))
            .into_response()
        }
    };
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

/// Failed logins per client address, in fixed windows.
#[derive(Debug, Default)]
pub struct Logins {
    /// Address → (start of its window, failures in it).
    failures: Mutex<HashMap<IpAddr, (i64, u32)>>,
}

/// Whose failures `ip`'s count: the address itself, or for IPv6 its /64 (one
/// client's network, whose addresses it may rotate through).
fn counted_as(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::from(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

impl Logins {
    /// Whether `ip` may try to log in at `now_ms`; `Err` holds the seconds until it may.
    pub fn may_try(&self, ip: IpAddr, now_ms: i64) -> Result<(), u64> {
        let ip = counted_as(ip);
        let failures = self.failures.lock().expect("logins lock");
        match failures.get(&ip) {
            Some(&(start, n)) if n >= MAX_FAILED_LOGINS && now_ms - start < LOGIN_WINDOW_MS => {
                Err(((LOGIN_WINDOW_MS - (now_ms - start)) / 1000 + 1) as u64)
            }
            _ => Ok(()),
        }
    }

    /// Count a failed login of `ip`.
    pub fn failed(&self, ip: IpAddr, now_ms: i64) {
        let ip = counted_as(ip);
        let mut failures = self.failures.lock().expect("logins lock");
        if failures.len() >= MAX_LOGIN_ADDRESSES {
            failures.retain(|_, (start, _)| now_ms - *start < LOGIN_WINDOW_MS);
            if failures.len() >= MAX_LOGIN_ADDRESSES {
                if let Some(oldest) = failures
                    .iter()
                    .min_by_key(|(_, (s, _))| *s)
                    .map(|(k, _)| *k)
                {
                    failures.remove(&oldest);
                }
            }
        }
        let entry = failures.entry(ip).or_insert((now_ms, 0));
        if now_ms - entry.0 >= LOGIN_WINDOW_MS {
            *entry = (now_ms, 0);
        }
        entry.1 += 1;
    }
}

/// The client's address of a request (behind trusted proxies, the one they forwarded).
pub fn client_ip(
    peer: Option<&ConnectInfo<SocketAddr>>,
    headers: &axum::http::HeaderMap,
    guard: &Guard,
) -> Option<IpAddr> {
    crate::ingest::client::client_ip(peer.map(|c| c.0), headers, &guard.trusted_proxies)
}

/// Whether the browser reached us over HTTPS, as a trusted proxy says.
pub fn over_https(
    peer: Option<&ConnectInfo<SocketAddr>>,
    headers: &axum::http::HeaderMap,
    guard: &Guard,
) -> bool {
    crate::ingest::client::scheme(peer.map(|c| c.0), headers, &guard.trusted_proxies) == "https"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_that_a_rebinding_page_cannot_name_are_allowed() {
        let g = Guard::new(
            vec!["switchyard.corp.example".into()],
            vec![],
            Duration::from_secs(1),
        );
        for ok in [
            None,
            Some("127.0.0.1:8088"),
            Some("127.0.0.1"),
            Some("[::1]:8088"),
            Some("10.1.2.3:80"),
            Some("localhost:8088"),
            Some("LOCALHOST"),
            Some("app.localhost:3000"),
            Some("switchyard.corp.example"),
            Some("Switchyard.Corp.Example.:443"),
        ] {
            assert!(g.host_allowed(ok), "{ok:?}");
        }
        for refused in [
            Some("attacker.example"),
            Some("attacker.example:8088"),
            Some("127.0.0.1.attacker.example"),
            Some("switchyard.corp.example.attacker.example"),
            Some("localhost.attacker.example"),
            Some(""),
        ] {
            assert!(!g.host_allowed(refused), "{refused:?}");
        }
    }

    #[test]
    fn failed_logins_are_limited_per_address_and_window() {
        let l = Logins::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..MAX_FAILED_LOGINS {
            assert!(l.may_try(a, 1_000).is_ok());
            l.failed(a, 1_000);
        }
        let wait = l.may_try(a, 2_000).unwrap_err();
        assert!((59..=60).contains(&wait), "{wait}");
        assert!(l.may_try(b, 2_000).is_ok(), "another address is not held");
        assert!(
            l.may_try(a, 1_000 + LOGIN_WINDOW_MS).is_ok(),
            "the window ends"
        );
        // An IPv6 client cannot rotate through its /64.
        for i in 0..MAX_FAILED_LOGINS {
            l.failed(format!("2001:db8::{i}").parse().unwrap(), 1_000);
        }
        assert!(l.may_try("2001:db8::ffff".parse().unwrap(), 2_000).is_err());
    }
}
