//! Segment's catalog end to end: entries of `@segment/action-destinations`,
//! built unchanged into components (`make catalog-test-entries`), run by a
//! real host against a vendor on loopback (`vendor_origins`).

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use switchyard_e2e::{workspace_root, Receiver, Reply, TestHost};

/// Put the built entry `name` into the host's plugins folder (`dir/plugins`).
fn install_entry(dir: &Path, name: &str) {
    let file = format!("catalog:{name}.wasm");
    let built = workspace_root().join("target/catalog").join(&file);
    assert!(
        built.is_file(),
        "{} is missing: run `make test` (it builds the catalog's test entries)",
        built.display()
    );
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(&built, plugins.join(&file)).unwrap();
}

/// A `[[destinations]]` table for entry `name` with Segment's `settings`
/// (a TOML inline table), every vendor origin sent to `rx`.
fn entry_table(name: &str, vendor: &str, settings: &str, rx: &Receiver, extra: &str) -> String {
    format!(
        "[[destinations]]\nname = \"{name}\"\nplugin = \"catalog:{name}\"\n\
         allowed_hosts = [\"{vendor}\"]\nvendor_origins = {{ \"*\" = \"{}\" }}\n\
         settings = {settings}\nretry = {{ initial_ms = 100, max_ms = 400 }}\n{extra}\n",
        rx.origin()
    )
}

fn track(id: &str, event: &str, properties: Value) -> Value {
    json!({
        "type": "track", "messageId": id, "userId": "user-1", "event": event,
        "properties": properties,
        "context": { "traits": { "email": "ada@example.com" }, "ip": "203.0.113.9" },
        "timestamp": "2026-12-01T10:00:00.000Z"
    })
}

fn identify(id: &str) -> Value {
    json!({
        "type": "identify", "messageId": id, "userId": "user-1",
        "traits": { "email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace", "phone": "+15555550100" },
        "timestamp": "2026-12-01T10:00:00.000Z"
    })
}

