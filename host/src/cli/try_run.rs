//! `switchyard try PLUGIN.wasm --settings FILE --event FILE`: a dry run.
//!
//! The events are validated and normalised by ingest's own
//! [`normalize_body`], the settings are
//! `check`ed, then `deliver` runs with an `http` import that sends nothing: it
//! prints each request and answers `200 {}`. The exit code is 0 when every event
//! is delivered, 1 otherwise.

use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

use crate::config::Limits;
use crate::imports::http::Egress;
use crate::ingest::normalize::{normalize_body, BodyKind};
use crate::runtime::{CallContext, Event, Outcome, Runtime};

/// Dry-run `plugin` on the events of `event` with the settings of `settings`.
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
    let runtime = Runtime::new(None, 4)?;
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
        tape: None,
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

/// One message, an array of messages, or a batch body → normalised events. Every
/// form is read as a batch body, so that each message needs its `type` and the
/// batch-level `context`, `integrations` and `sentAt` apply as in `/v1/batch`.
fn events_of(path: &Path, value: Value) -> anyhow::Result<Vec<Event>> {
    let batch = |items: Vec<Value>| Map::from_iter([("batch".to_string(), Value::Array(items))]);
    let body = match value {
        Value::Array(items) => batch(items),
        Value::Object(map) if map.contains_key("batch") => map,
        Value::Object(map) => batch(vec![Value::Object(map)]),
        _ => anyhow::bail!("{}: expected a JSON object or array", path.display()),
    };
    let accepted =
        normalize_body(body, BodyKind::Batch, chrono::Utc::now(), None).map_err(|e| {
            match (e.rejected.first(), e.item) {
                (Some(r), _) => {
                    anyhow::anyhow!("{}: event {}: {}", path.display(), r.index, r.message)
                }
                (None, Some(i)) => anyhow::anyhow!("{}: event {i}: {}", path.display(), e.message),
                (None, None) => anyhow::anyhow!("{}: {}", path.display(), e.message),
            }
        })?;
    // Ingest would store the others; a dry run of a file names what is wrong in it.
    if let Some(r) = accepted.rejected.first() {
        anyhow::bail!("{}: event {}: {}", path.display(), r.index, r.message);
    }
    Ok(accepted
        .events
        .into_iter()
        .map(|n| Event {
            message_id: n.message_id,
            event_type: n.event_type.into(),
            json: Value::Object(n.message).to_string(),
        })
        .collect())
}
