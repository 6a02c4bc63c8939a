//! Deletion: a user's events sit in every place the host keeps them (the
//! retained log, a retry, a dead letter, the source and delivery debuggers),
//! and after `DELETE` no byte of them is left in the store's files, the NATS
//! server's files or the admin API's answers, while the other users' events
//! are delivered once. A kill -9 in the middle of a deletion: the restarted
//! host finishes it, and loses nothing else.

use std::time::Duration;

use serde_json::{json, Value};

use super::*;
use switchyard_e2e::admin::Row;
use switchyard_e2e::binary::{run_command, wait_healthy, write_config};
use switchyard_e2e::host::{config_text, config_text_nats, ADMIN_TOKEN, WRITE_KEY};
use switchyard_e2e::nats::NatsServer;
use switchyard_e2e::{
    all_arrive, eventually_async, switchyard_bin, webhook_table, Receiver, Reply, TestHost,
};

/// A webhook whose retries wait a minute: a refused event stays a retry row.
fn slow_retry_webhook(rx: &Receiver) -> String {
    webhook_table(
        "hook",
        &rx.url("/hook"),
        &rx.origin(),
        "retry = { initial_ms = 60000, max_ms = 60000, window = \"1h\" }",
    )
}

/// The store keeps delivered events for an hour (the retained log, which a
/// backfill reads).
fn retained(config: String) -> String {
    config.replacen("[store]\n", "[store]\nretention = \"1h\"\n", 1)
}

/// Regulation `id` once it is no longer `pending` (at most 30 s).
async fn until_done(host: &TestHost, id: &str) -> Value {
    host.admin()
        .regulation_ended(id, Duration::from_secs(30))
        .await
}

