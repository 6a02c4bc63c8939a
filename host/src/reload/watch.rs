//! `[server] watch_config = true`: the config file applied again whenever it
//! changes, as SIGHUP does ([`super::Reloader::reload`]).
//!
//! The folder of the file is watched (editors save by writing a new file and
//! renaming it over the old one), and events are debounced: the reload runs
//! once nothing has touched the file for [`SETTLE`]. A file that does not pass
//! is refused with an error line in the log, and the old config serves on.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

use super::Reloader;

/// Quiet time after the last change before the file is read.
pub const SETTLE: Duration = Duration::from_millis(300);

/// Watch `file` until `shutdown`; returns once the watch is set up.
pub fn spawn(
    reloader: Arc<Reloader>,
    file: PathBuf,
    mut shutdown: watch::Receiver<bool>,
) -> notify::Result<tokio::task::JoinHandle<()>> {
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = file.file_name().map(|n| n.to_os_string());
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if event.kind.is_access() {
            return;
        }
        if event
            .paths
            .iter()
            .any(|p| p.file_name().map(|n| n.to_os_string()) == name)
        {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    tracing::info!(file = %file.display(), "watching the config file: a change is applied as SIGHUP would");
    Ok(tokio::spawn(async move {
        // Kept alive as long as the task.
        let _watcher = watcher;
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                got = rx.recv() => if got.is_none() { return },
            }
            // Debounce: wait for the writes to settle.
            loop {
                match tokio::time::timeout(SETTLE, rx.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            if *shutdown.borrow() {
                return;
            }
            if let Err(e) = reloader.reload().await {
                tracing::error!(file = %file.display(), "reload (config file changed) refused: {e}");
            }
        }
    }))
}
