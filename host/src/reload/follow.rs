//! One reload, every host: on a shared store (NATS), a host that reloads
//! announces it ([`crate::store::Coordination::announce_reload`]), and every other
//! host, polling once a second, reloads its own config file too. So when the
//! same file is rolled out to every host, one `switchyard reload` (or SIGHUP,
//! or `POST /admin/reload`) applies it everywhere.
//!
//! A host whose file does not pass refuses it as a local reload would (an error
//! line in the log) and serves on with its old config. On the embedded store
//! there is no other host, and nothing is ever announced.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{ReloadError, Reloader};
use crate::store::Store;

/// How often a host looks for a reload announced by another.
pub const POLL: Duration = Duration::from_secs(1);

/// Follow the reloads of the other hosts until `shutdown`. The newest reload
/// announced before this host started is only noted (its file is what this
/// host just read).
pub async fn spawn(
    reloader: Arc<Reloader>,
    store: Arc<dyn Store>,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    if let Ok(Some(g)) = store.reload_generation().await {
        reloader.note_generation(&g);
    }
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(POLL) => {}
            }
            let generation = match store.reload_generation().await {
                Ok(Some(g)) => g,
                Ok(None) => continue,
                Err(e) => {
                    tracing::debug!("reading the newest reload: {e}");
                    continue;
                }
            };
            if reloader.note_generation(&generation) {
                match reloader.apply_here().await {
                    Ok(s) => tracing::info!(
                        added = ?s.added,
                        changed = ?s.changed,
                        removed = ?s.removed,
                        "reloaded: another host reloaded"
                    ),
                    // The file says no: it stays no until another reload.
                    Err(
                        e @ (ReloadError::Invalid(_)
                        | ReloadError::NeedsRestart(_)
                        | ReloadError::NoFile),
                    ) => tracing::error!("reload (another host reloaded) refused: {e}"),
                    // Anything else (the store away for a moment): again at the next look.
                    Err(e) => {
                        tracing::warn!("reload (another host reloaded) failed, will retry: {e}");
                        reloader.forget_generation();
                    }
                }
            }
        }
    })
}
