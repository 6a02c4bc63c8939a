//! Faults a host meets on a bad day, each as a test that counts what was lost
//! and what was delivered twice: the disk filling up under delivery (here), and
//! the short forms of the fault loops of `make soak` (`tests/soak.rs`).
//!
//! The disk is a real tmpfs of a few MiB mounted for the test (the tests run as
//! root, as `make test` does: it installs packages with apt).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use switchyard_e2e::host::{config_for, install_plugins, TestHost};
use switchyard_e2e::{eventually, ids, sdk_batch, webhook_destination, Receiver, Reply};

/// A tmpfs of `mib` MiB at `at`, unmounted when dropped.
struct SmallDisk {
    at: PathBuf,
}

impl SmallDisk {
    fn mount(at: &Path, mib: u32) -> SmallDisk {
        std::fs::create_dir_all(at).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(at)
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "cannot mount a tmpfs at {} (the fault tests run as root)",
            at.display()
        );
        SmallDisk {
            at: at.to_path_buf(),
        }
    }

    /// Fill every free byte with `filler`, so that the next write fails with ENOSPC.
    fn fill(&self) -> PathBuf {
        use std::io::Write as _;
        let path = self.at.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        for _ in 0..64 {
            let _ = f.write_all(&block[..512]);
        }
        let _ = f.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

/// How often each id reached the receiver with a 2xx answer.
fn deliveries(rx: &Receiver) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for id in rx.delivered_ids() {
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}

#[tokio::test]
async fn a_full_disk_under_delivery_loses_nothing_and_leaves_nothing_stuck() {
    let dir = tempfile::tempdir().unwrap();
    install_plugins(dir.path());
    // The store alone on the small disk (the compiled-component cache of the
    // test hosts stays beside it, in `data/`).
    let disk = SmallDisk::mount(&dir.path().join("disk"), 24);
    let rx = Receiver::start().await;
    // Slow enough that batches are in flight when the disk fills.
    rx.default_reply(Reply::status(200).delayed(Duration::from_millis(300)));
    let extra = "concurrency = 4\nbatch = { max_events = 10, max_bytes = 512000, linger_ms = 0 }";
    let config = config_for(
        "127.0.0.1:0",
        &dir.path().join("disk"),
        &dir.path().join("plugins"),
        &webhook_destination("hooks", &rx, extra),
    );
    let host = TestHost::start_config(dir.path(), &config).await;

    let mut acked = Vec::new();
    for b in 0..10 {
        let prefix = format!("full{b}");
        let resp = host.send("batch", &sdk_batch(&prefix, 20)).await;
        assert_eq!(resp.status(), 200);
        acked.extend(ids(&prefix, 20));
    }
    // Batches are in flight: fill the disk, so their settles fail.
    eventually(Duration::from_secs(10), "a batch in flight", || {
        (!rx.received().is_empty()).then_some(())
    })
    .await;
    // The admin API shows the store's last answer about the queue while the
    // store cannot answer: ask once while it still can, as a dashboard would.
    let before = host.admin().destination("hooks").await;
    assert!(before["queued"].as_u64().unwrap() > 0, "{before}");
    let filler = disk.fill();

    // Ingest is refused while the disk is full, with a reason.
    let resp = host.send("batch", &sdk_batch("refused", 5)).await;
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    let body: serde_json::Value = resp.json().await.unwrap();
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains("full"), "{body}");
    assert_eq!(
        message.matches("unavailable").count(),
        1,
        "said twice: {message}"
    );
    // Not ready, and /readyz says why; alive all the same.
    let (status, ready) = host.admin().readyz().await;
    assert_eq!(status, 503);
    assert_eq!(ready["status"], "not ready", "{ready}");
    assert_eq!(ready["reasons"][0]["check"], "store", "{ready}");
    let why = ready["reasons"][0]["message"].as_str().unwrap_or_default();
    assert!(why.contains("full"), "{ready}");
    let alive = host.http.get(host.url("/healthz")).send().await.unwrap();
    assert_eq!(alive.status(), 200);

    // Longer than a batch used to retry its settle (5 attempts, 7.5 s in all).
    // (9 s: under the server's 10 s idle timeout, so the client's kept-alive
    // connection is still open.)
    tokio::time::sleep(Duration::from_secs(9)).await;
    // Meanwhile the events not yet settled are shown, as queued or in flight.
    let row = host.admin().destination("hooks").await;
    let shown = row["queued"].as_u64().unwrap() + row["in_flight"].as_u64().unwrap();
    assert!(shown > 0, "unsettled events are not shown: {row}");

    // Space returns: everything acknowledged arrives, without a restart.
    std::fs::remove_file(&filler).unwrap();
    eventually(
        Duration::from_secs(30),
        "every acknowledged event delivered and settled",
        || {
            let got = deliveries(&rx);
            acked.iter().all(|id| got.contains_key(id)).then_some(())
        },
    )
    .await;
    let start = std::time::Instant::now();
    loop {
        let row = host.admin().destination("hooks").await;
        if row["queued"] == 0 && row["in_flight"] == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "still queued or in flight 30 s after space returned: {row}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Ready again once a commit succeeded.
    let ready = host.http.get(host.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "{:?}", ready.text().await);
    let got = deliveries(&rx);
    let duplicates: usize = acked.iter().map(|id| got[id] - 1).sum();
    eprintln!(
        "disk full: {} acknowledged, 0 lost, {duplicates} delivered twice",
        acked.len()
    );
    // The batches in flight keep their leases through the failed commits, and
    // what settled ahead of the cursor is remembered: nothing is sent twice.
    assert_eq!(duplicates, 0, "events delivered twice after a full disk");
    host.stop().await;
    drop(disk);
}
