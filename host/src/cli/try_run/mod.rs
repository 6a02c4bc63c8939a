//! `switchyard try [PLUGIN.wasm] --event FILE [--settings FILE] [--respond ANSWER]...
//! [--config FILE [--destination NAME]] [--transform T.wasm [--transform-settings FILE]]...`:
//! a dry run.
//!
//! The events are validated and normalised by ingest's own
//! [`normalize_body`]. Each transformation runs first, in order, as a
//! destination's chain would (its output re-checked like the host's), and
//! every event is printed after every step. Then the destination's settings are
//! `check`ed and `deliver` runs with an `http` import that sends nothing
//! ([`DryRun`]): it prints each request and answers it from the `--respond`
//! script ([`super::respond`]), `200 {}` once the script is used up. Events the
//! destination asks to retry are delivered again, attempt after attempt, as the
//! host would schedule them (the waits are printed, not slept), up to
//! [`MAX_ATTEMPTS`]. With `--config`, the destination of that file applies: its
//! plugin, settings, transformations, `allowed_hosts` (a request outside them is
//! denied as the host denies it), limits and retry policy. PLUGIN may itself be
//! a transformation: the run then ends after it. The exit code is 0 when every
//! event ends delivered (or dropped by a transformation), 1 otherwise.
//!
//! Compiled components are cached (the host's cache under `[store] path` with
//! `--config`, otherwise the user's cache directory), so a JavaScript or Python
//! dry run starts in milliseconds after the first.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::config::RetryPolicy;
use crate::dispatch::retry::backoff_ceiling;
use crate::dispatch::transform::recheck;
use crate::imports::http::{DryRun, Egress, Request, Response};
use crate::ingest::normalize::{normalize_body, BodyKind};
use crate::runtime::{CallContext, Event, Kind, Outcome, Plugin, Runtime, Verdict};

mod plan;

pub use plan::user_cache_dir;
use plan::{plan, Part};

/// Whether `--format json` is on: only the requests are printed, one JSON
/// object a line (the run's only output, so set once before it starts).
static JSON_LINES: AtomicBool = AtomicBool::new(false);

/// `println!`, unless only the requests are printed (`--format json`).
macro_rules! say {
    ($($arg:tt)*) => {
        if !JSON_LINES.load(Relaxed) {
            println!($($arg)*)
        }
    };
}

/// Most attempts of one event in a dry run (the host goes on until `retry.window` closes).
pub const MAX_ATTEMPTS: u32 = 10;

/// The flags of `switchyard try` (their names are a contract: the book, `operating/command-line.md`).
#[derive(Debug, clap::Args)]
pub struct TryArgs {
    /// The destination component (default with --config: the destination's plugin in `[plugins] dir`).
    pub plugin: Option<PathBuf>,
    /// Settings of the destination, a JSON object (default with --config: the destination's `settings`).
    #[arg(long)]
    pub settings: Option<PathBuf>,
    /// The event: one Segment message, an array of them, or a `{"batch": [...]}` body.
    #[arg(long)]
    pub event: PathBuf,
    /// A scripted answer to the destination's next request, `STATUS[,header=value]...[,body=TEXT|body=@FILE]`,
    /// or `@FILE` of such answers, one per line (repeatable, used in order; then `200 {}`).
    #[arg(long = "respond", value_name = "ANSWER")]
    pub respond: Vec<String>,
    /// A host's configuration file: apply its destination's plugin, settings, transformations,
    /// allowed_hosts, limits and retry policy.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Which destination of --config (needed when it has more than one).
    #[arg(long, requires = "config")]
    pub destination: Option<String>,
    /// A transformation component run before the destination (repeatable, in order).
    #[arg(long = "transform")]
    pub transforms: Vec<PathBuf>,
    /// Settings of the transformation at the same position (repeatable; `{}` when absent).
    #[arg(long = "transform-settings")]
    pub transform_settings: Vec<PathBuf>,
    /// `text` (the default), or `json`: only the requests the destination makes, one JSON object
    /// a line (`method`, `url`, `headers`, `body` as text), for tools.
    #[arg(long, value_enum, default_value = "text")]
    pub format: TryFormat,
    /// A fixed wall clock (RFC 3339) for the run: the events' `receivedAt`, and every time the
    /// components read (a body stamped with the time, a signature over it). Default: the real clock.
    #[arg(long, value_name = "TIME")]
    pub clock: Option<String>,
}

/// How `switchyard try` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TryFormat {
    /// Events, requests, answers and outcomes, for a person.
    Text,
    /// The requests only, as JSON lines.
    Json,
}

/// A component loaded and its settings checked.
struct Loaded {
    name: String,
    plugin: Plugin,
    settings: String,
    ctx: CallContext,
    dry: Arc<DryRun>,
}

