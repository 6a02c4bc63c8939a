//! `switchyard try PLUGIN.wasm --settings FILE --event FILE`: a dry run.
//!
//! The events are validated and normalised as ingest would, the settings are
//! `check`ed, then `deliver` runs with an `http` import that sends nothing: it
//! prints each request and answers `200 {}`. The exit code is 0 when every event
//! is delivered, 1 otherwise.

use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::config::Limits;
use crate::imports::http::Egress;
use crate::ingest::normalize::{normalize, Envelope};
use crate::runtime::bindings::switchyard::destination::types::EventType;
use crate::runtime::{CallContext, Event, Outcome, Runtime};

pub async fn try_run(plugin: &Path, settings: &Path, event: &Path) -> anyhow::Result<ExitCode> {
    let settings_value = super::read_json(settings)?;
    if !settings_value.is_object() {
        anyhow::bail!("{}:1:1: settings must be a JSON object", settings.display());
    }
    let events = events_of(event, super::read_json(event)?)?;
    let bytes = std::fs::read(plugin)
        .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", plugin.display()))?;
    let name = plugin
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plugin".into());
    let runtime = Runtime::new(None)?;
    let loaded = runtime
        .load(&name, &bytes)
        .await
        .map_err(|e| anyhow::anyhow!("{}: {e}", plugin.display()))?;
    let recorded = Arc::new(Mutex::new(Vec::new()));
    let ctx = CallContext {
        destination: Arc::from(name.as_str()),
        limits: Limits::default(),
        egress: Egress::DryRun(recorded.clone()),
        counters: Default::default(),
    };
    let settings_text = settings_value.to_string();
    if let Err(message) = loaded.check(&ctx, &settings_text).await? {
        anyhow::bail!(
            "{}: settings refused by {name}: {message}",
            settings.display()
        );
    }
    println!(
        "plugin {name} {} (sha256 {}), {} event(s)",
        loaded.metadata.version,
        loaded.sha256,
        events.len()
    );
    // In batches of the plugin's max-batch, as the host would send them.
    let mut outcomes = Vec::with_capacity(events.len());
    for batch in events.chunks(loaded.metadata.max_batch as usize) {
        outcomes.extend(loaded.deliver(&ctx, &settings_text, batch).await?);
    }
    for req in recorded.lock().expect("dry-run log").iter() {
        println!("\n{} {}", req.method, req.url);
        for (k, v) in &req.headers {
            println!("{k}: {v}");
        }
        println!("\n{}", String::from_utf8_lossy(&req.body));
    }
    println!();
    let mut all_delivered = true;
    for (event, outcome) in events.iter().zip(outcomes) {
        let text = match outcome {
            Outcome::Delivered => "delivered".to_string(),
            Outcome::Retry { reason, after } => {
                all_delivered = false;
                match after {
                    Some(a) => format!("retry after {a:?}: {reason}"),
                    None => format!("retry: {reason}"),
                }
            }
            Outcome::Reject(reason) => {
                all_delivered = false;
                format!("reject: {reason}")
            }
        };
        println!("{}: {text}", event.message_id);
    }
    Ok(if all_delivered {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// One message, an array of messages, or a batch body → normalised events.
fn events_of(path: &Path, value: Value) -> anyhow::Result<Vec<Event>> {
    let (items, envelope_root) = match value {
        Value::Array(items) => (items, None),
        Value::Object(mut map) => match map.remove("batch") {
            Some(Value::Array(items)) => (items, Some(map)),
            Some(_) => anyhow::bail!("{}: `batch` must be an array", path.display()),
            None => (vec![Value::Object(map)], None),
        },
        _ => anyhow::bail!("{}: expected a JSON object or array", path.display()),
    };
    let root = envelope_root.unwrap_or_default();
    let envelope = Envelope {
        context: root.get("context").and_then(Value::as_object),
        integrations: root.get("integrations").and_then(Value::as_object),
        sent_at: root.get("sentAt"),
    };
    let now = chrono::Utc::now();
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let Value::Object(item) = item else {
                anyhow::bail!("{}: event {i}: must be an object", path.display());
            };
            let n = normalize(item, None, envelope, now)
                .map_err(|m| anyhow::anyhow!("{}: event {i}: {m}", path.display()))?;
            Ok(Event {
                message_id: n.message_id,
                event_type: EventType::parse(&n.event_type).unwrap_or(EventType::Track),
                json: Value::Object(n.message).to_string(),
            })
        })
        .collect()
}
