//! Setting a catalog entry up: `vendor_origins`, `switchyard check`, and a
//! destination imported from Segment's Public API.

use serde_json::json;

use crate::install_entry;
use switchyard_e2e::TestHost;

#[tokio::test]
async fn vendor_origins_only_point_at_loopback() {
    let dir = tempfile::tempdir().unwrap();
    install_entry(dir.path(), "braze");
    let table = "[[destinations]]\nname = \"braze\"\nplugin = \"catalog:braze\"\n\
                 vendor_origins = { \"*\" = \"http://10.1.2.3:80\" }\nsettings = {}\n";
    let err = TestHost::try_start(dir.path(), table)
        .await
        .err()
        .expect("a non-loopback target is refused");
    let text = format!("{err:#}");
    assert!(
        text.contains("vendor_origins") && text.contains("loopback"),
        "{text}"
    );
}

#[test]
fn check_refuses_bad_subscriptions_and_settings_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    install_entry(dir.path(), "braze");
    let cases = [
        (
            r#"{ api_key = "k", endpoint = "https://rest.iad-01.braze.com", subscriptions = [{ subscribe = '(type = "track"', partnerAction = "trackEvent", mapping = {} }] }"#,
            "subscriptions[0]: subscribe: `(type = \"track\"` is not valid FQL",
        ),
        (
            r#"{ api_key = "k", endpoint = "https://rest.iad-01.braze.com", subscriptions = [{ subscribe = 'type = "track"', partnerAction = "sendFax", mapping = {} }] }"#,
            "partnerAction: no action `sendFax`",
        ),
        (
            r#"{ api_key = "k", endpoint = "https://rest.iad-01.braze.com", subscriptions = [{ subscribe = 'type = "track"', partnerAction = "trackEvent", mapping = { name = { "@path" = "$.event" }, _update_existing_only = "yes" } }] }"#,
            "mapping._update_existing_only: expected boolean",
        ),
        (
            r#"{ api_key = "k", endpoint = "https://rest.iad-01.braze.com", subscriptions = [{ subscribe = 'type = "track"', partnerAction = "trackEvent", mapping = { name = { "@nonsense" = 1 } } }] }"#,
            "subscriptions[0]: mapping",
        ),
        (
            r#"{ endpoint = "https://rest.iad-01.braze.com" }"#,
            "api_key",
        ),
    ];
    for (settings, says) in cases {
        let config = switchyard_e2e::host::config_text(
            dir.path(),
            &format!("[[destinations]]\nname = \"braze\"\nplugin = \"catalog:braze\"\nsettings = {settings}\n"),
        );
        let file = dir.path().join("check.toml");
        std::fs::write(&file, config).unwrap();
        let out = std::process::Command::new(switchyard_e2e::switchyard_bin())
            .args(["check", "--config"])
            .arg(&file)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{settings}: accepted");
        assert!(
            text.contains(says),
            "{settings}: wanted `{says}` in:\n{text}"
        );
        assert!(text.contains("destination `braze`"), "{text}");
    }
}

#[test]
fn a_destination_exported_by_segments_public_api_imports_and_checks_without_editing() {
    let dir = tempfile::tempdir().unwrap();
    install_entry(dir.path(), "braze");
    let export = json!({ "data": { "destination": {
        "id": "dst_1", "name": "Braze (prod)", "enabled": true,
        "metadata": { "id": "meta_1", "name": "Braze Cloud Mode (Actions)", "slug": "actions-braze-cloud" },
        "settings": { "api_key": "real-key-never-copied", "app_id": "app-7", "endpoint": "https://rest.iad-01.braze.com" }
    }}});
    let subscriptions = json!({ "data": { "subscriptions": [
        { "id": "s1", "name": "Purchases", "actionSlug": "trackEvent", "enabled": true,
          "trigger": "type = \"track\" and event = \"Order Completed\"",
          "settings": { "external_id": { "@path": "$.userId" }, "name": { "@path": "$.event" } } },
        { "id": "s2", "name": "Old", "actionSlug": "updateUserProfile", "enabled": false,
          "trigger": "type = \"identify\"", "settings": {} }
    ]}});
    let export_file = dir.path().join("destination.json");
    let subs_file = dir.path().join("subscriptions.json");
    std::fs::write(&export_file, export.to_string()).unwrap();
    std::fs::write(&subs_file, subscriptions.to_string()).unwrap();
    let out = std::process::Command::new(switchyard_e2e::switchyard_bin())
        .args(["catalog", "import"])
        .arg(&export_file)
        .arg("--subscriptions")
        .arg(&subs_file)
        .output()
        .unwrap();
    let stanza = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stanza.contains("plugin = \"catalog:braze\""), "{stanza}");
    assert!(stanza.contains("name = \"braze-prod\""), "{stanza}");
    assert!(
        !stanza.contains("real-key-never-copied"),
        "credentials stay out: {stanza}"
    );
    assert!(stanza.contains("env:BRAZE_PROD_API_KEY"), "{stanza}");
    assert!(
        stanza.contains("allowed_hosts = [\"https://rest.iad-01.braze.com\"]"),
        "found by a dry run: {stanza}"
    );
    assert!(
        stanza.contains("Purchases") && !stanza.contains("\"Old\""),
        "{stanza}"
    );

    let config = switchyard_e2e::host::config_text(dir.path(), &stanza);
    let file = dir.path().join("imported.toml");
    std::fs::write(&file, config).unwrap();
    let check = std::process::Command::new(switchyard_e2e::switchyard_bin())
        .args(["check", "--config"])
        .arg(&file)
        .env("BRAZE_PROD_API_KEY", "a-real-looking-key")
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn catalog_list_and_show_tell_each_entry_and_whether_it_is_verified() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(switchyard_e2e::switchyard_bin())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let list: serde_json::Value =
        serde_json::from_str(&run(&["catalog", "list", "--format", "json"])).unwrap();
    let entries = list.as_array().expect("an array");
    assert!(entries.len() > 200, "{} entries", entries.len());
    for e in entries {
        assert!(e["name"].is_string() && e["verified"].is_boolean(), "{e}");
    }
    let braze = entries
        .iter()
        .find(|e| e["name"] == "braze")
        .expect("braze");
    assert_eq!(braze["verified"], true, "{braze}");
    assert_eq!(braze["plugin"], "catalog:braze");
    let show = run(&["catalog", "show", "braze"]);
    for part in [
        "api_key",
        "trackEvent",
        "Track Calls",
        "verified against Segment's runtime",
    ] {
        assert!(show.contains(part), "`{part}` not in:\n{show}");
    }
    let out = std::process::Command::new(switchyard_e2e::switchyard_bin())
        .args(["catalog", "show", "braz"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean braze"));
}
