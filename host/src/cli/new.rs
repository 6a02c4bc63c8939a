//! `switchyard new NAME [--kind destination|transform] --lang rust|js|python
//! [--dir D]`: scaffold a destination or a transformation.
//!
//! Writes `D/NAME/` with the component's source, the language kit, the WIT
//! contract, sample settings and event, a README and a Makefile whose default
//! target builds `NAME.wasm` in that folder and whose `test` target dry-runs
//! the samples through `switchyard try`. The templates live in
//! `host/templates/` (those of a transformation in `host/templates/transform/`);
//! the kits are copied from `kits/js`, `kits/python` and, for Rust, the sources
//! of `destinations/kit-rust` or `transforms/kit-rust` (into `kit/`, with a
//! manifest of its own).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The languages a destination can be scaffolded in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Rust with the Rust kit (wit-bindgen), target wasm32-wasip2.
    Rust,
    /// JavaScript with componentize-js.
    Js,
    /// Python with componentize-py.
    Python,
}

/// What a scaffold is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// A destination (`wit/destination.wit`).
    Destination,
    /// A transformation (`wit/transform.wit`).
    Transform,
}

const WIT: &str = include_str!("../../../wit/destination.wit");
const TRANSFORM_WIT: &str = include_str!("../../../wit/transform.wit");
/// The optional deletion part of the contract: the Rust kit generates its
/// world too, so every scaffold has it.
const DELETION_WIT: &str = include_str!("../../../wit/deletion.wit");
const TRANSFORM_README: &str = include_str!("../../templates/transform/README.md");
const TRANSFORM_SETTINGS: &str = include_str!("../../templates/transform/sample-settings.json");
const README: &str = include_str!("../../templates/common-README.md");
const SAMPLE_EVENT: &str = include_str!("../../templates/common-sample-event.json");
const SAMPLE_SETTINGS: &str = include_str!("../../templates/common-sample-settings.json");

