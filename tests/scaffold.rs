//! `switchyard new` for every language and both kinds: the scaffold is created,
//! built with its own Makefile, and dry-run through `switchyard try` by its
//! `make test`. A destination scaffold's own unit tests pass (`make unit`), and
//! `switchyard dev` runs it: built, delivered to the built-in receiver, a
//! scripted 429 retried, and a rebuilt version hot-swapped in.

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    let (dir, stdout) = build_and_try("destination", lang, &name);
    assert!(
        stdout.contains("POST https://api.example.com/v1/events"),
        "{lang}: {stdout}"
    );
    assert!(
        stdout.contains("sample-1: delivered") && stdout.contains("sample-2: delivered"),
        "{lang}: {stdout}"
    );
    let folder = dir.path().join(&name);
    make_unit(&folder, lang);
    dev_session(&folder, lang, &name);
}

/// The scaffold's own unit tests pass (`make unit`).
fn make_unit(folder: &Path, lang: &str) {
    let out = Command::new("make")
        .arg("-C")
        .arg(folder)
        .arg("unit")
        .env(
            "CARGO_TARGET_DIR",
            workspace_root().join("target/scaffold-native"),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{lang}: make unit failed\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What a `switchyard dev` printed so far, read line by line.
struct Dev {
    child: std::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Dev {
    fn start(folder: &Path, args: &[&str]) -> Dev {
        let mut child = Command::new(switchyard_bin())
            .arg("dev")
            .arg(folder)
            .args(args)
            .env("CARGO_TARGET_DIR", workspace_root().join("target/scaffold"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(pipe).lines() {
                    let Ok(line) = line else { return };
                    lines.lock().unwrap().push(line);
                }
            });
        }
        Dev { child, lines }
    }

    /// Wait until a line contains `needle` (builds included, so minutes at most).
    fn wait_for(&self, needle: &str) {
        let until = Instant::now() + Duration::from_secs(240);
        while Instant::now() < until {
            if self
                .lines
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains(needle))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "no line with `{needle}` from switchyard dev:\n{}",
            self.lines.lock().unwrap().join("\n")
        );
    }

    fn press_enter(&mut self) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        // SIGTERM, so it stops its host and removes its temporary folder.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let until = Instant::now() + Duration::from_secs(20);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `switchyard dev` on a built scaffold: the samples reach the built-in
/// receiver, a scripted 429 is retried, a new version is hot-swapped in on a
/// save, and Enter sends the samples again.
fn dev_session(folder: &Path, lang: &str, name: &str) {
    let mut dev = Dev::start(folder, &["--respond", "429,retry-after=1"]);
    dev.wait_for(&format!("serving {name} 0.1.0"));
    dev.wait_for("sent 2 sample event(s), round 1");
    dev.wait_for("receiver -> #1 429 (retry-after: 1)");
    dev.wait_for("receiver -> #2 200");
    dev.wait_for(&format!("{name}: delivered 2 · retried 2 · dead letters 0"));

    // A save with a new version: rebuilt and hot-swapped.
    let (file, from, to) = match lang {
        "rust" => (
            "Cargo.toml".to_string(),
            "version = \"0.1.0\"",
            "version = \"0.1.1\"",
        ),
        "js" => (format!("{name}.js"), "version: '0.1.0'", "version: '0.1.1'"),
        _ => (
            format!("{}.py", name.replace('-', "_")),
            "version=\"0.1.0\"",
            "version=\"0.1.1\"",
        ),
    };
    let path = folder.join(&file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{lang}: {file} has {from}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    dev.wait_for(&format!("hot-swapped: now serving {name} 0.1.1"));

    dev.press_enter();
    dev.wait_for("sent 2 sample event(s), round 2");
    dev.wait_for(&format!("{name}: delivered 4 · retried 2 · dead letters 0"));
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
