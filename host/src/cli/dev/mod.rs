//! `switchyard dev [DIR] [--respond ANSWER]...`: the inner loop of writing a
//! destination, in one command.
//!
//! In a folder made by `switchyard new` (or any folder whose Makefile builds
//! `NAME.wasm`, NAME being the folder's name) it:
//! 1. builds with the folder's own `make`, and again on every save;
//! 2. starts a loopback receiver ([`receiver`]) that prints each request and
//!    answers from the `--respond` script ([`super::respond`]), `200 {}` after it;
//! 3. runs a host on a generated config: the embedded store and the plugins
//!    directory in a temporary folder, one destination NAME whose settings are
//!    `sample-settings.json` with every URL pointed at the receiver (the path
//!    kept), and `allowed_hosts` naming the receiver;
//! 4. sends `sample-event.json` through the host's ingest, and again on every
//!    Enter (with fresh messageIds, so deduplication keeps none back);
//! 5. installs every successful build as a new version (the host hot-swaps it)
//!    and prints what the destination does: the version serving, and its
//!    delivered, retried and dead-lettered counts.
//!
//! It stops on Ctrl-C (or SIGTERM) and removes its temporary folder.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::Value;

use crate::config::{Config, LogConfig};

mod receiver;
mod report;
mod source;

use report::Watch;
use source::{changed, changed_now, snapshot};

/// How often the folder is looked at for changes.
const POLL: Duration = Duration::from_millis(400);
/// The write key of the generated source.
const WRITE_KEY: &str = "dev";

/// The flags of `switchyard dev`.
#[derive(Debug, clap::Args)]
pub struct DevArgs {
    /// The destination's folder (default: the current directory).
    pub dir: Option<PathBuf>,
    /// A scripted answer of the receiver, `STATUS[,header=value]...[,body=TEXT|body=@FILE]`, or
    /// `@FILE` of such answers (repeatable, used in order; then `200 {}`).
    #[arg(long = "respond", value_name = "ANSWER")]
    pub respond: Vec<String>,
    /// Where the host listens (default: a free port on 127.0.0.1).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    /// The host's log level (default `warn`: the guest's own warnings and the host's problems).
    #[arg(long, default_value = "warn")]
    pub log: String,
}

/// Run `switchyard dev`.
pub async fn dev(args: DevArgs) -> anyhow::Result<ExitCode> {
    super::logging::init(&LogConfig {
        json: false,
        level: args.log.clone(),
    });
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let dir = dir
        .canonicalize()
        .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("{}: cannot name the destination", dir.display()))?;
    if !dir.join("Makefile").is_file() {
        anyhow::bail!(
            "{}: no Makefile: run `switchyard dev` in a folder made by `switchyard new`",
            dir.display()
        );
    }
    let settings_file = dir.join("sample-settings.json");
    let events_file = dir.join("sample-event.json");
    let mut settings = super::read_json(&settings_file)?;
    let sample = super::read_json(&events_file)?;
    // The samples are checked as `try` would, before anything starts.
    super::try_run::events_of(&events_file, sample.clone())?;
    if dir.join("wit/transform.wit").is_file() {
        anyhow::bail!(
            "{}: a transformation: `switchyard dev` runs destinations; try a transformation with `make test`",
            dir.display()
        );
    }

    let script = super::respond::script(&args.respond)?;
    let receiver = receiver::start(script).await?;
    let origin = format!("http://{}", receiver.addr);
    let rewritten = point_at(&mut settings, &origin);
    if rewritten.is_empty() {
        println!(
            "note: {} has no http(s) URL: requests to the vendor are denied (only the receiver, {origin}, is allowed)",
            settings_file.display()
        );
    }
    for (path, from, to) in &rewritten {
        println!("settings.{path}: {from} -> {to} (the dev receiver)");
    }

    let tmp = tempfile::Builder::new()
        .prefix("switchyard-dev-")
        .tempdir()
        .context("creating a temporary folder")?;
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir_all(&plugins)?;
    let wasm = dir.join(format!("{name}.wasm"));

    // The first build: until one succeeds there is nothing to serve.
    let mut seen = snapshot(&dir);
    let mut shutdown = std::pin::pin!(super::run::shutdown_signal());
    while !build(&dir, &name).await? {
        println!("waiting for a save to build again (Ctrl-C stops)");
        tokio::select! {
            _ = &mut shutdown => return Ok(ExitCode::SUCCESS),
            _ = changed(&dir, &mut seen) => {}
        }
    }
    seen = snapshot(&dir);
    install(&wasm, &plugins, &name)?;

    // A fresh admin token per run: `--listen` may name an address others can reach.
    let token = format!("{:032x}", rand::random::<u128>());
    let config_text = config_text(&args.listen, &token, tmp.path(), &name, &origin, &settings)?;
    let config = Config::parse(&config_text, "<switchyard dev>", tmp.path())
        .map_err(|e| anyhow::anyhow!("the generated config: {e}"))?;
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let running = crate::start(config, listener).await?;
    let host = format!("http://{}", running.addr);
    println!(
        "host on {host}, receiver on {origin}; the store is in {}",
        tmp.path().display()
    );
    println!("Enter: send the sample events again; Ctrl-C: stop. Or send your own:");
    println!(
        "  curl -u {WRITE_KEY}: -H 'Content-Type: application/json' -d @{} {host}/v1/batch",
        events_file.display()
    );

    let client = reqwest::Client::new();
    let mut watch = Watch::new(token);
    watch.wait_for_serving(&client, &host, &name).await;
    let mut round = 1;
    send_samples(&client, &host, &sample, round).await;
    let mut keys = enter_presses();
    let mut poll = tokio::time::interval(POLL);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(()) = keys.recv() => {
                round += 1;
                send_samples(&client, &host, &sample, round).await;
            }
            _ = poll.tick() => {
                watch.report(&client, &host, &name).await;
                if changed_now(&dir, &mut seen) {
                    // Let a burst of saves settle before building.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    if build(&dir, &name).await? {
                        let sha = install(&wasm, &plugins, &name)?;
                        watch.installed(sha, &name);
                    } else {
                        println!("the serving version stays; waiting for the next save");
                    }
                    seen = snapshot(&dir);
                }
            }
        }
    }
    running.stop().await;
    receiver.stop();
    drop(tmp);
    Ok(ExitCode::SUCCESS)
}