/// The Rust kit's `generate!` finds the WIT two folders up in this repository
/// (`destinations/kit-rust` → `wit/`), one folder up in a scaffold (`kit/` → `wit/`).
const KIT_WIT_PATH: (&str, &str) = (r#"path: "../../wit""#, r#"path: "../wit""#);

/// `(path in the new folder, source)` of the Rust kit, copied as it is in
/// `destinations/kit-rust/src` (but for [`KIT_WIT_PATH`]).
const RUST_KIT: [(&str, &str); 10] = [
    (
        "kit/src/lib.rs",
        include_str!("../../../destinations/kit-rust/src/lib.rs"),
    ),
    (
        "kit/src/crypto.rs",
        include_str!("../../../destinations/kit-rust/src/crypto.rs"),
    ),
    (
        "kit/src/destination.rs",
        include_str!("../../../destinations/kit-rust/src/destination.rs"),
    ),
    (
        "kit/src/event.rs",
        include_str!("../../../destinations/kit-rust/src/event.rs"),
    ),
    (
        "kit/src/mock.rs",
        include_str!("../../../destinations/kit-rust/src/mock.rs"),
    ),
    (
        "kit/src/outcome.rs",
        include_str!("../../../destinations/kit-rust/src/outcome.rs"),
    ),
    (
        "kit/src/records.rs",
        include_str!("../../../destinations/kit-rust/src/records.rs"),
    ),
    (
        "kit/src/send.rs",
        include_str!("../../../destinations/kit-rust/src/send.rs"),
    ),
    (
        "kit/src/settings.rs",
        include_str!("../../../destinations/kit-rust/src/settings.rs"),
    ),
    (
        "kit/src/time.rs",
        include_str!("../../../destinations/kit-rust/src/time.rs"),
    ),
];

/// `(path in the new folder, source)` of the Rust transform kit, copied as it
/// is in `transforms/kit-rust/src` (but for [`KIT_WIT_PATH`]).
const RUST_TRANSFORM_KIT: [(&str, &str); 4] = [
    (
        "kit/src/lib.rs",
        include_str!("../../../transforms/kit-rust/src/lib.rs"),
    ),
    (
        "kit/src/path.rs",
        include_str!("../../../transforms/kit-rust/src/path.rs"),
    ),
    (
        "kit/src/settings.rs",
        include_str!("../../../transforms/kit-rust/src/settings.rs"),
    ),
    (
        "kit/src/transform.rs",
        include_str!("../../../transforms/kit-rust/src/transform.rs"),
    ),
];

/// `(path in the new folder, template)` for a language and kind.
fn templates(lang: Lang, kind: Kind) -> Vec<(&'static str, &'static str)> {
    let mut files = destination_templates(lang);
    if kind == Kind::Transform {
        let own: Vec<(&str, &str)> = match lang {
            Lang::Rust => vec![
                (
                    "Cargo.toml",
                    include_str!("../../templates/transform/rust-Cargo.toml"),
                ),
                (
                    "src/lib.rs",
                    include_str!("../../templates/transform/rust-lib.rs"),
                ),
                (
                    "kit/Cargo.toml",
                    include_str!("../../templates/transform/rust-kit-Cargo.toml"),
                ),
            ],
            Lang::Js => vec![
                (
                    "{{name}}.js",
                    include_str!("../../templates/transform/js-component.js"),
                ),
                (
                    "test/{{name}}.test.mjs",
                    include_str!("../../templates/js/transform-test.mjs"),
                ),
            ],
            Lang::Python => vec![
                (
                    "{{module}}.py",
                    include_str!("../../templates/transform/python-component.py"),
                ),
                (
                    "test_{{module}}.py",
                    include_str!("../../templates/python/transform-test.py"),
                ),
            ],
        };
        for (path, text) in own {
            match files.iter_mut().find(|(p, _)| *p == path) {
                Some(slot) => slot.1 = text,
                None => files.push((path, text)),
            }
        }
    }
    files
}

/// The templates of a destination in `lang` (a transformation replaces its sources).
fn destination_templates(lang: Lang) -> Vec<(&'static str, &'static str)> {
    match lang {
        Lang::Rust => vec![
            (
                "Cargo.toml",
                include_str!("../../templates/rust/Cargo.toml"),
            ),
            ("src/lib.rs", include_str!("../../templates/rust/lib.rs")),
            ("Makefile", include_str!("../../templates/rust/Makefile")),
            (".gitignore", include_str!("../../templates/rust/gitignore")),
            (
                "kit/Cargo.toml",
                include_str!("../../templates/rust/kit-Cargo.toml"),
            ),
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
            (
                "mocks/http.js",
                include_str!("../../../kits/js/mocks/http.js"),
            ),
            (
                "mocks/log.js",
                include_str!("../../../kits/js/mocks/log.js"),
            ),
            (
                "mocks/crypto.js",
                include_str!("../../../kits/js/mocks/crypto.js"),
            ),
            (
                "mocks/settle.js",
                include_str!("../../../kits/js/mocks/settle.js"),
            ),
            (
                "mocks/register.mjs",
                include_str!("../../../kits/js/mocks/register.mjs"),
            ),
            (
                "test/{{name}}.test.mjs",
                include_str!("../../templates/js/test.mjs"),
            ),
            ("Makefile", include_str!("../../templates/js/Makefile")),
            (".gitignore", include_str!("../../templates/js/gitignore")),
        ],
        Lang::Python => vec![
            (
                "{{module}}.py",
                include_str!("../../templates/python/component.py"),
            ),
            ("kit.py", include_str!("../../../kits/python/kit.py")),
            ("mocks.py", include_str!("../../../kits/python/mocks.py")),
            (
                "test_{{module}}.py",
                include_str!("../../templates/python/test.py"),
            ),
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

/// Scaffold the destination or transformation `name` in `lang` under `dir`
/// (default: the current directory).
pub fn new(name: &str, kind: Kind, lang: Lang, dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let kind_name = match kind {
        Kind::Destination => "destination",
        Kind::Transform => "transform",
    };
    if !valid_name(name) {
        anyhow::bail!(
            "`{name}` is not a {kind_name} name: use lower-case letters, digits, `-` and `_`, starting with a letter"
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
            .replace("{{version}}", env!("CARGO_PKG_VERSION"))
            .replace("{{world}}", kind_name)
    };
    let (readme, settings) = match kind {
        Kind::Destination => (README, SAMPLE_SETTINGS),
        Kind::Transform => (TRANSFORM_README, TRANSFORM_SETTINGS),
    };
    let kit = match lang {
        Lang::Rust => "`kit/`",
        Lang::Js => "`kit.js`",
        Lang::Python => "`kit.py`",
    };
    let readme = fill(&for_lang(readme, lang_name)).replace("{{kit}}", kit);
    let mut files: Vec<(String, String)> = vec![
        ("wit/destination.wit".into(), WIT.into()),
        ("wit/deletion.wit".into(), DELETION_WIT.into()),
        ("README.md".into(), readme),
        ("sample-event.json".into(), SAMPLE_EVENT.into()),
        ("sample-settings.json".into(), settings.into()),
    ];
    if kind == Kind::Transform {
        files.push(("wit/transform.wit".into(), TRANSFORM_WIT.into()));
    }
    for (path, text) in templates(lang, kind) {
        let is_kit = path.starts_with("kit.");
        files.push((fill(path), if is_kit { text.into() } else { fill(text) }));
    }
    if lang == Lang::Rust {
        let kit: &[(&str, &str)] = match kind {
            Kind::Destination => &RUST_KIT,
            Kind::Transform => &RUST_TRANSFORM_KIT,
        };
        for (path, text) in kit {
            let (here, there) = KIT_WIT_PATH;
            files.push(((*path).into(), text.replace(here, there)));
        }
    }
    for (path, text) in &files {
        write(&root.join(path), text)?;
    }
    println!("created {} ({lang_name} {kind_name})", root.display());
    println!(
        "  cd {} && switchyard dev   # build, try on sample events, and hot-swap on every save",
        root.display()
    );
    println!(
        "  make -C {}                # or build {name}.wasm alone (make test: a dry run)",
        root.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The lines of `text` meant for `lang`: a block between a `{{#LANG}}` line and
/// a `{{/LANG}}` line is kept only for that language (the marker lines never).
fn for_lang(text: &str, lang: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut keep = true;
    for line in text.split_inclusive('\n') {
        let t = line.trim();
        if let Some(l) = t.strip_prefix("{{#").and_then(|r| r.strip_suffix("}}")) {
            keep = l == lang;
        } else if t.starts_with("{{/") && t.ends_with("}}") {
            keep = true;
        } else if keep {
            out.push_str(line);
        }
    }
    out
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
    fn each_scaffolds_readme_speaks_of_its_own_language() {
        for (lang, own, others) in [
            ("rust", "src/lib.rs", ["test_", "mocks/register.mjs"]),
            ("js", "mocks/register.mjs", ["src/lib.rs", "test_"]),
            (
                "python",
                "mocks.HostTestCase",
                ["src/lib.rs", "mocks/register.mjs"],
            ),
        ] {
            for readme in [README, TRANSFORM_README] {
                let text = for_lang(readme, lang);
                assert!(
                    text.contains(own) || readme == TRANSFORM_README,
                    "{lang}: {own}"
                );
                for other in others {
                    assert!(!text.contains(other), "{lang}'s README speaks of {other}");
                }
                assert!(!text.contains("{{#") && !text.contains("{{/"), "{lang}");
            }
        }
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("acme-crm"));
        assert!(valid_name("a1_b"));
        for bad in ["", "Acme", "1abc", "a b", "a/b", "../x"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn the_rust_kit_is_copied_whole_with_its_wit_path_and_dependencies() {
        let kit = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../destinations/kit-rust");
        let mut sources: Vec<String> = std::fs::read_dir(kit.join("src"))
            .unwrap()
            .map(|e| format!("kit/src/{}", e.unwrap().file_name().to_string_lossy()))
            .collect();
        sources.sort();
        let mut copied: Vec<String> = RUST_KIT.iter().map(|(p, _)| p.to_string()).collect();
        copied.sort();
        assert_eq!(copied, sources, "every source file of the kit is copied");
        // Two `generate!`: the destination world and the deleting one.
        assert_eq!(RUST_KIT[0].1.matches(KIT_WIT_PATH.0).count(), 2);

        let deps = |text: &str| -> Vec<String> {
            let manifest: toml::Table = toml::from_str(text).unwrap();
            let mut names: Vec<String> = manifest["dependencies"]
                .as_table()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            names.sort();
            names
        };
        let real = std::fs::read_to_string(kit.join("Cargo.toml")).unwrap();
        assert_eq!(
            deps(include_str!("../../templates/rust/kit-Cargo.toml")),
            deps(&real),
            "the scaffold's kit manifest has the kit's dependencies"
        );
    }

    #[test]
    fn the_rust_transform_kit_is_copied_whole() {
        let kit = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../transforms/kit-rust");
        let mut sources: Vec<String> = std::fs::read_dir(kit.join("src"))
            .unwrap()
            .map(|e| format!("kit/src/{}", e.unwrap().file_name().to_string_lossy()))
            .collect();
        sources.sort();
        let mut copied: Vec<String> = RUST_TRANSFORM_KIT
            .iter()
            .map(|(p, _)| p.to_string())
            .collect();
        copied.sort();
        assert_eq!(copied, sources, "every source file of the kit is copied");
        assert_eq!(RUST_TRANSFORM_KIT[0].1.matches(KIT_WIT_PATH.0).count(), 1);
    }

    #[test]
    fn a_transform_scaffold_has_the_transform_world() {
        for lang in [Lang::Rust, Lang::Js, Lang::Python] {
            let dir = tempfile::tempdir().unwrap();
            new(
                "mask-it",
                Kind::Transform,
                lang,
                Some(dir.path().to_path_buf()),
            )
            .unwrap();
            let root = dir.path().join("mask-it");
            assert!(root.join("wit/transform.wit").exists(), "{lang:?}");
            let all: String = walk(&root)
                .iter()
                .map(|p| std::fs::read_to_string(p).unwrap_or_default())
                .collect();
            for placeholder in ["name", "crate", "module", "lang", "version", "world"] {
                let p = format!("{{{{{placeholder}}}}}");
                assert!(!all.contains(&p), "{lang:?}: unfilled {p}");
            }
            assert!(!all.contains("export_destination"), "{lang:?}");
            assert!(!all.contains("def deliver(self"), "{lang:?}");
        }
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }

    #[test]
    fn every_language_gets_a_complete_folder() {
        for lang in [Lang::Rust, Lang::Js, Lang::Python] {
            let dir = tempfile::tempdir().unwrap();
            new(
                "acme-crm",
                Kind::Destination,
                lang,
                Some(dir.path().to_path_buf()),
            )
            .unwrap();
            let root = dir.path().join("acme-crm");
            for f in [
                "Makefile",
                "README.md",
                "sample-event.json",
                "sample-settings.json",
                "wit/destination.wit",
                "wit/deletion.wit",
            ] {
                assert!(root.join(f).exists(), "{lang:?}: {f}");
            }
            let makefile = std::fs::read_to_string(root.join("Makefile")).unwrap();
            assert!(makefile.contains("acme-crm.wasm"), "{lang:?}");
            if lang == Lang::Rust {
                let kit = std::fs::read_to_string(root.join("kit/src/lib.rs")).unwrap();
                assert!(kit.contains(KIT_WIT_PATH.1), "the kit finds wit/");
                let manifest = std::fs::read_to_string(root.join("kit/Cargo.toml")).unwrap();
                assert!(!manifest.contains("{{"), "unfilled placeholder");
            }
            assert!(!makefile.contains("{{"), "{lang:?}: unfilled placeholder");
            assert!(
                new(
                    "acme-crm",
                    Kind::Destination,
                    lang,
                    Some(dir.path().to_path_buf())
                )
                .is_err(),
                "refuses to overwrite"
            );
        }
    }
}
