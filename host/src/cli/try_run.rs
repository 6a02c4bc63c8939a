//! `switchyard try PLUGIN.wasm --settings FILE --event FILE [--transform T.wasm
//! [--transform-settings FILE]]...`: a dry run.
//!
//! The events are validated and normalised by ingest's own
//! [`normalize_body`]. Each `--transform` runs first, in order, as a
//! destination's chain would (its output re-checked like the host's), and
//! every event is printed after every step. Then the destination's settings are
//! `check`ed and `deliver` runs with an `http` import that sends nothing: it
//! prints each request and answers `200 {}`. PLUGIN may itself be a
//! transformation: the run then ends after it. The exit code is 0 when every
//! event is delivered (or dropped by a transformation), 1 otherwise.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

use crate::config::Limits;
use crate::dispatch::transform::recheck;
use crate::imports::http::{Egress, Request};
use crate::ingest::normalize::{normalize_body, BodyKind};
use crate::runtime::{CallContext, Event, Kind, Outcome, Plugin, Runtime, Verdict};

/// What the dry-run `http` import recorded.
type DryRunLog = Arc<Mutex<Vec<Request>>>;

/// One `--transform` with its settings file, if one was given.
#[derive(Debug)]
pub struct Step {
    /// The component.
    plugin: PathBuf,
    /// Its settings (`None`: `{}`).
    settings: Option<PathBuf>,
}

/// Pair each `--transform` with the `--transform-settings` at its position.
pub fn chain_of(plugins: &[PathBuf], settings: &[PathBuf]) -> anyhow::Result<Vec<Step>> {
    if settings.len() > plugins.len() {
        anyhow::bail!(
            "{} --transform-settings for {} --transform: each applies to the --transform at its position",
            settings.len(),
            plugins.len()
        );
    }
    Ok(plugins
        .iter()
        .enumerate()
        .map(|(i, p)| Step {
            plugin: p.clone(),
            settings: settings.get(i).cloned(),
        })
        .collect())
}

/// A component loaded and its settings checked.
struct Loaded {
    name: String,
    plugin: Plugin,
    settings: String,
    ctx: CallContext,
}

/// A settings file (`None`: `{}`) as a JSON object, and its name for messages.
fn read_settings(settings: Option<&Path>) -> anyhow::Result<(Value, String)> {
    let value = match settings {
        Some(file) => super::read_json(file)?,
        None => Value::Object(Map::new()),
    };
    let name = settings.map_or("{}".into(), |f| f.display().to_string());
    if !value.is_object() {
        anyhow::bail!("{name}:1:1: settings must be a JSON object");
    }
    Ok((value, name))
}

/// Load `path` and check `settings` (from [`read_settings`]) against it.
async fn load(
    runtime: &Runtime,
    path: &Path,
    (settings_value, settings_name): (Value, String),
    recorded: &DryRunLog,
) -> anyhow::Result<Loaded> {
    let bytes =
        std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plugin".into());
    let plugin = runtime
        .load(&name, &bytes)
        .await
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let ctx = CallContext {
        destination: Arc::from(name.as_str()),
        transform: None,
        limits: Limits::default(),
        egress: Egress::DryRun(recorded.clone()),
        counters: Default::default(),
        tape: None,
    };
    let settings_text = settings_value.to_string();
    if let Err(message) = plugin.check(&ctx, &settings_text).await? {
        anyhow::bail!("{settings_name}: settings refused by {name}: {message}");
    }
    println!(
        "{} {name} {} (sha256 {})",
        plugin.kind().as_str(),
        plugin.metadata.version,
        plugin.sha256
    );
    Ok(Loaded {
        name,
        plugin,
        settings: settings_text,
        ctx,
    })
}

