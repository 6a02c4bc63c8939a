//! Hot-loading under a steady stream of events, rollback, uploads, and the
//! precompiled-component cache.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;
use switchyard_e2e::admin::Row;
use switchyard_e2e::host::ADMIN_TOKEN;
use switchyard_e2e::{
    destination_component, eventually, sdk_batch, webhook_destination, Admin, Receiver, TestHost,
};

/// The webhook component with a custom section appended: a valid component
/// with the same behaviour and a different sha256 (a "new version").
fn webhook_variant(tag: &str) -> Vec<u8> {
    switchyard_e2e::with_custom_section(
        std::fs::read(destination_component("webhook")).unwrap(),
        tag,
    )
}

/// How long a new version (or a rollback) may take to serve, or to be refused.
const SWAP: Duration = Duration::from_secs(20);

/// The webhook to `rx`, with a short linger.
fn webhook(rx: &Receiver) -> String {
    let batch = "batch = { max_events = 50, max_bytes = 512000, linger_ms = 20 }";
    webhook_destination("hooks", rx, batch)
}

#[tokio::test]
async fn plugin_files_are_swapped_under_load_without_losing_or_repeating_events() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let host = TestHost::start(dir.path(), &webhook(&rx)).await;
    let file = dir.path().join("plugins/webhook.wasm");
    let original = host.admin().plugin("webhook").await["sha256"]
        .as_str()
        .unwrap()
        .to_string();

    // A steady stream in the background: 10 events every 30 ms.
    let sender = {
        let http = host.http.clone();
        let url = host.url("/v1/batch");
        tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..120 {
                let r = http
                    .post(&url)
                    .basic_auth(switchyard_e2e::host::WRITE_KEY, Some(""))
                    .json(&sdk_batch(&format!("hot{i}"), 10))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                acked.extend((0..10).map(|j| format!("hot{i}-{j}")));
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            acked
        })
    };

    // 1. Garbage: refused, the old version serves on.
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::write(&file, b"this is not a component").unwrap();
    let row = host
        .admin()
        .wait(
            Row::Plugin("webhook"),
            "the garbage to be refused",
            SWAP,
            |r| !r["last_error"].is_null(),
        )
        .await;
    assert_eq!(
        row["sha256"],
        original.as_str(),
        "the old version still serves"
    );
    assert!(
        row["last_error"]
            .as_str()
            .unwrap()
            .contains("not a valid destination component"),
        "{row}"
    );

    // 2. A valid new version: serves within seconds, with a new sha256.
    let v2 = webhook_variant("v2");
    std::fs::write(&file, &v2).unwrap();
    let row = host
        .admin()
        .wait(Row::Plugin("webhook"), "v2 to serve", SWAP, |r| {
            r["sha256"] != original.as_str()
        })
        .await;
    assert!(row["last_error"].is_null(), "{row}");
    assert_eq!(row["previous_sha256"], original.as_str());
    let dests = host.destinations().await;
    assert_eq!(
        dests[0]["sha256"], row["sha256"],
        "GET /admin/destinations shows the serving sha256"
    );

    // 3. Roll back to the original.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = host.admin().post("/admin/plugins/webhook/rollback").await;
    assert_eq!(r.status(), 200);
    host.admin()
        .wait(Row::Plugin("webhook"), "the rollback", SWAP, |r| {
            r["sha256"] == original.as_str()
        })
        .await;
    assert_eq!(
        std::fs::read(&file).unwrap(),
        std::fs::read(destination_component("webhook")).unwrap(),
        "the file is rolled back too"
    );

    let acked = sender.await.unwrap();
    eventually(Duration::from_secs(30), "every acknowledged event", || {
        let got = rx.delivered_ids();
        acked.iter().all(|id| got.contains(id)).then_some(())
    })
    .await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for id in rx.delivered_ids() {
        *counts.entry(id).or_default() += 1;
    }
    let repeated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeated.is_empty(),
        "delivered more than once: {repeated:?}"
    );
    assert_eq!(counts.len(), acked.len());
    host.stop().await;
}

#[tokio::test]
async fn uploads_are_checked_before_they_serve() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let host = TestHost::start(dir.path(), &webhook(&rx)).await;
    let original = host.admin().plugin("webhook").await["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    let put = |body: Vec<u8>, token: &str| {
        Admin::with_client(host.http.clone(), host.url(""), token)
            .request(reqwest::Method::PUT, "/admin/plugins/webhook")
            .body(body)
            .send()
    };
    assert_eq!(
        put(webhook_variant("x"), "wrong").await.unwrap().status(),
        401
    );

    let r = put(b"\0asm garbage".to_vec(), ADMIN_TOKEN).await.unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("not a valid destination component"),
        "{body}"
    );
    assert_eq!(
        host.admin().plugin("webhook").await["sha256"],
        original.as_str()
    );

    // A component of another world (the misbehaving guest refuses these settings in check).
    let other = std::fs::read(switchyard_e2e::test_guest("misbehave")).unwrap();
    let r = put(other, ADMIN_TOKEN).await.unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("settings refused"),
        "{body}"
    );

    let r = put(webhook_variant("v3"), ADMIN_TOKEN).await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let new_sha = body["sha256"].as_str().unwrap().to_string();
    assert_ne!(new_sha, original);
    assert_eq!(
        host.admin().plugin("webhook").await["sha256"],
        new_sha.as_str()
    );

    assert_eq!(
        host.send(
            "track",
            &serde_json::json!({"userId": "u", "event": "E", "messageId": "after-upload"})
        )
        .await
        .status(),
        200
    );
    eventually(
        Duration::from_secs(20),
        "delivery on the uploaded version",
        || {
            rx.delivered_ids()
                .contains(&"after-upload".to_string())
                .then_some(())
        },
    )
    .await;
    // The upload is persisted to the plugins directory, so a restart serves it.
    assert_eq!(
        std::fs::read(dir.path().join("plugins/webhook.wasm")).unwrap(),
        webhook_variant("v3")
    );
    host.stop().await;
}

#[tokio::test]
async fn a_restart_with_unchanged_plugins_loads_them_from_the_compiled_cache() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let host = TestHost::start_uncached(dir.path(), &webhook(&rx)).await;
    assert_eq!(
        host.admin().plugin("webhook").await["from_cache"],
        false,
        "first start compiles"
    );
    host.stop().await;
    let host = TestHost::start_uncached(dir.path(), &webhook(&rx)).await;
    assert_eq!(
        host.admin().plugin("webhook").await["from_cache"],
        true,
        "second start loads the cache"
    );
    assert!(!switchyard_e2e::logs::lines_with(&[
        "plugin loaded from the compiled cache",
        "webhook"
    ])
    .is_empty());
    assert_eq!(
        host.send(
            "track",
            &serde_json::json!({"userId": "u", "event": "E", "messageId": "cached"})
        )
        .await
        .status(),
        200
    );
    eventually(
        Duration::from_secs(20),
        "delivery from the cached component",
        || {
            rx.delivered_ids()
                .contains(&"cached".to_string())
                .then_some(())
        },
    )
    .await;
    host.stop().await;
}
