//! The real binary: kill -9 under load, SIGTERM, and `switchyard dlq` against a
//! running host and a stopped host's store.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
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
