//! Which files of a destination's folder `switchyard dev` watches: its sources,
//! not what a build writes (`target/`, `node_modules/`, `.venv/`, `*.wasm`, ...).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::POLL;

/// Folders of build output and tools, never watched.
const SKIP_DIRS: &[&str] = &[
    "target",
    "node_modules",
    ".venv",
    ".bindings",
    "__pycache__",
    "build",
    ".git",
];
/// Modification time and length of every source file (build output skipped).
pub(super) fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (SystemTime, u64)> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let file_name = entry.file_name();
            let file_name = file_name.to_string_lossy();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                if !SKIP_DIRS.contains(&file_name.as_ref()) && !file_name.starts_with('.') {
                    stack.push(path);
                }
            } else if !file_name.ends_with(".wasm") && !file_name.starts_with('.') {
                let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                files.insert(path, (modified, meta.len()));
            }
        }
    }
    files
}

/// Whether a source file changed since `seen` (which is brought up to date).
pub(super) fn changed_now(dir: &Path, seen: &mut BTreeMap<PathBuf, (SystemTime, u64)>) -> bool {
    let now = snapshot(dir);
    let changed = now != *seen;
    *seen = now;
    changed
}

/// Wait until a source file changes.
pub(super) async fn changed(dir: &Path, seen: &mut BTreeMap<PathBuf, (SystemTime, u64)>) {
    loop {
        tokio::time::sleep(POLL).await;
        if changed_now(dir, seen) {
            tokio::time::sleep(Duration::from_millis(300)).await;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_output_is_not_watched() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("target/x")).unwrap();
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("target/x/a.rs"), "").unwrap();
        std::fs::write(dir.path().join("acme.wasm"), "").unwrap();
        std::fs::write(dir.path().join("src/lib.rs"), "").unwrap();
        let files: Vec<PathBuf> = snapshot(dir.path()).into_keys().collect();
        assert_eq!(files, [dir.path().join("src/lib.rs")]);
    }
}
