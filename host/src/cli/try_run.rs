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
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::config::{Config, DestinationConfig, Limits, RetryPolicy};
use crate::dispatch::retry::backoff_ceiling;
use crate::dispatch::transform::recheck;
use crate::imports::http::{Allowlist, DryRun, Egress, Request, Response};
use crate::ingest::normalize::{normalize_body, BodyKind};
use crate::runtime::{CallContext, Event, Kind, Outcome, Plugin, Runtime, Verdict};

/// Most attempts of one event in a dry run (the host goes on until `retry.window` closes).
pub const MAX_ATTEMPTS: u32 = 10;

/// The flags of `switchyard try` (their names are a contract: README, "Command line").
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
}

/// One component of the run, before it is loaded.
#[derive(Debug)]
struct Part {
    /// The component file.
    plugin: PathBuf,
    /// Its settings, and where they come from (for messages).
    settings: (Value, String),
    /// What its `http` import may reach (`None`: anything, recorded only).
    allowlist: Option<Allowlist>,
    /// Its sandbox limits.
    limits: Limits,
}

/// What the run does: the chain, the destination (or a last transformation), and how retries are scheduled.
struct Plan {
    chain: Vec<Part>,
    last: Part,
    retry: RetryPolicy,
    cache: Option<PathBuf>,
}

/// The default retry policy (README, "Delivery"), for a run without `--config`.
fn default_retry() -> RetryPolicy {
    RetryPolicy {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(600),
        window: Duration::from_secs(4 * 3600),
    }
}

/// Where compiled components are kept between dry runs without `--config`:
/// `$SWITCHYARD_CACHE_DIR`, else `$XDG_CACHE_HOME/switchyard`, else `~/.cache/switchyard`.
pub fn user_cache_dir() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("SWITCHYARD_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("switchyard")))
        .or_else(|| var("HOME").map(|d| d.join(".cache/switchyard")))
        .map(|d| d.join("compiled"))
}

/// Read a settings file (`None`: `{}`) as a JSON object, with its name for messages.
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

/// The plan of a run from its flags.
fn plan(args: &TryArgs) -> anyhow::Result<Plan> {
    if args.transform_settings.len() > args.transforms.len() {
        anyhow::bail!(
            "{} --transform-settings for {} --transform: each applies to the --transform at its position",
            args.transform_settings.len(),
            args.transforms.len()
        );
    }
    let given_chain = || -> anyhow::Result<Vec<Part>> {
        args.transforms
            .iter()
            .enumerate()
            .map(|(i, p)| {
                Ok(Part {
                    plugin: p.clone(),
                    settings: read_settings(args.transform_settings.get(i).map(PathBuf::as_path))?,
                    allowlist: None,
                    limits: Limits::default(),
                })
            })
            .collect()
    };
    let Some(file) = &args.config else {
        let plugin = args.plugin.clone().ok_or_else(|| {
            anyhow::anyhow!(
                "name the component (`switchyard try PLUGIN.wasm ...`), or give --config"
            )
        })?;
        let settings = args
            .settings
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("--settings FILE is needed without --config"))?;
        return Ok(Plan {
            chain: given_chain()?,
            last: Part {
                plugin,
                settings: read_settings(Some(settings))?,
                allowlist: None,
                limits: Limits::default(),
            },
            retry: default_retry(),
            cache: user_cache_dir(),
        });
    };
    let config = Config::load(file)?;
    let dest = pick(&config, file, args.destination.as_deref())?;
    let settings = match &args.settings {
        Some(f) => read_settings(Some(f))?,
        None => (
            dest.settings.clone(),
            format!("{}: destination `{}`", file.display(), dest.name),
        ),
    };
    let component = |plugin: &str| config.plugins_dir.join(format!("{plugin}.wasm"));
    let chain = if args.transforms.is_empty() {
        dest.transforms
            .iter()
            .filter_map(|name| config.transforms.iter().find(|t| &t.name == name))
            .map(|t| Part {
                plugin: component(&t.plugin),
                settings: (
                    t.settings.clone(),
                    format!("{}: transform `{}`", file.display(), t.name),
                ),
                allowlist: Some(t.allowed_hosts.clone()),
                limits: t.limits,
            })
            .collect()
    } else {
        given_chain()?
    };
    for (path, url) in crate::allowlist::uncovered_urls(&dest.settings, &dest.allowed_hosts) {
        eprintln!(
            "warning: {}: destination `{}`: settings.{path} = {url} is not covered by its allowed_hosts: requests there are denied",
            file.display(),
            dest.name
        );
    }
    Ok(Plan {
        chain,
        last: Part {
            plugin: args
                .plugin
                .clone()
                .unwrap_or_else(|| component(&dest.plugin)),
            settings,
            allowlist: Some(dest.allowed_hosts.clone()),
            limits: dest.limits,
        },
        retry: dest.retry,
        cache: Some(config.store.path.join("compiled")),
    })
}

