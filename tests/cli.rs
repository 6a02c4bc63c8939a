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

    // The line of a key is named (#35): `plugin` is on this line of `good`.
    let plugin_line = good
        .lines()
        .position(|l| l.starts_with("plugin = \"webhook\""))
        .unwrap()
        + 1;
    let unknown_at = format!(
        "switchyard.toml:{}: `destinations[0].retries`",
        plugin_line + 1
    );
    let bare_at = format!(
        "switchyard.toml:{}: `destinations[0].retry.initial`: a bare number (3) has no unit",
        plugin_line + 1
    );
    for (bad, needle) in [
        (
            good.replace("plugin = \"webhook\"", "plugin = \"webhook\"\nretries = 3"),
            "unknown field `retries`",
        ),
        (
            good.replace("plugin = \"webhook\"", "plugin = \"webhook\"\nretries = 3"),
            unknown_at.as_str(),
        ),
        // A bare number for a duration key without a unit was read as
        // milliseconds; it is refused, naming the key and the unit.
        (
            good.replace(
                "plugin = \"webhook\"",
                "plugin = \"webhook\"\nretry = { initial = 3, max = 60 }",
            ),
            bare_at.as_str(),
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
            "mixpanel.wasm) is not a valid transform component",
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

/// `switchyard ARGS...` in `dir`: (success, stdout, stderr).
fn switchyard(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(switchyard_bin())
        .current_dir(dir)
        .args(args)
        // A cache of its own, so the test does not write to the user's.
        .env("SWITCHYARD_CACHE_DIR", dir.join("cache"))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn try_follows_a_script_of_answers_through_a_retry_and_a_per_record_reject() {
    let dir = tempfile::tempdir().unwrap();
    let mixpanel = destination_component("mixpanel");
    std::fs::write(dir.path().join("settings.json"), r#"{"api_secret": "s"}"#).unwrap();
    let track = |id: &str| {
        format!(
            r#"{{"type": "track", "userId": "u", "event": "E", "messageId": "{id}", "timestamp": "2026-01-01T00:00:00Z"}}"#
        )
    };
    let group = r#"{"type": "group", "userId": "u", "groupId": "g", "messageId": "m1"}"#;
    std::fs::write(
        dir.path().join("events.json"),
        format!(
            "[{}, {group}, {}, {}]",
            track("m0"),
            track("m2"),
            track("m3")
        ),
    )
    .unwrap();
    // Mixpanel's strict mode names the records it refused by their index in the
    // request: index 1 of [m0, m2, m3] is m2 (m1 was refused before sending).
    std::fs::write(
        dir.path().join("partial.json"),
        r#"{"code": 400, "failed_records": [{"index": 1, "field": "event", "message": "bad name"}]}"#,
    )
    .unwrap();
    let (ok, stdout, stderr) = switchyard(
        dir.path(),
        &[
            "try",
            mixpanel.to_str().unwrap(),
            "--settings",
            "settings.json",
            "--event",
            "events.json",
            "--respond",
            "429,retry-after=1",
            "--respond",
            "400,body=@partial.json",
        ],
    );
    assert!(!ok, "a reject makes the exit code 1\n{stdout}\n{stderr}");
    for line in [
        "--- attempt 1: 4 event(s)",
        "<- 429 (retry-after: 1)",
        "m1: reject (dead letter): mixpanel destination does not support group calls",
        "m0: retry after 1s: mixpanel answered 429",
        "the host would retry 3 event(s) after 1s (the destination's hint)",
        "--- attempt 2: 3 event(s)",
        "<- 400",
        "m0: delivered",
        "m2: reject (dead letter): mixpanel refused the event: event: bad name",
        "m3: delivered",
    ] {
        assert!(stdout.contains(line), "no `{line}` in\n{stdout}");
    }
    assert!(!stdout.contains("--- attempt 3"), "{stdout}");

    // A bad answer is named.
    let (ok, _, stderr) = switchyard(
        dir.path(),
        &[
            "try",
            mixpanel.to_str().unwrap(),
            "--settings",
            "settings.json",
            "--event",
            "events.json",
            "--respond",
            "soon",
        ],
    );
    assert!(!ok);
    assert!(stderr.contains("starts with an HTTP status"), "{stderr}");
}

#[test]
fn try_with_a_config_applies_the_destinations_allowed_hosts_and_check_warns_about_them() {
    let dir = tempfile::tempdir().unwrap();
    switchyard_e2e::host::install_plugins(dir.path());
    // The URL is on port 9, the allowlist names port 9999: the first real delivery would be denied.
    let config = switchyard_e2e::host::config_text(
        dir.path(),
        r#"
[[destinations]]
name = "hooks"
plugin = "webhook"
allowed_hosts = ["http://127.0.0.1:9999"]
settings = { url = "http://127.0.0.1:9/hook", secret = "s" }
retry = { initial = "250ms", max = "1s" }
"#,
    );
    std::fs::write(dir.path().join("switchyard.toml"), &config).unwrap();
    std::fs::write(
        dir.path().join("event.json"),
        r#"{"type": "track", "userId": "u1", "event": "Signed Up", "messageId": "c-1"}"#,
    )
    .unwrap();

    let (ok, stdout, stderr) = switchyard(dir.path(), &["check", "--config", "switchyard.toml"]);
    assert!(ok, "a warning is not an error: {stderr}");
    assert!(stdout.contains("1 warning(s)"), "{stdout}");
    assert!(
        stderr.contains(
            "destination `hooks`: settings.url = http://127.0.0.1:9/hook is not covered by its allowed_hosts"
        ),
        "{stderr}"
    );

    let (ok, stdout, stderr) = switchyard(
        dir.path(),
        &[
            "try",
            "--config",
            "switchyard.toml",
            "--destination",
            "hooks",
            "--event",
            "event.json",
        ],
    );
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains("settings.url = http://127.0.0.1:9/hook is not covered"),
        "{stderr}"
    );
    assert!(stdout.contains("POST http://127.0.0.1:9/hook"), "{stdout}");
    assert!(stdout.contains("<- denied:"), "{stdout}");
    assert!(
        stdout.contains("c-1: reject (dead letter): request denied"),
        "{stdout}"
    );

    // Covered: delivered, with the retry policy of the file (a 503 is retried within 250 ms).
    std::fs::write(
        dir.path().join("switchyard.toml"),
        config.replace("127.0.0.1:9999", "127.0.0.1:9"),
    )
    .unwrap();
    let (ok, stdout, stderr) = switchyard(
        dir.path(),
        &[
            "try",
            "--config",
            "switchyard.toml",
            "--event",
            "event.json",
            "--respond",
            "503",
        ],
    );
    assert!(ok, "{stdout}\n{stderr}");
    assert!(!stderr.contains("not covered"), "{stderr}");
    assert!(
        stdout.contains("after a random wait of up to 250ms (backoff)"),
        "{stdout}"
    );
    assert!(stdout.contains("c-1: delivered"), "{stdout}");

    let (ok, _, stderr) = switchyard(
        dir.path(),
        &[
            "try",
            "--config",
            "switchyard.toml",
            "--destination",
            "nope",
            "--event",
            "event.json",
        ],
    );
    assert!(!ok);
    assert!(
        stderr.contains("no destination `nope` (it has `hooks`)"),
        "{stderr}"
    );
}

#[test]
fn a_plugin_file_that_is_not_a_component_is_named_on_one_line() {
    let dir = tempfile::tempdir().unwrap();
    switchyard_e2e::host::install_plugins(dir.path());
    let plugins = dir.path().join("plugins");
    std::fs::write(
        plugins.join("garbage.wasm"),
        [0u8, 0x61, 0x73, 0x6d, 0xff, 0xfe, 0x01],
    )
    .unwrap();
    let config = switchyard_e2e::host::config_text(
        dir.path(),
        r#"
[[destinations]]
name = "broken"
plugin = "garbage"
allowed_hosts = ["http://127.0.0.1:9"]
"#,
    );
    std::fs::write(dir.path().join("switchyard.toml"), &config).unwrap();
    let (ok, _, stderr) = switchyard(dir.path(), &["check", "--config", "switchyard.toml"]);
    assert!(!ok);
    let line = stderr
        .lines()
        .find(|l| l.contains("garbage"))
        .unwrap_or_else(|| panic!("the plugin is named: {stderr}"));
    assert!(line.contains("garbage.wasm"), "the file is named: {line}");
    assert!(
        line.len() < 300 && !stderr.contains("Caused by"),
        "one readable line, not a dump: {stderr}"
    );

    // A file that is not WebAssembly at all: the parser prints the magic bytes
    // it expected over several lines; the user sees one (#35).
    std::fs::write(plugins.join("garbage.wasm"), b"not wasm at all").unwrap();
    let (ok, _, stderr) = switchyard(dir.path(), &["check", "--config", "switchyard.toml"]);
    assert!(!ok);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(
        lines[0].contains("garbage.wasm") && lines[0].contains("magic"),
        "{stderr}"
    );
}

/// `check` on a file with three problems in three destinations names all
/// three, each on its line with its line number (#35: it used to stop at the
/// first).
#[test]
fn check_reports_every_problem_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    switchyard_e2e::host::install_plugins(dir.path());
    let table = |name: &str, extra: &str| {
        format!(
            "[[destinations]]\nname = \"{name}\"\nplugin = \"webhook\"\nallowed_hosts = [\"http://127.0.0.1:9999\"]\nsettings = {{ url = \"http://127.0.0.1:9999/h\", secret = \"s\" }}\n{extra}\n"
        )
    };
    let config = switchyard_e2e::host::config_text(
        dir.path(),
        &[
            table("a", "retry = { initial = 3 }"),
            table("b", ""),
            table("c", "retries = 2"),
            table("d", "batch = { linger = 200 }"),
        ]
        .concat(),
    );
    std::fs::write(dir.path().join("switchyard.toml"), &config).unwrap();
    let line_of = |needle: &str| config.lines().position(|l| l == needle).unwrap() + 1;
    let (ok, _, stderr) = switchyard(dir.path(), &["check", "--config", "switchyard.toml"]);
    assert!(!ok);
    for expected in [
        format!(
            "switchyard.toml:{}: `destinations[0].retry.initial`: a bare number (3)",
            line_of("retry = { initial = 3 }")
        ),
        format!(
            "switchyard.toml:{}: `destinations[2].retries`: unknown field",
            line_of("retries = 2")
        ),
        format!(
            "switchyard.toml:{}: `destinations[3].batch.linger`: a bare number (200)",
            line_of("batch = { linger = 200 }")
        ),
    ] {
        assert!(stderr.contains(&expected), "{expected} in:\n{stderr}");
    }
    assert!(stderr.contains("3 error(s)"), "{stderr}");
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("error: ")).count(),
        3,
        "{stderr}"
    );
}
