//! Who sent a request: the client's address for `context.ip`, and the scheme
//! and host it used (for the settings document).
//!
//! `X-Forwarded-For` and `X-Forwarded-Proto` are believed only when the peer is
//! one of `[server] trusted_proxies`: then the client is the right-most address
//! of the chain that is not itself a trusted proxy.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// Whether `ip` is one of the trusted proxies (an IPv4 peer of a `[::]`
/// listener arrives as `::ffff:a.b.c.d`, and is compared as IPv4).
fn trusted(ip: IpAddr, proxies: &[IpNet]) -> bool {
    let ip = ip.to_canonical();
    proxies.iter().any(|net| net.contains(&ip))
}

/// The client's address: the peer's, or, behind trusted proxies, the one they forwarded.
pub fn client_ip(
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    proxies: &[IpNet],
) -> Option<IpAddr> {
    let peer = peer?.ip().to_canonical();
    if !trusted(peer, proxies) {
        return Some(peer);
    }
    let chain: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    Some(
        chain
            .iter()
            .rev()
            .find(|ip| !trusted(**ip, proxies))
            .or(chain.first())
            .copied()
            .unwrap_or(peer),
    )
}

/// `https` when a trusted proxy says the client used it, else `http`.
pub fn scheme(peer: Option<SocketAddr>, headers: &HeaderMap, proxies: &[IpNet]) -> &'static str {
    let forwarded_https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    match peer {
        Some(p) if forwarded_https && trusted(p.ip(), proxies) => "https",
        _ => "http",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", xff.parse().unwrap());
        h
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let proxy: SocketAddr = "10.0.0.5:1234".parse().unwrap();
        let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let h = headers("203.0.113.7, 10.0.0.9");
        assert_eq!(
            client_ip(Some(proxy), &h, &proxies),
            Some("203.0.113.7".parse().unwrap())
        );
        assert_eq!(
            client_ip(Some(proxy), &h, &[]),
            Some(proxy.ip()),
            "not trusted"
        );
        let stranger: SocketAddr = "198.51.100.1:80".parse().unwrap();
        assert_eq!(client_ip(Some(stranger), &h, &proxies), Some(stranger.ip()));
        // A client that forges its own header is still found: the right-most untrusted hop.
        let h = headers("1.1.1.1, 203.0.113.7");
        assert_eq!(
            client_ip(Some(proxy), &h, &proxies),
            Some("203.0.113.7".parse().unwrap())
        );
    }
}
