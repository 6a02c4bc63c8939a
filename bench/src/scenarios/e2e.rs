//! Scenario 3.
//!
//! End to end: sustained events/s from ingest to a loopback receiver through one webhook
//! destination, and latency from the 200 to receipt against load.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use switchyard_e2e::{free_port, host::WRITE_KEY, webhook_table};

use crate::load::{closed_loop, open_loop, percentile, LoadResult, Target};
use crate::procs::{config, switchyard};
use crate::receiver::Receiver;
use crate::{events, Scale};

/// Latency (ms) of every acknowledged event that arrived: receipt − 200.
pub fn latencies(rx: &Receiver, load: &LoadResult) -> (Vec<u64>, usize) {
    let mut lat = Vec::with_capacity(load.acked.len());
    let mut lost = 0;
    for (id, acked) in &load.acked {
        match rx.arrival(id) {
            Some(at) => lat.push(at.saturating_duration_since(*acked).as_micros() as u64),
            None => lost += 1,
        }
    }
    (lat, lost)
}

pub async fn run(scale: Scale, out: &Path) -> anyhow::Result<Value> {
    let dir = tempfile::tempdir()?;
    let rx = Receiver::start().await;
    let port = free_port();
    let extra = "batch = { max_events = 500, max_bytes = 1000000, linger_ms = 20 }";
    let dest = webhook_table("e2e", &format!("{}/e2e", rx.origin()), &rx.origin(), extra);
    let (_host, _) = switchyard(dir.path(), &config(dir.path(), port, &dest), port).await?;
    let target = Target::new(format!("http://127.0.0.1:{port}/v1/batch"), WRITE_KEY);

    // Sustained: as fast as ingest answers; count what the receiver gets in the window.
    let before = rx.total();
    let start = std::time::Instant::now();
    let load = closed_loop(
        &target,
        16,
        scale.phase,
        || events::batch("e2e", 100),
        false,
    )
    .await;
    let in_window = rx.total() - before;
    let window = start.elapsed().as_secs_f64();
    rx.drain().await;
    let sustained = in_window as f64 / window;
    println!(
        "e2e: ingest {:.0} ev/s, delivered {:.0} ev/s during the run",
        load.eps(),
        sustained
    );

    // Delivery alone: a backlog built while the destination is paused, then drained.
    super::admin_post(port, "/admin/destinations/e2e/pause").await?;
    let backlog = closed_loop(
        &target,
        16,
        scale.phase / 2,
        || events::batch("backlog", 100),
        false,
    )
    .await;
    let before = rx.total();
    let start = std::time::Instant::now();
    super::admin_post(port, "/admin/destinations/e2e/resume").await?;
    while rx.total() - before < backlog.events && start.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drain_rate = (rx.total() - before) as f64 / start.elapsed().as_secs_f64();
    println!(
        "e2e: a backlog of {} events drained at {drain_rate:.0} ev/s",
        backlog.events
    );

    // Latency at fractions of the sustained rate (requests of 10 events).
    rx.record_arrivals(true);
    let mut curve = Vec::new();
    let mut points = Vec::new();
    for frac in [0.25, 0.5, 0.75] {
        let rate = sustained * frac;
        let r = open_loop(&target, rate / 10.0, scale.phase, || {
            events::batch("lat", 10)
        })
        .await;
        rx.drain().await;
        let (lat, lost) = latencies(&rx, &r);
        let (p50, p99) = (
            percentile(&lat, 0.5) / 1000.0,
            percentile(&lat, 0.99) / 1000.0,
        );
        println!("e2e: at {:.0}% ({rate:.0} ev/s offered): p50 {p50:.1} ms, p99 {p99:.1} ms, not arrived {lost}", frac * 100.0);
        points.push((rate, p50, p99));
        curve.push(json!({"fraction": frac, "offered_events_per_s": rate.round(), "p50_ms": p50, "p99_ms": p99, "acknowledged": r.acked.len(), "not_arrived": lost}));
    }
    crate::report::latency_svg(out, &points)?;
    Ok(json!({
        "setup": "one webhook destination (batches up to 500, linger 20 ms) to a loopback receiver; sustained: 16 senders of 100-event batches; latency: open loop of 10-event requests at 25/50/75 % of the sustained rate",
        "ingest_events_per_s": load.eps().round(),
        "delivered_events_per_s": sustained.round(),
        "backlog_drain_events_per_s": drain_rate.round(),
        "latency_curve": curve,
        "plot": "bench/results/e2e-latency.svg",
    }))
}
