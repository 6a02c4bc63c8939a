//! Processes under test: the `switchyard` binary and this binary's baselines.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The workspace root (this crate is `bench/`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process that is killed when dropped.
pub struct Proc {
    /// The process.
    pub child: Child,
    /// Where it listens.
    pub port: u16,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.child.id())
    }
}

/// VmRSS of a process, in KiB (0 when unknown).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// Wait until `GET url` answers (anything), up to 60 s.
pub async fn wait_up(url: &str) -> anyhow::Result<Duration> {
    let client = reqwest::Client::builder().no_proxy().build()?;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if client.get(url).send().await.is_ok() {
            return Ok(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    anyhow::bail!("{url} did not come up")
}

/// Start `switchyard run` on `config` (in `dir`, with the bundled plugins).
/// Returns the process and how long it took to answer `/healthz`.
pub async fn switchyard(dir: &Path, config: &str, port: u16) -> anyhow::Result<(Proc, Duration)> {
    let file = dir.join("switchyard.toml");
    std::fs::write(&file, config)?;
    let bin = root().join("target/release/switchyard");
    anyhow::ensure!(
        bin.exists(),
        "{} is missing: run `make bench`",
        bin.display()
    );
    let start = Instant::now();
    let child = Command::new(bin)
        .args(["run", "--config"])
        .arg(&file)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let proc = Proc { child, port };
    wait_up(&format!("http://127.0.0.1:{port}/healthz")).await?;
    Ok((proc, start.elapsed()))
}

/// Start this binary with a baseline subcommand.
pub fn baseline(args: &[String], port: u16) -> anyhow::Result<Proc> {
    let child = Command::new(std::env::current_exe()?)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(Proc { child, port })
}

/// The config text of a bench host.
pub fn config(dir: &Path, port: u16, destinations: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
admin_token = "bench"
[store]
path = "{store}"
[plugins]
dir = "{plugins}"
[[sources]]
name = "bench"
write_key = "wk_bench"
{destinations}
"#,
        store = dir.join("data").display(),
        plugins = root().join("target/destinations").display(),
    )
}

/// One webhook destination to `url`.
pub fn webhook(name: &str, url: &str, origin: &str, extra: &str) -> String {
    format!(
        r#"
[[destinations]]
name = "{name}"
plugin = "webhook"
allowed_hosts = ["{origin}"]
settings = {{ url = "{url}", secret = "secret-{name}" }}
{extra}
"#
    )
}