/// Wait until destination `name` has settled `n` events, then its row.
async fn settled(host: &TestHost, name: &str, n: u64) -> Value {
    let start = std::time::Instant::now();
    loop {
        let d = host.destinations().await;
        let row = d
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["name"] == name))
            .cloned();
        if let Some(row) = row {
            let done =
                row["delivered"].as_u64().unwrap_or(0) + row["dead_letters"].as_u64().unwrap_or(0);
            if done >= n {
                return row;
            }
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "{name}: {n} events not settled: {row}"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn dead_letters(host: &TestHost, name: &str) -> Vec<Value> {
    let list = host
        .admin()
        .get(&format!("/admin/destinations/{name}/dead-letters"))
        .await;
    list.as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn braze_presets_deliver_to_the_vendor_with_segments_requests() {
    let dir = tempfile::tempdir().unwrap();
    install_entry(dir.path(), "braze");
    let rx = Receiver::start().await;
    let table = entry_table(
        "braze",
        "https://rest.iad-01.braze.com",
        "{ api_key = \"braze-key\", app_id = \"app-1\", endpoint = \"https://rest.iad-01.braze.com\" }",
        &rx,
        "",
    );
    let host = TestHost::start(dir.path(), &table).await;
    let batch = json!({ "batch": [
        track("t1", "Signed Up", json!({ "plan": "pro" })),
        identify("i1"),
    ]});
    assert_eq!(host.send("batch", &batch).await.status(), 200);
    let row = settled(&host, "braze", 2).await;
    assert_eq!(row["delivered"], 2, "{row}");

    let got = rx.received();
    assert!(!got.is_empty());
    for r in &got {
        assert_eq!(
            r.uri, "/users/track",
            "Braze's path, at the loopback vendor"
        );
        assert_eq!(r.headers["authorization"], "Bearer braze-key");
        assert_eq!(r.headers["user-agent"], "Segment (Actions)");
    }
    let bodies: Vec<Value> = got
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    let events: Vec<&Value> = bodies
        .iter()
        .filter_map(|b| b["events"].as_array())
        .flatten()
        .collect();
    assert_eq!(events.len(), 1, "{bodies:?}");
    assert_eq!(events[0]["name"], "Signed Up");
    assert_eq!(events[0]["external_id"], "user-1");
    assert_eq!(events[0]["app_id"], "app-1");
    assert_eq!(events[0]["properties"]["plan"], "pro");
    let attributes: Vec<&Value> = bodies
        .iter()
        .filter_map(|b| b["attributes"].as_array())
        .flatten()
        .collect();
    assert_eq!(attributes.len(), 1, "{bodies:?}");
    assert_eq!(attributes[0]["email"], "ada@example.com");
    host.stop().await;
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after_and_a_400_is_dead_lettered_with_the_vendors_message(
) {
    let dir = tempfile::tempdir().unwrap();
    install_entry(dir.path(), "braze");
    let rx = Receiver::start().await;
    // One event per batch: the first attempt is throttled, the second
    // event's only answer is a 400 with Braze's message.
    rx.script(vec![Reply::status(429)
        .header("retry-after", "1")
        .body("{\"message\":\"slow down\"}")]);
    let table = entry_table(
        "braze",
        "https://rest.iad-01.braze.com",
        "{ api_key = \"k\", endpoint = \"https://rest.iad-01.braze.com\" }",
        &rx,
        "batch = { max_events = 1 }",
    );
    let host = TestHost::start(dir.path(), &table).await;
    assert_eq!(
        host.send("track", &track("slow", "Signed Up", json!({})))
            .await
            .status(),
        200
    );
    let row = settled(&host, "braze", 1).await;
    assert_eq!(row["delivered"], 1, "{row}");
    let got = rx.received();
    assert_eq!(got[0].status, 429);
    let waited = got[1].at.duration_since(got[0].at);
    assert!(
        waited >= Duration::from_millis(990),
        "Retry-After: 1 honoured: {waited:?}"
    );

    rx.script(vec![
        Reply::status(400).body("{\"message\":\"bad external_id\"}")
    ]);
    assert_eq!(
        host.send("track", &track("bad", "Signed Up", json!({})))
            .await
            .status(),
        200
    );
    let row = settled(&host, "braze", 2).await;
    assert_eq!(row["dead_letters"], 1, "{row}");
    let dead = dead_letters(&host, "braze").await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["messageId"], "bad");
    let reason = dead[0]["reason"].as_str().unwrap_or_default().to_string();
    assert!(
        reason.contains("400") && reason.contains("bad external_id"),
        "{reason}"
    );
    host.stop().await;
}

#[tokio::test]
async fn a_batching_action_answers_one_outcome_per_event() {
    let dir = tempfile::tempdir().unwrap();
    install_entry(dir.path(), "braze");
    let rx = Receiver::start().await;
    // Braze's batch answer names the events it refused by index.
    let table = entry_table(
        "braze",
        "https://rest.iad-01.braze.com",
        "{ api_key = \"k\", endpoint = \"https://rest.iad-01.braze.com\" }",
        &rx,
        "batch = { max_events = 10, linger_ms = 300 }",
    );
    let host = TestHost::start(dir.path(), &table).await;
    // The second has no user id of any kind Braze takes: Segment's own
    // validation refuses it alone; the other two are sent in one request.
    let mut anonymous = track("b2", "Signed Up", json!({}));
    anonymous.as_object_mut().unwrap().remove("userId");
    anonymous["anonymousId"] = json!("anon-1");
    anonymous["context"] = json!({});
    let batch = json!({ "batch": [
        track("b1", "Signed Up", json!({})),
        anonymous,
        track("b3", "Signed Up", json!({})),
    ]});
    assert_eq!(host.send("batch", &batch).await.status(), 200);
    let row = settled(&host, "braze", 3).await;
    assert_eq!(row["delivered"], 2, "{row}");
    assert_eq!(row["dead_letters"], 1, "{row}");
    let dead = dead_letters(&host, "braze").await;
    assert_eq!(dead[0]["messageId"], "b2", "{dead:?}");
    let reason = dead[0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("external_id"),
        "Segment's message: {reason}"
    );
    // The two good ones went in one request (Braze's performBatch).
    let got = rx.received();
    assert_eq!(got.len(), 1, "one request");
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["events"].as_array().map(Vec::len), Some(2), "{body}");
    host.stop().await;
}

/// Entry, vendor origin, settings, the event, and the path its request must take.
const DELIVERIES: &[(&str, &str, &str, &str)] = &[
    (
        "klaviyo",
        "https://a.klaviyo.com",
        "{ api_key = \"pk_test\" }",
        "/api/",
    ),
    (
        "iterable",
        "https://api.iterable.com",
        "{ apiKey = \"it-key\" }",
        "/api/",
    ),
    (
        "mixpanel",
        "https://api.mixpanel.com",
        "{ projectToken = \"tok\", apiSecret = \"sec\" }",
        "/",
    ),
    (
        "tiktok-conversions",
        "https://business-api.tiktok.com",
        "{ accessToken = \"tt\", pixelCode = \"PIX\" }",
        "/open_api/",
    ),
    (
        "customerio",
        "https://track.customer.io",
        "{ siteId = \"site\", apiKey = \"key\" }",
        "/",
    ),
];

#[tokio::test]
async fn five_more_entries_deliver_their_presets_through_one_host() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let mut tables = String::new();
    for (name, vendor, settings, _) in DELIVERIES {
        install_entry(dir.path(), name);
        tables.push_str(&entry_table(name, vendor, settings, &rx, ""));
    }
    let host = TestHost::start(dir.path(), &tables).await;
    let batch = json!({ "batch": [
        track("o1", "Order Completed", json!({ "order_id": "o-1", "total": 30.5, "revenue": 30.5, "currency": "USD",
            "products": [{ "product_id": "p1", "sku": "p1", "name": "Tea", "price": 30.5, "quantity": 1 }] })),
        identify("id1"),
    ]});
    assert_eq!(host.send("batch", &batch).await.status(), 200);
    for (name, _, _, _) in DELIVERIES {
        let row = settled(&host, name, 2).await;
        assert_eq!(row["dead_letters"], 0, "{name}: {row}");
    }
    let got = rx.received();
    for (name, _, _, path) in DELIVERIES {
        let hits = got
            .iter()
            .filter(|r| r.uri.starts_with(path) && r.status == 200)
            .count();
        assert!(
            hits > 0,
            "{name}: no request under {path}: {:?}",
            got.iter().map(|r| &r.uri).collect::<Vec<_>>()
        );
    }
    host.stop().await;
}

#[tokio::test]
async fn vendor_origins_only_point_at_loopback() {
    let dir = tempfile::tempdir().unwrap();
    install_entry(dir.path(), "braze");
    let table = "[[destinations]]\nname = \"braze\"\nplugin = \"catalog:braze\"\n\
                 vendor_origins = { \"*\" = \"http://10.1.2.3:80\" }\nsettings = {}\n";
    let err = TestHost::try_start(dir.path(), table)
        .await
        .err()
        .expect("a non-loopback target is refused");
    let text = format!("{err:#}");
    assert!(
        text.contains("vendor_origins") && text.contains("loopback"),
        "{text}"
    );
}
