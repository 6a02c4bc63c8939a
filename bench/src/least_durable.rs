//! Baseline `least-durable`: the least work that durable, normalised ingest can do.
//!
//! Per request: parse the batch, stamp each event (`messageId` if missing,
//! `receivedAt`), re-serialise it, append it to one file; one writer thread
//! takes every request waiting, writes them and calls `fdatasync` once for the
//! group, then answers all of them. No auth, no validation, no dedup, no
//! routing, no index: a floor, not a product. Switchyard's durable ingest is
//! measured against it in the `ingest` scenario (BENCHMARKS.md).

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::mpsc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;
use tokio::sync::oneshot;

type Pending = (Vec<u8>, oneshot::Sender<()>);

/// Serve on `port`, appending to `dir/log`.
pub async fn serve(port: u16, dir: PathBuf) -> anyhow::Result<()> {
    std::fs::create_dir_all(&dir)?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("log"))?;
    let (tx, rx) = mpsc::channel::<Pending>();
    std::thread::spawn(move || {
        while let Ok(first) = rx.recv() {
            let mut group = vec![first];
            while let Ok(more) = rx.try_recv() {
                group.push(more);
            }
            for (bytes, _) in &group {
                file.write_all(bytes).expect("append");
            }
            file.sync_data().expect("fdatasync");
            for (_, done) in group {
                let _ = done.send(());
            }
        }
    });
    let app = axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .fallback(ingest)
        .with_state(tx);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

async fn ingest(
    State(tx): State<mpsc::Sender<Pending>>,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let Ok(Value::Object(mut root)) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "{\"success\":false}");
    };
    let received = chrono::Utc::now().to_rfc3339();
    let mut out = Vec::with_capacity(body.len() + 128);
    let items = match root.remove("batch") {
        Some(Value::Array(items)) => items,
        _ => vec![Value::Object(root)],
    };
    for mut item in items {
        if let Value::Object(m) = &mut item {
            m.entry("messageId")
                .or_insert_with(|| Value::String(format!("gen-{}", out.len())));
            m.insert("receivedAt".into(), Value::String(received.clone()));
        }
        serde_json::to_writer(&mut out, &item).expect("serialise");
        out.push(b'\n');
    }
    let (done, wait) = oneshot::channel();
    if tx.send((out, done)).is_err() || wait.await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "{\"success\":false}");
    }
    (StatusCode::OK, "{\"success\":true}")
}
