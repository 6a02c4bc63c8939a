//! Scenario 1.
//!
//! Ingest ceiling: durable ingest of 100-event batches vs a bare axum handler.

use serde_json::{json, Value};
use switchyard_e2e::binary::wait_up;
use switchyard_e2e::{free_port, host::WRITE_KEY, webhook_table};

use crate::load::{closed_loop, LoadResult, Target};
use crate::procs::{baseline, config, switchyard, STARTUP};
use crate::receiver::Receiver;
use crate::{events, Scale};

const CONCURRENCY: usize = 32;

fn summary(r: &LoadResult) -> Value {
    json!({
        "events_per_s": r.eps().round(),
        "requests_per_s": r.rps().round(),
        "p50_ms": r.p(0.5),
        "p99_ms": r.p(0.99),
        "errors": r.errors,
    })
}

pub async fn run(scale: Scale) -> anyhow::Result<Value> {
    let dir = tempfile::tempdir()?;
    let rx = Receiver::start().await;
    let port = free_port();
    let dest = webhook_table("sink", &format!("{}/sink", rx.origin()), &rx.origin(), "");
    let (host, _) = switchyard(dir.path(), &config(dir.path(), port, &dest), port).await?;
    // Paused: this run measures durable ingest alone (events are stored, not delivered).
    super::admin_post(port, "/admin/destinations/sink/pause").await?;
    let target = Target::new(format!("http://127.0.0.1:{port}/v1/batch"), WRITE_KEY);
    let make = || events::batch("ingest", 100);
    closed_loop(&target, CONCURRENCY, scale.phase / 5, make, false).await;
    let cand = closed_loop(&target, CONCURRENCY, scale.phase, make, false).await;
    let rss = host.rss_kib();
    drop(host);

    let bport = free_port();
    let bare = baseline(
        &["bare-server".into(), "--port".into(), bport.to_string()],
        bport,
    )?;
    wait_up(&format!("http://127.0.0.1:{bport}/healthz"), STARTUP).await?;
    let btarget = Target::new(format!("http://127.0.0.1:{bport}/v1/batch"), WRITE_KEY);
    closed_loop(&btarget, CONCURRENCY, scale.phase / 5, make, false).await;
    let base = closed_loop(&btarget, CONCURRENCY, scale.phase, make, false).await;
    drop(bare);

    let ratio = cand.eps() / base.eps();
    println!(
        "ingest: switchyard {:.0} ev/s (p50 {:.1} ms, p99 {:.1} ms) vs bare axum {:.0} ev/s: {:.2}x",
        cand.eps(),
        cand.p(0.5),
        cand.p(0.99),
        base.eps(),
        ratio
    );
    Ok(json!({
        "setup": format!("/v1/batch of 100 events (~450 B each), Basic auth, {CONCURRENCY} concurrent senders, {:?} per side; the destination is paused so only durable ingest is measured", scale.phase),
        "switchyard": summary(&cand),
        "switchyard_rss_kib": rss,
        "bare_axum": summary(&base),
        "ratio_events_per_s": (ratio * 1000.0).round() / 1000.0,
    }))
}
