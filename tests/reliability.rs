//! The real binary: kill -9 under load, SIGTERM, and `switchyard dlq` against a
//! running host and a stopped host's store.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use switchyard_e2e::admin::Row;
use switchyard_e2e::binary::{spawn, wait_healthy};
use switchyard_e2e::host::{config_text, ADMIN_TOKEN, WRITE_KEY};
use switchyard_e2e::{
    eventually, sdk_batch, switchyard_bin, webhook_destination, Admin, Receiver, Reply,
};

/// The binary's config: one webhook destination `hooks` to `rx`.
fn write_config(dir: &std::path::Path, rx: &Receiver) -> (std::path::PathBuf, String) {
    switchyard_e2e::binary::write_config(
        dir,
        &config_text(dir, &webhook_destination("hooks", rx, "")),
    )
}

#[tokio::test]
async fn kill_9_mid_stream_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let (file, base) = write_config(dir.path(), &rx);
    let mut child = spawn(&file);
    wait_healthy(&base).await;

    let client = reqwest::Client::new();
    let mut acked: Vec<String> = Vec::new();
    let mut killed = false;
    for i in 0..60 {
        if i == 30 {
            Command::new("kill")
                .args(["-9", &child.id().to_string()])
                .status()
                .unwrap();
            killed = true;
        }
        let body = sdk_batch(&format!("k{i}"), 20);
        let resp = client
            .post(format!("{base}/v1/batch"))
            .basic_auth(WRITE_KEY, Some(""))
            .json(&body)
            .send()
            .await;
        if let Ok(r) = resp {
            if r.status() == 200 {
                acked.extend((0..20).map(|j| format!("k{i}-{j}")));
            }
        }
    }
    assert!(killed);
    let _ = child.wait();
    assert!(acked.len() >= 600, "the first 30 batches were acknowledged");

    let mut child = spawn(&file);
    wait_healthy(&base).await;
    eventually(
        Duration::from_secs(30),
        "every acknowledged event after the restart",
        || {
            let got = rx.delivered_ids();
            acked.iter().all(|id| got.contains(id)).then_some(())
        },
    )
    .await;
    child.kill().unwrap();
    let _ = child.wait();
}

