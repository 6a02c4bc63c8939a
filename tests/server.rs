//! The listener's limits (the book, `operating/configuration.md`, `[server]`): connections that
//! never finish their headers, their body or their next request are closed, and
//! connections beyond `max_connections` are refused, so idle sockets cannot shut
//! out other clients.

use std::time::{Duration, Instant};

use serde_json::json;
use switchyard_e2e::host::config_text;
use switchyard_e2e::{webhook_destination as webhook, Receiver, TestHost};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long until the server closes `stream` (reading and dropping what it sends).
async fn closed_after(stream: &mut TcpStream, limit: Duration) -> Option<(Duration, String)> {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit.saturating_sub(start.elapsed()), stream.read(&mut buf))
            .await
        {
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Some((start.elapsed(), String::from_utf8_lossy(&got).into_owned()))
            }
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn slow_idle_and_surplus_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let config = config_text(dir.path(), &webhook("hooks", &rx, "")).replacen(
        "[server]\n",
        "[server]\nheader_timeout = \"1s\"\nrequest_timeout = \"2s\"\nmax_connections = 4\n",
        1,
    );
    let host = TestHost::start_config(dir.path(), &config).await;
    let addr = host.addr;

    // Nothing sent, half a header, half a body: each closed, within its limit.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    let mut half_header = TcpStream::connect(addr).await.unwrap();
    half_header
        .write_all(b"POST /v1/track HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut half_body = TcpStream::connect(addr).await.unwrap();
    half_body
        .write_all(b"POST /v1/track HTTP/1.1\r\nHost: x\r\nAuthorization: Basic d2tfdGVzdDo=\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"userId\"")
        .await
        .unwrap();
    // The limit is 4 open connections: a fourth still gets in, a fifth is closed at once.
    let _fourth = TcpStream::connect(addr).await.unwrap();
    let mut surplus = TcpStream::connect(addr).await.unwrap();
    let refused = closed_after(&mut surplus, Duration::from_millis(500)).await;
    assert!(
        refused.is_some(),
        "a connection beyond max_connections is closed at once"
    );

    let (t, _) = closed_after(&mut idle, Duration::from_secs(5))
        .await
        .expect("idle closed");
    assert!(
        t >= Duration::from_millis(800) && t < Duration::from_secs(3),
        "idle: {t:?}"
    );
    let (t, _) = closed_after(&mut half_header, Duration::from_secs(5))
        .await
        .expect("half header closed");
    assert!(t < Duration::from_secs(3), "half header: {t:?}");
    let (t, answer) = closed_after(&mut half_body, Duration::from_secs(6))
        .await
        .expect("half body closed");
    assert!(t < Duration::from_secs(4), "half body: {t:?}");
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "half body answered 408: {answer:?}"
    );
    // A kept-alive connection that sends no second request is closed too.
    let mut kept = TcpStream::connect(addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (t, answer) = closed_after(&mut kept, Duration::from_secs(5))
        .await
        .expect("keep-alive closed");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(t < Duration::from_secs(3), "keep-alive idle: {t:?}");

    // The slots are free again: a normal client gets through.
    let resp = host
        .send(
            "track",
            &json!({"userId": "u", "event": "E", "messageId": "after"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    host.stop().await;
}
