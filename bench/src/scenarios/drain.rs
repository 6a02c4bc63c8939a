//! Scenario `drain`: a backlog built with every destination paused, then
//! delivered flat out to a receiver that answers at once; with 1 and with 10
//! destinations. Reports events/s per destination and deliveries/s in all.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::receiver::Receiver;
use crate::scenarios::ingest::CONNECTIONS;
use crate::{wrk, Scale};

/// Longest a drain may take before the scenario gives up.
const DRAIN_LIMIT: Duration = Duration::from_secs(300);

pub async fn run(scale: Scale) -> anyhow::Result<Value> {
    let rx = Receiver::start().await;
    let mut rows = Vec::new();
    for n in [1usize, 10] {
        let (_dir, host, port) = super::paused_host(n, &rx.origin()).await?;
        let url = format!("http://127.0.0.1:{port}/v1/batch");
        wrk::run(&url, CONNECTIONS, scale.phase / 2)?;
        let backlog = queued(port).await?;
        let start = Instant::now();
        for i in 0..n {
            super::admin_post(port, &format!("/admin/destinations/d{i}/resume")).await?;
        }
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let left = queued(port).await?;
            if left.iter().all(|q| *q == 0) {
                break;
            }
            anyhow::ensure!(
                start.elapsed() < DRAIN_LIMIT,
                "drain did not finish: {left:?}"
            );
        }
        let secs = start.elapsed().as_secs_f64();
        drop(host);
        let per_dest = backlog[0] as f64 / secs;
        println!(
            "drain: {n:>2} destinations, backlog {} each: {:.0} events/s per destination, {:.0} deliveries/s in all",
            backlog[0],
            per_dest,
            per_dest * n as f64
        );
        rows.push(json!({
            "destinations": n,
            "backlog_per_destination": backlog[0],
            "seconds": (secs * 100.0).round() / 100.0,
            "events_per_s_per_destination": per_dest.round(),
            "deliveries_per_s": (per_dest * n as f64).round(),
        }));
    }
    Ok(json!({
        "setup": "backlog built by wrk with every destination paused, then all resumed; webhook destinations (batches of 100) to a loopback receiver that answers at once",
        "points": rows,
    }))
}

/// Queued plus in flight, per destination.
async fn queued(port: u16) -> anyhow::Result<Vec<u64>> {
    let list = super::admin_get(port, "/admin/destinations").await?;
    Ok(list
        .as_array()
        .map(|a| {
            a.iter()
                .map(|d| d["queued"].as_u64().unwrap_or(0) + d["in_flight"].as_u64().unwrap_or(0))
                .collect()
        })
        .unwrap_or_default())
}