/// The destination `name` of `config` (or its only one).
fn pick<'a>(
    config: &'a Config,
    file: &Path,
    name: Option<&str>,
) -> anyhow::Result<&'a DestinationConfig> {
    let names = || {
        config
            .destinations
            .iter()
            .map(|d| format!("`{}`", d.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match name {
        Some(name) => config
            .destinations
            .iter()
            .find(|d| d.name == name)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: no destination `{name}` (it has {})",
                    file.display(),
                    names()
                )
            }),
        None => match config.destinations.as_slice() {
            [only] => Ok(only),
            [] => anyhow::bail!("{}: the config has no destination", file.display()),
            _ => anyhow::bail!(
                "{}: several destinations ({}): say which with --destination",
                file.display(),
                names()
            ),
        },
    }
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
async fn load(runtime: &Runtime, part: Part, script: Vec<Response>) -> anyhow::Result<Loaded> {
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
        tape: None,
    };
    let (settings_value, settings_name) = part.settings;
    let settings_text = settings_value.to_string();
    if let Err(message) = plugin.check(&ctx, &settings_text).await? {
        anyhow::bail!("{settings_name}: settings refused by {name}: {message}");
    }
    dry.take();
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
        dry,
    })
}

/// Run `switchyard try`.
pub async fn try_run(args: TryArgs) -> anyhow::Result<ExitCode> {
    let script = super::respond::script(&args.respond)?;
    let plan = plan(&args)?;
    let mut events = events_of(&args.event, super::read_json(&args.event)?)?;
    let runtime = Runtime::new(plan.cache.clone(), 4)?;
    let mut steps = Vec::with_capacity(plan.chain.len() + 1);
    for part in plan.chain {
        let file = part.plugin.clone();
        let loaded = load(&runtime, part, Vec::new()).await?;
        if loaded.plugin.kind() != Kind::Transform {
            anyhow::bail!(
                "{}: a --transform must be a transformation component; this is a {}",
                file.display(),
                loaded.plugin.kind().as_str()
            );
        }
        steps.push(loaded);
    }
    let last = load(&runtime, plan.last, script).await?;
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
        print_exchanges(&step.dry);
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
        println!("\n--- attempt {attempt}: {} event(s)", pending.len());
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
        print_exchanges(&dest.dry);
        println!();
        let mut retry = Vec::new();
        let mut longest_hint = None;
        for (event, outcome) in pending.iter().zip(outcomes) {
            let text = match outcome {
                Outcome::Delivered => "delivered".to_string(),
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
            println!("{}: {text}", event.message_id);
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
            println!(
                "\nthe retry window ({}) would close before the next attempt: {} event(s) go to dead letters",
                human(policy.window),
                retry.len()
            );
            return Ok(false);
        }
        if attempt == MAX_ATTEMPTS {
            println!(
                "\n{} event(s) still retrying after {MAX_ATTEMPTS} attempts; the host goes on until retry.window ({}) closes",
                retry.len(),
                human(policy.window)
            );
            return Ok(false);
        }
        println!("\nthe host would retry {} event(s) {schedule}", retry.len());
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

/// Each request since the last call, and the answer it got.
fn print_exchanges(dry: &DryRun) {
    for (req, answer) in dry.take() {
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
                println!(
                    "<- {}{headers} {}",
                    resp.status,
                    crate::observe::attempts::excerpt(&resp.body)
                );
            }
            Err(error) => println!("<- {error}"),
        }
    }
}

fn print_request(req: &Request) {
    println!("\n{} {}", req.method, req.url);
    for (k, v) in &req.headers {
        println!("{k}: {v}");
    }
    println!("\n{}", String::from_utf8_lossy(&req.body));
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
