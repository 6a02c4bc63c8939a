//! A Switchyard host started in-process through `switchyard::run`.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use switchyard::config::Config;

use crate::Admin;

/// Write key of the test source.
pub const WRITE_KEY: &str = "wk_test";
/// Admin token of test hosts.
pub const ADMIN_TOKEN: &str = "admin-test-token";

/// A running host.
pub struct TestHost {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// Its store and plugins live here.
    pub dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    /// Client for requests to it.
    pub http: reqwest::Client,
}

/// The nats-server of a test folder (started on first use; it lives until the test process ends).
async fn nats_for(dir: &Path) -> String {
    static SERVERS: std::sync::OnceLock<
        tokio::sync::Mutex<std::collections::HashMap<PathBuf, crate::nats::NatsServer>>,
    > = std::sync::OnceLock::new();
    let mut servers = SERVERS.get_or_init(Default::default).lock().await;
    if !servers.contains_key(dir) {
        let server = crate::nats::NatsServer::start_in(dir.join("nats")).await;
        servers.insert(dir.to_path_buf(), server);
    }
    servers[dir].url()
}

/// The config file of the test host in `dir`.
pub fn config_file(dir: &Path) -> PathBuf {
    dir.join("test-host.toml")
}

/// Whether the test hosts run on NATS JetStream (`SWITCHYARD_TEST_STORE=nats`) rather than
/// the embedded store: `make test` runs the delivery suite both ways.
pub fn on_nats() -> bool {
    std::env::var("SWITCHYARD_TEST_STORE").as_deref() == Ok("nats")
}

/// The config text of a test host in `dir` with these `[[destinations]]` tables.
pub fn config_text(dir: &Path, destinations: &str) -> String {
    config_for(
        "127.0.0.1:0",
        &dir.join("data"),
        &dir.join("plugins"),
        destinations,
    )
}

/// The config text of a host listening on `listen`, with its store in `store`, its
/// plugins in `plugins` and these `[[destinations]]` tables; the source `test` has
/// [`WRITE_KEY`] and the admin API [`ADMIN_TOKEN`].
pub fn config_for(listen: &str, store: &Path, plugins: &Path, destinations: &str) -> String {
    format!(
        r#"
[server]
listen = "{listen}"
admin_token = "{ADMIN_TOKEN}"
[store]
path = "{store}"
[plugins]
dir = "{plugins}"
[[sources]]
name = "test"
write_key = "{WRITE_KEY}"
{destinations}
"#,
        store = store.display(),
        plugins = plugins.display(),
    )
}

/// The same, on the NATS JetStream store at `url`.
pub fn config_text_nats(dir: &Path, destinations: &str, url: &str) -> String {
    config_text(dir, destinations).replacen(
        "[store]\n",
        &format!("[store]\nkind = \"nats\"\nurl = \"{url}\"\n"),
        1,
    )
}

/// Copy every bundled plugin and the misbehaving guests into `dir/plugins`.
pub fn install_plugins(dir: &Path) {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let bundled = crate::workspace_root().join("target/destinations");
    for entry in std::fs::read_dir(&bundled).expect("target/destinations: run `make test`") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "wasm") {
            std::fs::copy(&path, plugins.join(path.file_name().unwrap())).unwrap();
        }
    }
    for guest in ["misbehave", "misbehave-transform"] {
        std::fs::copy(
            crate::test_guest(guest),
            plugins.join(format!("{guest}.wasm")),
        )
        .unwrap();
    }
}

/// Compiled components shared by the test hosts (JS and Python components take
/// seconds to compile): linked into a host's store before it starts, and back after.
fn shared_compiled() -> PathBuf {
    crate::workspace_root().join("target/test-compiled-cache")
}

/// Give `to` the compiled components in `from` that it lacks. Each is a hard link:
/// a compiled file is written once (by rename) and never changed, so sharing its
/// inode is safe, and dozens of hosts cost no disk (a copy each filled CI's disk:
/// a JavaScript component compiles to 40-80 MB). Where a link cannot be made (the
/// two on different filesystems), only the components of `plugins` are copied.
fn share_compiled(from: &Path, to: &Path, plugins: Option<&Path>) {
    let Ok(entries) = std::fs::read_dir(from) else {
        return;
    };
    let _ = std::fs::create_dir_all(to);
    let mut wanted: Option<std::collections::HashSet<String>> = None;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let target = to.join(&name);
        if target.exists() || !name.ends_with(".cwasm") {
            continue;
        }
        if std::fs::hard_link(entry.path(), &target).is_ok() {
            continue;
        }
        let wanted = wanted.get_or_insert_with(|| plugins.map(plugin_hashes).unwrap_or_default());
        let used = plugins.is_none() || wanted.iter().any(|h| name.starts_with(h.as_str()));
        if !used {
            continue;
        }
        let tmp = to.join(format!(".{name}.{}", std::process::id()));
        if std::fs::copy(entry.path(), &tmp).is_ok() {
            let _ = std::fs::rename(&tmp, &target);
        }
    }
}

