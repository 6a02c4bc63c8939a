//! Secrets the guest never holds (`secrets` of a destination): the value goes
//! out only in requests to the secret's hosts, and a hostile guest cannot get
//! it anywhere else: not into a log line, another allowed host, a reject
//! reason, the delivery debugger, or back through the vendor's answer.

use std::time::Duration;

use hmac::Mac as _;
use serde_json::Value;
use switchyard_e2e::receiver::{Receiver, Reply};
use switchyard_e2e::{host::TestHost, sdk_batch};

/// The value every test here keeps secret.
const VALUE: &str = "S3CRET-value-7f3a9c";

fn secret_file(dir: &std::path::Path) -> String {
    let file = dir.join("secret.txt");
    std::fs::write(&file, format!("{VALUE}\n")).unwrap();
    file.display().to_string()
}

/// A host with the hostile guest (`misbehave`, mode `leak`) as destination `leaky`:
/// secret `k` may go to `vendor` only, and the guest also tries `other` at `other_path`.
/// Returns once its one event has been dead-lettered.
async fn start_leaky(
    dir: &std::path::Path,
    vendor: &Receiver,
    other: &Receiver,
    other_path: &str,
) -> (TestHost, switchyard_e2e::Admin) {
    let config = format!(
        r#"
[[destinations]]
name = "leaky"
plugin = "misbehave"
allowed_hosts = ["{vendor}", "{other}"]
secrets = {{ k = {{ from = "file:{file}", hosts = ["{vendor}"] }} }}
settings = {{ mode = "leak", secret = "${{secret:k}}", url = "{vendor_url}", other = "{other_url}" }}
retry = {{ initial_ms = 50, max_ms = 200, window = "1m" }}
"#,
        vendor = vendor.origin(),
        other = other.origin(),
        file = secret_file(dir),
        vendor_url = vendor.url("/collect"),
        other_url = other.url(other_path),
    );
    let host = TestHost::start(dir, &config).await;
    assert_eq!(host.send("batch", &sdk_batch("l", 1)).await.status(), 200);
    let admin = host.admin();
    admin
        .wait(
            switchyard_e2e::admin::Row::Destination("leaky"),
            "its event dead-lettered",
            Duration::from_secs(20),
            |r| r["dead_letters"] == 1,
        )
        .await;
    (host, admin)
}

#[tokio::test]
async fn a_hostile_guest_cannot_leak_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let vendor = Receiver::start().await;
    let other = Receiver::start().await;
    // The vendor echoes the key it was sent, as some error answers do.
    vendor.default_reply(Reply::status(401).body(&format!(r#"{{"error":"invalid key {VALUE}"}}"#)));
    let (host, admin) = start_leaky(dir.path(), &vendor, &other, "/steal").await;
    let letters = admin.dead_letters("leaky").await;

    // The vendor, one of the secret's hosts, got the value where the guest put its token.
    let got = vendor.received();
    assert_eq!(got.len(), 1, "one request to the vendor");
    assert_eq!(
        got[0].headers["authorization"],
        format!("Bearer {VALUE}").as_str()
    );
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["key"], VALUE);
    // A placeholder in the guest's own output is just text.
    assert_eq!(body["guess"], "${secret:k}");

    // Another allowed host never saw a request: carrying the secret, it was denied.
    assert!(
        other.received().is_empty(),
        "nothing reached the other host"
    );

    // What the guest could see and say: the token, never the value.
    let reason = letters[0]["reason"].as_str().unwrap().to_string();
    assert!(reason.contains("seen sy-secret-k-"), "{reason}");
    assert!(
        reason.contains("denied: secret `k` may not be sent to http://127.0.0.1"),
        "{reason}"
    );
    assert!(
        reason.contains("echo: {\"error\":\"invalid key sy-secret-k-"),
        "{reason}"
    );
    assert!(!reason.contains(VALUE), "{reason}");
    let attempts = admin
        .get("/admin/destinations/leaky/attempts?failed=true")
        .await;
    let text = attempts.to_string();
    assert!(
        text.contains("sy-secret-k-"),
        "the debugger shows the requests: {text}"
    );
    assert!(!text.contains(VALUE), "{text}");
    let logged = switchyard_e2e::logs::lines_with(&["leak: the secret is"]);
    assert!(!logged.is_empty());
    assert!(logged.iter().all(|l| !l.contains(VALUE)), "{logged:?}");
    assert!(switchyard_e2e::logs::lines_with(&[VALUE]).is_empty());
    host.stop().await;
}

#[tokio::test]
async fn a_secret_signs_and_authorizes_without_the_guest_holding_it() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let config = format!(
        r#"
[[destinations]]
name = "signed"
plugin = "webhook"
allowed_hosts = ["{origin}"]
secrets = {{ hook = {{ from = "file:{file}", hosts = ["{origin}"] }} }}
settings = {{ url = "{url}", secret = "${{secret:hook}}", headers = {{ authorization = "Bearer ${{secret:hook}}" }} }}
"#,
        origin = rx.origin(),
        url = rx.url("/hook"),
        file = secret_file(dir.path()),
    );
    let host = TestHost::start(dir.path(), &config).await;
    assert_eq!(host.send("batch", &sdk_batch("s", 3)).await.status(), 200);
    switchyard_e2e::all_arrive(&rx, &switchyard_e2e::ids("s", 3)).await;
    let got = rx.received();
    let req = &got[0];
    assert_eq!(
        req.headers["authorization"],
        format!("Bearer {VALUE}").as_str()
    );
    // The host computed the HMAC with the value, as the receiver checks it.
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(VALUE.as_bytes()).unwrap();
    mac.update(&req.body);
    let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(req.headers["x-switchyard-signature"], want.as_str());
    host.stop().await;
}

