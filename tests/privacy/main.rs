//! Privacy regulations end to end, through real hosts on both stores (and two
//! hosts sharing one real `nats-server`): suppression ([`suppress`]) and
//! deletion ([`delete`]). The book's Privacy page (`operating/privacy.md`)
//! names them.

mod delete;
mod suppress;

use std::path::Path;

use serde_json::{json, Value};

use switchyard_e2e::TestHost;

pub const ALICE: &str = "alice@example.com";
pub const ANON_BOB: &str = "anon-bob-7d1f";

/// `POST /admin/regulations`: the status and the JSON body.
pub async fn regulate(host: &TestHost, body: &Value) -> (u16, Value) {
    let resp = host
        .admin()
        .request(reqwest::Method::POST, "/admin/regulations")
        .json(body)
        .send()
        .await
        .expect("admin answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

pub fn track(id: &str, who: (&str, &str)) -> Value {
    let mut e = json!({"type": "track", "event": "Viewed", "messageId": id,
        "properties": {"note": format!("from {}", who.1)}});
    e[who.0] = json!(who.1);
    e
}

/// Send `events` in one batch; the answer must be a plain success.
pub async fn send(host: &TestHost, events: Vec<Value>) {
    let resp = host.send("batch", &json!({ "batch": events })).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"success": true})
    );
}

/// One `/metrics` sample of this host (0 when absent).
pub async fn metric(host: &TestHost, line_start: &str) -> f64 {
    let text = host.admin().metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Every file under `dir` that holds `needle`.
pub fn files_holding(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                if memchr::memmem::find(&bytes, needle).is_some() {
                    found.push(p.display().to_string());
                }
            }
        }
    }
    found
}
