//! The bundled destinations' golden files (README, "Changing a running
//! Switchyard", record and replay): each destination has
//! `destinations/<name>/golden.recording.json`, a recording of real deliveries
//! of its sample settings to a loopback receiver, and `switchyard replay`
//! of it against the component built now must find no difference. A change
//! to what a destination sends fails here until its golden file is recorded
//! again on purpose: `make golden` runs the ignored test below.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};
use switchyard_e2e::receiver::{Receiver, Reply};
use switchyard_e2e::{destination_component, workspace_root, TestHost};

/// Every bundled destination.
const BUNDLED: [&str; 8] = [
    "webhook",
    "mixpanel",
    "ga4",
    "posthog",
    "segment",
    "http",
    "slack",
    "amplitude",
];

fn golden_file(name: &str) -> PathBuf {
    workspace_root().join(format!("destinations/{name}/golden.recording.json"))
}

#[tokio::test]
async fn every_bundled_destination_replays_its_golden_recording_without_a_difference() {
    // The compiled components the test hosts left, so the JS and Python ones need not compile again.
    let cache = tempfile::tempdir().unwrap();
    let compiled = cache.path().join("compiled");
    std::fs::create_dir_all(&compiled).unwrap();
    if let Ok(entries) = std::fs::read_dir(workspace_root().join("target/test-compiled-cache")) {
        for e in entries.flatten() {
            let _ = std::fs::copy(e.path(), compiled.join(e.file_name()));
        }
    }
    for name in BUNDLED {
        let file = golden_file(name);
        assert!(
            file.exists(),
            "{}: missing; `make golden` records it",
            file.display()
        );
        let out = tokio::process::Command::new(switchyard_e2e::switchyard_bin())
            .arg("replay")
            .arg(&file)
            .arg("--plugin")
            .arg(destination_component(name))
            .env("SWITCHYARD_CACHE_DIR", cache.path())
            .output()
            .await
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: its golden recording no longer replays (if the change is meant, `make golden`):\n{said}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(said.contains("no differences"), "{name}: {said}");
        let recording: Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert!(
            recording["deliveries"][0]["requests"]
                .as_array()
                .is_some_and(|r| !r.is_empty()),
            "{name}: the golden recording holds no request"
        );
    }
}

/// The events every golden recording delivers: one of each common call, with
/// fixed times so a recording made again differs only where the code does.
fn golden_events() -> Value {
    json!({"batch": [
        {"type": "track", "userId": "user-1", "event": "Order Completed", "messageId": "golden-track",
         "timestamp": "2026-12-01T12:00:00.000Z",
         "properties": {"revenue": 19.99, "orderId": "o-1", "currency": "EUR"},
         "context": {"ip": "203.0.113.7", "userAgent": "Mozilla/5.0", "locale": "en-GB"}},
        {"type": "identify", "userId": "user-1", "messageId": "golden-identify",
         "timestamp": "2026-12-01T12:00:01.000Z", "traits": {"email": "ada@example.com", "plan": "pro"}},
        {"type": "page", "anonymousId": "anon-7", "name": "Pricing", "messageId": "golden-page",
         "timestamp": "2026-12-01T12:00:02.000Z", "properties": {"path": "/pricing"}}
    ], "sentAt": "2026-12-01T12:00:03.000Z"})
}

/// `settings` with every http(s) URL pointed at `origin` (path kept); a
/// destination with a built-in vendor URL gets `endpoint` = `origin`.
fn pointed_at(mut settings: Value, origin: &str) -> Value {
    fn walk(v: &mut Value, origin: &str) {
        match v {
            Value::String(s) => {
                if let Some(rest) = s
                    .strip_prefix("https://")
                    .or_else(|| s.strip_prefix("http://"))
                {
                    let path = rest.find('/').map_or("", |at| &rest[at..]);
                    *s = format!("{origin}{path}");
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| walk(i, origin)),
            Value::Object(map) => map.values_mut().for_each(|i| walk(i, origin)),
            _ => {}
        }
    }
    walk(&mut settings, origin);
    if let Value::Object(map) = &mut settings {
        let has_url = map
            .values()
            .any(|v| v.as_str().is_some_and(|s| s.starts_with(origin)));
        if !has_url {
            map.insert("endpoint".into(), Value::String(origin.into()));
        }
    }
    settings
}

/// A JSON value as a TOML inline value.
fn toml_of(v: &Value) -> String {
    match v {
        Value::Object(map) => {
            let parts: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{} = {}", Value::String(k.clone()), toml_of(v)))
                .collect();
            format!("{{ {} }}", parts.join(", "))
        }
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(toml_of).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_string(),
    }
}

#[tokio::test]
#[ignore = "records the golden files again: `make golden`"]
async fn record_the_golden_files() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    rx.default_reply(
        Reply::status(200)
            .header("content-type", "application/json")
            .body("{}"),
    );
    let mut tables = String::new();
    for name in BUNDLED {
        let sample = workspace_root().join(format!("destinations/{name}/sample-settings.json"));
        let settings: Value =
            serde_json::from_str(&std::fs::read_to_string(sample).unwrap()).unwrap();
        tables.push_str(&format!(
            "\n[[destinations]]\nname = \"{name}\"\nplugin = \"{name}\"\nallowed_hosts = [\"{origin}\"]\nsettings = {settings}\nbatch = {{ max_events = 100, max_bytes = 512000, linger_ms = 300 }}\n",
            origin = rx.origin(),
            settings = toml_of(&pointed_at(settings, &rx.origin())),
        ));
    }
    let host = TestHost::start(dir.path(), &tables).await;
    let recordings = BUNDLED.map(|name| {
        let admin = host.admin();
        tokio::spawn(async move {
            let resp = admin
                .post(&format!(
                    "/admin/destinations/{name}/record?count=1&timeout=60s"
                ))
                .await;
            assert_eq!(resp.status(), 200, "{name}");
            resp.json::<Value>().await.unwrap()
        })
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(host.send("batch", &golden_events()).await.status(), 200);
    for (name, recording) in BUNDLED.iter().zip(recordings) {
        let recording = recording.await.unwrap();
        assert_eq!(
            recording["deliveries"].as_array().map(Vec::len),
            Some(1),
            "{name}: {recording}"
        );
        let text = serde_json::to_string_pretty(&recording).unwrap();
        std::fs::write(golden_file(name), text + "\n").unwrap();
        println!("recorded {}", golden_file(name).display());
    }
    host.stop().await;
}
