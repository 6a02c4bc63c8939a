//! Scenario 4.
//!
//! The seed's picture: one host with 140 destinations vs 140 destination services (one process
//! each, natively) behind a router.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_e2e::binary::wait_up;
use switchyard_e2e::{free_port, host::WRITE_KEY};

use crate::load::{open_loop, Target};
use crate::procs::{baseline, config, pss_kib, rss_kib, switchyard, webhooks, STARTUP};
use crate::receiver::Receiver;
use crate::{events, Scale};

const DESTINATIONS: usize = 140;
/// Offered load: requests of 10 events per second (each event fans out to all 140).
const OFFERED_RPS: f64 = 5.0;

/// Wait until `expected` deliveries arrived (or 60 s); returns how many, and when the last came.
async fn until_delivered(
    rx: &Receiver,
    before: u64,
    expected: u64,
    start: Instant,
) -> (u64, Duration) {
    let mut last = (rx.total() - before, start.elapsed());
    while last.0 < expected && start.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = rx.total() - before;
        if now != last.0 {
            last = (now, start.elapsed());
        }
    }
    last
}

pub async fn run(scale: Scale) -> anyhow::Result<Value> {
    // Switchyard: one process, 140 webhook destinations with different settings.
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let dests = webhooks(DESTINATIONS, &rx.origin());
    let text = config(dir.path(), port, &dests);
    let (host, cold) = switchyard(dir.path(), &text, port).await?;
    drop(host);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (host, warm) = switchyard(dir.path(), &text, port).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = host.rss_kib();
    let idle_pss = pss_kib(host.child.id());
    let target = Target::new(format!("http://127.0.0.1:{port}/v1/batch"), WRITE_KEY);
    let before = rx.total();
    let start = Instant::now();
    let load = open_loop(&target, OFFERED_RPS, scale.phase, || {
        events::batch("fleet", 10)
    })
    .await;
    let loaded_rss = host.rss_kib();
    let loaded_pss = pss_kib(host.child.id());
    let sy_expected = load.events * DESTINATIONS as u64;
    let (sy_delivered, sy_done) = until_delivered(&rx, before, sy_expected, start).await;
    let sy_rate = sy_delivered as f64 / sy_done.as_secs_f64();
    drop(host);

    // Baseline: 140 native destination services + a router, 141 processes.
    let brx = Receiver::start().await;
    let start = Instant::now();
    let mut services = Vec::new();
    for i in 0..DESTINATIONS {
        let p = free_port();
        services.push(baseline(
            &[
                "native-destination".into(),
                "--port".into(),
                p.to_string(),
                "--target".into(),
                format!("{}/n{i}", brx.origin()),
                "--secret".into(),
                format!("secret-{i}"),
            ],
            p,
        )?);
    }
    let rport = free_port();
    let ports: Vec<String> = services.iter().map(|s| s.port.to_string()).collect();
    let router = baseline(
        &[
            "router".into(),
            "--port".into(),
            rport.to_string(),
            "--services".into(),
            ports.join(","),
        ],
        rport,
    )?;
    for s in &services {
        wait_up(&format!("http://127.0.0.1:{}/healthz", s.port), STARTUP).await?;
    }
    wait_up(&format!("http://127.0.0.1:{rport}/healthz"), STARTUP).await?;
    let fleet_start = start.elapsed();
    let rss_of = |services: &[crate::procs::Proc]| {
        services.iter().map(|s| rss_kib(s.child.id())).sum::<u64>() + router.rss_kib()
    };
    // Summed RSS counts the pages the 141 processes share (the binary, libc) 141
    // times; PSS gives each process its share of them, so the sum counts them once.
    let pss_of = |services: &[crate::procs::Proc]| {
        services.iter().map(|s| pss_kib(s.child.id())).sum::<u64>() + pss_kib(router.child.id())
    };
    let fleet_idle_rss = rss_of(&services);
    let fleet_idle_pss = pss_of(&services);
    let btarget = Target::new(format!("http://127.0.0.1:{rport}/v1/batch"), WRITE_KEY);
    let start = Instant::now();
    let bload = open_loop(&btarget, OFFERED_RPS, scale.phase, || {
        events::batch("fleet", 10)
    })
    .await;
    let fleet_loaded_rss = rss_of(&services);
    let fleet_loaded_pss = pss_of(&services);
    let fleet_expected = bload.events * DESTINATIONS as u64;
    let (fleet_delivered, fleet_done) = until_delivered(&brx, 0, fleet_expected, start).await;
    let fleet_rate = fleet_delivered as f64 / fleet_done.as_secs_f64();
    drop(router);
    drop(services);

    println!(
        "fleet: switchyard {loaded_pss} KiB PSS ({loaded_rss} KiB RSS), start {cold:?} cold / {warm:?} cached, {sy_rate:.0} deliveries/s; 141 processes {fleet_loaded_pss} KiB PSS ({fleet_loaded_rss} KiB summed RSS), start {fleet_start:?}, {fleet_rate:.0} deliveries/s"
    );
    Ok(json!({
        "setup": format!("{DESTINATIONS} webhook destinations with different settings; offered load {OFFERED_RPS} requests/s of 10 events, each event going to every destination, for {:?}", scale.phase),
        "switchyard": {
            "processes": 1,
            "pss_kib_idle": idle_pss,
            "pss_kib_loaded": loaded_pss,
            "rss_kib_idle": idle_rss,
            "rss_kib_loaded": loaded_rss,
            "startup_ms_cold_compile": cold.as_millis(),
            "startup_ms_with_cache": warm.as_millis(),
            "deliveries_per_s": sy_rate.round(),
            "deliveries": sy_delivered,
            "expected_deliveries": sy_expected,
            "last_delivery_after_ms": sy_done.as_millis(),
            "ingest_errors": load.errors,
        },
        "microservices": {
            "processes": DESTINATIONS + 1,
            "pss_kib_idle": fleet_idle_pss,
            "pss_kib_loaded": fleet_loaded_pss,
            "rss_kib_idle_summed": fleet_idle_rss,
            "rss_kib_loaded_summed": fleet_loaded_rss,
            "startup_ms": fleet_start.as_millis(),
            "deliveries_per_s": fleet_rate.round(),
            "deliveries": fleet_delivered,
            "expected_deliveries": fleet_expected,
            "last_delivery_after_ms": fleet_done.as_millis(),
            "ingest_errors": bload.errors,
        },
        "ratio_pss_idle": ((idle_pss as f64 / fleet_idle_pss.max(1) as f64) * 1000.0).round() / 1000.0,
        "ratio_pss_loaded": ((loaded_pss as f64 / fleet_loaded_pss.max(1) as f64) * 1000.0).round() / 1000.0,
        "ratio_rss_loaded_summed": ((loaded_rss as f64 / fleet_loaded_rss.max(1) as f64) * 1000.0).round() / 1000.0,
    }))
}
