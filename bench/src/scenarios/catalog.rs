//! Scenario `catalog`: Segment's catalog entries (`catalog/`) against
//! Segment's own runtime on this machine, in the same run.
//!
//! For five entries: the cost per event in batches of 100 (Switchyard: the
//! entry's component, `deliver` with the dry-run recorder answering; Node:
//! `catalog/bench/node.mjs`, actions-core warm with fetch answered at once,
//! the same events and subscriptions), a fresh instance's time and linear
//! memory, the component's size, and its build time from nothing (no cache).
//! Then the seed's picture with Segment's catalog: 140 catalog destinations
//! (28 of each entry) in one host process, every event going to every one,
//! their vendors on loopback: the process's memory (PSS) and the deliveries
//! per second they settle together.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use serde_json::{json, Value};
use switchyard::runtime::Runtime;
use switchyard_e2e::workspace_root;

use super::dispatch::measure_with;
use crate::{events, Scale};
use switchyard::runtime::bindings::switchyard::destination::types::EventType;
use switchyard::runtime::Event;

/// The entries, the event name they get, and their settings (Segment's
/// names): presets where the entry has them, else one subscription of the
/// kind a user would add. Every batch must make requests on both sides
/// (checked: an error path would measure nothing useful).
const ENTRIES: &[(&str, &str, &str)] = &[
    (
        "braze",
        "Signed Up",
        r#"{"api_key":"bench-key-1","endpoint":"https://rest.iad-01.braze.com"}"#,
    ),
    (
        "customerio",
        "Order Completed",
        r#"{"siteId":"site-1","apiKey":"bench-key-1"}"#,
    ),
    (
        "mixpanel",
        "Order Completed",
        r#"{"projectToken":"tok-1","apiSecret":"bench-secret-1"}"#,
    ),
    (
        "klaviyo",
        "Order Completed",
        r#"{"api_key":"pk_bench","subscriptions":[{"subscribe":"type = \"track\"","partnerAction":"trackEvent","mapping":{"profile":{"external_id":{"@path":"$.userId"}},"metric_name":{"@path":"$.event"},"properties":{"@path":"$.properties"},"time":{"@path":"$.timestamp"}}}]}"#,
    ),
    (
        "facebook-conversions-api",
        "Order Completed",
        r#"{"pixelId":"123","subscriptions":[{"subscribe":"type = \"track\"","partnerAction":"purchase","mapping":{"action_source":"website","currency":{"@path":"$.properties.currency"},"value":{"@path":"$.properties.revenue"},"event_time":{"@path":"$.timestamp"},"user_data":{"externalId":{"@path":"$.userId"},"client_ip_address":{"@path":"$.context.ip"},"client_user_agent":{"@path":"$.context.userAgent"}}}}]}"#,
    ),
];

fn node_per_event(
    entry: &str,
    settings: &Path,
    events: &Path,
    iterations: usize,
) -> anyhow::Result<Value> {
    let out = Command::new("node")
        .current_dir(workspace_root().join("catalog"))
        .arg("bench/node.mjs")
        .arg(entry)
        .arg(settings)
        .arg(events)
        .arg(iterations.to_string())
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "node bench/node.mjs {entry}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Build `entry` from nothing into a fresh folder: milliseconds.
fn build_ms(entry: &str) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let t = Instant::now();
    let status = Command::new("node")
        .current_dir(workspace_root().join("catalog"))
        .arg("build.mjs")
        .arg(entry)
        .arg("--out")
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "building {entry} failed");
    Ok(t.elapsed().as_secs_f64() * 1000.0)
}

