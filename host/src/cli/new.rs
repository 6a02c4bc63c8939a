//! `switchyard new NAME --lang rust|js|python [--dir D]`: scaffold a destination.
//!
//! Writes `D/NAME/` with the component's source, the language kit, the WIT
//! contract, sample settings and event, a README and a Makefile whose default
//! target builds `NAME.wasm` in that folder and whose `test` target dry-runs
//! the samples through `switchyard try`. The templates live in `host/templates/`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The languages a destination can be scaffolded in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Rust with wit-bindgen, target wasm32-wasip2.
    Rust,
    /// JavaScript with componentize-js.
    Js,
    /// Python with componentize-py.
    Python,
}

const WIT: &str = include_str!("../../../wit/destination.wit");
const README: &str = include_str!("../../templates/common-README.md");
const SAMPLE_EVENT: &str = include_str!("../../templates/common-sample-event.json");
const SAMPLE_SETTINGS: &str = include_str!("../../templates/common-sample-settings.json");

/// `(path in the new folder, template)` for a language.
fn templates(lang: Lang) -> Vec<(&'static str, &'static str)> {
    match lang {
        Lang::Rust => vec![
            (
                "Cargo.toml",
                include_str!("../../templates/rust/Cargo.toml"),
            ),
            ("src/lib.rs", include_str!("../../templates/rust/lib.rs")),
            ("Makefile", include_str!("../../templates/rust/Makefile")),
            (".gitignore", include_str!("../../templates/rust/gitignore")),
        ],
        Lang::Js => vec![
            (
                "package.json",
                include_str!("../../templates/js/package.json"),
            ),
            ("build.mjs", include_str!("../../templates/js/build.mjs")),
            (
                "{{name}}.js",
                include_str!("../../templates/js/component.js"),
            ),
            ("kit.js", include_str!("../../../kits/js/kit.js")),
            ("Makefile", include_str!("../../templates/js/Makefile")),
            (".gitignore", include_str!("../../templates/js/gitignore")),
        ],
        Lang::Python => vec![
            (
                "{{module}}.py",
                include_str!("../../templates/python/component.py"),
            ),
            ("kit.py", include_str!("../../../kits/python/kit.py")),
            ("Makefile", include_str!("../../templates/python/Makefile")),
            (
                ".gitignore",
                include_str!("../../templates/python/gitignore"),
            ),
        ],
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

pub fn new(name: &str, lang: Lang, dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    if !valid_name(name) {
        anyhow::bail!(
            "`{name}` is not a destination name: use lower-case letters, digits, `-` and `_`, starting with a letter"
        );
    }
    let root = dir.unwrap_or_else(|| PathBuf::from(".")).join(name);
    if root.exists() && std::fs::read_dir(&root)?.next().is_some() {
        anyhow::bail!("{} already exists and is not empty", root.display());
    }
    let lang_name = match lang {
        Lang::Rust => "rust",
        Lang::Js => "js",
        Lang::Python => "python",
    };
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{crate}}", &name.replace('-', "_"))
            .replace("{{module}}", &name.replace('-', "_"))
            .replace("{{lang}}", lang_name)
    };
    let mut files: Vec<(String, String)> = vec![
        ("wit/destination.wit".into(), WIT.into()),
        ("README.md".into(), fill(README)),
        ("sample-event.json".into(), SAMPLE_EVENT.into()),
        ("sample-settings.json".into(), SAMPLE_SETTINGS.into()),
    ];
    for (path, text) in templates(lang) {
        let is_kit = path.starts_with("kit.");
        files.push((fill(path), if is_kit { text.into() } else { fill(text) }));
    }
    for (path, text) in &files {
        write(&root.join(path), text)?;
    }
    println!("created {} ({lang_name} destination)", root.display());
    println!("  make -C {}        # build {name}.wasm", root.display());
    println!(
        "  make -C {} test   # dry run through `switchyard try`",
        root.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| anyhow::anyhow!("{}: cannot create: {e}", parent.display()))?;
    }
    std::fs::write(path, text).map_err(|e| anyhow::anyhow!("{}: cannot write: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(valid_name("acme-crm"));
        assert!(valid_name("a1_b"));
        for bad in ["", "Acme", "1abc", "a b", "a/b", "../x"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn every_language_gets_a_complete_folder() {
        for lang in [Lang::Rust, Lang::Js, Lang::Python] {
            let dir = tempfile::tempdir().unwrap();
            new("acme-crm", lang, Some(dir.path().to_path_buf())).unwrap();
            let root = dir.path().join("acme-crm");
            for f in [
                "Makefile",
                "README.md",
                "sample-event.json",
                "sample-settings.json",
                "wit/destination.wit",
            ] {
                assert!(root.join(f).exists(), "{lang:?}: {f}");
            }
            let makefile = std::fs::read_to_string(root.join("Makefile")).unwrap();
            assert!(makefile.contains("acme-crm.wasm"), "{lang:?}");
            assert!(!makefile.contains("{{"), "{lang:?}: unfilled placeholder");
            assert!(
                new("acme-crm", lang, Some(dir.path().to_path_buf())).is_err(),
                "refuses to overwrite"
            );
        }
    }
}
