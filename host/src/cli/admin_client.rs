//! A call to the running host's admin API, as the commands that act on a
//! running host make it (`reload`, `backfill`): the address and token come
//! from the host's config file.

use anyhow::Context as _;
use serde_json::Value;

use crate::config::Config;

/// `POST path?query` to the host that `config` describes: the answer's status
/// and JSON body (`null` when it has none).
pub(super) async fn post(
    config: &Config,
    path: &str,
    query: &[(&str, String)],
) -> anyhow::Result<(reqwest::StatusCode, Value)> {
    let base = super::dlq::admin_base(config).with_context(|| {
        format!(
            "[server] listen is `{}`: no fixed port to reach the host at",
            config.listen
        )
    })?;
    let url = format!("{base}{path}");
    let client = reqwest::Client::builder().no_proxy().build()?;
    let mut req = client.post(&url).query(query);
    if let Some(token) = &config.admin_token {
        req = req.bearer_auth(token);
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("{url}: no host answers (is it running?)"))?;
    let status = resp.status();
    Ok((status, resp.json().await.unwrap_or(Value::Null)))
}

/// The message of an admin error answer.
pub(super) fn message(body: &Value) -> &str {
    body["message"].as_str().unwrap_or("no reason given")
}
