//! Segment's catalog end to end: entries of `@segment/action-destinations`,
//! built unchanged into components (`make catalog-test-entries`), run by a
//! real host against a vendor on loopback (`vendor_origins`).
//!
//! - this file: the shared helpers, and delivery (presets, retries, dead
//!   letters, per-event outcomes of a batch, other entries, a hot swap);
//! - `setup.rs`: `vendor_origins`, `switchyard check` and `catalog import`;
//! - `oauth.rs`: an OAuth2 token refreshed by the host;
//! - `privacy.rs`: a privacy deletion through an entry's own `onDelete`.

mod oauth;
mod privacy;
mod setup;

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use switchyard_e2e::{workspace_root, Receiver, Reply, TestHost};

/// Put the built entry `name` into the host's plugins folder (`dir/plugins`).
pub(crate) fn install_entry(dir: &Path, name: &str) {
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
pub(crate) fn entry_table(
    name: &str,
    vendor: &str,
    settings: &str,
    rx: &Receiver,
    extra: &str,
) -> String {
    format!(
        "[[destinations]]\nname = \"{name}\"\nplugin = \"catalog:{name}\"\n\
         allowed_hosts = [\"{vendor}\"]\nvendor_origins = {{ \"*\" = \"{}\" }}\n\
         settings = {settings}\nretry = {{ initial_ms = 100, max_ms = 400 }}\n{extra}\n",
        rx.origin()
    )
}

/// Braze (`catalog:braze`) at `rx`, installed in `dir`, with `extra` lines.
fn braze(dir: &Path, rx: &Receiver, extra: &str) -> String {
    install_entry(dir, "braze");
    entry_table(
        "braze",
        "https://rest.iad-01.braze.com",
        r#"{ api_key = "braze-key", app_id = "app-1", endpoint = "https://rest.iad-01.braze.com" }"#,
        rx,
        extra,
    )
}

pub(crate) fn track(id: &str, event: &str, properties: Value) -> Value {
    json!({
        "type": "track", "messageId": id, "userId": "user-1", "event": event,
        "properties": properties,
        "context": { "traits": { "email": "ada@example.com" }, "ip": "203.0.113.9" },
        "timestamp": "2026-12-01T10:00:00.000Z"
    })
}

pub(crate) fn identify(id: &str) -> Value {
    json!({
        "type": "identify", "messageId": id, "userId": "user-1",
        "traits": { "email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace", "phone": "+15555550100" },
        "timestamp": "2026-12-01T10:00:00.000Z"
    })
}

/// Wait until destination `name` has settled `n` events, then its row.
pub(crate) async fn settled(host: &TestHost, name: &str, n: u64) -> Value {
    let start = std::time::Instant::now();
    loop {
        let d = host.destinations().await;
        let row = d
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["name"] == name))
            .cloned();
        if let Some(row) = row {
            let done = ["delivered", "dead_letters", "filtered"]
                .iter()
                .map(|k| row[*k].as_u64().unwrap_or(0))
                .sum::<u64>();
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

pub(crate) async fn dead_letters(host: &TestHost, name: &str) -> Vec<Value> {
    let list = host
        .admin()
        .get(&format!("/admin/destinations/{name}/dead-letters"))
        .await;
    list.as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn braze_presets_deliver_to_the_vendor_with_segments_requests() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let table = braze(dir.path(), &rx, "");
    let host = TestHost::start(dir.path(), &table).await;
    // Braze's presets take track and identify calls; no preset takes a page view.
    let page = json!({ "type": "page", "messageId": "p1", "userId": "user-1", "name": "Home" });
    let batch = json!({ "batch": [
        track("t1", "Signed Up", json!({ "plan": "pro" })),
        identify("i1"),
        page,
    ]});
    assert_eq!(host.send("batch", &batch).await.status(), 200);
    let row = settled(&host, "braze", 3).await;
    assert_eq!(row["delivered"], 2, "{row}");
    assert_eq!(
        row["filtered"], 1,
        "the page view settles as filtered: {row}"
    );

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
    let rx = Receiver::start().await;
    // One event per batch: the first attempt is throttled, the second
    // event's only answer is a 400 with Braze's message.
    rx.script(vec![Reply::status(429)
        .header("retry-after", "1")
        .body("{\"message\":\"slow down\"}")]);
    let table = braze(dir.path(), &rx, "batch = { max_events = 1 }");
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
    let rx = Receiver::start().await;
    // Braze's batch answer names the events it refused by index.
    let table = braze(
        dir.path(),
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

/// Entry, vendor origin, settings (Segment's, as a TOML inline table), and
/// the path each of its requests takes at the vendor.
const DELIVERIES: &[(&str, &str, &str, &str)] = &[
    // No presets: a subscription of the user's own, with mapping-kit directives.
    (
        "klaviyo",
        "https://a.klaviyo.com",
        r#"{ api_key = "pk_test", subscriptions = [{ subscribe = 'type = "track"', partnerAction = "trackEvent", mapping = { profile = { email = { "@path" = "$.context.traits.email" }, external_id = { "@path" = "$.userId" } }, metric_name = { "@template" = "Shop: {{event}}" }, properties = { "@path" = "$.properties" } } }] }"#,
        "/api/event",
    ),
    (
        "iterable",
        "https://api.iterable.com",
        r#"{ apiKey = "it-key" }"#,
        "/api/",
    ),
    (
        "mixpanel",
        "https://api.mixpanel.com",
        r#"{ projectToken = "tok", apiSecret = "sec" }"#,
        "/",
    ),
    (
        "tiktok-conversions",
        "https://business-api.tiktok.com",
        r#"{ accessToken = "tt", pixelCode = "PIX" }"#,
        "/open_api/",
    ),
    (
        "customerio",
        "https://track.customer.io",
        r#"{ siteId = "site", apiKey = "key" }"#,
        "/api/",
    ),
];

#[tokio::test]
async fn five_more_entries_deliver_through_one_host_each_to_its_vendor() {
    let dir = tempfile::tempdir().unwrap();
    let mut tables = String::new();
    let mut vendors = Vec::new();
    for (name, vendor, settings, _) in DELIVERIES {
        install_entry(dir.path(), name);
        let rx = Receiver::start().await;
        tables.push_str(&entry_table(name, vendor, settings, &rx, ""));
        vendors.push(rx);
    }
    let host = TestHost::start(dir.path(), &tables).await;
    let batch = json!({ "batch": [
        track("o1", "Order Completed", json!({ "order_id": "o-1", "total": 30.5, "revenue": 30.5, "currency": "USD",
            "products": [{ "product_id": "p1", "sku": "p1", "name": "Tea", "price": 30.5, "quantity": 1 }] })),
        identify("id1"),
    ]});
    assert_eq!(host.send("batch", &batch).await.status(), 200);
    for ((name, _, _, path), rx) in DELIVERIES.iter().zip(&vendors) {
        let row = settled(&host, name, 2).await;
        assert_eq!(row["dead_letters"], 0, "{name}: {row}");
        assert!(row["delivered"].as_u64() >= Some(1), "{name}: {row}");
        let got = rx.received();
        assert!(!got.is_empty(), "{name}: no request reached its vendor");
        for r in &got {
            assert!(
                r.uri.starts_with(path),
                "{name}: {} is not under {path}",
                r.uri
            );
        }
    }
    // Klaviyo got the event through the user's own mapping.
    let klaviyo: Value = serde_json::from_slice(&vendors[0].received()[0].body).unwrap();
    let text = klaviyo.to_string();
    assert!(
        text.contains("Shop: Order Completed") && text.contains("ada@example.com"),
        "{text}"
    );
    host.stop().await;
}

/// Entry, vendor origin, settings with a subscription of the user's own (the
/// action Segment suggests, its fields' defaults, and what it needs beside),
/// the path its request takes, and a text its body must hold.
const OWN_SUBSCRIPTIONS: &[(&str, &str, &str, &str, &str)] = &[
    // The email goes hashed (SHA-256, over the host's crypto import).
    (
        "facebook-conversions-api",
        "https://graph.facebook.com",
        r#"{ pixelId = "123", subscriptions = [{ subscribe = 'type = "track" and event = "Order Completed"', partnerAction = "purchase", mapping = { action_source = "website", currency = { "@path" = "$.properties.currency" }, value = { "@path" = "$.properties.revenue" }, event_time = { "@path" = "$.timestamp" }, user_data = { email = { "@path" = "$.context.traits.email" }, client_ip_address = { "@path" = "$.context.ip" }, client_user_agent = { "@path" = "$.context.userAgent" } } } }] }"#,
        "/v24.0/123/events",
        // sha256("ada@example.com")
        "b5fc85e55755f9e0d030a10ab4429b6b2944855f9a0d60077fe832becbc41d72",
    ),
    (
        "hubspot",
        "https://api.hubapi.com",
        r#"{ oauth = { access_token = "hubspot-token-1" }, subscriptions = [{ subscribe = 'type = "identify"', partnerAction = "upsertContact", mapping = { email = { "@path" = "$.traits.email" }, properties = { firstname = { "@path" = "$.traits.first_name" } } } }] }"#,
        "/crm/v3/objects/contacts/",
        "Ada",
    ),
    (
        "intercom",
        "https://api.intercom.io",
        r#"{ oauth = { access_token = "intercom-token-1" }, subscriptions = [{ subscribe = 'type = "track"', partnerAction = "trackEvent", mapping = { event_name = { "@path" = "$.event" }, created_at = { "@path" = "$.timestamp" }, user_id = { "@path" = "$.userId" } } }] }"#,
        "/events",
        "Order Completed",
    ),
    // The conversion rule Segment creates when a mapping is saved, given as the hook's outputs.
    (
        "linkedin-conversions",
        "https://api.linkedin.com",
        r#"{ oauth = { access_token = "linkedin-token-1" }, subscriptions = [{ subscribe = 'type = "track"', partnerAction = "streamConversion", mapping = { onMappingSave = { outputs = { id = "rule-1" } }, email = { "@path" = "$.context.traits.email" }, conversionHappenedAt = { "@path" = "$.timestamp" }, eventId = { "@path" = "$.messageId" } } }] }"#,
        "/rest/conversionEvents",
        "urn:lla:llaPartnerConversion:rule-1",
    ),
    (
        "salesforce",
        "https://acme.my.salesforce.com",
        r#"{ instanceUrl = "https://acme.my.salesforce.com", oauth = { access_token = "salesforce-token-1" }, subscriptions = [{ subscribe = 'type = "identify"', partnerAction = "lead", mapping = { operation = "create", last_name = { "@path" = "$.traits.last_name" }, company = { "@path" = "$.traits.company" }, email = { "@path" = "$.traits.email" } } }] }"#,
        "/services/data/",
        "Lovelace",
    ),
];

#[tokio::test]
async fn five_entries_with_subscriptions_of_their_own_reach_their_vendors() {
    let dir = tempfile::tempdir().unwrap();
    let mut tables = String::new();
    let mut vendors = Vec::new();
    for (name, vendor, settings, _, _) in OWN_SUBSCRIPTIONS {
        install_entry(dir.path(), name);
        let rx = Receiver::start().await;
        rx.default_reply(
            Reply::status(200)
                .header("content-type", "application/json")
                .body("{\"id\":\"1\"}"),
        );
        tables.push_str(&entry_table(name, vendor, settings, &rx, ""));
        vendors.push(rx);
    }
    let host = TestHost::start(dir.path(), &tables).await;
    let mut order = track(
        "f1",
        "Order Completed",
        json!({ "revenue": 30.5, "currency": "USD" }),
    );
    order["context"]["userAgent"] = json!("Mozilla/5.0 (X11; Linux x86_64)");
    let mut person = identify("f2");
    person["traits"]["company"] = json!("Analytical Engines");
    let batch = json!({ "batch": [order, person] });
    assert_eq!(host.send("batch", &batch).await.status(), 200);
    for ((name, _, _, path, holds), rx) in OWN_SUBSCRIPTIONS.iter().zip(&vendors) {
        let row = settled(&host, name, 2).await;
        assert_eq!(row["dead_letters"], 0, "{name}: {row}");
        assert_eq!(row["delivered"], 1, "{name}: {row}");
        assert_eq!(row["filtered"], 1, "{name}: the other event: {row}");
        let got = rx.received();
        assert_eq!(got.len(), 1, "{name}");
        assert!(got[0].uri.starts_with(path), "{name}: {}", got[0].uri);
        let body = String::from_utf8_lossy(&got[0].body);
        assert!(body.contains(holds), "{name}: `{holds}` not in {body}");
    }
    host.stop().await;
}

#[tokio::test]
async fn a_new_build_of_an_entry_is_swapped_in_under_load_without_losing_or_repeating_events() {
    use switchyard_e2e::admin::Row;
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let table = braze(
        dir.path(),
        &rx,
        "batch = { max_events = 50, linger_ms = 20 }",
    );
    let host = TestHost::start(dir.path(), &table).await;
    let plugin = "catalog:braze";
    let original = host.admin().plugin(plugin).await["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    // A steady stream: 10 track calls every 40 ms, each user id once.
    let sender = {
        let http = host.http.clone();
        let url = host.url("/v1/batch");
        tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..60 {
                let batch: Vec<Value> = (0..10)
                    .map(|j| track(&format!("hot{i}-{j}"), "Signed Up", json!({})))
                    .map(|mut e| {
                        e["userId"] = e["messageId"].clone();
                        e
                    })
                    .collect();
                let r = http
                    .post(&url)
                    .basic_auth(switchyard_e2e::host::WRITE_KEY, Some(""))
                    .json(&json!({ "batch": batch }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                acked.extend((0..10).map(|j| format!("hot{i}-{j}")));
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            acked
        })
    };
    // A new build (the same code with a section of its own: another sha256) lands in the folder.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let file = dir.path().join("plugins").join(format!("{plugin}.wasm"));
    let v2 = switchyard_e2e::with_custom_section(std::fs::read(&file).unwrap(), "v2");
    let tmp = dir.path().join("plugins/.next.tmp");
    std::fs::write(&tmp, &v2).unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    let row = host
        .admin()
        .wait(
            Row::Plugin(plugin),
            "the new build to serve",
            Duration::from_secs(60),
            |r| r["sha256"] != original.as_str(),
        )
        .await;
    assert!(row["last_error"].is_null(), "{row}");
    let acked = sender.await.unwrap();
    let row = settled(&host, "braze", acked.len() as u64).await;
    assert_eq!(row["delivered"].as_u64(), Some(acked.len() as u64), "{row}");
    let mut counts: std::collections::HashMap<String, usize> = Default::default();
    for r in rx.received() {
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        for e in body["events"].as_array().into_iter().flatten() {
            *counts
                .entry(e["external_id"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    let repeated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "sent more than once: {repeated:?}");
    assert!(
        acked.iter().all(|id| counts.contains_key(id)),
        "every acknowledged event reached Braze"
    );
    host.stop().await;
}
