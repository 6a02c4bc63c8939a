//! Watching the plugins directory: a changed `<name>.wasm` that a destination or
//! transformation uses is installed as a new version. One that nothing uses is
//! left alone (compiling a JavaScript or Python component takes 10 to 30 s of
//! CPU, and `make destinations` rewrites every file of the folder): a reload
//! that adds a user compiles it then ([`Catalog::stage`]).
//!
//! Editors and `cp` write a file in several steps, so events are debounced: a
//! plugin is (re)loaded once no event has touched its file for [`SETTLE`]. A
//! half-written or corrupt file is refused by [`Catalog::install`] with the
//! reason, and the serving version stays.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

use super::Catalog;

/// Quiet time after the last event before a file is read.
pub const SETTLE: Duration = Duration::from_millis(300);

/// Watch the catalog's directory until `shutdown`; returns once the watch is set up.
pub fn spawn(
    catalog: Arc<Catalog>,
    mut shutdown: watch::Receiver<bool>,
) -> notify::Result<tokio::task::JoinHandle<()>> {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if event.kind.is_access() {
            return;
        }
        for path in event.paths {
            let is_wasm = path.extension().is_some_and(|e| e == "wasm");
            if let (true, Some(stem)) = (is_wasm, path.file_stem().and_then(|s| s.to_str())) {
                // Hidden files are the admin API's uploads on their way in.
                if !stem.starts_with('.') {
                    let _ = tx.send(stem.to_string());
                }
            }
        }
    })?;
    watcher.watch(catalog.dir(), RecursiveMode::NonRecursive)?;
    tracing::info!(dir = %catalog.dir().display(), "watching the plugins directory");
    Ok(tokio::spawn(async move {
        // The watcher lives as long as this task.
        let _watcher = watcher;
        let mut pending: HashSet<String> = HashSet::new();
        loop {
            let next = if pending.is_empty() {
                tokio::select! {
                    name = rx.recv() => name,
                    _ = shutdown.changed() => return,
                }
            } else {
                tokio::select! {
                    name = rx.recv() => name,
                    _ = tokio::time::sleep(SETTLE) => {
                        for name in pending.drain() {
                            reload(&catalog, &name).await;
                        }
                        continue;
                    }
                    _ = shutdown.changed() => return,
                }
            };
            match next {
                Some(name) => {
                    pending.insert(name);
                }
                None => return,
            }
        }
    }))
}

async fn reload(catalog: &Catalog, name: &str) {
    let path = super::plugin_path(catalog.dir(), name);
    if !catalog.users().plugins().iter().any(|p| p == name) || catalog.slot(name).is_none() {
        tracing::info!(
            plugin = name,
            file = %path.display(),
            "plugin file changed; nothing uses it, so it is not compiled (a reload that adds a user compiles it)"
        );
        return;
    }
    match tokio::fs::read(&path).await {
        Ok(bytes) => {
            // Errors are logged and recorded by `install`; the old version serves on.
            let _ = catalog.install(name, bytes, false).await;
        }
        Err(e) => tracing::warn!(
            plugin = name,
            "plugin file {} unreadable, keeping the serving version: {e}",
            path.display()
        ),
    }
}
