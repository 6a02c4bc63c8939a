//! `switchyard new` for every language and both kinds: the scaffold is created,
//! built with its own Makefile, and dry-run through `switchyard try` by its
//! `make test`.

use std::process::Command;

use switchyard_e2e::{switchyard_bin, workspace_root};

/// Scaffold `name` of `kind` in `lang`, run its `make test`; its folder and what it printed.
fn build_and_try(kind: &str, lang: &str, name: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(switchyard_bin())
        .args(["new", name, "--kind", kind, "--lang", lang, "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let folder = dir.path().join(name);
    let out = Command::new("make")
        .arg("-C")
        .arg(&folder)
        .arg("test")
        .arg(format!("SWITCHYARD={}", switchyard_bin().display()))
        // Rust scaffolds share one target directory so wit-bindgen is built once.
        .env("CARGO_TARGET_DIR", workspace_root().join("target/scaffold"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{kind} {lang}: make test failed\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        folder.join(format!("{name}.wasm")).exists(),
        "{kind} {lang}: {name}.wasm built in the folder"
    );
    (dir, stdout)
}

fn scaffold(lang: &str) {
    let name = format!("acme-{lang}");
    let (_dir, stdout) = build_and_try("destination", lang, &name);
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

/// A transformation scaffold drops the sample's track event and removes the
/// identify's email, as its sample settings ask.
fn transform_scaffold(lang: &str) {
    let name = format!("mask-{lang}");
    let (_dir, stdout) = build_and_try("transform", lang, &name);
    assert!(
        stdout.contains(&format!(
            "sample-1: after {name}: dropped (filtered): {name} drops `Order Completed`"
        )),
        "{lang}: {stdout}"
    );
    let after = stdout
        .split(&format!("sample-2: after {name}:"))
        .nth(1)
        .unwrap_or_else(|| panic!("{lang}: no output after the transformation: {stdout}"));
    assert!(after.contains("\"plan\": \"pro\""), "{lang}: {after}");
    assert!(
        !after.contains("ada@example.com"),
        "{lang}: the email is removed: {after}"
    );
}

#[test]
fn a_rust_transform_scaffold_builds_and_passes_its_test() {
    transform_scaffold("rust");
}

#[test]
fn a_javascript_transform_scaffold_builds_and_passes_its_test() {
    transform_scaffold("js");
}

#[test]
fn a_python_transform_scaffold_builds_and_passes_its_test() {
    transform_scaffold("python");
}
