//! The loopback receiver of `switchyard dev`: it stands in for the vendor,
//! prints each request it gets and answers from the script.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response as AxumResponse};

use crate::imports::http::Response;

/// Longest excerpt of a request body printed, in characters.
const BODY_CHARS: usize = 600;

/// A running receiver.
pub struct Receiver {
    /// Where it listens (127.0.0.1, a free port).
    pub addr: SocketAddr,
    /// Its server task.
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Stop serving.
    pub fn stop(self) {
        self.task.abort();
    }
}

/// Answers still to give, in order (then `200 {}`), and a count of requests.
#[derive(Default)]
struct Script {
    answers: VecDeque<Response>,
    seen: u64,
}

/// Start a receiver on a free loopback port that answers `script` in order.
pub async fn start(script: Vec<Response>) -> anyhow::Result<Receiver> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let state = Arc::new(Mutex::new(Script {
        answers: script.into(),
        seen: 0,
    }));
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let state = state.clone();
            async move { answer(&state, method, uri, headers, body) }
        },
    );
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(Receiver { addr, task })
}

fn answer(
    state: &Mutex<Script>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> AxumResponse {
    let (n, next) = {
        let mut s = state.lock().expect("receiver script");
        s.seen += 1;
        (s.seen, s.answers.pop_front())
    };
    println!("receiver <- #{n} {method} {uri} ({} bytes)", body.len());
    for (name, value) in &headers {
        if !matches!(
            name.as_str(),
            "host" | "content-length" | "accept" | "accept-encoding"
        ) {
            println!("  {name}: {}", value.to_str().unwrap_or("<binary>"));
        }
    }
    println!("  {}", excerpt(&body));
    let resp = next.unwrap_or_else(|| Response {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: b"{}".to_vec(),
    });
    let shown: Vec<String> = resp
        .headers
        .iter()
        .filter(|(k, _)| k != "content-type")
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    println!(
        "receiver -> #{n} {}{}",
        resp.status,
        if shown.is_empty() {
            String::new()
        } else {
            format!(" ({})", shown.join(", "))
        }
    );
    let status = StatusCode::from_u16(resp.status).unwrap_or(StatusCode::OK);
    let mut out = (status, resp.body).into_response();
    for (k, v) in resp.headers {
        if let (Ok(k), Ok(v)) = (
            axum::http::HeaderName::from_bytes(k.as_bytes()),
            axum::http::HeaderValue::from_str(&v),
        ) {
            out.headers_mut().append(k, v);
        }
    }
    out
}

/// The body on one line, at most [`BODY_CHARS`] characters.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let flat: String = text
        .chars()
        .map(|c| if c == '\n' { ' ' } else { c })
        .collect();
    match flat.char_indices().nth(BODY_CHARS) {
        Some((i, _)) => format!("{}…", &flat[..i]),
        None => flat,
    }
}
