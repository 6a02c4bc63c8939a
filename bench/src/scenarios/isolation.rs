//! Scenario 5.
//!
//! Isolation: 10 destinations, one of which hangs: throughput of the other nine as a fraction
//! of the run where none hangs.

use std::time::Instant;

use serde_json::{json, Value};
use switchyard_e2e::{free_port, host::WRITE_KEY, webhook_table};

use crate::load::{open_loop, Target};
use crate::procs::{config, switchyard};
use crate::receiver::Receiver;
use crate::{events, Scale};

const OFFERED_RPS: f64 = 40.0;

async fn nine_rate(scale: Scale, hang: bool) -> anyhow::Result<f64> {
    let rx = Receiver::start().await;
    if hang {
        rx.hang("/d0");
    }
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let dests: String = (0..10)
        .map(|i| {
            webhook_table(
                &format!("d{i}"),
                &format!("{}/d{i}", rx.origin()),
                &rx.origin(),
                "limits = { memory_mb = 64, timeout_ms = 30000 }",
            )
        })
        .collect();
    let (_host, _) = switchyard(dir.path(), &config(dir.path(), port, &dests), port).await?;
    let target = Target::new(format!("http://127.0.0.1:{port}/v1/batch"), WRITE_KEY);
    let start = Instant::now();
    open_loop(&target, OFFERED_RPS, scale.phase, || {
        events::batch("iso", 10)
    })
    .await;
    let elapsed = start.elapsed().as_secs_f64();
    Ok(rx.total_except("/d0") as f64 / elapsed)
}

pub async fn run(scale: Scale) -> anyhow::Result<Value> {
    let healthy = nine_rate(scale, false).await?;
    let with_hang = nine_rate(scale, true).await?;
    let fraction = with_hang / healthy;
    println!("isolation: nine destinations {healthy:.0} ev/s alone, {with_hang:.0} ev/s beside a hanging one: {:.1} %", fraction * 100.0);
    Ok(json!({
        "setup": format!("10 webhook destinations, offered {OFFERED_RPS} requests/s of 10 events for {:?}; in the second run the receiver of d0 never answers (30 s timeout)", scale.phase),
        "nine_deliveries_per_s_none_hangs": healthy.round(),
        "nine_deliveries_per_s_one_hangs": with_hang.round(),
        "fraction": (fraction * 1000.0).round() / 1000.0,
    }))
}
