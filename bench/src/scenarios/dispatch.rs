//! Scenario 2.
//!
//! Dispatch cost: the webhook's per-batch work in wasm vs the same logic natively;
//! fresh-instance cost per batch; per-event cost of the JS and Python destinations when they
//! are built, and of their floors (bench/guests/README.md: the least a destination in each
//! language does), which say how much of it is the language's own.

use std::time::Instant;

use serde_json::{json, Value};
use switchyard::imports::http::Egress;
use switchyard::runtime::bindings::switchyard::destination::types::EventType;
use switchyard::runtime::{CallContext, Event, Runtime};
use switchyard_e2e::workspace_root;

use crate::baseline::webhook_request;
use crate::{events, Scale};

pub(super) fn ctx() -> CallContext {
    CallContext::dry_run("bench", Default::default())
}

pub(super) fn wit_events(n: usize) -> Vec<Event> {
    events::normalised(n)
        .into_iter()
        .enumerate()
        .map(|(i, json)| Event {
            message_id: format!("m{i}"),
            event_type: EventType::Track,
            json,
        })
        .collect()
}

/// Per-event and per-call cost of one component, after one warm-up call.
pub(super) async fn measure(
    runtime: &Runtime,
    name: &str,
    file: &std::path::Path,
    settings: &str,
    iterations: usize,
) -> anyhow::Result<Value> {
    measure_with(runtime, name, file, settings, iterations, wit_events(100)).await
}

/// [`measure`] with these 100 events.
pub(super) async fn measure_with(
    runtime: &Runtime,
    name: &str,
    file: &std::path::Path,
    settings: &str,
    iterations: usize,
    batch: Vec<Event>,
) -> anyhow::Result<Value> {
    let bytes = std::fs::read(file)?;
    let t = Instant::now();
    let plugin = runtime.load(name, &bytes).await?;
    let compile_ms = t.elapsed().as_secs_f64() * 1000.0;
    let single = batch[..1].to_vec();
    let ctx = ctx();
    plugin.deliver(&ctx, settings, &batch).await?;
    // `iterations` calls of `deliver` on `events` with `ctx`: µs per call,
    // and the requests the dry-run recorder took.
    let timed = async |ctx: &CallContext, events: &[Event]| -> anyhow::Result<(f64, usize)> {
        let mut requests = 0;
        let t = Instant::now();
        for _ in 0..iterations {
            plugin.deliver(ctx, settings, events).await?;
            if let Egress::DryRun(dry) = &ctx.egress {
                requests += dry.take().len();
            }
        }
        Ok((
            t.elapsed().as_secs_f64() * 1e6 / iterations as f64,
            requests,
        ))
    };
    // The same batches, each in a fresh instance (as every batch ran before
    // warm instances, and as a shadow or a replay still runs).
    let fresh = CallContext {
        warm: false,
        ..ctx.clone()
    };
    let (per_batch_us, requests) = timed(&ctx, &batch).await?;
    let per_event_us = per_batch_us / 100.0;
    let per_event_fresh_us = timed(&fresh, &batch).await?.0 / 100.0;
    let per_call_us = timed(&ctx, &single).await?.0;
    let per_call_fresh_us = timed(&fresh, &single).await?.0;
    // A fresh instance and the least call there is (`describe`, which reads a constant).
    let t = Instant::now();
    for _ in 0..iterations {
        plugin.describe(&ctx).await?;
    }
    let fresh_us = t.elapsed().as_secs_f64() * 1e6 / iterations as f64;
    let peak = ctx
        .counters
        .memory_peak_bytes
        .load(std::sync::atomic::Ordering::Relaxed);
    Ok(json!({
        "linear_memory_per_instance_bytes": peak,
        "component_bytes": bytes.len(),
        "compile_ms": (compile_ms * 10.0).round() / 10.0,
        "per_event_us_in_batches_of_100": (per_event_us * 100.0).round() / 100.0,
        "per_event_us_in_batches_of_100_fresh_instances": (per_event_fresh_us * 100.0).round() / 100.0,
        "requests_per_batch_of_100": requests as f64 / iterations as f64,
        "warm_instance_one_event_call_us": per_call_us.round(),
        "fresh_instance_plus_one_event_call_us": per_call_fresh_us.round(),
        "fresh_instance_plus_describe_us": fresh_us.round(),
    }))
}

pub async fn run(scale: Scale) -> anyhow::Result<Value> {
    let iterations = if scale.quick { 200 } else { 2_000 };
    let runtime = Runtime::new(None, 4)?;
    let settings = r#"{"url":"https://hooks.example.com/x","secret":"s3cret"}"#;
    let webhook = measure(
        &runtime,
        "webhook",
        &workspace_root().join("target/destinations/webhook.wasm"),
        settings,
        iterations,
    )
    .await?;

    // The same work natively: array body + HMAC signature + headers.
    let texts = events::normalised(100);
    let t = Instant::now();
    for _ in 0..iterations {
        std::hint::black_box(webhook_request("s3cret", std::hint::black_box(&texts)));
    }
    let native_per_event_us = t.elapsed().as_secs_f64() * 1e6 / (iterations * 100) as f64;

    let mut others = serde_json::Map::new();
    for (name, lang) in [("slack", "javascript"), ("amplitude", "python")] {
        let file = workspace_root().join(format!("target/destinations/{name}.wasm"));
        let sample = workspace_root().join(format!("destinations/{name}/sample-settings.json"));
        if file.exists() && sample.exists() {
            let settings = std::fs::read_to_string(sample)?;
            let r = measure(&runtime, name, &file, &settings, iterations / 10).await?;
            others.insert(format!("{name} ({lang})"), r);
        }
    }

    // Floors (bench/guests): how much of a JS or Python destination's time is the language's.
    let mut floors = serde_json::Map::new();
    for name in ["floor-js", "floor-py"] {
        let file = workspace_root().join(format!("target/bench-guests/{name}.wasm"));
        if !file.exists() {
            continue;
        }
        let mut modes = serde_json::Map::new();
        for mode in ["none", "parse", "send"] {
            let settings = format!(r#"{{"mode":"{mode}","url":"https://vendor.example.com/x"}}"#);
            let r = measure(&runtime, name, &file, &settings, iterations / 10).await?;
            modes.insert(mode.to_string(), r);
        }
        floors.insert(name.to_string(), Value::Object(modes));
    }

    let wasm_per_event = webhook["per_event_us_in_batches_of_100"]
        .as_f64()
        .unwrap_or(0.0);
    println!(
        "dispatch: webhook wasm {wasm_per_event:.2} µs/event vs native {native_per_event_us:.2} µs/event; one-event call {} µs warm, {} µs in a fresh instance",
        webhook["warm_instance_one_event_call_us"],
        webhook["fresh_instance_plus_one_event_call_us"]
    );
    Ok(json!({
        "setup": format!("webhook deliver() on batches of 100 normalised events, {iterations} iterations, HTTP answered by the dry-run recorder (no network)"),
        "webhook_rust_wasm": webhook,
        "webhook_native_per_event_us": (native_per_event_us * 100.0).round() / 100.0,
        "ratio_wasm_over_native": ((wasm_per_event / native_per_event_us) * 100.0).round() / 100.0,
        "other_languages": others,
        "floors": floors,
        "goals": {
            "webhook_ratio_wasm_over_native": 1.5,
            "javascript_per_event_us": 15.0,
            "python_per_event_us": 20.0,
            "javascript_fresh_instance_us": 100.0,
            "python_fresh_instance_us": 300.0,
        },
    }))
}
