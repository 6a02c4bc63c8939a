//! The scenarios; each returns its JSON result.

mod candidates;
mod catalog;
mod concurrency;
mod deletion;
mod dispatch;
mod drain;
mod e2e;
mod fanout;
mod fleet;
mod hotswap;
mod housekeeping;
mod ingest;
mod isolation;
mod log;
mod nats;
mod privacy;
mod reload;
mod transforms;
mod trial;

use std::path::Path;

use switchyard_e2e::host::ADMIN_TOKEN;
use switchyard_e2e::Admin;

use crate::Scale;

/// Run the selected scenarios (all when `only` is empty), writing each result.
pub async fn run_all(scale: Scale, only: &[String], out: &Path) -> anyhow::Result<()> {
    let want = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    if want("ingest") {
        crate::report::write(out, "ingest", scale.quick, ingest::run(scale).await?)?;
    }
    if want("privacy") {
        crate::report::write(out, "privacy", scale.quick, privacy::run(scale).await?)?;
    }
    if want("deletion") {
        crate::report::write(out, "deletion", scale.quick, deletion::run(scale).await?)?;
    }
    if want("fanout") {
        crate::report::write(out, "fanout", scale.quick, fanout::run(scale).await?)?;
    }
    if want("drain") {
        crate::report::write(out, "drain", scale.quick, drain::run(scale).await?)?;
    }
    if want("housekeeping") {
        crate::report::write(
            out,
            "housekeeping",
            scale.quick,
            housekeeping::run(scale).await?,
        )?;
    }
    if want("log") {
        crate::report::write(out, "log", scale.quick, log::run(scale).await?)?;
    }
    if want("candidates") {
        crate::report::write(
            out,
            "candidates",
            scale.quick,
            candidates::run(scale).await?,
        )?;
    }
    if want("catalog") {
        crate::report::write(out, "catalog", scale.quick, catalog::run(scale).await?)?;
    }
    if want("dispatch") {
        crate::report::write(out, "dispatch", scale.quick, dispatch::run(scale).await?)?;
    }
    if want("transforms") {
        crate::report::write(
            out,
            "transforms",
            scale.quick,
            transforms::run(scale).await?,
        )?;
    }
    if want("e2e") {
        crate::report::write(out, "e2e", scale.quick, e2e::run(scale, out).await?)?;
    }
    if want("fleet") {
        crate::report::write(out, "fleet", scale.quick, fleet::run(scale).await?)?;
    }
    if want("isolation") {
        crate::report::write(out, "isolation", scale.quick, isolation::run(scale).await?)?;
    }
    if want("hotswap") {
        crate::report::write(out, "hotswap", scale.quick, hotswap::run(scale).await?)?;
    }
    if want("reload") {
        crate::report::write(out, "reload", scale.quick, reload::run(scale).await?)?;
    }
    if want("trial") {
        crate::report::write(out, "trial", scale.quick, trial::run(scale).await?)?;
    }
    if want("slow") {
        crate::report::write(
            out,
            "slow",
            scale.quick,
            concurrency::slow(scale, out).await?,
        )?;
    }
    if want("adaptive") {
        crate::report::write(
            out,
            "adaptive",
            scale.quick,
            concurrency::adaptive(scale).await?,
        )?;
    }
    if want("vendors") {
        crate::report::write(
            out,
            "vendors",
            scale.quick,
            concurrency::vendors(scale).await?,
        )?;
    }
    if want("fleet50") {
        crate::report::write(
            out,
            "fleet50",
            scale.quick,
            concurrency::fleet50(scale).await?,
        )?;
    }
    if want("sustained") {
        crate::report::write(
            out,
            "sustained",
            scale.quick,
            concurrency::sustained(scale).await?,
        )?;
    }
    if want("isolation80") {
        crate::report::write(
            out,
            "isolation80",
            scale.quick,
            concurrency::isolation80(scale).await?,
        )?;
    }
    if want("stores") {
        crate::report::write(out, "stores", scale.quick, nats::run(scale).await?)?;
    }
    Ok(())
}

/// The admin API of the bench host on `port`.
pub fn admin(port: u16) -> Admin {
    Admin::new(format!("http://127.0.0.1:{port}"), ADMIN_TOKEN)
}

/// Pause or resume a destination through the admin API.
pub async fn admin_post(port: u16, path: &str) -> anyhow::Result<()> {
    let r = admin(port)
        .request(reqwest::Method::POST, path)
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "{path}: {}", r.status());
    Ok(())
}

/// GET an admin path (JSON).
pub async fn admin_get(port: u16, path: &str) -> anyhow::Result<serde_json::Value> {
    let r = admin(port)
        .request(reqwest::Method::GET, path)
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "{path}: {}", r.status());
    Ok(r.json().await?)
}

/// A bench host with `n` webhook destinations to `origin`, all paused (only
/// ingest works); returns its directory (delete it last), process and port.
pub async fn paused_host(
    n: usize,
    origin: &str,
) -> anyhow::Result<(tempfile::TempDir, crate::procs::Proc, u16)> {
    let dir = tempfile::tempdir()?;
    let port = switchyard_e2e::free_port();
    let dests = crate::procs::webhooks(n, origin);
    let text = crate::procs::config(dir.path(), port, &dests);
    let (host, _) = crate::procs::switchyard(dir.path(), &text, port).await?;
    for i in 0..n {
        admin_post(port, &format!("/admin/destinations/d{i}/pause")).await?;
    }
    Ok((dir, host, port))
}
