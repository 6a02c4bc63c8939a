//! Segment's action destinations as plugins: a destination whose `plugin` is
//! `catalog:NAME` runs the entry NAME of `@segment/action-destinations`,
//! unchanged, in a component of its own.
//!
//! Where it sits: beside [`crate::plugins`], before anything loads. The
//! components are built by the catalog's JavaScript side (`catalog/` in the
//! repository: esbuild and componentize-js around actions-core), which this
//! module finds ([`Source`]) and runs with `node`. A built entry is the file
//! `<plugins.dir>/catalog:NAME.wasm`, so from there on it is a plugin like any
//! other: loaded, hot-swapped when the file changes, uploaded through the
//! admin API. [`index`] reads what the catalog offers (`switchyard catalog`).

pub mod index;
pub mod stanza;

use std::path::{Path, PathBuf};
use std::process::Stdio;

pub use crate::config::{catalog_entry as entry_name, CATALOG_PREFIX as PREFIX};

/// The environment variable that names the catalog's source folder (the one
/// holding `build.mjs`), when it is not `./catalog` or beside the executable.
pub const SOURCE_ENV: &str = "SWITCHYARD_CATALOG";

/// Why a catalog entry could not be built or described.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// No folder with the catalog's build script was found.
    #[error(
        "the catalog's source folder (with build.mjs) was not found in ./catalog, beside the \
         switchyard executable, or in ${SOURCE_ENV}"
    )]
    NoSource,
    /// `node` or `npm` could not be run.
    #[error(
        "cannot run `{program}` (Node.js 18 or later is needed to build catalog entries): {source}"
    )]
    Node {
        /// The program.
        program: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The build or the index script failed; its output says why.
    #[error("{what} failed:\n{output}")]
    Script {
        /// What ran.
        what: String,
        /// Its standard error (and output), trimmed.
        output: String,
    },
    /// A destination exported from Segment that cannot be imported.
    #[error("{0}")]
    Import(String),
    /// The index file is not what this host reads.
    #[error("{path}: unreadable catalog index: {message}")]
    Index {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
}

/// The catalog's JavaScript side: the folder with `build.mjs`, `index.mjs`
/// and the pinned packages.
#[derive(Debug, Clone)]
pub struct Source {
    /// The folder.
    dir: PathBuf,
}

impl Source {
    /// The source folder: `$SWITCHYARD_CATALOG`, else `./catalog`, else a
    /// `catalog` folder in an ancestor of the executable's folder (a build in
    /// `target/release` of the repository).
    pub fn find() -> Result<Source, CatalogError> {
        let holds = |d: &Path| d.join("build.mjs").is_file();
        if let Some(dir) = std::env::var_os(SOURCE_ENV).map(PathBuf::from) {
            return if holds(&dir) {
                Ok(Source { dir })
            } else {
                Err(CatalogError::NoSource)
            };
        }
        let here = PathBuf::from("catalog");
        if holds(&here) {
            return Ok(Source { dir: here });
        }
        let exe = std::env::current_exe().ok();
        let beside = exe
            .iter()
            .flat_map(|e| e.ancestors().skip(1))
            .map(|a| a.join("catalog"))
            .find(|d| holds(d));
        beside
            .map(|dir| Source { dir })
            .ok_or(CatalogError::NoSource)
    }

    /// The source folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Install the pinned packages once (`npm ci`), when `node_modules` is missing.
    async fn install(&self) -> Result<(), CatalogError> {
        if self
            .dir
            .join("node_modules/@segment/action-destinations")
            .is_dir()
        {
            return Ok(());
        }
        tracing::info!(dir = %self.dir.display(), "installing the catalog's packages (npm ci), once");
        let mut npm = tokio::process::Command::new("npm");
        npm.args(["ci", "--no-audit", "--no-fund"]);
        self.script(npm, "npm", "npm ci in the catalog folder".into())
            .await
            .map(drop)
    }

    /// Build `entries` into `out` as `catalog:NAME.wasm` (an entry whose build
    /// inputs are unchanged is kept as it is).
    pub async fn build(&self, entries: &[&str], out: &Path) -> Result<String, CatalogError> {
        self.install().await?;
        let out = std::path::absolute(out).unwrap_or_else(|_| out.to_path_buf());
        let mut node = tokio::process::Command::new("node");
        node.arg("build.mjs").args(entries).arg("--out").arg(&out);
        let what = format!(
            "building catalog entr{} {}",
            if entries.len() == 1 { "y" } else { "ies" },
            entries.join(", ")
        );
        self.script(node, "node", what).await
    }

    /// Write the index of every entry into `file`, unless it is newer than
    /// every input of it (the pinned packages and the verification results).
    pub async fn write_index(&self, file: &Path) -> Result<(), CatalogError> {
        let inputs = [
            "package-lock.json",
            "index.mjs",
            "differential/results.json",
        ];
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let fresh = modified(file).is_some_and(|at| {
            inputs
                .iter()
                .filter_map(|i| modified(&self.dir.join(i)))
                .all(|input| input <= at)
        });
        if fresh {
            return Ok(());
        }
        self.install().await?;
        let file = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
        let mut node = tokio::process::Command::new("node");
        node.arg("index.mjs").arg("--out").arg(&file);
        self.script(node, "node", "indexing the catalog".into())
            .await
            .map(drop)
    }

    /// Run `command` in the source folder; its standard output, or its
    /// output as the error when it fails.
    async fn script(
        &self,
        mut command: tokio::process::Command,
        program: &'static str,
        what: String,
    ) -> Result<String, CatalogError> {
        command
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let out = command
            .output()
            .await
            .map_err(|source| CatalogError::Node { program, source })?;
        let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() {
            return Ok(stdout);
        }
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let output = [stderr, stdout]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("\n");
        Err(CatalogError::Script { what, output })
    }
}

/// Where catalog entries built for no host in particular (`switchyard try
/// catalog:NAME`) and the index are kept: `$SWITCHYARD_CACHE_DIR/catalog`,
/// else the user's cache directory.
pub fn cache_dir() -> PathBuf {
    crate::runtime::user_cache_dir()
        .and_then(|compiled| compiled.parent().map(|d| d.join("catalog")))
        .unwrap_or_else(|| PathBuf::from("target/catalog"))
}

/// The index, written first when missing or stale.
pub async fn read_index() -> Result<index::Index, CatalogError> {
    let source = Source::find()?;
    let file = cache_dir().join("index.json");
    source.write_index(&file).await?;
    index::Index::read(&file)
}

/// Build the catalog entry a plugin names into `dir` when its file is missing
/// (the first start with a new `catalog:NAME`); `Ok(false)`: nothing to do.
pub async fn build_if_missing(plugin: &str, dir: &Path) -> Result<bool, CatalogError> {
    let Some(entry) = entry_name(plugin) else {
        return Ok(false);
    };
    if crate::config::plugin_path(dir, plugin).is_file() {
        return Ok(false);
    }
    let source = Source::find()?;
    tracing::info!(entry, dir = %dir.display(), "building catalog entry (once; cached by its inputs)");
    source.build(&[entry], dir).await?;
    Ok(true)
}
