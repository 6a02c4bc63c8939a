//! A loopback HTTP receiver that records every request and answers from a script,
//! and [`serve_loopback`] / [`serve_fallback`], which serve any app or handler on
//! a free loopback port.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// One answer of the receiver.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Wait this long before answering.
    pub delay: Duration,
    /// Body.
    pub body: String,
}

impl Reply {
    /// A plain answer with this status.
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: vec![],
            delay: Duration::ZERO,
            body: "{}".into(),
        }
    }
    /// Add a header.
    pub fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.into(), v.into()));
        self
    }
    /// Answer after `d`.
    pub fn delayed(mut self, d: Duration) -> Reply {
        self.delay = d;
        self
    }
    /// With this body.
    pub fn body(mut self, b: &str) -> Reply {
        self.body = b.into();
        self
    }
}

/// A request as received, with the status it was answered.
#[derive(Debug, Clone)]
pub struct Received {
    /// Path and query.
    pub uri: String,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
    /// When it arrived.
    pub at: Instant,
    /// What it was answered.
    pub status: u16,
}

#[derive(Default)]
struct Inner {
    /// Answers to give first, in order.
    script: VecDeque<Reply>,
    /// The answer once the script is used up.
    default: Option<Reply>,
    /// Requests carrying this header get this answer, script or not.
    by_header: Option<(String, Reply)>,
    /// Everything received.
    received: Vec<Received>,
    /// Requests being answered now.
    open: usize,
    /// The most requests that were being answered at once.
    most_open: usize,
}

/// The receiver; clones share state.
#[derive(Clone)]
pub struct Receiver {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

impl Receiver {
    /// Start on a free loopback port, answering 200.
    pub async fn start() -> Receiver {
        let inner: Arc<Mutex<Inner>> = Default::default();
        let addr = serve_fallback(handle, inner.clone()).await;
        Receiver { addr, inner }
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The allowlist entry for this receiver.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answer these first, in order.
    pub fn script(&self, replies: Vec<Reply>) {
        self.inner.lock().unwrap().script = replies.into();
    }

    /// Answer this once the script is used up.
    pub fn default_reply(&self, reply: Reply) {
        self.inner.lock().unwrap().default = Some(reply);
    }

    /// Answer `reply` to every request that carries header `name`, whatever the script says.
    pub fn reply_to_header(&self, name: &str, reply: Reply) {
        self.inner.lock().unwrap().by_header = Some((name.to_ascii_lowercase(), reply));
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }

    /// Every event of every request whose body is a JSON array, in arrival order.
    pub fn events(&self) -> Vec<Value> {
        self.received()
            .iter()
            .filter_map(|r| serde_json::from_slice::<Vec<Value>>(&r.body).ok())
            .flatten()
            .collect()
    }

    /// The event with this `messageId`, if one arrived.
    pub fn event(&self, message_id: &str) -> Option<Value> {
        self.events()
            .into_iter()
            .find(|e| e["messageId"] == message_id)
    }

    /// The most requests this receiver was answering at once.
    pub fn most_concurrent(&self) -> usize {
        self.inner.lock().unwrap().most_open
    }

    /// `messageId`s of every event in request bodies answered 2xx (JSON arrays of events).
    pub fn delivered_ids(&self) -> Vec<String> {
        self.received()
            .iter()
            .filter(|r| (200..300).contains(&r.status))
            .flat_map(|r| ids_in(&r.body))
            .collect()
    }
}

/// Serve `app` on a free loopback port in the background (for as long as the
/// runtime runs); its address.
pub async fn serve_loopback(app: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback listener");
    let addr = listener.local_addr().expect("a bound address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// Serve `handler`, with `state`, for every request on a free loopback port, in
/// the background; its address.
pub async fn serve_fallback<H, T, S>(handler: H, state: S) -> std::net::SocketAddr
where
    H: axum::handler::Handler<T, S>,
    T: 'static,
    S: Clone + Send + Sync + 'static,
{
    serve_loopback(axum::Router::new().fallback(handler).with_state(state)).await
}

/// `messageId`s in a JSON-array body.
pub fn ids_in(body: &[u8]) -> Vec<String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => items
            .iter()
            .filter_map(|e| {
                e.get("messageId")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .collect(),
        _ => vec![],
    }
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reply = {
        let mut g = inner.lock().unwrap();
        g.open += 1;
        g.most_open = g.most_open.max(g.open);
        match &g.by_header {
            Some((name, reply)) if headers.contains_key(name.as_str()) => reply.clone(),
            _ => g
                .script
                .pop_front()
                .or_else(|| g.default.clone())
                .unwrap_or_else(|| Reply::status(200)),
        }
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    {
        let mut g = inner.lock().unwrap();
        g.open -= 1;
        g.received.push(Received {
            uri: uri.to_string(),
            headers,
            body,
            at: Instant::now(),
            status: reply.status,
        });
    }
    let mut resp = (
        StatusCode::from_u16(reply.status).unwrap(),
        reply.body.clone(),
    )
        .into_response();
    for (k, v) in &reply.headers {
        resp.headers_mut().insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            axum::http::HeaderValue::from_str(v).unwrap(),
        );
    }
    resp
}
