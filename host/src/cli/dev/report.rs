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
}

impl Watch {
    /// Nothing printed yet; `token` reads the admin API.
    pub(super) fn new(token: String) -> Watch {
        Watch {
            token,
            ..Watch::default()
        }
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