/// Load a part and check its settings; `script` answers its requests.
async fn load(
    runtime: &Runtime,
    part: Part,
    script: Vec<Response>,
    clock: Option<Arc<[u64]>>,
) -> anyhow::Result<Loaded> {
    let path = &part.plugin;
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
    let dry = Arc::new(DryRun::new(script, part.allowlist));
    let ctx = CallContext {
        destination: Arc::from(name.as_str()),
        transform: None,
        limits: part.limits,
        egress: Egress::DryRun(dry.clone()),
        counters: Default::default(),
        observers: Default::default(),
        clock,
        secrets: part.secrets,
        warm: true,
    };
    let (settings_value, settings_name) = part.settings;
    let settings_text = settings_value.to_string();
    if let Err(message) = plugin.check(&ctx, &settings_text).await? {
        anyhow::bail!("{settings_name}: settings refused by {name}: {message}");
    }
    dry.take();
    say!(
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
        dry,
    })
}

/// The component file of `plugin`: itself, or for a catalog entry
/// (`catalog:NAME`, or a missing `DIR/catalog:NAME.wasm`) the entry built
/// (once, then cached) into the catalog's cache folder or DIR.
async fn catalog_component(plugin: &Path) -> anyhow::Result<PathBuf> {
    let file_name = plugin.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let Some(entry) = crate::catalog::entry_name(file_name.trim_end_matches(".wasm")) else {
        return Ok(plugin.to_path_buf());
    };
    if plugin.is_file() {
        return Ok(plugin.to_path_buf());
    }
    let dir = match plugin.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => dir.to_path_buf(),
        None => crate::catalog::cache_dir(),
    };
    let source = crate::catalog::Source::find()?;
    source.build(&[entry], &dir).await?;
    Ok(crate::plugins::plugin_path(
        &dir,
        &format!("{}{entry}", crate::catalog::PREFIX),
    ))
}

/// Run `switchyard try`.
pub async fn try_run(args: TryArgs) -> anyhow::Result<ExitCode> {
    let script = super::respond::script(&args.respond)?;
    JSON_LINES.store(args.format == TryFormat::Json, Relaxed);
    let mut plan = plan(&args)?;
    plan.last.plugin = catalog_component(&plan.last.plugin).await?;
    let clock = args
        .clock
        .as_deref()
        .map(|t| {
            chrono::DateTime::parse_from_rfc3339(t)
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|e| anyhow::anyhow!("--clock {t}: not an RFC 3339 time: {e}"))
        })
        .transpose()?;
    let readings: Option<Arc<[u64]>> =
        clock.map(|t| Arc::from([t.timestamp_nanos_opt().unwrap_or_default().max(0) as u64]));
    let now = clock.unwrap_or_else(chrono::Utc::now);
    let mut events = events_at(&args.event, super::read_json(&args.event)?, now)?;
    let runtime = Runtime::new(plan.cache.clone(), 4)?;
    let mut steps = Vec::with_capacity(plan.chain.len() + 1);
    for part in plan.chain {
        let file = part.plugin.clone();
        let loaded = load(&runtime, part, Vec::new(), readings.clone()).await?;
        if loaded.plugin.kind() != Kind::Transform {
            anyhow::bail!(
                "{}: a --transform must be a transformation component; this is a {}",
                file.display(),
                loaded.plugin.kind().as_str()
            );
        }
        steps.push(loaded);
    }
    let last = load(&runtime, plan.last, script, readings.clone()).await?;
    let destination = match last.plugin.kind() {
        Kind::Transform => {
            steps.push(last);
            None
        }
        Kind::Destination => Some(last),
    };
    say!("{} event(s)", events.len());
    for e in &events {
        print_event("as received", e);
    }
    let mut all_well = true;
    for step in &steps {
        let (kept, ok) = transform(step, events).await?;
        print_exchanges(&step.dry, 1);
        all_well &= ok;
        events = kept;
    }
    let Some(destination) = destination else {
        return Ok(exit(all_well));
    };
    let delivered = deliver(&destination, &events, &plan.retry).await?;
    Ok(exit(all_well && delivered))
}

