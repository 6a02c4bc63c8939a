//! `switchyard run [--config FILE]`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use crate::config::Config;

pub async fn run(file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let config = match &file {
        Some(file) => Config::load(file)?,
        None => Config::parse(super::DEFAULT_CONFIG, "<default config>", Path::new("."))?,
    };
    super::logging::init(&config.log);
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let first_key = config.sources.keys().next().cloned();
    // Signals are caught from before the host serves (a SIGTERM or SIGHUP
    // right after it is healthy must not find the default action).
    let stop = shutdown_signal();
    let mut hangups = hangups();
    let running = crate::start_from(config, file.clone(), listener).await?;
    let addr = running.addr;
    println!("switchyard listening on http://{addr}");
    if let Some(key) = first_key {
        println!("send a first event:");
        println!(
            "  curl -u {key}: -H 'Content-Type: application/json' -d '{{\"userId\":\"u1\",\"event\":\"Signed Up\"}}' http://{addr}/v1/track"
        );
    }
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            // In a task of its own, so a shutdown signal is never kept waiting.
            Some(()) = hangups.recv() => {
                let reloader = running.reloader();
                tokio::spawn(async move {
                    if let Err(e) = reloader.reload().await {
                        tracing::error!("reload (SIGHUP) refused: {e}");
                    }
                });
            }
        }
    }
    running.stop().await;
    Ok(ExitCode::SUCCESS)
}

/// One message per SIGHUP (none where there are no signals).
fn hangups() -> tokio::sync::mpsc::Receiver<()> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    #[cfg(unix)]
    if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                // A reload already waiting covers this one too.
                let _ = tx.try_send(());
            }
        });
        return rx;
    }
    // No signal: the channel stays open and quiet.
    std::mem::forget(tx);
    rx
}

/// Ctrl-C or SIGTERM. The handlers are installed when this is called, not
/// when the future is first polled: a signal that comes between the start
/// and the first poll stops the host cleanly instead of killing it.
pub(super) fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let (term, int) = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = wait(term) => {}
                _ = wait(int) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
