//! Realistic Segment payloads for the load generator.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Value};

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A `/v1/batch` body of `n` track events (~450 bytes each, as analytics-node
/// sends them) with unique messageIds under `prefix`, as JSON text. Written from
/// a template rather than through `serde_json::Value`: the generator shares the
/// machine with the system under test, so it should cost as little as it can.
pub fn batch(prefix: &str, n: usize) -> (String, Vec<String>) {
    let now = chrono::Utc::now().to_rfc3339();
    let mut ids = Vec::with_capacity(n);
    let mut body = String::with_capacity(64 + n * 520);
    body.push_str("{\"batch\":[");
    for i in 0..n {
        let id = format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed));
        if i > 0 {
            body.push(',');
        }
        body.push_str(&format!(
            concat!(
                "{{\"type\":\"track\",\"event\":\"Order Completed\",\"userId\":\"user-{user}\",",
                "\"messageId\":\"{id}\",\"timestamp\":\"{now}\",",
                "\"properties\":{{\"orderId\":\"50314b8e9bcf000000000000\",\"total\":27.5,\"revenue\":25.0,",
                "\"shipping\":3,\"tax\":2,\"currency\":\"USD\",\"products\":[{{\"product_id\":\"507f1f77bcf86cd799439011\",",
                "\"sku\":\"45790-32\",\"name\":\"Monopoly\",\"price\":19,\"quantity\":1}}]}},",
                "\"context\":{{\"page\":{{\"path\":\"/checkout\",\"url\":\"https://shop.example.com/checkout\"}},\"ip\":\"203.0.113.7\"}}}}"
            ),
            user = id.len() % 97,
            id = id,
            now = now,
        ));
        ids.push(id);
    }
    body.push_str(&format!(
        "],\"sentAt\":\"{now}\",\"context\":{{\"library\":{{\"name\":\"analytics-node\",\"version\":\"2.1.0\"}}}}}}"
    ));
    (body, ids)
}

/// The same events as the host would store them (normalised JSON strings).
pub fn normalised(n: usize) -> Vec<String> {
    let (text, _) = batch("bench", n);
    let body: Value = serde_json::from_str(&text).expect("the template is JSON");
    body["batch"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let mut e = e.clone();
            e["receivedAt"] = e["timestamp"].clone();
            e["context"]["library"] = json!({"name": "analytics-node", "version": "2.1.0"});
            e.to_string()
        })
        .collect()
}