/// Point every http(s) URL of `settings` at `origin`, keeping path and query;
/// `(path in the settings, old URL, new URL)` of each.
fn point_at(settings: &mut Value, origin: &str) -> Vec<(String, String, String)> {
    fn walk(v: &mut Value, path: String, origin: &str, out: &mut Vec<(String, String, String)>) {
        match v {
            Value::String(text) => {
                if let Ok(url) = reqwest::Url::parse(text.trim()) {
                    if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() {
                        let mut rest = url.path().to_string();
                        if let Some(q) = url.query() {
                            rest.push('?');
                            rest.push_str(q);
                        }
                        let new = format!("{origin}{}", if rest == "/" { "" } else { &rest });
                        out.push((path, text.clone(), new.clone()));
                        *text = new;
                    }
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    walk(item, format!("{path}[{i}]"), origin, out);
                }
            }
            Value::Object(map) => {
                for (key, item) in map.iter_mut() {
                    let path = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    walk(item, path, origin, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(settings, String::new(), origin, &mut out);
    out
}

/// The generated config: one source, one destination on the receiver, fast retries.
fn config_text(
    listen: &str,
    token: &str,
    tmp: &Path,
    name: &str,
    origin: &str,
    settings: &Value,
) -> anyhow::Result<String> {
    let settings: toml::Value = serde_json::from_value(settings.clone())
        .map_err(|e| anyhow::anyhow!("sample-settings.json cannot be a config table: {e}"))?;
    let mut settings_toml = String::new();
    serde::Serialize::serialize(
        &settings,
        toml::ser::ValueSerializer::new(&mut settings_toml),
    )
    .map_err(|e| anyhow::anyhow!("sample-settings.json cannot be a config table: {e}"))?;
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    Ok(format!(
        r#"# Generated by `switchyard dev`.
[server]
listen = {listen}
admin_token = {token}
[store]
path = {store}
[plugins]
dir = {plugins}
[[sources]]
name = "dev"
write_key = {key}
[[destinations]]
name = {name}
plugin = {name}
allowed_hosts = [{origin}]
settings = {settings_toml}
retry = {{ initial = "500ms", max = "5s", window = "10m" }}
batch = {{ linger = "50ms" }}
"#,
        listen = q(listen),
        token = q(token),
        store = q(&tmp.join("data").display().to_string()),
        plugins = q(&tmp.join("plugins").display().to_string()),
        key = q(WRITE_KEY),
        name = q(name),
        origin = q(origin),
    ))
}

/// Build with the folder's `make`; whether it succeeded (its output is printed when not).
async fn build(dir: &Path, name: &str) -> anyhow::Result<bool> {
    println!("building {name}.wasm (make -C {})", dir.display());
    let started = Instant::now();
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("switchyard"));
    let out = tokio::process::Command::new("make")
        .arg("-C")
        .arg(dir)
        .env("SWITCHYARD", exe)
        .output()
        .await
        .context("running make (is it installed?)")?;
    if !out.status.success() {
        println!("build failed ({}):", out.status);
        print!("{}", String::from_utf8_lossy(&out.stdout));
        print!("{}", String::from_utf8_lossy(&out.stderr));
        return Ok(false);
    }
    if !dir.join(format!("{name}.wasm")).is_file() {
        println!(
            "make succeeded but left no {name}.wasm in {}",
            dir.display()
        );
        return Ok(false);
    }
    println!(
        "built {name}.wasm in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(true)
}

/// Copy the build into the plugins directory in one rename, so the host's
/// watcher never reads half a file; its sha256 (hex).
fn install(wasm: &Path, plugins: &Path, name: &str) -> anyhow::Result<String> {
    use sha2::Digest as _;
    let bytes = std::fs::read(wasm).with_context(|| format!("reading {}", wasm.display()))?;
    let tmp = plugins.join(format!(".{name}.wasm.tmp"));
    std::fs::write(&tmp, &bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, plugins.join(format!("{name}.wasm")))?;
    Ok(hex::encode(sha2::Sha256::digest(&bytes)))
}

/// Each Enter on standard input (nothing once it is closed).
fn enter_presses() -> tokio::sync::mpsc::UnboundedReceiver<()> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
            line.clear();
            if tx.send(()).is_err() {
                return;
            }
        }
    });
    rx
}

/// POST the sample events to the host's `/v1/batch`, each messageId suffixed
/// with the round (so a resend is not deduplicated away).
async fn send_samples(client: &reqwest::Client, host: &str, sample: &Value, round: u32) {
    let mut body = match sample {
        Value::Object(map) if map.contains_key("batch") => sample.clone(),
        Value::Array(items) => serde_json::json!({ "batch": items }),
        one => serde_json::json!({ "batch": [one] }),
    };
    let mut n = 0;
    if let Some(items) = body["batch"].as_array_mut() {
        for item in items {
            n += 1;
            let id = item["messageId"].as_str().map(str::to_string);
            item["messageId"] = Value::String(match id {
                Some(id) => format!("{id}-{round}"),
                None => format!("dev-{round}-{n}"),
            });
        }
    }
    let sent = client
        .post(format!("{host}/v1/batch"))
        .basic_auth(WRITE_KEY, Some(""))
        .json(&body)
        .send()
        .await;
    match sent {
        Ok(resp) if resp.status().is_success() => {
            println!("sent {n} sample event(s), round {round}")
        }
        Ok(resp) => {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            println!("the host refused the samples: {status} {text}");
        }
        Err(e) => println!("cannot send the samples: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_pointed_at_the_receiver_with_their_paths() {
        let mut s = serde_json::json!({
            "url": "https://api.example.com/v1/events?x=1",
            "base": "https://api.example.com/",
            "token": "t",
            "hooks": ["http://a.example:8080/h"]
        });
        let changed = point_at(&mut s, "http://127.0.0.1:5000");
        assert_eq!(changed.len(), 3);
        assert_eq!(s["url"], "http://127.0.0.1:5000/v1/events?x=1");
        assert_eq!(s["base"], "http://127.0.0.1:5000");
        assert_eq!(s["hooks"][0], "http://127.0.0.1:5000/h");
        assert_eq!(s["token"], "t");
    }

    #[test]
    fn the_generated_config_is_valid() {
        let dir = tempfile::tempdir().unwrap();
        let settings =
            serde_json::json!({"url": "http://127.0.0.1:5000/v1", "n": 3, "nested": {"a": [1, 2]}});
        let text = config_text(
            "127.0.0.1:0",
            "0123456789abcdef0123456789abcdef",
            dir.path(),
            "acme",
            "http://127.0.0.1:5000",
            &settings,
        )
        .unwrap();
        let config = Config::parse(&text, "dev", dir.path()).unwrap();
        let d = &config.destinations[0];
        assert_eq!(d.settings, settings);
        assert_eq!(d.retry.initial, Duration::from_millis(500));
        assert!(crate::allowlist::uncovered_urls(&d.settings, &d.allowed_hosts).is_empty());
    }
}
