//! Scenario `transforms`.
//!
//! The per-event cost of each bundled transformation (Rust `mask-pii` and
//! `consent`, JavaScript `mapping`, Python `tracking-plan`), and of a chain of
//! two, through the host's own chain runner (`dispatch::transform::apply`: a
//! fresh instance per link, the batch across the boundary, every kept event
//! re-checked), on batches of 100 normalised events. Beside them: the fixed
//! cost of a link (a test guest that keeps every event without parsing it),
//! and the fair floor of mask-pii's work natively: parse each event, hash two
//! fields (SHA-256 after normalising), remove one, serialise it.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use switchyard::config::Config;
use switchyard::dispatch::transform::{apply, versions, Link};
use switchyard::imports::resolve::SystemLookup;
use switchyard::observe::attempts::Tape;
use switchyard::plugins::Catalog;
use switchyard::runtime::bindings::switchyard::destination::types::EventType;
use switchyard::runtime::{Event, Runtime};
use switchyard_e2e::workspace_root;

use crate::{events, Scale};

/// The config of the measured chains: each transformation alone, then two in a row.
const CONFIG: &str = r#"
[[transforms]]
name = "mask"
plugin = "mask-pii"
settings = { hash = ["context.traits.email", "userId"], remove = ["context.ip"] }
[[transforms]]
name = "consent"
plugin = "consent"
settings = { categories = ["Analytics"] }
[[transforms]]
name = "mapping"
plugin = "mapping"
settings = { rename_events = { "Order Completed" = "purchase" }, rename_properties = { revenue = "value" } }
[[transforms]]
name = "plan"
plugin = "tracking-plan"
settings = { on_violation = "note", plan = { "Order Completed" = { type = "object", required = ["revenue"], properties = { revenue = { type = "number" } } } } }
[[destinations]]
name = "mapping-js"
plugin = "webhook"
settings = { url = "https://hooks.example.com/x" }
transforms = ["mapping"]
[[destinations]]
name = "plan-python"
plugin = "webhook"
settings = { url = "https://hooks.example.com/x" }
transforms = ["plan"]
[[destinations]]
name = "mask-only"
plugin = "webhook"
settings = { url = "https://hooks.example.com/x" }
transforms = ["mask"]
[[destinations]]
name = "consent-only"
plugin = "webhook"
settings = { url = "https://hooks.example.com/x" }
transforms = ["consent"]
[[destinations]]
name = "both"
plugin = "webhook"
settings = { url = "https://hooks.example.com/x" }
transforms = ["consent", "mask"]
"#;

/// Normalised events with an email and a consent object, so every step does its work.
fn batch(n: usize) -> Vec<Event> {
    events::normalised(n)
        .into_iter()
        .enumerate()
        .map(|(i, text)| {
            let mut v: Value = serde_json::from_str(&text).expect("JSON");
            v["context"]["traits"] = json!({"email": format!(" User{i}@Example.com ")});
            v["context"]["consent"] = json!({"categoryPreferences": {"Analytics": true}});
            Event {
                message_id: v["messageId"].as_str().unwrap_or_default().to_string(),
                event_type: EventType::Track,
                json: v.to_string(),
            }
        })
        .collect()
}

/// The floor: the same masking natively (parse, change, serialise).
fn native_mask(events: &[Event]) -> usize {
    let mut bytes = 0;
    for e in events {
        let mut v: Value = serde_json::from_str(&e.json).expect("JSON");
        let obj = v.as_object_mut().expect("object");
        for (parent, key) in [("context", Some("traits")), ("", None)] {
            let target = if parent.is_empty() {
                Some(&mut *obj)
            } else {
                obj.get_mut(parent)
                    .and_then(|c| c.get_mut(key.unwrap_or_default()))
                    .and_then(Value::as_object_mut)
            };
            if let Some(t) = target {
                let field = if parent.is_empty() { "userId" } else { "email" };
                if let Some(Value::String(s)) = t.get(field) {
                    let h = hex::encode(Sha256::digest(s.trim().to_lowercase().as_bytes()));
                    t.insert(field.into(), Value::String(h));
                }
            }
        }
        if let Some(c) = obj.get_mut("context").and_then(Value::as_object_mut) {
            c.remove("ip");
        }
        bytes += v.to_string().len();
    }
    bytes
}