pub async fn run(scale: Scale) -> anyhow::Result<Value> {
    let iterations = if scale.quick { 10 } else { 50 };
    let runtime = Runtime::new(None, 4)?;
    let names: Vec<&str> = ENTRIES.iter().map(|(n, _, _)| *n).collect();
    let status = Command::new("node")
        .current_dir(workspace_root().join("catalog"))
        .arg("build.mjs")
        .args(&names)
        .status()?;
    anyhow::ensure!(status.success(), "building the catalog entries failed");
    let work = tempfile::tempdir()?;
    let mut rows = serde_json::Map::new();
    for (name, event, settings) in ENTRIES {
        let events: Vec<Value> = events::normalised(100)
            .iter()
            .map(|t| {
                let mut e: Value = serde_json::from_str(t).expect("normalised events are JSON");
                e["event"] = json!(event);
                e["context"]["userAgent"] = json!("Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0");
                e
            })
            .collect();
        let events_file = work.path().join(format!("{name}-events.json"));
        std::fs::write(&events_file, serde_json::to_string(&events)?)?;
        let batch: Vec<Event> = events
            .iter()
            .enumerate()
            .map(|(i, e)| Event {
                message_id: format!("m{i}"),
                event_type: EventType::Track,
                json: e.to_string(),
            })
            .collect();
        let file = workspace_root().join(format!("target/catalog/catalog:{name}.wasm"));
        let ours = measure_with(&runtime, name, &file, settings, iterations, batch).await?;
        let settings_file = work.path().join(format!("{name}.json"));
        std::fs::write(&settings_file, settings)?;
        let node = node_per_event(name, &settings_file, &events_file, iterations)?;
        anyhow::ensure!(
            ours["requests_per_batch_of_100"].as_f64() > Some(0.0) && node["requests_per_batch"].as_f64() > Some(0.0),
            "{name}: the events make no request on one side (switchyard {}, node {}): an error path is no benchmark",
            ours["requests_per_batch_of_100"],
            node["requests_per_batch"]
        );
        let build = build_ms(name)?;
        let ours_us = ours["per_event_us_in_batches_of_100"]
            .as_f64()
            .unwrap_or(f64::NAN);
        let node_us = node["per_event_us"].as_f64().unwrap_or(f64::NAN);
        println!(
            "catalog {name}: switchyard {ours_us:.1} µs/event, node {node_us:.1} µs/event; fresh instance {} µs; {} bytes, built in {build:.0} ms",
            ours["fresh_instance_plus_describe_us"], ours["component_bytes"]
        );
        rows.insert(
            name.to_string(),
            json!({
                "switchyard": ours,
                "node_actions_core": node,
                "ratio_switchyard_over_node": ((ours_us / node_us) * 100.0).round() / 100.0,
                "build_ms_uncached": build.round(),
            }),
        );
    }
    let fleet = fleet(scale).await?;
    Ok(json!({
        "fleet_of_140": fleet,
        "setup": format!(
            "batches of 100 normalised Order Completed track events, {iterations} iterations after a warm-up; \
             Switchyard: the entry's component, deliver() with the dry-run recorder answering 200 {{}}; \
             Node: catalog/bench/node.mjs (actions-core, warm, fetch answered at once), the same subscriptions"
        ),
        "entries": rows,
        "goals": { "ratio_switchyard_over_node": 1.0 },
    }))
}

/// Destinations in the fleet: 28 of each of the five entries.
const FLEET: usize = 140;
/// Offered load: requests of 10 events per second, each event going to all 140.
const FLEET_RPS: f64 = 5.0;

/// The fleet's settings per entry: every one takes a "Signed Up" track call.
fn fleet_settings(name: &str) -> &'static str {
    match name {
        "braze" => r#"{ api_key = "bench-key-1", endpoint = "https://rest.iad-01.braze.com" }"#,
        "customerio" => r#"{ siteId = "site-1", apiKey = "bench-key-1" }"#,
        "mixpanel" => r#"{ projectToken = "tok-1", apiSecret = "bench-secret-1" }"#,
        "klaviyo" => {
            r#"{ api_key = "pk_bench", subscriptions = [{ subscribe = 'type = "track"', partnerAction = "trackEvent", mapping = { profile = { external_id = { "@path" = "$.userId" } }, metric_name = { "@path" = "$.event" }, properties = { "@path" = "$.properties" } } }] }"#
        }
        _ => {
            r#"{ pixelId = "123", subscriptions = [{ subscribe = 'type = "track"', partnerAction = "purchase", mapping = { action_source = "email", currency = { "@path" = "$.properties.currency" }, value = { "@path" = "$.properties.revenue" }, event_time = { "@path" = "$.timestamp" }, user_data = { externalId = { "@path" = "$.userId" } } } }] }"#
        }
    }
}

