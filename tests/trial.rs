//! Versions on trial and recordings (the book, `operating/reload.md`):
//! a shadow version finds differences with the serving one and none after a
//! fix, never reaching the network; a failing canary is rolled back by itself
//! with nothing lost; a recording replayed against a changed plugin exits
//! non-zero with the difference, and against the recorded one passes.

use std::time::Duration;

use serde_json::Value;
use switchyard_e2e::host::{config_for, TestHost};
use switchyard_e2e::receiver::{Receiver, Reply};
use switchyard_e2e::{
    destination_component, sdk_batch, test_guest, webhook_destination, with_custom_section,
};

/// A credential the tests look for in what the host shows and records.
const KEY: &str = "k-s3cret-2468";

/// The webhook `name` to `rx`, signed, with an API key header.
fn keyed_webhook(name: &str, rx: &Receiver) -> String {
    webhook_destination(name, rx, "").replace(
        "secret = \"s3cret\" }",
        &format!("secret = \"s3cret\", headers = {{ x-api-key = \"{KEY}\" }} }}"),
    )
}

/// `n` events, each of a user of its own (`<prefix>-<i>`), as an SDK sends them.
fn batch_of_users(prefix: &str, n: usize) -> Value {
    let mut batch = sdk_batch(prefix, n);
    for (i, e) in batch["batch"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .enumerate()
    {
        e["userId"] = Value::String(format!("{prefix}-u{i}"));
    }
    batch
}

/// Three SDK batches of 5 events (`<tag>0-0` ...) sent to `host`; their ids.
async fn send_batches(host: &TestHost, tag: &str) -> Vec<String> {
    let mut sent = Vec::new();
    for i in 0..3 {
        let prefix = format!("{tag}{i}");
        assert_eq!(
            host.send("batch", &sdk_batch(&prefix, 5)).await.status(),
            200
        );
        sent.extend(switchyard_e2e::ids(&prefix, 5));
    }
    sent
}

async fn stage(host: &TestHost, query: &str, bytes: Vec<u8>) -> (u16, Value) {
    let resp = host
        .admin()
        .request(
            reqwest::Method::PUT,
            &format!("/admin/plugins/webhook?{query}"),
        )
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Poll `GET /admin/plugins/webhook/trial` until `check` holds (at most 20 s).
async fn trial_until(host: &TestHost, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let start = std::time::Instant::now();
    loop {
        let view = host.admin().get("/admin/plugins/webhook/trial").await;
        if check(&view) {
            return view;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}: {view}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn webhook_bytes() -> Vec<u8> {
    std::fs::read(destination_component("webhook")).unwrap()
}

#[tokio::test]
async fn a_shadow_finds_differences_then_none_after_a_fix_and_never_reaches_the_network() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let host = TestHost::start(dir.path(), &keyed_webhook("wh", &rx)).await;

    // Refused: a trial parameter without a stage, an unknown stage, a canary without percent.
    let drift = std::fs::read(test_guest("drift")).unwrap();
    for bad in [
        "percent=10",
        "stage=mirror",
        "stage=canary",
        "stage=shadow&percent=5",
    ] {
        let (status, body) = stage(&host, bad, drift.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["message"].as_str().unwrap().contains('`'), "{body}");
    }

    // The new version "with a bug": the webhook's settings, another request.
    let (status, body) = stage(&host, "stage=shadow", drift).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["stage"], "shadow");
    let row = host.admin().plugin("webhook").await;
    assert_eq!(row["trial"]["stage"], "shadow", "{row}");

    let sent = send_batches(&host, "s").await;
    switchyard_e2e::all_arrive(&rx, &sent).await;
    let view = trial_until(&host, "differences", |v| {
        v["trial"]["shadow"]["compared"].as_u64() >= Some(1)
            && v["trial"]["shadow"]["compared"] == v["trial"]["shadow"]["differed"]
            && v["trial"]["shadow"]["differed"].as_u64() >= Some(1)
    })
    .await;
    let shadow = &view["trial"]["shadow"];
    let first = &shadow["differences"][0];
    assert_eq!(first["destination"], "wh", "{view}");
    let whats: Vec<&str> = first["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["what"].as_str().unwrap())
        .collect();
    assert!(
        whats.contains(&"request 1 body at /") && whats.contains(&"request 1 headers"),
        "{whats:?}"
    );
    assert!(
        !view.to_string().contains("s3cret"),
        "a credential shown: {view}"
    );
    // The shadow's requests were answered by the host: the receiver saw only the webhook's.
    assert!(
        rx.received()
            .iter()
            .all(|r| !r.headers.contains_key("x-drift")),
        "a shadow request reached the network"
    );

    // The fix: the same code as the serving version (other bytes). A new trial replaces the old.
    let fixed = with_custom_section(webhook_bytes(), "the-fix");
    let (status, body) = stage(&host, "stage=shadow", fixed).await;
    assert_eq!(status, 200, "{body}");
    let fixed_sha = body["sha256"].as_str().unwrap().to_string();
    let more = send_batches(&host, "f").await;
    switchyard_e2e::all_arrive(&rx, &more).await;
    let view = trial_until(&host, "comparisons of the fix", |v| {
        v["trial"]["shadow"]["compared"].as_u64() >= Some(1)
            && v["trial"]["sha256"] == fixed_sha.as_str()
    })
    .await;
    let shadow = &view["trial"]["shadow"];
    assert_eq!(shadow["differed"], 0, "{view}");
    assert_eq!(shadow["matched"], shadow["compared"], "{view}");
    assert_eq!(view["ended"]["ending"], "discarded", "{view}");

    // Promoted by hand: it serves, and is written to the plugins directory.
    let resp = host.admin().post("/admin/plugins/webhook/promote").await;
    assert_eq!(resp.status(), 200);
    let row = host.admin().plugin("webhook").await;
    assert_eq!(row["sha256"], fixed_sha.as_str(), "{row}");
    assert!(row["trial"].is_null(), "{row}");
    assert_eq!(row["trial_ended"]["ending"], "promoted", "{row}");
    let on_disk = std::fs::read(dir.path().join("plugins/webhook.wasm")).unwrap();
    assert_eq!(on_disk, with_custom_section(webhook_bytes(), "the-fix"));
    // Nothing left to promote or discard.
    let resp = host.admin().post("/admin/plugins/webhook/discard").await;
    assert_eq!(resp.status(), 404);
    host.stop().await;
}

#[tokio::test]
async fn a_failing_canary_is_rolled_back_by_itself_and_its_events_are_delivered_by_the_serving_version(
) {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    // The vendor refuses what the new version sends, for good (a 400: the canary rejects).
    rx.reply_to_header("x-drift", Reply::status(400));
    let host = TestHost::start(dir.path(), &webhook_destination("wh", &rx, "")).await;
    let serving = host.admin().plugin("webhook").await["sha256"].clone();

    let drift = std::fs::read(test_guest("drift")).unwrap();
    let (status, body) = stage(
        &host,
        "stage=canary&percent=50&min_events=10&margin=0.1",
        drift,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["percent"], 50);

    let mut sent = Vec::new();
    for i in 0..8 {
        let prefix = format!("c{i}");
        assert_eq!(
            host.send("batch", &batch_of_users(&prefix, 10))
                .await
                .status(),
            200
        );
        sent.extend(switchyard_e2e::ids(&prefix, 10));
    }
    let view = trial_until(&host, "the rollback", |v| {
        v["trial"].is_null() && v["ended"]["ending"] == "rolled_back"
    })
    .await;
    let reason = view["ended"]["reason"].as_str().unwrap();
    assert!(reason.contains("canary failed"), "{view}");
    let canary = &view["ended"]["trial"]["canary"];
    assert!(canary["events"].as_u64() >= Some(10), "{view}");
    assert!(canary["failure_rate"].as_f64() > Some(0.5), "{view}");
    assert_eq!(canary["serving_failed"], 0, "{view}");
    // The canary really delivered (and failed) for its users.
    assert!(rx
        .received()
        .iter()
        .any(|r| r.headers.contains_key("x-drift")));

    // Every event reaches the vendor through the serving version, exactly once.
    switchyard_e2e::all_arrive_within(&rx, &sent, Duration::from_secs(30)).await;
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for id in rx.delivered_ids() {
        *seen.entry(id).or_default() += 1;
    }
    assert!(seen.values().all(|n| *n == 1), "an event delivered twice");
    assert_eq!(host.admin().plugin("webhook").await["sha256"], serving);
    // The canary's rejections were not final: nothing was dead-lettered, and the
    // destination's breaker never saw the canary's failures.
    let row = host.admin().destination("wh").await;
    assert_eq!(row["dead_letters"], 0, "{row}");
    assert_eq!(row["health"], "healthy", "{row}");
    host.stop().await;
}

#[tokio::test]
async fn a_recording_replayed_against_a_changed_plugin_exits_non_zero_with_the_difference() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    rx.default_reply(Reply::status(200).body(r#"{"ok":true}"#));
    let destinations = keyed_webhook("wh", &rx);
    let host = TestHost::start(dir.path(), &destinations).await;
    // `switchyard record` finds the host through a config file naming its address.
    let cli_config = dir.path().join("cli.toml");
    let text = config_for(
        &host.addr.to_string(),
        &dir.path().join("data"),
        &dir.path().join("plugins"),
        &destinations,
    );
    std::fs::write(&cli_config, text).unwrap();
    let out = dir.path().join("wh.recording.json");
    let bin = switchyard_e2e::switchyard_bin();
    let record = tokio::process::Command::new(&bin)
        .args([
            "record",
            "--destination",
            "wh",
            "--count",
            "3",
            "--timeout",
            "20s",
        ])
        .arg("--out")
        .arg(&out)
        .arg("--config")
        .arg(&cli_config)
        .output();
    let send = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        for i in 0..3 {
            let prefix = format!("r{i}");
            assert_eq!(
                host.send("batch", &sdk_batch(&prefix, 4)).await.status(),
                200
            );
            switchyard_e2e::all_arrive(&rx, &switchyard_e2e::ids(&prefix, 4)).await;
        }
    };
    let (recorded, ()) = tokio::join!(record, send);
    let recorded = recorded.unwrap();
    let stdout = String::from_utf8_lossy(&recorded.stdout);
    assert!(
        recorded.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&recorded.stderr)
    );
    assert!(stdout.contains("recorded 3 deliveries"), "{stdout}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        !text.contains("s3cret"),
        "the webhook's secret was recorded"
    );
    let file: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(file["settings"]["secret"], "[redacted]");
    let first = &file["deliveries"][0];
    assert_eq!(first["requests"][0]["method"], "POST", "{first}");
    assert_eq!(first["requests"][0]["response"]["body"], r#"{"ok":true}"#);
    assert_eq!(first["outcomes"][0]["outcome"], "delivered");
    host.stop().await;

    // The recorded version replays clean: exit 0.
    let replay = |plugin: std::path::PathBuf| {
        let (bin, out) = (bin.clone(), out.clone());
        async move {
            tokio::process::Command::new(bin)
                .arg("replay")
                .arg(out)
                .arg("--plugin")
                .arg(plugin)
                .output()
                .await
                .unwrap()
        }
    };
    let same = replay(destination_component("webhook")).await;
    let said = String::from_utf8_lossy(&same.stdout);
    assert!(
        same.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&same.stderr)
    );
    assert!(said.contains("no differences"), "{said}");

    // A changed plugin: exit 1, the difference printed, nothing sent anywhere.
    let before = rx.received().len();
    let changed = replay(test_guest("drift")).await;
    let said = String::from_utf8_lossy(&changed.stdout);
    assert_eq!(changed.status.code(), Some(1), "{said}");
    assert!(
        said.contains("request 1 body") && said.contains("3 of 3 deliveries differ"),
        "{said}"
    );
    assert!(said.contains(r#"{"events":["#), "{said}");
    assert_eq!(rx.received().len(), before);

    // A file that is not a recording: the file and line named.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\n  \"format\": 1,\n  \"nope\": true\n}\n").unwrap();
    let refused = tokio::process::Command::new(&bin)
        .arg("replay")
        .arg(&bad)
        .arg("--plugin")
        .arg(destination_component("webhook"))
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(err.contains("bad.json:3:"), "{err}");
}
