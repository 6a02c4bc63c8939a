//! A version on trial under load: what a shadow (a second call per batch, no
//! network) and a canary (a second call for a share of users) cost deliveries
//! against the same load with none (the book, `operating/reload.md`).
//! The trial version is the serving webhook with other bytes, so the shadow
//! matches and the canary delivers: what is measured is the mechanism.

use std::time::Duration;

use serde_json::{json, Value};
use switchyard_e2e::{destination_component, free_port, host::WRITE_KEY, webhook_table};

use super::e2e::latencies;
use crate::load::{open_loop, percentile, Target};
use crate::procs::{config, switchyard};
use crate::receiver::Receiver;
use crate::{events, Scale};

/// The vendor's latency.
const VENDOR: Duration = Duration::from_millis(50);

/// Requests per second of 10 events each.
const RATE: f64 = 50.0;

/// A batch of 10 whose events are each of one of 1,000 users (a canary takes a share of users).
fn many_users(prefix: &str) -> (String, Vec<String>) {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let (body, ids) = events::batch(prefix, 10);
    let mut v: Value = serde_json::from_str(&body).expect("the generator's JSON");
    for e in v["batch"].as_array_mut().into_iter().flatten() {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        e["userId"] = Value::String(format!("user-{}", n % 1000));
    }
    (v.to_string(), ids)
}

pub async fn run(scale: Scale) -> anyhow::Result<Value> {
    let dir = tempfile::tempdir()?;
    let rx = Receiver::start().await;
    rx.record_arrivals(true);
    rx.latency(VENDOR);
    let port = free_port();
    let extra = "batch = { max_events = 100, max_bytes = 1000000, linger_ms = 20 }";
    let dest = webhook_table("hot", &format!("{}/hot", rx.origin()), &rx.origin(), extra);
    let (_host, _) = switchyard(dir.path(), &config(dir.path(), port, &dest), port).await?;
    let target = Target::new(format!("http://127.0.0.1:{port}/v1/batch"), WRITE_KEY);
    let admin = super::admin(port);
    let other_bytes = switchyard_e2e::with_custom_section(
        std::fs::read(destination_component("webhook"))?,
        "bench",
    );

    let mut phases = serde_json::Map::new();
    for (name, stage) in [
        ("none", None),
        ("shadow", Some("stage=shadow")),
        (
            "canary_50_percent",
            Some("stage=canary&percent=50&min_events=1000000"),
        ),
    ] {
        if let Some(query) = stage {
            let r = admin
                .request(
                    reqwest::Method::PUT,
                    &format!("/admin/plugins/webhook?{query}"),
                )
                .body(other_bytes.clone())
                .send()
                .await?;
            anyhow::ensure!(r.status().is_success(), "staging a {name}: {}", r.status());
        }
        let prefix: &'static str = match name {
            "none" => "tr-none",
            "shadow" => "tr-shadow",
            _ => "tr-canary",
        };
        let load = open_loop(&target, RATE, scale.phase, move || many_users(prefix)).await;
        rx.drain().await;
        let (lat, lost) = latencies(&rx, &load);
        let trial = admin.get("/admin/plugins/webhook/trial").await;
        let (p50, p99) = (
            percentile(&lat, 0.5) / 1000.0,
            percentile(&lat, 0.99) / 1000.0,
        );
        println!(
            "trial {name}: lost {lost} of {}, p50 {p50:.1} ms, p99 {p99:.1} ms; {}",
            load.acked.len(),
            trial["trial"]
        );
        phases.insert(
            name.into(),
            json!({
                "acknowledged": load.acked.len(),
                "lost": lost,
                "p50_ms": p50,
                "p99_ms": p99,
                "trial": trial["trial"],
            }),
        );
        if stage.is_some() {
            let r = admin
                .request(reqwest::Method::POST, "/admin/plugins/webhook/discard")
                .send()
                .await?;
            anyhow::ensure!(
                r.status().is_success(),
                "discarding the {name}: {}",
                r.status()
            );
        }
    }
    Ok(json!({
        "setup": format!("one webhook destination (vendor answers in {} ms), open loop of {RATE} requests/s × 10 events for {:?} per phase: no trial, then a shadow, then a canary for 50% of users (the trial version: the same webhook, other bytes)", VENDOR.as_millis(), scale.phase),
        "phases": phases,
    }))
}