#[tokio::test]
async fn a_placeholder_without_its_secret_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = r#"
[[destinations]]
name = "signed"
plugin = "webhook"
allowed_hosts = ["http://127.0.0.1:9"]
settings = { url = "http://127.0.0.1:9/hook", secret = "${secret:hook}" }
"#;
    let err = TestHost::try_start(dir.path(), config)
        .await
        .err()
        .expect("refused");
    let text = format!("{err:#}");
    assert!(
        text.contains("destinations[0].settings.secret")
            && text.contains("`${secret:hook}` names no secret"),
        "{text}"
    );
}

#[tokio::test]
async fn a_redirect_cannot_carry_a_secret_to_another_host() {
    let dir = tempfile::tempdir().unwrap();
    let vendor = Receiver::start().await;
    let other = Receiver::start().await;
    // The secret's own host sends the request on to another allowed host.
    vendor.default_reply(Reply::status(307).header("location", &other.url("/steal")));
    let (host, admin) = start_leaky(dir.path(), &vendor, &other, "/direct").await;
    assert_eq!(vendor.received().len(), 1, "the first hop went out");
    assert!(
        other.received().is_empty(),
        "neither the direct request nor the redirect reached the other host"
    );
    let letters = admin.dead_letters("leaky").await;
    let reason = letters[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("a redirect to http://127.0.0.1 would carry a secret"),
        "{reason}"
    );
    assert!(!reason.contains(VALUE), "{reason}");
    host.stop().await;
}

#[tokio::test]
async fn a_reload_reads_a_changed_secret_file_and_sends_the_new_value() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let file = dir.path().join("rotating.secret");
    std::fs::write(&file, "first-value-1234").unwrap();
    let config = format!(
        r#"
[[destinations]]
name = "rotating"
plugin = "webhook"
allowed_hosts = ["{origin}"]
secrets = {{ hook = {{ from = "file:{file}", hosts = ["{origin}"] }} }}
settings = {{ url = "{url}", headers = {{ authorization = "Bearer ${{secret:hook}}" }} }}
"#,
        origin = rx.origin(),
        url = rx.url("/hook"),
        file = file.display(),
    );
    let host = TestHost::start(dir.path(), &config).await;
    assert_eq!(
        host.send("batch", &sdk_batch("before", 1)).await.status(),
        200
    );
    switchyard_e2e::all_arrive(&rx, &switchyard_e2e::ids("before", 1)).await;

    // The same config file, a rotated secret: the destination changes.
    std::fs::write(&file, "second-value-5678").unwrap();
    let (status, body) = host.reload(&config).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["changed"], serde_json::json!(["rotating"]), "{body}");
    assert_eq!(
        host.send("batch", &sdk_batch("after", 1)).await.status(),
        200
    );
    switchyard_e2e::all_arrive(&rx, &switchyard_e2e::ids("after", 1)).await;
    let last = rx.received().pop().unwrap();
    assert_eq!(last.headers["authorization"], "Bearer second-value-5678");
    // Unchanged again: nothing restarts.
    let (_, body) = host.reload(&config).await;
    assert_eq!(body["unchanged"], serde_json::json!(["rotating"]), "{body}");
    host.stop().await;
}
