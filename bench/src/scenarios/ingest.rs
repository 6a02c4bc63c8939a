//! Scenario `ingest`: durable ingest of 100-event batches with one (paused)
//! destination, against the least durable ingest (the `least-durable` baseline:
//! parse, stamp, re-serialise, append, one fdatasync per group) and against a
//! bare axum handler, all three under the same wrk load. The bare handler must
//! be far faster than the other two, or the generator, not the system under
//! test, set the figures.

use serde_json::{json, Value};

use crate::procs::{baseline, config, switchyard, STARTUP};
use crate::receiver::Receiver;
use crate::{wrk, Scale};
use switchyard_e2e::binary::wait_up;
use switchyard_e2e::{free_port, webhook_table};

/// wrk connections (as in the measurement).
pub const CONNECTIONS: usize = 32;

pub async fn run(scale: Scale) -> anyhow::Result<Value> {
    let dir = tempfile::tempdir()?;
    let rx = Receiver::start().await;
    let port = free_port();
    let dest = webhook_table("sink", &format!("{}/sink", rx.origin()), &rx.origin(), "");
    let (host, _) = switchyard(dir.path(), &config(dir.path(), port, &dest), port).await?;
    // Paused: this run measures durable ingest alone (events are stored, not delivered).
    super::admin_post(port, "/admin/destinations/sink/pause").await?;
    let url = format!("http://127.0.0.1:{port}/v1/batch");
    wrk::run(&url, CONNECTIONS, scale.phase / 5)?;
    let cand = wrk::run(&url, CONNECTIONS, scale.phase)?;
    let rss = host.rss_kib();
    drop(host);

    let floor_dir = tempfile::tempdir()?;
    let fport = free_port();
    let floor = baseline(
        &[
            "least-durable".into(),
            "--port".into(),
            fport.to_string(),
            "--dir".into(),
            floor_dir.path().display().to_string(),
        ],
        fport,
    )?;
    wait_up(&format!("http://127.0.0.1:{fport}/healthz"), STARTUP).await?;
    let furl = format!("http://127.0.0.1:{fport}/v1/batch");
    wrk::run(&furl, CONNECTIONS, scale.phase / 5)?;
    let least = wrk::run(&furl, CONNECTIONS, scale.phase)?;
    drop(floor);

    let bport = free_port();
    let bare = baseline(
        &["bare-server".into(), "--port".into(), bport.to_string()],
        bport,
    )?;
    wait_up(&format!("http://127.0.0.1:{bport}/healthz"), STARTUP).await?;
    let burl = format!("http://127.0.0.1:{bport}/v1/batch");
    wrk::run(&burl, CONNECTIONS, scale.phase / 5)?;
    let base = wrk::run(&burl, CONNECTIONS, scale.phase)?;
    drop(bare);

    let ratio = cand.eps() / least.eps();
    let headroom = base.eps() / least.eps().max(cand.eps());
    println!(
        "ingest: switchyard {:.0} ev/s (p99 {:.1} ms) vs least durable ingest {:.0} ev/s: {:.2}x (goal >= 0.5); bare axum {:.0} ev/s ({:.1}x the faster durable side)",
        cand.eps(),
        cand.p99_ms,
        least.eps(),
        ratio,
        base.eps(),
        headroom
    );
    Ok(json!({
        "setup": format!("wrk, 2 threads, {CONNECTIONS} connections, /v1/batch of 100 track events (~520 B each), unique messageIds, {:?} per side; the destination is paused so only durable ingest is measured", scale.phase),
        "switchyard": cand.json(),
        "switchyard_rss_kib": rss,
        "least_durable": least.json(),
        "bare_axum": base.json(),
        "ratio_to_least_durable": (ratio * 1000.0).round() / 1000.0,
        "goal_ratio_to_least_durable": 0.5,
        "bare_over_faster_durable_side": (headroom * 100.0).round() / 100.0,
    }))
}
