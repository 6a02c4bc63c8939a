//! Test and benchmark support: a scriptable loopback receiver, a host started
//! in-process on a temporary store, the `switchyard` binary as a process, a
//! client of the admin API, headless Chromium, config text, and Segment-shaped payloads. The
//! benchmarks (`bench/`) use it too.

pub mod admin;
pub mod binary;
pub mod browser;
pub mod host;
pub mod logs;
pub mod nats;
pub mod proxy;
pub mod receiver;
pub mod soak;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

pub use admin::Admin;
pub use host::TestHost;
pub use receiver::{Receiver, Reply};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A bundled destination built by `make destinations`.
pub fn destination_component(name: &str) -> PathBuf {
    built(&format!("target/destinations/{name}.wasm"))
}

/// A test-only guest built by `make test-guests`.
pub fn test_guest(name: &str) -> PathBuf {
    built(&format!("target/test-guests/{name}.wasm"))
}

/// The `switchyard` binary built by `make test`.
pub fn switchyard_bin() -> PathBuf {
    built("target/debug/switchyard")
}

/// A file that `make test` builds, by its path in the workspace.
fn built(path: &str) -> PathBuf {
    let path = workspace_root().join(path);
    assert!(
        path.exists(),
        "{} is missing: run `make test`, which builds it",
        path.display()
    );
    path
}

/// A batch shaped like the one analytics-node sends: `n` track events with
/// client timestamps, `sentAt`, and batch-level context.
pub fn sdk_batch(prefix: &str, n: usize) -> Value {
    let now = chrono::Utc::now();
    let items: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "type": "track",
                "event": "Order Completed",
                "userId": format!("user-{}", i % 7),
                "messageId": format!("{prefix}-{i}"),
                "timestamp": (now - chrono::Duration::seconds(5)).to_rfc3339(),
                "properties": {"orderId": format!("o-{i}"), "revenue": 12.5},
                "context": {"page": {"path": "/checkout"}},
                "_metadata": {"nodeVersion": "20.0.0"}
            })
        })
        .collect();
    json!({
        "batch": items,
        "sentAt": now.to_rfc3339(),
        "context": {"library": {"name": "analytics-node", "version": "2.1.0"}},
    })
}

/// Poll `check` every 20 ms until it returns `Some`, or panic with `what` after `timeout`.
pub async fn eventually<T>(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// [`eventually`] for a check that awaits (an admin API call, say).
pub async fn eventually_async<T, F: std::future::Future<Output = Option<T>>>(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A free loopback port (free when asked; bind it soon).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free loopback port")
        .local_addr()
        .expect("a bound address")
        .port()
}

/// A `[[destinations]]` table: the webhook `name` POSTing to `url` (allowed:
/// `origin`), signed with `s3cret`, then `extra` lines.
pub fn webhook_table(name: &str, url: &str, origin: &str, extra: &str) -> String {
    format!(
        r#"
[[destinations]]
name = "{name}"
plugin = "webhook"
allowed_hosts = ["{origin}"]
settings = {{ url = "{url}", secret = "s3cret" }}
{extra}
"#
    )
}

/// A `[[destinations]]` table: the webhook to `rx` at `/<name>`, with short retries.
pub fn webhook_destination(name: &str, rx: &Receiver, extra: &str) -> String {
    let retry = "retry = { initial_ms = 20, max_ms = 200, window = \"1m\" }";
    webhook_table(
        name,
        &rx.url(&format!("/{name}")),
        &rx.origin(),
        &format!("{retry}\n{extra}"),
    )
}

/// `prefix-0` … `prefix-(n-1)`: the messageIds of [`sdk_batch`].
pub fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// Wait (at most 30 s) until every id in `want` reached `rx` with a 2xx answer.
pub async fn all_arrive(rx: &Receiver, want: &[String]) {
    all_arrive_within(rx, want, Duration::from_secs(30)).await;
}

/// Wait (at most `timeout`) until every id in `want` reached `rx` with a 2xx answer.
pub async fn all_arrive_within(rx: &Receiver, want: &[String], timeout: Duration) {
    eventually(timeout, "every event at the receiver", || {
        let got = rx.delivered_ids();
        want.iter().all(|id| got.contains(id)).then_some(())
    })
    .await;
}

/// `bytes` (a component) with a custom section appended: the same component,
/// with the same behaviour, and another sha256 (a "new version" for hot-loading).
pub fn with_custom_section(mut bytes: Vec<u8>, tag: &str) -> Vec<u8> {
    let name = b"switchyard-test";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend_from_slice(tag.as_bytes());
    bytes.push(0); // custom section
    let mut len = payload.len();
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            bytes.push(byte);
            break;
        }
        bytes.push(byte | 0x80);
    }
    bytes.extend_from_slice(&payload);
    bytes
}
