//! Scenario 7.
//!
//! The two stores measured the same way: durable ingest (destination paused) and delivery of a
//! backlog, on the embedded store and on NATS JetStream (a local `nats-server`).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_e2e::{free_port, host::WRITE_KEY, webhook_table};

use crate::load::{closed_loop, Target};
use crate::procs::{config, switchyard, Proc};
use crate::receiver::Receiver;
use crate::{events, Scale};

async fn measure(scale: Scale, nats_url: Option<&str>) -> anyhow::Result<Value> {
    let dir = tempfile::tempdir()?;
    let rx = Receiver::start().await;
    let port = free_port();
    let extra = "batch = { max_events = 500, max_bytes = 1000000, linger_ms = 20 }";
    let dest = webhook_table(
        "sink",
        &format!("{}/sink", rx.origin()),
        &rx.origin(),
        extra,
    );
    let mut text = config(dir.path(), port, &dest);
    if let Some(url) = nats_url {
        text = text.replacen(
            "[store]\n",
            &format!("[store]\nkind = \"nats\"\nurl = \"{url}\"\n"),
            1,
        );
    }
    let (_host, _) = switchyard(dir.path(), &text, port).await?;
    super::admin_post(port, "/admin/destinations/sink/pause").await?;
    let target = Target::new(format!("http://127.0.0.1:{port}/v1/batch"), WRITE_KEY);
    let ingest = closed_loop(&target, 32, scale.phase, || events::batch("st", 100), false).await;
    let start = Instant::now();
    super::admin_post(port, "/admin/destinations/sink/resume").await?;
    while rx.total() < ingest.events && start.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drain = rx.total() as f64 / start.elapsed().as_secs_f64();
    Ok(json!({
        "ingest_events_per_s": ingest.eps().round(),
        "ingest_p50_ms": ingest.p(0.5),
        "ingest_p99_ms": ingest.p(0.99),
        "backlog_events": ingest.events,
        "backlog_drain_events_per_s": drain.round(),
    }))
}

pub async fn run(scale: Scale) -> anyhow::Result<Value> {
    let embedded = measure(scale, None).await?;
    let nats_dir = tempfile::tempdir()?;
    let nport = free_port();
    let child = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &nport.to_string(), "-sd"])
        .arg(nats_dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| anyhow::anyhow!("nats-server: {e} (make bench installs it)"))?;
    let _server = Proc { child, port: nport };
    for _ in 0..250 {
        if std::net::TcpStream::connect(("127.0.0.1", nport)).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let nats = measure(scale, Some(&format!("nats://127.0.0.1:{nport}"))).await?;
    let ratio = |k: &str| {
        (nats[k].as_f64().unwrap_or(0.0) / embedded[k].as_f64().unwrap_or(1.0) * 1000.0).round()
            / 1000.0
    };
    println!(
        "stores: ingest embedded {} ev/s vs nats {} ev/s; drain embedded {} ev/s vs nats {} ev/s",
        embedded["ingest_events_per_s"],
        nats["ingest_events_per_s"],
        embedded["backlog_drain_events_per_s"],
        nats["backlog_drain_events_per_s"]
    );
    Ok(json!({
        "setup": format!("one webhook destination to a loopback receiver; ingest: 32 senders of 100-event batches for {:?} with the destination paused; then the backlog is delivered (batches up to 500); nats-server {} on loopback, one replica, file storage", scale.phase, "2.9"),
        "embedded": embedded,
        "nats": nats,
        "ratio_nats_over_embedded_ingest": ratio("ingest_events_per_s"),
        "ratio_nats_over_embedded_drain": ratio("backlog_drain_events_per_s"),
    }))
}