pub async fn run(scale: Scale) -> anyhow::Result<Value> {
    let iterations = if scale.quick { 100 } else { 1_000 };
    let dir = workspace_root().join("target/destinations");
    let config = Config::parse(CONFIG, "bench.toml", &dir)?;
    let runtime = Runtime::new(None, 8)?;
    let catalog = Catalog::load(&runtime, &dir, &config.destinations, &config.transforms).await?;
    let events = batch(100);
    let mut chains = serde_json::Map::new();
    for dest in &config.destinations {
        let links: Vec<Arc<Link>> = config
            .chain_of(dest)
            .into_iter()
            .map(|t| {
                let slot = catalog.slot(&t.plugin).expect("loaded");
                Arc::new(Link::new(&dest.name, t, slot, Arc::new(SystemLookup)))
            })
            .collect();
        let versions = versions(&links).expect("every link loaded");
        // One warm-up, then the measured rounds.
        let fates = apply(&links, &versions, events.clone(), &Tape::default()).await;
        let going = fates
            .iter()
            .filter(|f| matches!(f, switchyard::dispatch::transform::Fate::Go(_)))
            .count();
        anyhow::ensure!(going == events.len(), "{}: every event goes on", dest.name);
        let t = Instant::now();
        for _ in 0..iterations {
            std::hint::black_box(apply(&links, &versions, events.clone(), &Tape::default()).await);
        }
        let per_event_us = t.elapsed().as_secs_f64() * 1e6 / (iterations * events.len()) as f64;
        println!("transforms: {} {per_event_us:.2} µs/event", dest.name);
        chains.insert(
            dest.name.clone(),
            json!({
                "links": dest.transforms,
                "per_event_us_in_batches_of_100": (per_event_us * 100.0).round() / 100.0,
            }),
        );
    }
    // The fixed cost of a link: a guest that keeps every event untouched
    // (no parse), so what is left is the instance, the copies and the re-check.
    let identity = workspace_root().join("target/test-guests/misbehave-transform.wasm");
    let fixed_us = if identity.exists() {
        let plugin = runtime.load("identity", &std::fs::read(&identity)?).await?;
        let ctx = switchyard::runtime::CallContext {
            destination: Arc::from("bench"),
            transform: Some(Arc::from("identity")),
            limits: switchyard::config::Limits::default(),
            egress: switchyard::imports::http::Egress::DryRun(Default::default()),
            counters: Default::default(),
            observers: Default::default(),
            clock: None,
            secrets: Default::default(),
            warm: true,
        };
        let settings = r#"{"mode":"identity"}"#;
        let t = Instant::now();
        for _ in 0..iterations {
            let verdicts = plugin.transform(&ctx, settings, &events).await?;
            for (e, v) in events.iter().zip(verdicts) {
                if let switchyard::runtime::Verdict::Keep(json) = v {
                    std::hint::black_box(switchyard::dispatch::transform::recheck(e, json).ok());
                }
            }
        }
        let us = t.elapsed().as_secs_f64() * 1e6 / (iterations * events.len()) as f64;
        println!("transforms: identity (fixed cost of a link) {us:.2} µs/event");
        Some((us * 100.0).round() / 100.0)
    } else {
        None
    };
    let t = Instant::now();
    for _ in 0..iterations {
        std::hint::black_box(native_mask(std::hint::black_box(&events)));
    }
    let native_us = t.elapsed().as_secs_f64() * 1e6 / (iterations * events.len()) as f64;
    println!("transforms: native mask floor {native_us:.2} µs/event");
    Ok(json!({
        "setup": format!("dispatch::transform::apply on batches of 100 normalised events (~600 bytes, with an email and a consent object), {iterations} rounds after one warm-up; a fresh instance per link per batch"),
        "goal": "a Rust transform adds <= 2 us per event in batches of 100",
        "chains": chains,
        "native_mask_floor_per_event_us": (native_us * 100.0).round() / 100.0,
        "identity_link_per_event_us": fixed_us,
    }))
}