#[tokio::test]
async fn sigterm_stops_the_host_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let (file, base) = write_config(dir.path(), &rx);
    let mut child = spawn(&file);
    wait_healthy(&base).await;
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn dlq(file: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(switchyard_bin())
        .arg("dlq")
        .args(args)
        .arg("--config")
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dlq {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn rejected_events_are_dead_lettered_and_dlq_replay_delivers_them() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    rx.default_reply(Reply::status(400).body("{\"error\":\"schema mismatch\"}"));
    let (file, base) = write_config(dir.path(), &rx);
    let mut child = spawn(&file);
    wait_healthy(&base).await;
    let client = reqwest::Client::new();
    let admin = Admin::new(base.as_str(), ADMIN_TOKEN);
    // Two rounds, so that the two halves are dead-lettered at different times.
    for i in 0..2u64 {
        let r = client
            .post(format!("{base}/v1/batch"))
            .basic_auth(WRITE_KEY, Some(""))
            .json(&sdk_batch(&format!("dl{i}"), 10))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let start = std::time::Instant::now();
        loop {
            let d = admin.destinations().await;
            if d[0]["dead_letters"] == 10 * (i + 1) {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "{d}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Through the running host's admin API.
    let listed: Vec<Value> =
        serde_json::from_str(&dlq(&file, &["list", "--destination", "hooks", "--json"])).unwrap();
    assert_eq!(listed.len(), 20);
    for d in &listed {
        assert!(d["reason"].as_str().unwrap().contains("400"), "{d}");
        assert!(
            d["reason"].as_str().unwrap().contains("schema mismatch"),
            "{d}"
        );
        assert_eq!(d["attempts"], 1);
        assert!(d["messageId"].as_str().unwrap().starts_with("dl"));
    }
    let none: Vec<Value> = serde_json::from_str(&dlq(
        &file,
        &["list", "--destination", "hooks", "--json", "--until", "1h"],
    ))
    .unwrap();
    assert!(
        none.is_empty(),
        "nothing was dead-lettered more than an hour ago"
    );

    // Fixed receiver: replay half through the running host...
    rx.default_reply(Reply::status(200));
    let id_of = |d: &Value| d["messageId"].as_str().unwrap().to_string();
    let first: Vec<String> = listed
        .iter()
        .map(id_of)
        .filter(|id| id.starts_with("dl0-"))
        .collect();
    assert_eq!(first.len(), 10);
    let cut = listed
        .iter()
        .find(|d| id_of(d).starts_with("dl1-"))
        .unwrap()["deadAt"]
        .as_str()
        .unwrap()
        .to_string();
    let out = dlq(
        &file,
        &["replay", "--destination", "hooks", "--until", &cut],
    );
    assert!(out.contains("replayed"), "{out}");
    eventually(Duration::from_secs(20), "the replayed half", || {
        let got = rx.delivered_ids();
        first.iter().all(|id| got.contains(id)).then_some(())
    })
    .await;

    // ...and the rest on the stopped host's store, delivered after the restart.
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let _ = child.wait();
    let out = dlq(&file, &["replay", "--destination", "hooks"]);
    assert!(out.contains("replayed"), "{out}");
    let listed_after: Vec<Value> =
        serde_json::from_str(&dlq(&file, &["list", "--destination", "hooks", "--json"])).unwrap();
    assert!(listed_after.is_empty(), "{listed_after:?}");
    let mut child = spawn(&file);
    wait_healthy(&base).await;
    let all: Vec<String> = listed
        .iter()
        .map(|d| d["messageId"].as_str().unwrap().to_string())
        .collect();
    eventually(
        Duration::from_secs(20),
        "every dead letter delivered after replay",
        || {
            let got = rx.delivered_ids();
            all.iter().all(|id| got.contains(id)).then_some(())
        },
    )
    .await;
    child.kill().unwrap();
    let _ = child.wait();
}

#[tokio::test]
async fn dead_letters_are_listed_page_by_page_and_purged_by_the_admin_api_and_dlq_purge() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    rx.default_reply(Reply::status(400).body("{\"error\":\"schema mismatch\"}"));
    let (file, base) = write_config(dir.path(), &rx);
    let mut child = spawn(&file);
    wait_healthy(&base).await;
    let admin = Admin::new(base.as_str(), ADMIN_TOKEN);
    let r = reqwest::Client::new()
        .post(format!("{base}/v1/batch"))
        .basic_auth(WRITE_KEY, Some(""))
        .json(&sdk_batch("pg", 12))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    admin
        .wait(
            Row::Destination("hooks"),
            "12 dead letters",
            Duration::from_secs(20),
            |d| d["dead_letters"] == 12,
        )
        .await;

    // Pages of five: 5, 5, 2; each full page names where the next starts.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = "/admin/destinations/hooks/dead-letters?limit=5".to_string();
        if let Some(a) = &after {
            path.push_str(&format!("&after={a}"));
        }
        let resp = admin
            .request(reqwest::Method::GET, &path)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let next = resp
            .headers()
            .get("x-next-after")
            .map(|v| v.to_str().unwrap().to_string());
        let page: Vec<Value> = resp.json().await.unwrap();
        pages += 1;
        seen.extend(
            page.iter()
                .map(|d| d["messageId"].as_str().unwrap().to_string()),
        );
        match next {
            Some(n) => {
                assert_eq!(page.len(), 5);
                after = Some(n);
            }
            None => {
                assert_eq!(page.len(), 2);
                break;
            }
        }
    }
    assert_eq!(pages, 3);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 12);
    let bad = admin
        .request(
            reqwest::Method::GET,
            "/admin/destinations/hooks/dead-letters?limit=many",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("limit"),
        "{body}"
    );

    // A range with nothing in it purges nothing; `dlq purge` the rest.
    let none = admin
        .request(
            reqwest::Method::DELETE,
            "/admin/destinations/hooks/dead-letters?until=1000",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 200);
    let body: Value = none.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"success": true, "purged": 0}));
    let out = dlq(&file, &["purge", "--destination", "hooks", "--since", "1h"]);
    assert!(out.contains("purged 12"), "{out}");
    let listed: Vec<Value> =
        serde_json::from_str(&dlq(&file, &["list", "--destination", "hooks", "--json"])).unwrap();
    assert!(listed.is_empty(), "{listed:?}");
    assert_eq!(admin.destinations().await[0]["dead_letters"], 0);
    child.kill().unwrap();
    let _ = child.wait();
}
