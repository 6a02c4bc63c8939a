//! The `switchyard` binary as a separate process (for kill -9, SIGTERM and the CLI).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Write `config` (a test host's config text, listening on port 0) to `dir/switchyard.toml`
/// with a fixed free port instead, and install the plugins. Returns the file and the base URL.
pub fn write_config(dir: &Path, config: &str) -> (PathBuf, String) {
    crate::host::install_plugins(dir);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = config.replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\""),
    );
    let file = dir.join("switchyard.toml");
    std::fs::write(&file, text).unwrap();
    (file, format!("http://127.0.0.1:{port}"))
}

/// `switchyard run --config FILE`.
pub fn spawn(file: &Path) -> Child {
    Command::new(crate::switchyard_bin())
        .args(["run", "--config"])
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Wait until `base/healthz` answers 200 (at most 10 s).
pub async fn wait_healthy(base: &str) {
    let client = reqwest::Client::new();
    for _ in 0..500 {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the host did not come up at {base}");
}
