//! `switchyard new` for every language: the scaffold is created, built with its
//! own Makefile, and dry-run through `switchyard try` by its `make test`.

use std::process::Command;

use switchyard_e2e::{switchyard_bin, workspace_root};

fn scaffold(lang: &str) {
    let dir = tempfile::tempdir().unwrap();
    let name = format!("acme-{lang}");
    let out = Command::new(switchyard_bin())
        .args(["new", &name, "--lang", lang, "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let folder = dir.path().join(&name);
    let out = Command::new("make")
        .arg("-C")
        .arg(&folder)
        .arg("test")
        .arg(format!("SWITCHYARD={}", switchyard_bin().display()))
        // Rust scaffolds share one target directory so wit-bindgen is built once.
        .env("CARGO_TARGET_DIR", workspace_root().join("target/scaffold"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{lang}: make test failed\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        folder.join(format!("{name}.wasm")).exists(),
        "{lang}: {name}.wasm built in the folder"
    );
    assert!(
        stdout.contains("POST https://api.example.com/v1/events"),
        "{lang}: {stdout}"
    );
    assert!(
        stdout.contains("sample-1: delivered") && stdout.contains("sample-2: delivered"),
        "{lang}: {stdout}"
    );
}

#[test]
fn a_rust_scaffold_builds_and_passes_its_test() {
    scaffold("rust");
}

#[test]
fn a_javascript_scaffold_builds_and_passes_its_test() {
    scaffold("js");
}

#[test]
fn a_python_scaffold_builds_and_passes_its_test() {
    scaffold("python");
}
