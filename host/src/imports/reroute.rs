//! `vendor_origins`: a destination's vendor origins pointed at a receiver on
//! loopback, for tests and dry runs of destinations whose code names its
//! vendor's host (Segment's catalog entries all do).
//!
//! Where it sits: inside `imports::http`'s live egress, after the allowlist.
//! The request is checked as the destination wrote it (the vendor's URL, so
//! the config under test is the production config), then sent to the loopback
//! origin with the same path and query. Never on by default; only loopback
//! targets are accepted, and the host logs a warning line for each
//! destination that has it when it starts.

use std::collections::BTreeMap;

use reqwest::Url;

/// The origins of one destination that go to loopback instead.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reroute {
    /// `scheme://host:port` of a vendor → the loopback origin that stands in for it.
    exact: Vec<(String, Url)>,
    /// The loopback origin for every other origin (`"*"`), if given.
    any: Option<Url>,
}

impl Reroute {
    /// From the config table `vendor_origins`: keys are vendor origins
    /// (`https://api.example.com`, a port when not the scheme's default) or `*`;
    /// values are `http://127.0.0.1:PORT`, `http://[::1]:PORT` or
    /// `http://localhost:PORT`. The error names the key and what is wrong.
    pub fn parse(table: &BTreeMap<String, String>) -> Result<Reroute, (String, String)> {
        let mut reroute = Reroute::default();
        for (from, to) in table {
            let target = loopback_origin(to).map_err(|why| (from.clone(), why))?;
            if from == "*" {
                reroute.any = Some(target);
                continue;
            }
            let origin = Url::parse(from)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
                .filter(|u| u.path() == "/" && u.query().is_none())
                .ok_or_else(|| {
                    (
                        from.clone(),
                        "keys are vendor origins (`https://api.example.com`) or `*`".to_string(),
                    )
                })?;
            reroute.exact.push((origin_of(&origin), target));
        }
        Ok(reroute)
    }

    /// Whether nothing is rerouted (the default).
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.any.is_none()
    }

    /// Where `url` really goes: the same path and query at the loopback
    /// origin that stands in for its origin, or `None` to send it as it is.
    pub fn apply(&self, url: &Url) -> Option<Url> {
        let origin = origin_of(url);
        let target = self
            .exact
            .iter()
            .find(|(o, _)| *o == origin)
            .map(|(_, t)| t)
            .or(self.any.as_ref())?;
        let mut out = target.clone();
        out.set_path(url.path());
        out.set_query(url.query());
        Some(out)
    }

    /// The vendor origins rerouted, for the warning line.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .exact
            .iter()
            .map(|(o, t)| format!("{o} -> {}", t.as_str().trim_end_matches('/')))
            .collect();
        if let Some(t) = &self.any {
            parts.push(format!("* -> {}", t.as_str().trim_end_matches('/')));
        }
        parts.join(", ")
    }
}

/// `scheme://host:port`, the port always written.
fn origin_of(url: &Url) -> String {
    format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or_default()
    )
}

/// A target origin, refused unless it is on loopback.
fn loopback_origin(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    let host = url.host_str().unwrap_or_default();
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback || !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "`{text}`: vendor origins can only be pointed at loopback (http://127.0.0.1:PORT, \
             http://[::1]:PORT or http://localhost:PORT)"
        ));
    }
    if url.path() != "/" || url.query().is_some() {
        return Err(format!("`{text}`: give an origin only, without a path"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn an_origin_goes_to_its_stand_in_with_path_and_query_and_others_to_the_wildcard() {
        let r = Reroute::parse(&table(&[
            ("https://rest.iad-01.braze.com", "http://127.0.0.1:9001"),
            ("*", "http://localhost:9002"),
        ]))
        .unwrap();
        let go = |u: &str| r.apply(&Url::parse(u).unwrap()).map(|u| u.to_string());
        assert_eq!(
            go("https://rest.iad-01.braze.com/users/track?x=1").as_deref(),
            Some("http://127.0.0.1:9001/users/track?x=1")
        );
        assert_eq!(
            go("https://rest.iad-01.braze.com:443/a").as_deref(),
            Some("http://127.0.0.1:9001/a")
        );
        assert_eq!(
            go("https://a.klaviyo.com/api").as_deref(),
            Some("http://localhost:9002/api")
        );
        let none = Reroute::parse(&table(&[("https://a.example", "http://127.0.0.1:1")])).unwrap();
        assert_eq!(none.apply(&Url::parse("https://b.example/").unwrap()), None);
    }

    #[test]
    fn only_loopback_targets_and_origin_keys_are_accepted() {
        for (from, to, says) in [
            ("*", "http://10.0.0.1:80", "loopback"),
            ("*", "http://example.com", "loopback"),
            ("*", "http://127.0.0.1:9/path", "without a path"),
            ("api.example.com", "http://127.0.0.1:9", "vendor origins"),
            (
                "https://api.example.com/v1",
                "http://127.0.0.1:9",
                "vendor origins",
            ),
        ] {
            let (key, why) = Reroute::parse(&table(&[(from, to)])).unwrap_err();
            assert_eq!(key, from);
            assert!(why.contains(says), "{from} -> {to}: {why}");
        }
    }
}
