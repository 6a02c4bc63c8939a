//! The name resolver of a destination's outbound HTTP: resolve once, check every
//! address, and hand the connection only checked ones.
//!
//! Where it sits: each destination's HTTP client ([`super::http::client_for`])
//! resolves through a [`CheckedResolver`] holding that destination's
//! [`Allowlist`]. The addresses a connection is made to are exactly the ones
//! checked here, so a name that answers a public address to a check and a
//! private one to the connection (DNS rebinding) cannot get through: there is
//! no second look-up.
//!
//! The rule (the book, `concepts/guarantees.md`): a name that an
//! entry names exactly may resolve to any address (an internal vendor, a test
//! receiver on loopback); any other name (reached through a `*.` entry) must
//! resolve only to public addresses ([`is_public`]), or the request is denied.
//! The look-up itself is a [`Lookup`], the system's by default, so tests can
//! answer names as an attacker's DNS server would.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use crate::allowlist::{is_public, Allowlist};

/// A look-up of a host name's addresses.
pub trait Lookup: Send + Sync + 'static {
    /// The addresses of `host`.
    fn lookup(
        &self,
        host: String,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>>;
}

/// The system's resolver (`getaddrinfo`, through tokio).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(
        &self,
        host: String,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>> {
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    }
}

/// Why a name was not resolved for a connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The name resolves to an address that only an exact entry may reach.
    #[error(
        "{host} resolves to {ip}, which is not a public address, and no entry names {host} exactly"
    )]
    NotPublic {
        /// The name.
        host: String,
        /// The first address that is not public.
        ip: IpAddr,
    },
    /// The look-up failed or found nothing.
    #[error("cannot resolve {host}: {reason}")]
    Failed {
        /// The name.
        host: String,
        /// Why.
        reason: String,
    },
}

/// A destination's resolver: its allowlist and the look-up it checks.
#[derive(Clone)]
pub struct CheckedResolver {
    /// Which names may resolve to addresses that are not public.
    allowlist: Arc<Allowlist>,
    /// Where the addresses come from.
    lookup: Arc<dyn Lookup>,
}

impl CheckedResolver {
    /// A resolver for the destination with this allowlist.
    pub fn new(allowlist: Arc<Allowlist>, lookup: Arc<dyn Lookup>) -> CheckedResolver {
        CheckedResolver { allowlist, lookup }
    }

    /// The checked addresses of `host`: all of them, or an error naming the
    /// first one this destination may not reach.
    pub async fn resolve_checked(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError> {
        let failed = |reason: String| ResolveError::Failed {
            host: host.to_string(),
            reason,
        };
        let addrs = self
            .lookup
            .lookup(host.to_string())
            .await
            .map_err(|e| failed(e.to_string()))?;
        if addrs.is_empty() {
            return Err(failed("no address".into()));
        }
        if !self.allowlist.names_exactly(host) {
            if let Some(ip) = addrs.iter().copied().find(|ip| !is_public(*ip)) {
                return Err(ResolveError::NotPublic {
                    host: host.to_string(),
                    ip,
                });
            }
        }
        Ok(addrs)
    }
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let this = self.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = this.resolve_checked(&host).await?;
            // Port 0: reqwest puts in the URL's port.
            let addrs: reqwest::dns::Addrs =
                Box::new(addrs.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// The resolver's refusal somewhere in an error's chain of sources.
pub fn refusal_in<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a ResolveError> {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(r) = err.downcast_ref::<ResolveError>() {
            return Some(r);
        }
        next = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Answers from a script: the n-th look-up gets `answers[min(n, last)]`.
    struct Scripted {
        answers: Vec<Vec<IpAddr>>,
        calls: AtomicUsize,
    }

    impl Lookup for Scripted {
        fn lookup(
            &self,
            _host: String,
        ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            let answer = self.answers[n.min(self.answers.len() - 1)].clone();
            Box::pin(async move { Ok(answer) })
        }
    }

    fn resolver(entries: &[&str], answers: &[&[&str]]) -> CheckedResolver {
        let entries: Vec<String> = entries.iter().map(|e| e.to_string()).collect();
        let answers = answers
            .iter()
            .map(|a| a.iter().map(|ip| ip.parse().unwrap()).collect())
            .collect();
        CheckedResolver::new(
            Arc::new(Allowlist::parse(&entries).unwrap()),
            Arc::new(Scripted {
                answers,
                calls: AtomicUsize::new(0),
            }),
        )
    }

    #[tokio::test]
    async fn a_wildcard_name_must_resolve_only_to_public_addresses() {
        let r = resolver(&["https://*.vendor.example"], &[&["93.184.216.34"]]);
        assert!(r.resolve_checked("api.vendor.example").await.is_ok());
        for private in ["127.0.0.1", "10.1.2.3", "169.254.169.254", "::1", "fd00::1"] {
            let r = resolver(
                &["https://*.vendor.example"],
                &[&["93.184.216.34", private]],
            );
            match r.resolve_checked("api.vendor.example").await {
                Err(ResolveError::NotPublic { ip, .. }) => assert_eq!(ip.to_string(), private),
                other => panic!("{private}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn an_exact_name_may_resolve_anywhere() {
        let r = resolver(&["http://receiver.internal:8080"], &[&["127.0.0.1"]]);
        assert_eq!(
            r.resolve_checked("RECEIVER.internal").await.unwrap(),
            vec!["127.0.0.1".parse::<IpAddr>().unwrap()]
        );
    }

    #[tokio::test]
    async fn a_rebinding_answer_is_checked_on_every_look_up() {
        // Public first, loopback after: every answer a connection could use is checked.
        let r = resolver(
            &["https://*.rebind.example"],
            &[&["93.184.216.34"], &["127.0.0.1"]],
        );
        assert!(r.resolve_checked("a.rebind.example").await.is_ok());
        assert!(matches!(
            r.resolve_checked("a.rebind.example").await,
            Err(ResolveError::NotPublic { .. })
        ));
    }

    #[tokio::test]
    async fn a_failed_or_empty_look_up_is_an_error() {
        let r = resolver(&["https://*.vendor.example"], &[&[]]);
        assert!(matches!(
            r.resolve_checked("x.vendor.example").await,
            Err(ResolveError::Failed { .. })
        ));
    }
}