/// Dry-run `plugin` on the events of `event` with the settings of `settings`,
/// after the transformations of `chain`.
pub async fn try_run(
    plugin: &Path,
    settings: &Path,
    event: &Path,
    chain: &[Step],
) -> anyhow::Result<ExitCode> {
    let last_settings = read_settings(Some(settings))?;
    let mut events = events_of(event, super::read_json(event)?)?;
    let runtime = Runtime::new(None, 4)?;
    let recorded: DryRunLog = Arc::new(Mutex::new(Vec::new()));
    let mut steps = Vec::with_capacity(chain.len() + 1);
    for step in chain {
        let settings = read_settings(step.settings.as_deref())?;
        let loaded = load(&runtime, &step.plugin, settings, &recorded).await?;
        if loaded.plugin.kind() != Kind::Transform {
            anyhow::bail!(
                "{}: a --transform must be a transformation component; this is a {}",
                step.plugin.display(),
                loaded.plugin.kind().as_str()
            );
        }
        steps.push(loaded);
    }
    let last = load(&runtime, plugin, last_settings, &recorded).await?;
    let destination = match last.plugin.kind() {
        Kind::Transform => {
            steps.push(last);
            None
        }
        Kind::Destination => Some(last),
    };
    println!("{} event(s)", events.len());
    for e in &events {
        print_event("as received", e);
    }
    let mut all_well = true;
    for step in &steps {
        let (kept, ok) = transform(step, events).await?;
        all_well &= ok;
        events = kept;
    }
    let Some(destination) = destination else {
        print_requests(&recorded);
        return Ok(exit(all_well));
    };
    // In batches of the plugin's max-batch, as the host would send them.
    let mut outcomes = Vec::with_capacity(events.len());
    for batch in events.chunks(destination.plugin.metadata.max_batch as usize) {
        outcomes.extend(
            destination
                .plugin
                .deliver(&destination.ctx, &destination.settings, batch)
                .await?,
        );
    }
    print_requests(&recorded);
    println!();
    for (event, outcome) in events.iter().zip(outcomes) {
        let text = match outcome {
            Outcome::Delivered => "delivered".to_string(),
            Outcome::Retry { reason, after } => {
                all_well = false;
                match after {
                    Some(a) => format!("retry after {a:?}: {reason}"),
                    None => format!("retry: {reason}"),
                }
            }
            Outcome::Reject(reason) => {
                all_well = false;
                format!("reject: {reason}")
            }
        };
        println!("{}: {text}", event.message_id);
    }
    Ok(exit(all_well))
}

/// Run one transformation on `events`: the ones it keeps (re-checked), and
/// whether none failed. Prints what became of each.
async fn transform(step: &Loaded, events: Vec<Event>) -> anyhow::Result<(Vec<Event>, bool)> {
    let mut kept = Vec::with_capacity(events.len());
    let mut ok = true;
    for batch in events.chunks(step.plugin.metadata.max_batch as usize) {
        let verdicts = step
            .plugin
            .transform(&step.ctx, &step.settings, batch)
            .await?;
        for (event, verdict) in batch.iter().zip(verdicts) {
            let label = format!("after {}", step.name);
            match verdict {
                Verdict::Keep(json) => match recheck(event, json) {
                    Ok(e) => {
                        print_event(&label, &e);
                        kept.push(e);
                    }
                    Err(why) => {
                        ok = false;
                        println!("\n{}: {label}: broke the contract: {why}", event.message_id);
                    }
                },
                Verdict::Drop(reason) => {
                    println!(
                        "\n{}: {label}: dropped (filtered): {reason}",
                        event.message_id
                    )
                }
                Verdict::Fail(Outcome::Reject(reason)) => {
                    ok = false;
                    println!("\n{}: {label}: reject: {reason}", event.message_id);
                }
                Verdict::Fail(Outcome::Retry { reason, .. }) => {
                    ok = false;
                    println!("\n{}: {label}: retry: {reason}", event.message_id);
                }
                Verdict::Fail(Outcome::Delivered) => kept.push(event.clone()),
            }
        }
    }
    Ok((kept, ok))
}

fn print_event(label: &str, e: &Event) {
    let pretty = serde_json::from_str::<Value>(&e.json)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| e.json.clone());
    println!("\n{}: {label}:\n{pretty}", e.message_id);
}

fn print_requests(recorded: &DryRunLog) {
    for req in recorded.lock().expect("dry-run log").iter() {
        println!("\n{} {}", req.method, req.url);
        for (k, v) in &req.headers {
            println!("{k}: {v}");
        }
        println!("\n{}", String::from_utf8_lossy(&req.body));
    }
}

fn exit(all_well: bool) -> ExitCode {
    if all_well {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
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