/// The sha256 (hex) of every plugin file in `dir`: a compiled file's name starts with it.
fn plugin_hashes(dir: &Path) -> std::collections::HashSet<String> {
    use sha2::Digest;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Default::default();
    };
    entries
        .flatten()
        .filter_map(|e| std::fs::read(e.path()).ok())
        .map(|bytes| hex::encode(sha2::Sha256::digest(bytes)))
        .collect()
}

impl TestHost {
    /// Start a host in `dir` (plugins installed there) with these destinations.
    pub async fn start(dir: &Path, destinations: &str) -> TestHost {
        Self::try_start(dir, destinations)
            .await
            .expect("host starts")
    }

    /// Start without the compiled components other test hosts left (every plugin compiles).
    pub async fn start_uncached(dir: &Path, destinations: &str) -> TestHost {
        Self::launch(dir, &config_text(dir, destinations), false)
            .await
            .expect("host starts")
    }

    /// Start with this whole config text (e.g. [`config_text_nats`]).
    pub async fn start_config(dir: &Path, config: &str) -> TestHost {
        Self::launch(dir, config, true).await.expect("host starts")
    }

    /// Start with this whole config text, or say why not.
    pub async fn try_start_config(dir: &Path, config: &str) -> anyhow::Result<TestHost> {
        Self::launch(dir, config, true).await
    }

    /// Start, or say why not.
    pub async fn try_start(dir: &Path, destinations: &str) -> anyhow::Result<TestHost> {
        if on_nats() {
            // One server per test folder, kept running across host restarts, as in production.
            let url = nats_for(dir).await;
            return Self::launch(dir, &config_text_nats(dir, destinations, &url), true).await;
        }
        Self::launch(dir, &config_text(dir, destinations), true).await
    }

    async fn launch(dir: &Path, config: &str, shared_cache: bool) -> anyhow::Result<TestHost> {
        // Host logs are captured (and echoed when SWITCHYARD_TEST_LOGS is set).
        crate::logs::init();
        install_plugins(dir);
        if shared_cache {
            share_compiled(
                &shared_compiled(),
                &dir.join("data/compiled"),
                Some(&dir.join("plugins")),
            );
        }
        // Written to a file, as `switchyard run --config` reads it, so a reload can read it again.
        let file = config_file(dir);
        std::fs::write(&file, config)?;
        let config = Config::load(&file)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let running = switchyard::start_from(config, Some(file), listener).await?;
            let _ = stopped.await;
            running.stop().await;
            Ok(())
        });
        let http = reqwest::Client::new();
        // Ready when /healthz answers (or the task ended with an error).
        loop {
            if task.is_finished() {
                return Err(task.await?.expect_err("run ended before serving"));
            }
            if let Ok(r) = http.get(format!("http://{addr}/healthz")).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        Ok(TestHost {
            addr,
            dir: dir.to_path_buf(),
            stop: Some(stop),
            task: Some(task),
            http,
        })
    }

    /// Write these destinations into its config file (as [`TestHost::start`] wrote them)
    /// and `POST /admin/reload`: the answer's status and JSON body.
    pub async fn reload(&self, destinations: &str) -> (u16, Value) {
        self.reload_config(&config_text(&self.dir, destinations))
            .await
    }

    /// The same with this whole config text.
    pub async fn reload_config(&self, config: &str) -> (u16, Value) {
        std::fs::write(config_file(&self.dir), config).unwrap();
        let resp = self
            .http
            .post(self.url("/admin/reload"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("admin answers");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// `http://addr` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// POST `body` to `/v1/{kind}` with the test write key (Basic auth).
    pub async fn send(&self, kind: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url(&format!("/v1/{kind}")))
            .basic_auth(WRITE_KEY, Some(""))
            .json(body)
            .send()
            .await
            .expect("ingest answers")
    }

    /// Its admin API, with the test token (through [`TestHost::http`]).
    pub fn admin(&self) -> Admin {
        Admin::with_client(self.http.clone(), self.url(""), ADMIN_TOKEN)
    }

    /// `GET /admin/destinations`, as JSON.
    pub async fn destinations(&self) -> Value {
        self.admin().destinations().await
    }

    /// Stop gracefully and wait for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        share_compiled(&self.dir.join("data/compiled"), &shared_compiled(), None);
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