/// The origin each entry's requests go to.
fn vendor_of(name: &str) -> &'static str {
    match name {
        "braze" => "https://rest.iad-01.braze.com",
        "customerio" => "https://track.customer.io",
        "mixpanel" => "https://api.mixpanel.com",
        "klaviyo" => "https://a.klaviyo.com",
        _ => "https://graph.facebook.com",
    }
}

/// Settled events (delivered, dead-lettered, filtered) over all destinations.
async fn settled(admin: &switchyard_e2e::Admin) -> u64 {
    let rows = admin.get("/admin/destinations").await;
    rows.as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            ["delivered", "dead_letters", "filtered"]
                .iter()
                .map(|k| r[*k].as_u64().unwrap_or(0))
                .sum::<u64>()
        })
        .sum()
}

async fn fleet(scale: Scale) -> anyhow::Result<Value> {
    use crate::load::{open_loop, Target};
    use crate::procs::{pss_kib, switchyard};
    use crate::receiver::Receiver;
    use switchyard_e2e::host::{config_for, ADMIN_TOKEN, WRITE_KEY};
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir()?;
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins)?;
    for (name, _, _) in ENTRIES {
        let file = format!("catalog:{name}.wasm");
        std::fs::copy(
            workspace_root().join("target/catalog").join(&file),
            plugins.join(&file),
        )?;
    }
    let mut tables = String::new();
    for i in 0..FLEET {
        let (name, _, _) = ENTRIES[i % ENTRIES.len()];
        tables.push_str(&format!(
            "[[destinations]]\nname = \"{name}-{i}\"\nplugin = \"catalog:{name}\"\nallowed_hosts = [\"{}\"]\n\
             vendor_origins = {{ \"*\" = \"{}\" }}\nsettings = {}\n",
            vendor_of(name),
            rx.origin(),
            fleet_settings(name)
        ));
    }
    let port = switchyard_e2e::free_port();
    let text = config_for(
        &format!("127.0.0.1:{port}"),
        &dir.path().join("data"),
        &plugins,
        &tables,
    );
    let (host, start) = switchyard(dir.path(), &text, port).await?;
    let admin = switchyard_e2e::Admin::new(format!("http://127.0.0.1:{port}"), ADMIN_TOKEN);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let idle_pss = pss_kib(host.child.id());
    let target = Target::new(format!("http://127.0.0.1:{port}/v1/batch"), WRITE_KEY);
    let before = settled(&admin).await;
    let started = Instant::now();
    let load = open_loop(&target, FLEET_RPS, scale.phase, || {
        let (body, ids) = events::batch("catalog-fleet", 10);
        (body.replace("\"Order Completed\"", "\"Signed Up\""), ids)
    })
    .await;
    let loaded_pss = pss_kib(host.child.id());
    let expected = load.events * FLEET as u64;
    let mut done = settled(&admin).await - before;
    let mut last = started.elapsed();
    while done < expected && started.elapsed() < std::time::Duration::from_secs(120) {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let now = settled(&admin).await - before;
        if now != done {
            done = now;
            last = started.elapsed();
        }
    }
    let rate = done as f64 / last.as_secs_f64();
    let rows = admin.get("/admin/destinations").await;
    let dead: u64 = rows
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r["dead_letters"].as_u64().unwrap_or(0))
        .sum();
    drop(host);
    println!(
        "catalog fleet: {FLEET} destinations, {loaded_pss} KiB PSS under load ({idle_pss} idle), start {start:?}, {rate:.0} deliveries/s, {done}/{expected} settled, {dead} dead letters"
    );
    Ok(json!({
        "destinations": FLEET,
        "entries": ENTRIES.iter().map(|(n, _, _)| *n).collect::<Vec<_>>(),
        "offered": format!("{FLEET_RPS} requests/s of 10 events for {:?}, each event to every destination", scale.phase),
        "start_ms": start.as_millis(),
        "pss_idle_kib": idle_pss,
        "pss_under_load_kib": loaded_pss,
        "settled": done,
        "expected": expected,
        "dead_letters": dead,
        "settled_per_second": rate.round(),
    }))
}
