//! Config reload under load: what a reload that changes a destination's settings (and adds
//! another) costs its deliveries: the longest pause in arrivals around it against the
//! longest elsewhere, p99 latency near it, and events lost (README, "Changing a running
//! Switchyard").

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_e2e::{free_port, host::WRITE_KEY, webhook_table};

use super::e2e::latencies;
use crate::load::{open_loop, percentile, Target};
use crate::procs::{config, switchyard};
use crate::receiver::Receiver;
use crate::{events, Scale};

/// The vendor's latency.
const VENDOR: Duration = Duration::from_millis(50);

/// Reloads during the run, evenly spaced.
const RELOADS: usize = 3;

pub async fn run(scale: Scale) -> anyhow::Result<Value> {
    let dir = tempfile::tempdir()?;
    let rx = Receiver::start().await;
    rx.record_arrivals(true);
    rx.latency(VENDOR);
    let port = free_port();
    let extra = "batch = { max_events = 100, max_bytes = 1000000, linger_ms = 20 }";
    let dest = |path: &str| {
        webhook_table(
            "hot",
            &format!("{}/{path}", rx.origin()),
            &rx.origin(),
            extra,
        )
    };
    let (_host, _) = switchyard(dir.path(), &config(dir.path(), port, &dest("v0")), port).await?;
    let file = dir.path().join("switchyard.toml");
    let target = Target::new(format!("http://127.0.0.1:{port}/v1/batch"), WRITE_KEY);

    let phase = scale.phase;
    let origin = rx.origin();
    let reloads = tokio::spawn({
        let dir = dir.path().to_path_buf();
        async move {
            let mut done = Vec::new();
            for i in 1..=RELOADS {
                tokio::time::sleep(phase / (RELOADS as u32 + 1)).await;
                // The destination's settings change, and another destination comes and goes.
                let mut tables = webhook_table("hot", &format!("{origin}/v{i}"), &origin, extra);
                if i % 2 == 1 {
                    tables.push_str(&webhook_table(
                        "side",
                        &format!("{origin}/side"),
                        &origin,
                        "",
                    ));
                }
                std::fs::write(&file, config(&dir, port, &tables))?;
                let at = Instant::now();
                let r = super::admin(port)
                    .request(reqwest::Method::POST, "/admin/reload")
                    .send()
                    .await?;
                let took = at.elapsed();
                anyhow::ensure!(r.status().is_success(), "reload: {}", r.status());
                done.push((at, took));
            }
            Ok::<_, anyhow::Error>(done)
        }
    });
    let load = open_loop(&target, 50.0, phase, || events::batch("rl", 10)).await;
    let done = reloads.await??;
    rx.drain().await;

    let (all, lost) = latencies(&rx, &load);
    let window = Duration::from_secs(1);
    let near = |t: Instant| {
        done.iter().any(|(at, _)| {
            t.saturating_duration_since(*at) < window && at.saturating_duration_since(t) < window
        })
    };
    let near_lat: Vec<u64> = load
        .acked
        .iter()
        .filter(|(_, t)| near(*t))
        .filter_map(|(id, t)| {
            rx.arrival(id)
                .map(|a| a.saturating_duration_since(*t).as_micros() as u64)
        })
        .collect();
    // The longest pause between arrivals, near a reload and elsewhere.
    let mut arrivals: Vec<Instant> = load
        .acked
        .iter()
        .filter_map(|(id, _)| rx.arrival(id))
        .collect();
    arrivals.sort();
    let (mut gap_near, mut gap_else) = (Duration::ZERO, Duration::ZERO);
    for pair in arrivals.windows(2) {
        let gap = pair[1] - pair[0];
        if near(pair[1]) {
            gap_near = gap_near.max(gap);
        } else {
            gap_else = gap_else.max(gap);
        }
    }
    let took_ms: Vec<u128> = done.iter().map(|(_, t)| t.as_millis()).collect();
    let (p99_all, p99_near) = (
        percentile(&all, 0.99) / 1000.0,
        percentile(&near_lat, 0.99) / 1000.0,
    );
    println!(
        "reload: lost {lost} of {}, longest pause {} ms near a reload vs {} ms elsewhere, p99 {p99_all:.1} ms overall, {p99_near:.1} ms near; reloads took {took_ms:?} ms",
        load.acked.len(),
        gap_near.as_millis(),
        gap_else.as_millis()
    );
    Ok(json!({
        "setup": format!("one webhook destination (vendor answers in {} ms), open loop of 50 requests/s × 10 events for {phase:?}; {RELOADS} reloads (POST /admin/reload) change its URL, and add or remove a second destination", VENDOR.as_millis()),
        "acknowledged": load.acked.len(),
        "lost": lost,
        "reload_ms": took_ms,
        "longest_pause_ms_within_1s_of_a_reload": gap_near.as_millis(),
        "longest_pause_ms_elsewhere": gap_else.as_millis(),
        "p99_ms_overall": p99_all,
        "p99_ms_within_1s_of_a_reload": p99_near,
    }))
}
