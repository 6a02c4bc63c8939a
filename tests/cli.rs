//! The `switchyard` binary: `try` and `check`.

use std::path::Path;
use std::process::{Command, Output};

use switchyard_e2e::{destination_component, switchyard_bin};

/// `switchyard try webhook.wasm --settings SETTINGS --event EVENT`.
fn try_webhook(settings: &Path, event: &Path) -> Output {
    Command::new(switchyard_bin())
        .arg("try")
        .arg(destination_component("webhook"))
        .arg("--settings")
        .arg(settings)
        .arg("--event")
        .arg(event)
        .output()
        .unwrap()
}

#[test]
fn try_prints_the_request_and_the_outcome_without_sending() {
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("settings.json");
    let event = dir.path().join("event.json");
    // Port 9 (discard) on loopback: nothing may be sent there in a dry run anyway.
    std::fs::write(
        &settings,
        r#"{"url": "http://127.0.0.1:9/hook", "secret": "s3cret"}"#,
    )
    .unwrap();
    std::fs::write(
        &event,
        r#"{"type": "track", "userId": "u1", "event": "Signed Up", "messageId": "try-1"}"#,
    )
    .unwrap();
    let out = try_webhook(&settings, &event);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("POST http://127.0.0.1:9/hook"), "{stdout}");
    assert!(
        stdout.contains("x-switchyard-signature: sha256="),
        "{stdout}"
    );
    assert!(stdout.contains("\"messageId\":\"try-1\""), "{stdout}");
    assert!(stdout.contains("try-1: delivered"), "{stdout}");
}

#[test]
fn try_names_the_file_and_line_of_bad_json() {
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("settings.json");
    let event = dir.path().join("event.json");
    std::fs::write(&settings, "{\n  \"url\": \n}").unwrap();
    std::fs::write(&event, "{}").unwrap();
    let out = try_webhook(&settings, &event);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("settings.json:3:"), "{stderr}");
}

#[test]
fn check_accepts_a_good_config_and_names_the_path_of_a_bad_value() {
    let dir = tempfile::tempdir().unwrap();
    switchyard_e2e::host::install_plugins(dir.path());
    let good = switchyard_e2e::host::config_text(
        dir.path(),
        r#"
[[destinations]]
name = "hooks"
plugin = "webhook"
allowed_hosts = ["http://127.0.0.1:9999"]
settings = { url = "http://127.0.0.1:9999/hook", secret = "s" }
"#,
    );
    let file = dir.path().join("switchyard.toml");
    std::fs::write(&file, &good).unwrap();
    let out = Command::new(switchyard_bin())
        .arg("check")
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    for (bad, needle) in [
        (
            good.replace("plugin = \"webhook\"", "plugin = \"webhook\"\nretries = 3"),
            "unknown field `retries`",
        ),
        (
            good.replace(
                "allowed_hosts = [\"http://127.0.0.1:9999\"]",
                "allowed_hosts = [\"127.0.0.1\"]",
            ),
            "destinations[0].allowed_hosts[0]",
        ),
        (
            good.replace("url = \"http://127.0.0.1:9999/hook\"", "url = \"ftp://x\""),
            "settings refused",
        ),
        // A transformation whose settings its plugin refuses, and one whose plugin
        // is a destination component.
        (
            format!(
                "{good}transforms = [\"mask\"]\n[[transforms]]\nname = \"mask\"\nplugin = \"mask-pii\"\nsettings = {{ hash = [\"a..b\"] }}\n"
            ),
            "transform `mask`: settings refused by plugin `mask-pii`: mask-pii settings: hash[0]",
        ),
        (
            format!("{good}[[transforms]]\nname = \"wrong\"\nplugin = \"mixpanel\"\n"),
            "plugin `mixpanel` is not a valid transform component",
        ),
    ] {
        std::fs::write(&file, &bad).unwrap();
        let out = Command::new(switchyard_bin())
            .arg("check")
            .arg("--config")
            .arg(&file)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bad}");
        assert!(stderr.contains(needle), "{stderr}");
        assert!(
            stderr.contains("switchyard.toml"),
            "names the file: {stderr}"
        );
    }
}

#[test]
fn try_refuses_what_ingest_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("settings.json");
    let event = dir.path().join("event.json");
    std::fs::write(&settings, r#"{"url": "http://127.0.0.1:9/hook"}"#).unwrap();
    for (body, needle) in [
        (
            r#"{"batch": [{"type": "track", "userId": "u", "event": "E"}], "context": "web"}"#,
            "`context` must be an object",
        ),
        (r#"[{"type": "track", "event": "E"}]"#, "event 0: `userId`"),
    ] {
        std::fs::write(&event, body).unwrap();
        let out = try_webhook(&settings, &event);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{body}");
        assert!(
            stderr.contains("event.json") && stderr.contains(needle),
            "{stderr}"
        );
    }
}
