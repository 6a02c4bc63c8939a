//! An OAuth2 access token refreshed by the host with the entry's own refresh
//! code (snap-conversions-api).

use serde_json::json;
use switchyard_e2e::{Receiver, Reply, TestHost};

use crate::{entry_table, install_entry, settled, track};

/// Snap's Conversions API entry with its OAuth2 tokens as secrets: the access
/// token `refreshed_by` the refresh token.
fn snap_table(rx: &Receiver) -> String {
    entry_table(
        "snap-conversions-api",
        "https://tr.snapchat.com",
        r#"{ pixel_id = "PIX1", oauth = { access_token = "${secret:access_token}", refresh_token = "${secret:refresh_token}", clientId = "client-1", clientSecret = "${secret:client_secret}" } }"#,
        rx,
        "batch = { max_events = 1 }\n\
         secrets = { access_token = { from = \"file:access\", hosts = [\"https://tr.snapchat.com\"], refreshed_by = \"refresh_token\" }, \
         refresh_token = { from = \"file:refresh\", hosts = [\"https://accounts.snapchat.com\"] }, \
         client_secret = { from = \"file:client-secret\", hosts = [\"https://accounts.snapchat.com\"] } }",
    )
    .replace(
        "allowed_hosts = [\"https://tr.snapchat.com\"]",
        "allowed_hosts = [\"https://tr.snapchat.com\", \"https://accounts.snapchat.com\"]",
    )
}

#[tokio::test]
async fn an_oauth2_token_is_refreshed_once_kept_across_instances_and_restarts_and_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    install_entry(dir.path(), "snap-conversions-api");
    std::fs::write(dir.path().join("access"), "stale-access-token-0").unwrap();
    std::fs::write(dir.path().join("refresh"), "refresh-token-0000").unwrap();
    std::fs::write(dir.path().join("client-secret"), "client-secret-0000").unwrap();
    let rx = Receiver::start().await;
    rx.script(vec![
        Reply::status(401).body("{\"error\":\"token expired\"}"),
        Reply::status(200)
            .header("content-type", "application/json")
            .body("{\"access_token\":\"fresh-access-token-1\",\"expires_in\":1800,\"refresh_token\":\"rotated-refresh-1\"}"),
    ]);
    let table = snap_table(&rx);
    let host = TestHost::start(dir.path(), &table).await;
    let paid = |id: &str| {
        let mut e = track(
            id,
            "Payment Info Entered",
            json!({ "currency": "USD", "value": 10, "email": "ada@example.com" }),
        );
        e["context"]["userAgent"] = json!("Mozilla/5.0 (X11; Linux x86_64)");
        e
    };
    assert_eq!(host.send("track", &paid("pay-1")).await.status(), 200);
    let row = settled(&host, "snap-conversions-api", 1).await;
    assert_eq!(row["delivered"], 1, "{row}");
    let got = rx.received();
    let paths: Vec<&str> = got.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(got.len(), 3, "event (401), refresh, event again: {paths:?}");
    assert!(
        got[0].uri.contains("access_token=stale-access-token-0"),
        "{}",
        got[0].uri
    );
    assert!(
        got[1].uri.starts_with("/login/oauth2/access_token"),
        "{}",
        got[1].uri
    );
    let refresh_body = String::from_utf8_lossy(&got[1].body);
    assert!(
        refresh_body.contains("refresh_token=refresh-token-0000")
            && refresh_body.contains("client_secret=client-secret-0000"),
        "the vendor gets the values: {refresh_body}"
    );
    assert!(
        got[2].uri.contains("access_token=fresh-access-token-1"),
        "{}",
        got[2].uri
    );

    // A fresh instance (the next batch) uses the new token: no refresh.
    assert_eq!(host.send("track", &paid("pay-2")).await.status(), 200);
    settled(&host, "snap-conversions-api", 2).await;
    let got = rx.received();
    assert_eq!(got.len(), 4, "one request more");
    assert!(
        got[3].uri.contains("access_token=fresh-access-token-1"),
        "{}",
        got[3].uri
    );

    // Never shown: not in the delivery debugger.
    let attempts = host
        .admin()
        .get("/admin/destinations/snap-conversions-api/attempts")
        .await
        .to_string();
    assert!(!attempts.contains("fresh-access-token-1"), "{attempts}");
    assert!(!attempts.contains("refresh-token-0000"), "{attempts}");
    host.stop().await;

    // Kept across a restart (owner-only), the rotated refresh token too.
    let kept = dir.path().join("data/oauth/snap-conversions-api");
    assert_eq!(
        std::fs::read_to_string(kept.join("access_token")).unwrap(),
        "fresh-access-token-1"
    );
    assert_eq!(
        std::fs::read_to_string(kept.join("refresh_token")).unwrap(),
        "rotated-refresh-1"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(kept.join("access_token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "owner-only: {mode:o}");
    }
    let host = TestHost::start(dir.path(), &table).await;
    assert_eq!(host.send("track", &paid("pay-3")).await.status(), 200);
    settled(&host, "snap-conversions-api", 1).await;
    let got = rx.received();
    assert_eq!(got.len(), 5, "one request more, no refresh");
    assert!(
        got[4].uri.contains("access_token=fresh-access-token-1"),
        "{}",
        got[4].uri
    );
    host.stop().await;
}
