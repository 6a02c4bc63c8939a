//! The HTTP listener: accepts connections for the app (ingest, admin, health)
//! with the limits a public endpoint needs (the book, `operating/configuration.md`, `[server]`).
//!
//! Where it sits: under everything HTTP. `axum::serve` has no timeouts, so a
//! client that opens a connection and never finishes its headers (or never
//! sends another request on a kept-alive one) would hold a socket for ever, and
//! a few hundred of them exhaust the process's file descriptors. Here:
//! - `header_timeout`: a request's headers must arrive within it, the first
//!   request's and every later one's on a kept-alive connection (so it is also
//!   the idle timeout);
//! - `max_connections`: connections beyond it are closed as soon as accepted;
//! - `max_connections_per_ip`: so are one client's beyond this (a trusted proxy
//!   carries many clients and is not limited), so that one address cannot
//!   hold every slot.
//!
//! (`request_timeout`, a whole ingest request read and answered, is a layer on
//! the ingest routes, and bounds reading the body of every other route: `lib.rs`,
//! `admin`. Plugin uploads may take longer to compile.)
//!
//! At shutdown the listener stops accepting, every connection finishes the
//! request it is serving, and [`serve`] returns once they all have.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt as _;

/// The listener's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLimits {
    /// Longest wait for a request's headers (and between requests on one connection).
    pub header_timeout: Duration,
    /// Longest time to read and answer one ingest request.
    pub request_timeout: Duration,
    /// Most open connections.
    pub max_connections: usize,
    /// Most open connections from one client address.
    pub max_connections_per_ip: usize,
    /// Peers not held to `max_connections_per_ip` (the trusted proxies).
    pub unlimited_peers: Vec<ipnet::IpNet>,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 1_024,
            max_connections_per_ip: 256,
            unlimited_peers: Vec::new(),
        }
    }
}

/// Open connections per client address.
#[derive(Debug, Default)]
struct PerIp(std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>);

/// One connection of an address, given back when dropped.
struct IpSlot {
    /// The count it is part of.
    counts: Arc<PerIp>,
    /// Its address.
    ip: std::net::IpAddr,
}

impl PerIp {
    /// A slot for `ip`, unless it holds `max` already.
    fn take(self: &Arc<Self>, ip: std::net::IpAddr, max: usize) -> Option<IpSlot> {
        let mut counts = self.0.lock().expect("per-ip lock");
        let n = counts.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            counts: self.clone(),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().expect("per-ip lock");
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Serve `app` on `listener` until `shutdown` turns true; connections in
/// progress then finish their current request.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: ServerLimits,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut connections = tokio::task::JoinSet::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_ip = Arc::new(PerIp::default());
    let mut watch_stop = shutdown.clone();
    let stopping = async move {
        let _ = watch_stop.wait_for(|stop| *stop).await.map(|_| ());
    };
    tokio::pin!(stopping);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, say: wait a little rather than spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stopping => {
                while connections.join_next().await.is_some() {}
                return Ok(());
            }
        };
        // Answers go out at once, not when Nagle's algorithm decides (as axum::serve does).
        let _ = stream.set_nodelay(true);
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max = limits.max_connections, "connection refused: too many open");
            drop(stream);
            continue;
        };
        let ip = peer.ip().to_canonical();
        let ip_slot = if limits.unlimited_peers.iter().any(|n| n.contains(&ip)) {
            None
        } else {
            match per_ip.take(ip, limits.max_connections_per_ip) {
                Some(s) => Some(s),
                None => {
                    tracing::warn!(
                        %peer,
                        max = limits.max_connections_per_ip,
                        "connection refused: too many open from this address"
                    );
                    drop(stream);
                    continue;
                }
            }
        };
        let service =
            app.clone()
                .map_request(move |request: hyper::Request<hyper::body::Incoming>| {
                    let mut request = request.map(axum::body::Body::new);
                    request.extensions_mut().insert(ConnectInfo(peer));
                    request
                });
        let mut stop = shutdown.clone();
        let conn_stopping = async move {
            let _ = stop.wait_for(|stop| *stop).await.map(|_| ());
        };
        while connections.try_join_next().is_some() {}
        connections.spawn(async move {
            let _slot = (slot, ip_slot);
            let service = hyper_util::service::TowerToHyperService::new(service);
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .keep_alive(true);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, "connection ended: {e}");
                    }
                }
                _ = conn_stopping => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
}
