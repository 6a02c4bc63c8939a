//! The outbound-HTTP allowlist of a destination: its entries, their parsing, and
//! the match of a URL against them.
//!
//! Where it sits: a leaf. [`config`](crate::config) parses each destination's
//! `allowed_hosts` into an [`Allowlist`] (so a bad entry is refused with its
//! path before anything starts), and the `http` import
//! ([`imports::http`](crate::imports::http)) checks every request and every
//! redirect hop against it. Deny by default: an empty list allows nothing.
//!
//! An entry is `scheme://host[:port]`; the port defaults to the scheme's, and a
//! host `*.example.com` matches the subdomains of `example.com` (not the apex).
//! Addresses that are not public (see [`is_public`]) are reached only through an
//! entry that names the host exactly: an IP literal matched only by a wildcard
//! is refused here, and a name matched only by a wildcard must resolve to public
//! addresses (the egress resolver, `imports/resolve.rs`, checks every address
//! it hands to a connection).

use std::net::IpAddr;

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
    /// The host as an address, when it is one (so `[::ffff:127.0.0.1]` matches the
    /// URL form `[::ffff:7f00:1]`).
    ip: Option<IpAddr>,
}

/// The hosts a destination may call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    rules: Vec<AllowRule>,
}

/// How a URL passed the allowlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matched {
    /// An entry names this exact host: any address is fine.
    Exact,
    /// Only a `*.` entry matched: the host must resolve to public addresses.
    Wildcard,
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

    /// Whether an entry names `host` exactly, so that it may resolve to
    /// addresses that are not public. The egress resolver
    /// ([`imports::resolve`](crate::imports::resolve)) asks this of every name;
    /// it knows no scheme or port, so a URL that only a `*.` entry matched goes
    /// through a pool whose resolver has no exact entries (`imports/http.rs`).
    pub fn names_exactly(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.rules
            .iter()
            .any(|r| !r.wildcard && r.host.eq_ignore_ascii_case(host))
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
        let host_ip = host.parse::<IpAddr>().ok();
        let exact = |r: &&AllowRule| {
            r.scheme == scheme
                && r.port == port
                && !r.wildcard
                && (r.host == host || (r.ip.is_some() && r.ip == host_ip))
        };
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
            "{scheme}://{host}:{port} is not in its allowed_hosts"
        ))
    }
}

/// Whether an address is on the public internet (not loopback, private,
/// link-local, CGNAT, unspecified, broadcast, documentation, benchmarking,
/// reserved or multicast; for IPv6 also not site-local, 6to4 or NAT64, which can
/// reach IPv4 addresses).
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
                || o[0] >= 240 // reserved (240.0.0.0/4)
                || (o[0] == 198 && (18..20).contains(&o[1])) // benchmarking (198.18.0.0/15)
                || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments (192.0.0.0/24)
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
                || (seg[0] & 0xffc0) == 0xfe80
                || (seg[0] & 0xffc0) == 0xfec0 // site-local (fec0::/10)
                || seg[0] == 0x2002 // 6to4 (2002::/16): can embed any IPv4 address
                || (seg[0] == 0x2001 && seg[1] == 0) // Teredo (2001::/32): embeds an IPv4 address
                || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation (2001:db8::/32)
                || seg[0..6] == [0; 6] // IPv4-compatible (::/96, deprecated): embeds an IPv4 address
                || (seg[0] == 0x64 && seg[1] == 0xff9b && seg[2] == 1) // local NAT64 (64:ff9b:1::/48)
                || (seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0; 4])) // NAT64 (64:ff9b::/96)
        }
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
        ip: host.parse().ok(),
        host,
        wildcard,
        port,
    })
}

/// The URLs in a destination's settings that `allowlist` does not cover, as
/// `(path in the settings, URL)`: every string value that starts with
/// `http://` or `https://`, at any depth (`endpoint`, `urls[1]`, `auth.token_url`).
/// `switchyard check` and `switchyard try --config` warn about them, because
/// each would be denied on the destination's first real delivery.
pub fn uncovered_urls(
    settings: &serde_json::Value,
    allowlist: &Allowlist,
) -> Vec<(String, String)> {
    fn walk(
        value: &serde_json::Value,
        path: String,
        allowlist: &Allowlist,
        out: &mut Vec<(String, String)>,
    ) {
        match value {
            serde_json::Value::String(text) => {
                let lower = text.trim().to_ascii_lowercase();
                if !(lower.starts_with("http://") || lower.starts_with("https://")) {
                    return;
                }
                let covered =
                    reqwest::Url::parse(text.trim()).is_ok_and(|url| allowlist.check(&url).is_ok());
                if !covered {
                    out.push((path, text.clone()));
                }
            }
            serde_json::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, format!("{path}[{i}]"), allowlist, out);
                }
            }
            serde_json::Value::Object(map) => {
                for (key, item) in map {
                    let path = match path.is_empty() {
                        true => key.clone(),
                        false => format!("{path}.{key}"),
                    };
                    walk(item, path, allowlist, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(settings, String::new(), allowlist, &mut out);
    out
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
    fn an_ipv6_mapped_entry_matches_its_own_url() {
        let l = list(&["http://[::ffff:127.0.0.1]:9999"]);
        assert!(l.check(&url("http://[::ffff:127.0.0.1]:9999/hook")).is_ok());
        assert!(l
            .check(&url("http://[::ffff:127.0.0.2]:9999/hook"))
            .is_err());
    }

    #[test]
    fn ranges_that_reach_private_or_reserved_space_are_not_public() {
        for ip in [
            "198.18.0.1",
            "198.19.255.255",
            "240.0.0.1",
            "255.255.255.255",
            "64:ff9b::7f00:1",
            "2002:7f00:1::1",
            "fec0::1",
            "::ffff:10.0.0.1",
            "192.0.0.8",
            "::10.0.0.1",
            "::7f00:1",
            "64:ff9b:1::a00:1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:db8::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["198.20.0.1", "93.184.216.34", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
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
    fn an_exact_entry_of_another_scheme_or_port_is_only_a_wildcard_match() {
        // The entry names the host for http on 9100 only: https on 443 is the
        // wildcard's, and must resolve to public addresses (imports/http.rs).
        let l = list(&["http://metrics.corp.example:9100", "https://*.corp.example"]);
        assert_eq!(
            l.check(&url("http://metrics.corp.example:9100/")),
            Ok(Matched::Exact)
        );
        assert_eq!(
            l.check(&url("https://metrics.corp.example/")),
            Ok(Matched::Wildcard)
        );
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

    #[test]
    fn urls_in_settings_outside_the_allowlist_are_found() {
        let list = Allowlist::parse(&["https://api.example.com".to_string()]).unwrap();
        let settings = serde_json::json!({
            "url": "https://api.example.com/v1/events",
            "backup": "https://eu.example.com/v1",
            "nested": {"hooks": ["HTTPS://api.example.com/x", "http://api.example.com/y"]},
            "token": "https-is-not-a-url",
            "port": 443
        });
        assert_eq!(
            uncovered_urls(&settings, &list),
            [
                (
                    "backup".to_string(),
                    "https://eu.example.com/v1".to_string()
                ),
                (
                    "nested.hooks[1]".to_string(),
                    "http://api.example.com/y".to_string()
                ),
            ]
        );
        assert!(
            uncovered_urls(
                &serde_json::json!({"u": "https://x"}),
                &Allowlist::default()
            )
            .len()
                == 1
        );
    }
}
