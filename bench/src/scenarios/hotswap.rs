//! Scenario 6.
//!
//! Hot swap under load: events lost and extra p99 latency while the webhook plugin is replaced
//! by a new version.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_e2e::{free_port, host::WRITE_KEY, webhook_table, workspace_root};

use super::e2e::latencies;
use crate::load::{open_loop, percentile, Target};
use crate::procs::{config, switchyard};
use crate::receiver::Receiver;
use crate::{events, Scale};

/// The webhook with a custom section appended: same code, new sha256.
fn new_version() -> anyhow::Result<Vec<u8>> {
    let mut bytes = std::fs::read(workspace_root().join("target/destinations/webhook.wasm"))?;
    let name = b"bench";
    let payload: Vec<u8> = [&[name.len() as u8][..], name, b"v2"].concat();
    bytes.push(0);
    bytes.push(payload.len() as u8);
    bytes.extend_from_slice(&payload);
    Ok(bytes)
}

pub async fn run(scale: Scale) -> anyhow::Result<Value> {
    let dir = tempfile::tempdir()?;
    let rx = Receiver::start().await;
    rx.record_arrivals(true);
    let port = free_port();
    let extra = "batch = { max_events = 500, max_bytes = 1000000, linger_ms = 20 }";
    let dest = webhook_table("hot", &format!("{}/hot", rx.origin()), &rx.origin(), extra);
    let (_host, _) = switchyard(dir.path(), &config(dir.path(), port, &dest), port).await?;
    let target = Target::new(format!("http://127.0.0.1:{port}/v1/batch"), WRITE_KEY);

    let phase = scale.phase;
    let swap = tokio::spawn(async move {
        tokio::time::sleep(phase / 2).await;
        let at = Instant::now();
        let r = super::admin(port)
            .request(reqwest::Method::PUT, "/admin/plugins/webhook")
            .body(new_version()?)
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "upload: {}", r.status());
        Ok::<_, anyhow::Error>((at, at.elapsed()))
    });
    let load = open_loop(&target, 50.0, phase, || events::batch("hot", 10)).await;
    let (swap_at, swap_took) = swap.await??;
    rx.drain().await;

    let (all, lost) = latencies(&rx, &load);
    let window = Duration::from_secs(1);
    let near: Vec<u64> = load
        .acked
        .iter()
        .filter(|(_, t)| {
            t.saturating_duration_since(swap_at) < window
                && swap_at.saturating_duration_since(*t) < window
        })
        .filter_map(|(id, t)| {
            rx.arrival(id)
                .map(|a| a.saturating_duration_since(*t).as_micros() as u64)
        })
        .collect();
    let (p99_all, p99_swap) = (
        percentile(&all, 0.99) / 1000.0,
        percentile(&near, 0.99) / 1000.0,
    );
    println!("hotswap: lost {lost} of {}, p99 {p99_all:.1} ms overall, {p99_swap:.1} ms within 1 s of the swap (upload took {swap_took:?})", load.acked.len());
    Ok(json!({
        "setup": format!("one webhook destination, open loop of 50 requests/s × 10 events for {phase:?}; at the midpoint a new version is uploaded (PUT /admin/plugins/webhook)"),
        "acknowledged": load.acked.len(),
        "lost": lost,
        "upload_to_serving_ms": swap_took.as_millis(),
        "p99_ms_overall": p99_all,
        "p99_ms_within_1s_of_swap": p99_swap,
        "extra_p99_ms": ((p99_swap - p99_all) * 10.0).round() / 10.0,
    }))
}