/// The admin API's answers that show events.
async fn admin_answers(host: &TestHost) -> String {
    let admin = host.admin();
    let mut all = String::new();
    for path in [
        "/admin/sources/test/events",
        "/admin/destinations/hook/attempts",
        "/admin/destinations/hook/dead-letters",
        "/admin/regulations",
    ] {
        all.push_str(&admin.get(path).await.to_string());
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_users_events_leave_no_byte_anywhere_and_others_are_delivered_once() {
    for nats in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let server = NatsServer::start_in(dir.path().join("nats")).await;
        let rx = Receiver::start().await;
        let destinations = slow_retry_webhook(&rx);
        let config = retained(if nats {
            config_text_nats(dir.path(), &destinations, &server.url())
        } else {
            config_text(dir.path(), &destinations)
        });
        let host = TestHost::start_config(dir.path(), &config).await;
        let p = if nats { "n" } else { "e" };
        let admin = host.admin();

        // Alice's first event is refused for good (a dead letter), her second
        // for now (a retry a minute away), her third waits in the log.
        rx.script(vec![Reply::status(400).body(r#"{"error":"bad"}"#)]);
        send(&host, vec![track(&format!("{p}-a1"), ("userId", ALICE))]).await;
        eventually_async(Duration::from_secs(20), "a dead letter", || async {
            let dead = admin.get("/admin/destinations/hook/dead-letters").await;
            (dead.as_array().map(Vec::len) == Some(1)).then_some(())
        })
        .await;
        rx.script(vec![Reply::status(503)]);
        send(&host, vec![track(&format!("{p}-a2"), ("userId", ALICE))]).await;
        admin
            .wait(
                Row::Destination("hook"),
                "a retry waiting",
                Duration::from_secs(20),
                |r| r["retrying"] == 1,
            )
            .await;
        assert!(admin
            .post("/admin/destinations/hook/pause")
            .await
            .status()
            .is_success());
        send(
            &host,
            vec![
                track(&format!("{p}-a3"), ("userId", ALICE)),
                track(&format!("{p}-b1"), ("userId", "bob")),
                json!({"type": "identify", "userId": ALICE, "messageId": format!("{p}-a4"),
                    "traits": {"name": "Alice Secret-Trait"}}),
            ],
        )
        .await;
        // The positive controls: her events are in the files and the answers.
        eventually_async(Duration::from_secs(10), "alice in the files", || async {
            (!files_holding(dir.path(), b"Secret-Trait").is_empty()).then_some(())
        })
        .await;
        let before = admin_answers(&host).await;
        assert!(before.contains(ALICE), "{before}");

        let (status, record) = regulate(
            &host,
            &json!({"type": "DELETE", "subjects": {"userId": [ALICE]}}),
        )
        .await;
        assert_eq!(status, 201, "{record}");
        assert_eq!(record["state"], "pending");
        let done = until_done(&host, record["id"].as_str().unwrap()).await;
        assert_eq!(done["state"], "done", "{done}");
        let progress = &done["progress"];
        assert_eq!(progress["erased"]["log"], 4, "{done}");
        assert_eq!(progress["erased"]["dead_letters"], 1, "{done}");
        // On NATS a retry is the stream's own message, erased with the log.
        assert_eq!(
            progress["erased"]["retries"],
            if nats { 0 } else { 1 },
            "{done}"
        );
        assert_eq!(progress["memory"]["source_debugger"], 4, "{done}");
        assert_eq!(progress["destinations"]["hook"]["state"], "not_supported");

        // Nothing of hers is left in any file of the store or the NATS
        // server, nor in what the admin API shows; bob's event is there.
        for needle in [ALICE, "Secret-Trait"] {
            let found = files_holding(dir.path(), needle.as_bytes());
            assert!(found.is_empty(), "{needle} is in {found:?} (nats: {nats})");
        }
        let after = admin_answers(&host).await;
        assert!(!after.contains(ALICE), "{after}");
        assert!(!files_holding(dir.path(), b"from bob").is_empty());

        // Bob's event is delivered once; none of hers, not even the retry.
        assert!(admin
            .post("/admin/destinations/hook/resume")
            .await
            .status()
            .is_success());
        if !nats {
            // (On NATS a retry waits out its delay; the erased one is gone.)
            let now = admin.post("/admin/destinations/hook/retry-now").await;
            assert!(now.status().is_success());
        }
        all_arrive(&rx, &[format!("{p}-b1")]).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let delivered = rx.delivered_ids();
        assert_eq!(delivered, [format!("{p}-b1")], "(nats: {nats})");

        // A backfill from the retained log brings bob's event again, and
        // none of hers.
        let resp = admin
            .post("/admin/destinations/hook/backfill?since=0")
            .await;
        assert_eq!(resp.status(), 200);
        all_arrive(&rx, &[format!("{p}-b1")]).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            rx.delivered_ids().iter().all(|id| id == &format!("{p}-b1")),
            "{:?}",
            rx.delivered_ids()
        );
        host.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_in_the_middle_of_a_deletion_is_finished_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let destinations = webhook_table("hook", &rx.url("/hook"), &rx.origin(), "");
    let (file, base) = write_config(
        dir.path(),
        &retained(config_text(dir.path(), &destinations)),
    );
    let log = dir.path().join("host.log");
    let spawn = || {
        run_command(&switchyard_bin(), &file)
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap()
    };
    let mut child = spawn();
    wait_healthy(&base).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let admin = |path: &str| {
        client
            .post(format!("{base}{path}"))
            .bearer_auth(ADMIN_TOKEN)
    };
    assert!(admin("/admin/destinations/hook/pause")
        .send()
        .await
        .unwrap()
        .status()
        .is_success());
    // 1,000 requests of 100 events: 99 of alice's and one of another user's.
    let mut others = Vec::new();
    for i in 0..1_000 {
        let mut batch: Vec<Value> = (0..99)
            .map(|j| track(&format!("a{i}-{j}"), ("userId", ALICE)))
            .collect();
        let other = format!("o{i}");
        batch.push(track(&other, ("userId", &format!("user-{i}"))));
        others.push(other);
        let resp = client
            .post(format!("{base}/v1/batch"))
            .basic_auth(WRITE_KEY, Some(""))
            .json(&json!({ "batch": batch }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let resp = admin("/admin/regulations")
        .json(&json!({"type": "SUPPRESS_WITH_DELETE", "subjects": {"userId": [ALICE]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    child.kill().unwrap();
    let _ = child.wait();

    let mut child = spawn();
    wait_healthy(&base).await;
    let shown = eventually_async(Duration::from_secs(60), "the deletion done", || async {
        let r: Value = client
            .get(format!("{base}/admin/regulations/{id}"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (r["state"] == "done").then_some(r)
    })
    .await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("going on with a deletion"),
        "the restarted host went on with the deletion: {text}"
    );
    assert_eq!(shown["progress"]["erased"]["log"], 1_000 * 99, "{shown}");
    // Nothing else was lost: every other user's event arrives, none of hers.
    assert!(admin("/admin/destinations/hook/resume")
        .send()
        .await
        .unwrap()
        .status()
        .is_success());
    all_arrive(&rx, &others).await;
    assert!(
        !rx.delivered_ids().iter().any(|id| id.starts_with('a')),
        "none of the deleted events was delivered"
    );
    child.kill().unwrap();
    let _ = child.wait();
    assert!(files_holding(&dir.path().join("data"), ALICE.as_bytes()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_is_forwarded_to_a_destination_that_deletes_retried_after_a_429() {
    let dir = tempfile::tempdir().unwrap();
    let vendor = Receiver::start().await;
    let hooks = Receiver::start().await;
    let destinations = format!(
        r#"
[[destinations]]
name = "mixpanel"
plugin = "mixpanel"
allowed_hosts = ["{origin}"]
retry = {{ initial_ms = 20, max_ms = 200, window = "1m" }}
settings = {{ endpoint = "{origin}", gdpr_endpoint = "{origin}", api_secret = "s", token = "tok", gdpr_api_token = "gdpr-oauth" }}
{webhook}"#,
        origin = vendor.origin(),
        webhook = webhook_table("hook", &hooks.url("/hook"), &hooks.origin(), ""),
    );
    let host = TestHost::start_config(dir.path(), &config_text(dir.path(), &destinations)).await;
    // Mixpanel's GDPR API is rate limited: the first answer is a 429.
    vendor.script(vec![Reply::status(429).header("retry-after", "1")]);
    let (status, record) = regulate(
        &host,
        &json!({"type": "DELETE", "subjects": {"userId": [ALICE], "anonymousId": [ANON_BOB]}}),
    )
    .await;
    assert_eq!(status, 201, "{record}");
    let done = until_done(&host, record["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "done", "{done}");
    let forwarded = &done["progress"]["destinations"];
    assert_eq!(forwarded["mixpanel"]["state"], "done", "{done}");
    assert_eq!(forwarded["hook"]["state"], "not_supported", "{done}");
    let asked = vendor.received();
    assert_eq!(asked.len(), 2, "the 429, then the request taken");
    assert!(
        asked[1].at >= asked[0].at + Duration::from_millis(900),
        "the vendor's Retry-After was honoured"
    );
    for r in &asked {
        assert_eq!(r.uri, "/api/app/data-deletions/v3.0/?token=tok");
        assert_eq!(r.headers["authorization"], "Bearer gdpr-oauth");
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            body,
            json!({"distinct_ids": [ALICE, format!("$device:{ANON_BOB}")], "compliance_type": "GDPR"})
        );
    }
    assert!(hooks.received().is_empty());
    // The ids in the clear were kept only until every destination answered.
    for needle in [ALICE, ANON_BOB] {
        let found = files_holding(dir.path(), needle.as_bytes());
        assert!(found.is_empty(), "{needle} is in {found:?}");
    }
    let shown = host
        .admin()
        .get(&format!(
            "/admin/regulations/{}",
            record["id"].as_str().unwrap()
        ))
        .await;
    assert!(!shown.to_string().contains(ALICE), "{shown}");
    host.stop().await;
}
