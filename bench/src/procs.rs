//! Processes under test: the `switchyard` binary and this binary's baselines.
//! Ports, config text, the binary's command line and the wait for `/healthz`
//! come from the test support crate (`tests/support`), shared with the tests.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use switchyard_e2e::binary::{run_command, wait_up};
use switchyard_e2e::host::config_for;
use switchyard_e2e::workspace_root;

/// How long a process may take to answer `/healthz`.
pub const STARTUP: Duration = Duration::from_secs(60);

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
    proc_field(&format!("/proc/{pid}/status"), "VmRSS:")
}

/// Proportional set size of a process, in KiB (`Pss:` of `/proc/PID/smaps_rollup`):
/// its private pages plus its share of pages it shares with others, so that a
/// sum over processes counts shared libraries once (0 when unknown).
pub fn pss_kib(pid: u32) -> u64 {
    proc_field(&format!("/proc/{pid}/smaps_rollup"), "Pss:")
}

/// Virtual address space of a process, in KiB (`VmSize`): what the instance pool reserves shows here.
pub fn vm_size_kib(pid: u32) -> u64 {
    proc_field(&format!("/proc/{pid}/status"), "VmSize:")
}

/// CPU time a process has used (user + system), in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    ticks / 100.0
}

fn proc_field(file: &str, name: &str) -> u64 {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// Start `switchyard run` on `config` (in `dir`, with the bundled plugins).
/// Returns the process and how long it took to answer `/healthz`.
/// `SWITCHYARD_BENCH_BIN` names another build to measure (an older commit's,
/// for a before/after comparison with the same load generator).
pub async fn switchyard(dir: &Path, config: &str, port: u16) -> anyhow::Result<(Proc, Duration)> {
    let file = dir.join("switchyard.toml");
    std::fs::write(&file, config)?;
    let bin = std::env::var_os("SWITCHYARD_BENCH_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/release/switchyard"));
    anyhow::ensure!(
        bin.exists(),
        "{} is missing: run `make bench`",
        bin.display()
    );
    let start = Instant::now();
    let child = run_command(&bin, &file).env("RUST_LOG", "warn").spawn()?;
    let proc = Proc { child, port };
    wait_up(&format!("http://127.0.0.1:{port}/healthz"), STARTUP).await?;
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

/// The config text of a bench host on `port`: its store in `dir`, the bundled
/// destinations as its plugins.
pub fn config(dir: &Path, port: u16, destinations: &str) -> String {
    config_for(
        &format!("127.0.0.1:{port}"),
        &dir.join("data"),
        &workspace_root().join("target/destinations"),
        destinations,
    )
}

/// `n` webhook destinations `d0`..`d<n-1>`, each posting to `<origin>/d<i>`.
pub fn webhooks(n: usize, origin: &str) -> String {
    (0..n)
        .map(|i| {
            switchyard_e2e::webhook_table(&format!("d{i}"), &format!("{origin}/d{i}"), origin, "")
        })
        .collect()
}
