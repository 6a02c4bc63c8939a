//! The fault loops: faults under concurrent load, each counting the events lost
//! (must be none) and delivered twice (reported). `make test` runs their short
//! form; `make soak` (SWITCHYARD_SOAK=full) runs them at full length, and the
//! long soak that reports memory, store size and latency over time.
//! The full disk is in `tests/faults.rs`.

use std::process::Command;
use std::time::{Duration, Instant};

use switchyard_e2e::binary::{spawn, wait_healthy};
use switchyard_e2e::host::{config_text, config_text_nats};
use switchyard_e2e::nats::NatsServer;
use switchyard_e2e::proxy::Proxy;
use switchyard_e2e::soak::{cycles, full, quantile, tally, Load};
use switchyard_e2e::{webhook_destination, Receiver, TestHost};

/// A pseudo-random number in `0..n` (xorshift, seeded by the clock).
fn random(state: &mut u64, n: u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state % n
}

fn seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1
}

#[tokio::test]
async fn kill_9_at_random_moments_under_concurrent_load_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let (file, base) = switchyard_e2e::binary::write_config(
        dir.path(),
        &config_text(dir.path(), &webhook_destination("hooks", &rx, "")),
    );
    let mut child = spawn(&file);
    wait_healthy(&base).await;
    let load = Load::start(&base, 4, 10, Duration::from_millis(5), "k");
    let mut rng = seed();
    let n = cycles(3, 20);
    for _ in 0..n {
        tokio::time::sleep(Duration::from_millis(200 + random(&mut rng, 800))).await;
        Command::new("kill")
            .args(["-9", &child.id().to_string()])
            .status()
            .unwrap();
        let _ = child.wait();
        child = spawn(&file);
        wait_healthy(&base).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let acked = load.stop().await;
    let (lost, twice) = tally(&rx, &acked, Duration::from_secs(60)).await;
    eprintln!(
        "kill -9: {n} cycles, {} acknowledged, {lost} lost, {twice} delivered twice",
        acked.len()
    );
    let _ = child.kill();
    let _ = child.wait();
    assert!(acked.len() > 100, "the load got through between the kills");
    assert_eq!(lost, 0, "acknowledged events lost");
}

#[tokio::test]
async fn nats_restarted_cut_off_and_emptied_under_load_loses_nothing_acknowledged() {
    let mut server = NatsServer::start().await;
    let proxy = Proxy::start(server.port).await;
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let host = TestHost::start_config(
        dir.path(),
        &config_text_nats(
            dir.path(),
            &webhook_destination("hooks", &rx, ""),
            &proxy.url(),
        ),
    )
    .await;
    let base = host.url("");
    let mut acked_all = Vec::new();
    let mut report = Vec::new();
    for round in 0..cycles(1, 5) {
        // 1. The server stops and starts again (its data stays).
        let load = Load::start(
            &base,
            3,
            10,
            Duration::from_millis(10),
            &format!("s{round}-"),
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        server.stop();
        tokio::time::sleep(Duration::from_secs(2)).await;
        server.restart().await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // 2. The host is cut off from a running server, then mended.
        proxy.cut();
        tokio::time::sleep(Duration::from_secs(3)).await;
        proxy.mend();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let acked = load.stop().await;
        let (lost, twice) = tally(&rx, &acked, Duration::from_secs(60)).await;
        report.push(format!(
            "round {round}: restart and cut-off: {} acknowledged, {lost} lost, {twice} twice",
            acked.len()
        ));
        assert_eq!(lost, 0, "lost after a restart or a cut-off: {report:?}");
        acked_all.extend(acked);

        // 3. The stream is deleted by hand (what it held is gone, by the operator's
        //    act); the host makes it again and what it acknowledges after is kept.
        let client = async_nats::connect(server.url()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        js.delete_stream("SWITCHYARD_EVENTS").await.unwrap();
        let load = Load::start(
            &base,
            3,
            10,
            Duration::from_millis(10),
            &format!("d{round}-"),
        );
        let started = Instant::now();
        while load.acked.lock().unwrap().len() < 300 {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "ingest never came back after the stream was deleted"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let acked = load.stop().await;
        let (lost, twice) = tally(&rx, &acked, Duration::from_secs(60)).await;
        report.push(format!(
            "round {round}: stream deleted: back in {:?}, {} acknowledged after, {lost} lost, {twice} twice",
            started.elapsed(),
            acked.len()
        ));
        assert_eq!(lost, 0, "lost after the stream was made again: {report:?}");
    }
    for line in &report {
        eprintln!("nats faults: {line}");
    }
    host.stop().await;
}

/// RSS of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Bytes under `dir`.
fn size_of(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let path = e.path();
            total += if path.is_dir() {
                size_of(&path)
            } else {
                e.metadata().map(|m| m.len()).unwrap_or(0)
            };
        }
    }
    total
}

/// `make soak` only (SOAK_MINUTES, 30 by default): a steady load on the real
/// binary, one line a minute with RSS, the store's size and the ingest p99; at
/// the end nothing lost, and no growth beyond the store's retention (0: the log
/// is reclaimed as it is delivered).
#[tokio::test]
async fn a_long_soak_shows_no_growth() {
    if !full() {
        eprintln!("the long soak runs in `make soak`");
        return;
    }
    let minutes: u64 = std::env::var("SOAK_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(30);
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let (file, base) = switchyard_e2e::binary::write_config(
        dir.path(),
        &config_text(dir.path(), &webhook_destination("hooks", &rx, "")),
    );
    let mut child = spawn(&file);
    wait_healthy(&base).await;
    let pid = child.id();
    let load = Load::start(&base, 2, 20, Duration::from_millis(100), "soak");
    let mut samples = Vec::new();
    for minute in 1..=minutes {
        let before = load.latencies.lock().unwrap().len();
        tokio::time::sleep(Duration::from_secs(60)).await;
        let p99 = quantile(&load.latencies.lock().unwrap()[before..], 0.99);
        let (rss, store) = (rss_kib(pid), size_of(&dir.path().join("data")));
        eprintln!(
            "soak minute {minute}: rss {rss} KiB, store {} KiB, ingest p99 {p99:.1} ms, {} acknowledged",
            store / 1024,
            load.acked.lock().unwrap().len()
        );
        samples.push((rss, store));
        // Trim what the receiver keeps, so the test's own memory stays flat.
        let _ = rx.delivered_ids().len();
    }
    let acked = load.stop().await;
    let (lost, twice) = tally(&rx, &acked, Duration::from_secs(120)).await;
    eprintln!(
        "soak: {minutes} min, {} acknowledged, {lost} lost, {twice} delivered twice",
        acked.len()
    );
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(lost, 0);
    let third = (samples.len() / 3).max(1);
    let early = samples[..third].iter().map(|s| s.0).max().unwrap();
    let late = samples[samples.len() - third..]
        .iter()
        .map(|s| s.0)
        .max()
        .unwrap();
    assert!(
        late <= early * 3 / 2 + 20_480,
        "RSS grew: {early} KiB then {late} KiB"
    );
    let early = samples[..third].iter().map(|s| s.1).max().unwrap();
    let late = samples[samples.len() - third..]
        .iter()
        .map(|s| s.1)
        .max()
        .unwrap();
    assert!(
        late <= early * 2 + (32 << 20),
        "the store grew: {early} then {late} bytes"
    );
}
