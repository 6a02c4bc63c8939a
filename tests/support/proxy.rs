//! A TCP proxy on loopback that a test can cut: every connection through it is
//! dropped, and new ones are refused, until it is mended (a host cut off from
//! its NATS server, without stopping the server).

use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A running proxy to `127.0.0.1:upstream`.
pub struct Proxy {
    /// Where clients connect.
    pub port: u16,
    /// `true` while cut.
    cut: Arc<watch::Sender<bool>>,
}

impl Proxy {
    /// Start one in the background, forwarding to `upstream`.
    pub async fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, _) = watch::channel(false);
        let cut = Arc::new(cut);
        let state = cut.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                if *state.borrow() {
                    drop(client);
                    continue;
                }
                let mut cut_now = state.subscribe();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    let (mut client, mut server) = (client, server);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut_now.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Proxy { port, cut }
    }

    /// `nats://127.0.0.1:PORT` of the proxy.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Drop every connection and refuse new ones.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Let connections through again.
    pub fn mend(&self) {
        self.cut.send_replace(false);
    }
}
