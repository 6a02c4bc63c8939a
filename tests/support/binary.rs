//! The `switchyard` binary as a separate process (for kill -9, SIGTERM, the CLI
//! and the benchmarks).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Write `config` (a test host's config text, listening on port 0) to `dir/switchyard.toml`
/// with a fixed free port instead, and install the plugins. Returns the file and the base URL.
pub fn write_config(dir: &Path, config: &str) -> (PathBuf, String) {
    crate::host::install_plugins(dir);
    let port = crate::free_port();
    let text = config.replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\""),
    );
    let file = dir.join("switchyard.toml");
    std::fs::write(&file, text).unwrap();
    (file, format!("http://127.0.0.1:{port}"))
}

/// `bin run --config FILE`, with stdout and stderr discarded, ready to spawn.
pub fn run_command(bin: &Path, file: &Path) -> Command {
    let mut command = Command::new(bin);
    command
        .args(["run", "--config"])
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// `switchyard run --config FILE` (the debug binary that `make test` builds).
pub fn spawn(file: &Path) -> Child {
    run_command(&crate::switchyard_bin(), file).spawn().unwrap()
}

/// Wait until `GET url` answers 2xx (polling every 5 ms, at most `timeout`);
/// how long it took.
pub async fn wait_up(url: &str, timeout: Duration) -> anyhow::Result<Duration> {
    let client = reqwest::Client::builder().no_proxy().build()?;
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Ok(r) = client.get(url).send().await {
            if r.status().is_success() {
                return Ok(start.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    anyhow::bail!("{url} did not come up within {timeout:?}")
}

/// Wait until `base/healthz` answers 200 (at most 10 s).
pub async fn wait_healthy(base: &str) {
    if let Err(e) = wait_up(&format!("{base}/healthz"), Duration::from_secs(10)).await {
        panic!("the host did not come up: {e}");
    }
}
