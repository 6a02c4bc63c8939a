//! A call to the running host's admin API, as the commands that act on a
//! running host make it (`reload`, `backfill`, `record`, `trial`): the address
//! and token come from the host's config file.

use anyhow::Context as _;
use serde_json::Value;

use crate::config::Config;

/// The config of the host to reach: `file`, else the default one.
pub(super) fn host_config(file: Option<&std::path::Path>) -> anyhow::Result<Config> {
    Ok(match file {
        Some(file) => Config::load(file)?,
        None => Config::parse(
            super::DEFAULT_CONFIG,
            "<default config>",
            std::path::Path::new("."),
        )?,
    })
}

/// `POST path?query` to the host that `config` describes: the answer's status
/// and JSON body (`null` when it has none).
pub(super) async fn post(
    config: &Config,
    path: &str,
    query: &[(&str, String)],
) -> anyhow::Result<(reqwest::StatusCode, Value)> {
    call(config, reqwest::Method::POST, path, query, None).await
}

/// `method path?query` (with `body`) to the host that `config` describes.
pub(super) async fn call(
    config: &Config,
    method: reqwest::Method,
    path: &str,
    query: &[(&str, String)],
    body: Option<Vec<u8>>,
) -> anyhow::Result<(reqwest::StatusCode, Value)> {
    let base = super::dlq::admin_base(config).with_context(|| {
        format!(
            "[server] listen is `{}`: no fixed port to reach the host at",
            config.listen
        )
    })?;
    let url = format!("{base}{path}");
    let client = reqwest::Client::builder().no_proxy().build()?;
    // The admin API notes the command line as the asker (a regulation's record).
    let mut req = client
        .request(method, &url)
        .query(query)
        .header(crate::admin::CLIENT_HEADER, "cli");
    if let Some(body) = body {
        req = req.body(body);
    }
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
