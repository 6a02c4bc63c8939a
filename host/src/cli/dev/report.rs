//! What `switchyard dev` prints of the destination it runs: the version
//! serving, a plugin that did not load, and the delivered, retried and
//! dead-lettered counts, each when it changes (read from the host's admin API).

use std::time::{Duration, Instant};

use serde_json::Value;

/// What was last printed of the destination, so only changes are.
#[derive(Debug, Default)]
pub(super) struct Watch {
    /// The admin token of this run.
    token: String,
    serving: Option<(String, String)>,
    plugin_error: Option<String>,
    counts: (u64, u64, u64),
    /// A build handed to the host and not serving yet: its sha256, when it
    /// was installed, and when progress was last printed.
    installing: Option<(String, Instant, Instant)>,
}

/// How often `dev` says it is still waiting for the host to swap a build in
/// (a JavaScript or Python component takes 10 to 30 s to compile).
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// How long `dev` says so before it stops (the host refused it, say).
const PROGRESS_FOR: Duration = Duration::from_secs(120);

impl Watch {
    /// Nothing printed yet; `token` reads the admin API.
    pub(super) fn new(token: String) -> Watch {
        Watch {
            token,
            ..Watch::default()
        }
    }

    /// A build with this sha256 was handed to the host: say so, and say that
    /// it is still compiling until it serves.
    pub(super) fn installed(&mut self, sha256: String, name: &str) {
        println!("installed {name}.wasm: the host compiles and checks it, then swaps it in");
        let now = Instant::now();
        self.installing = Some((sha256, now, now));
    }

    /// Report until the destination serves a version (or 60 s pass).
    pub(super) async fn wait_for_serving(
        &mut self,
        client: &reqwest::Client,
        host: &str,
        name: &str,
    ) {
        let until = Instant::now() + Duration::from_secs(60);
        while self.serving.is_none() && Instant::now() < until {
            self.report(client, host, name).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Print what changed in the destination's admin row.
    pub(super) async fn report(&mut self, client: &reqwest::Client, host: &str, name: &str) {
        let Ok(resp) = client
            .get(format!("{host}/admin/destinations"))
            .bearer_auth(&self.token)
            .send()
            .await
        else {
            return;
        };
        let Ok(Value::Array(rows)) = resp.json::<Value>().await else {
            return;
        };
        let Some(row) = rows.into_iter().find(|r| r["name"] == name) else {
            return;
        };
        let text = |k: &str| row[k].as_str().map(str::to_string);
        let error = text("plugin_error");
        if error != self.plugin_error {
            if let Some(e) = &error {
                println!("{name} is not serving: {e}");
            }
            self.plugin_error = error;
        }
        if let (Some(version), Some(sha)) = (text("version"), text("sha256")) {
            let serving = Some((version.clone(), sha.clone()));
            if !sha.is_empty() && serving != self.serving {
                let how = if self.serving.is_some() {
                    "hot-swapped: now serving"
                } else {
                    "serving"
                };
                println!(
                    "{how} {name} {version} (sha256 {})",
                    &sha[..sha.len().min(12)]
                );
                self.serving = serving;
            }
        }
        if let Some((sha, since, said)) = &mut self.installing {
            let serving = self.serving.as_ref().is_some_and(|(_, s)| s == sha);
            if serving || since.elapsed() > PROGRESS_FOR {
                self.installing = None;
            } else if said.elapsed() >= PROGRESS_EVERY {
                println!(
                    "still compiling {name}.wasm ({} s)",
                    since.elapsed().as_secs()
                );
                *said = Instant::now();
            }
        }
        let count = |k: &str| row[k].as_u64().unwrap_or(0);
        let counts = (count("delivered"), count("retried"), count("dead_letters"));
        if counts != self.counts {
            println!(
                "{name}: delivered {} · retried {} · dead letters {}",
                counts.0, counts.1, counts.2
            );
            self.counts = counts;
        }
    }
}