/// Deliver `events`, then again those asked to retry, as the host would
/// schedule them; whether every event ended delivered.
async fn deliver(dest: &Loaded, events: &[Event], policy: &RetryPolicy) -> anyhow::Result<bool> {
    let mut pending: Vec<&Event> = events.iter().collect();
    let mut waited = Duration::ZERO;
    let mut all_delivered = true;
    for attempt in 1..=MAX_ATTEMPTS {
        say!("\n--- attempt {attempt}: {} event(s)", pending.len());
        let mut outcomes = Vec::with_capacity(pending.len());
        // In batches of the plugin's max-batch, as the host would send them.
        for batch in pending.chunks(dest.plugin.metadata.max_batch as usize) {
            let batch: Vec<Event> = batch.iter().map(|e| (*e).clone()).collect();
            outcomes.extend(
                dest.plugin
                    .deliver(&dest.ctx, &dest.settings, &batch)
                    .await?,
            );
        }
        print_exchanges(&dest.dry, attempt);
        say!();
        let mut retry = Vec::new();
        let mut longest_hint = None;
        for (event, outcome) in pending.iter().zip(outcomes) {
            let text = match outcome {
                Outcome::Delivered => "delivered".to_string(),
                Outcome::Filtered(reason) => format!("filtered: {reason}"),
                Outcome::Retry { reason, after } => {
                    retry.push(*event);
                    longest_hint = longest_hint.max(after);
                    match after {
                        Some(a) => format!("retry after {}: {reason}", human(a)),
                        None => format!("retry: {reason}"),
                    }
                }
                Outcome::Reject(reason) => {
                    all_delivered = false;
                    format!("reject (dead letter): {reason}")
                }
            };
            say!("{}: {text}", event.message_id);
        }
        if retry.is_empty() {
            return Ok(all_delivered);
        }
        let ceiling = backoff_ceiling(policy, attempt);
        let schedule = match longest_hint {
            Some(hint) if hint >= ceiling => {
                format!("after {} (the destination's hint)", human(hint))
            }
            Some(hint) => format!(
                "after {} to {} (the destination's hint, or the backoff draw when longer)",
                human(hint),
                human(ceiling)
            ),
            None => format!("after a random wait of up to {} (backoff)", human(ceiling)),
        };
        waited += longest_hint.unwrap_or_default().max(ceiling);
        if waited > policy.window {
            say!(
                "\nthe retry window ({}) would close before the next attempt: {} event(s) go to dead letters",
                human(policy.window),
                retry.len()
            );
            return Ok(false);
        }
        if attempt == MAX_ATTEMPTS {
            say!(
                "\n{} event(s) still retrying after {MAX_ATTEMPTS} attempts; the host goes on until retry.window ({}) closes",
                retry.len(),
                human(policy.window)
            );
            return Ok(false);
        }
        say!("\nthe host would retry {} event(s) {schedule}", retry.len());
        pending = retry;
    }
    Ok(false)
}

/// A duration as `1.5s`, `200ms`, `10m`.
fn human(d: Duration) -> String {
    humantime::format_duration(Duration::from_millis(d.as_millis() as u64)).to_string()
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
                        say!("\n{}: {label}: broke the contract: {why}", event.message_id);
                    }
                },
                Verdict::Drop(reason) | Verdict::Fail(Outcome::Filtered(reason)) => {
                    say!(
                        "\n{}: {label}: dropped (filtered): {reason}",
                        event.message_id
                    )
                }
                Verdict::Fail(Outcome::Reject(reason)) => {
                    ok = false;
                    say!("\n{}: {label}: reject: {reason}", event.message_id);
                }
                Verdict::Fail(Outcome::Retry { reason, .. }) => {
                    ok = false;
                    say!("\n{}: {label}: retry: {reason}", event.message_id);
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
    say!("\n{}: {label}:\n{pretty}", e.message_id);
}

/// Each request since the last call, and the answer it got.
fn print_exchanges(dry: &DryRun, attempt: u32) {
    for (req, answer) in dry.take() {
        if JSON_LINES.load(Relaxed) {
            println!("{}", request_json(&req, attempt));
            continue;
        }
        print_request(&req);
        match answer {
            Ok(resp) => {
                let headers: Vec<String> = resp
                    .headers
                    .iter()
                    .filter(|(k, _)| k != "content-type")
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect();
                let headers = match headers.is_empty() {
                    true => String::new(),
                    false => format!(" ({})", headers.join(", ")),
                };
                say!(
                    "<- {}{headers} {}",
                    resp.status,
                    crate::observe::attempts::excerpt(&resp.body)
                );
            }
            Err(error) => say!("<- {error}"),
        }
    }
}

/// A request as one line of JSON: `method`, `url`, `headers` (names lower
/// case; repeated ones joined with `, `), `body` (as text) and `attempt` (1
/// for the first delivery, more for the host's retries).
fn request_json(req: &Request, attempt: u32) -> Value {
    let mut headers = Map::new();
    for (k, v) in &req.headers {
        let k = k.to_ascii_lowercase();
        let joined = match headers.get(&k).and_then(Value::as_str) {
            Some(prev) => format!("{prev}, {v}"),
            None => v.clone(),
        };
        headers.insert(k, Value::String(joined));
    }
    serde_json::json!({
        "method": req.method,
        "url": req.url,
        "headers": headers,
        "body": String::from_utf8_lossy(&req.body),
        "attempt": attempt,
    })
}

fn print_request(req: &Request) {
    say!("\n{} {}", req.method, req.url);
    for (k, v) in &req.headers {
        say!("{k}: {v}");
    }
    say!("\n{}", String::from_utf8_lossy(&req.body));
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
pub fn events_of(path: &Path, value: Value) -> anyhow::Result<Vec<Event>> {
    events_at(path, value, chrono::Utc::now())
}

/// [`events_of`], received at `now`.
fn events_at(
    path: &Path,
    value: Value,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<Vec<Event>> {
    let batch = |items: Vec<Value>| Map::from_iter([("batch".to_string(), Value::Array(items))]);
    let body = match value {
        Value::Array(items) => batch(items),
        Value::Object(map) if map.contains_key("batch") => map,
        Value::Object(map) => batch(vec![Value::Object(map)]),
        _ => anyhow::bail!("{}: expected a JSON object or array", path.display()),
    };
    let accepted = normalize_body(body, BodyKind::Batch, now, None).map_err(|e| {
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
