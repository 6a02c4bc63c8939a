//! The sandbox: a misbehaving destination never takes the host or another
//! destination down.

use std::time::Duration;

use serde_json::Value;
use switchyard_e2e::{eventually, sdk_batch, Receiver, TestHost};

fn healthy(rx: &Receiver) -> String {
    format!(
        r#"
[[destinations]]
name = "healthy"
plugin = "webhook"
allowed_hosts = ["{origin}"]
settings = {{ url = "{url}" }}
retry = {{ initial_ms = 20, max_ms = 100, window = "1m" }}
"#,
        origin = rx.origin(),
        url = rx.url("/ok"),
    )
}

fn offender(settings: &str, allowed: &str) -> String {
    format!(
        r#"
[[destinations]]
name = "offender"
plugin = "misbehave"
allowed_hosts = [{allowed}]
settings = {settings}
retry = {{ initial_ms = 50, max_ms = 200, window = "1m" }}
limits = {{ memory_mb = 16, timeout_ms = 500 }}
"#
    )
}

/// Start a healthy webhook beside `offender`, send 20 events, and check the host
/// still serves and the healthy destination got everything. Returns the
/// offender's admin row once `done` holds for it.
async fn beside_a_healthy_destination(offender: &str, done: impl Fn(&Value) -> bool) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let host = TestHost::start(dir.path(), &format!("{}{offender}", healthy(&rx))).await;
    assert_eq!(host.send("batch", &sdk_batch("s", 20)).await.status(), 200);
    let want: Vec<String> = (0..20).map(|i| format!("s-{i}")).collect();
    eventually(
        Duration::from_secs(20),
        "the healthy destination's events",
        || {
            let got = rx.delivered_ids();
            want.iter().all(|id| got.contains(id)).then_some(())
        },
    )
    .await;
    let start = std::time::Instant::now();
    let row = loop {
        let d = host.destinations().await;
        let row = d
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "offender")
            .unwrap()
            .clone();
        if done(&row) {
            break row;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "offender never reached the expected state: {row}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let health = host.http.get(host.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200, "the host still serves");
    host.stop().await;
    row
}

#[tokio::test]
async fn a_trapping_guest_is_retried_and_the_host_carries_on() {
    let row = beside_a_healthy_destination(&offender(r#"{ mode = "trap" }"#, ""), |r| {
        r["retried"].as_u64() >= Some(20)
    })
    .await;
    assert_eq!(row["delivered"], 0);
}

#[tokio::test]
async fn a_guest_that_loops_forever_is_stopped_at_its_deadline() {
    let row = beside_a_healthy_destination(&offender(r#"{ mode = "loop" }"#, ""), |r| {
        r["retried"].as_u64() >= Some(20)
    })
    .await;
    assert_eq!(row["delivered"], 0);
}

#[tokio::test]
async fn a_memory_bomb_hits_the_memory_cap() {
    let row = beside_a_healthy_destination(&offender(r#"{ mode = "memory" }"#, ""), |r| {
        r["retried"].as_u64() >= Some(20)
    })
    .await;
    assert_eq!(row["delivered"], 0);
}

#[tokio::test]
async fn egress_outside_the_allowlist_is_denied() {
    // The receiver of the healthy destination is on loopback, but not in the offender's allowlist.
    let rx = Receiver::start().await;
    let settings = format!(r#"{{ mode = "fetch", url = "{}" }}"#, rx.url("/steal"));
    let row = beside_a_healthy_destination(&offender(&settings, "\"http://127.0.0.1:1\""), |r| {
        r["dead_letters"] == 20
    })
    .await;
    assert_eq!(row["delivered"], 0);
    assert!(
        rx.received().is_empty(),
        "nothing reached the host outside the allowlist"
    );
}

#[tokio::test]
async fn a_guest_returning_the_wrong_number_of_outcomes_is_not_trusted() {
    let row = beside_a_healthy_destination(&offender(r#"{ mode = "wrong-count" }"#, ""), |r| {
        r["retried"].as_u64() >= Some(20)
    })
    .await;
    assert_eq!(
        row["delivered"], 0,
        "a wrong-length outcome list delivers nothing"
    );
}

#[tokio::test]
async fn settings_a_plugin_refuses_stop_the_start_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let err = match TestHost::try_start(dir.path(), &offender(r#"{ mode = "refuse" }"#, "")).await {
        Ok(_) => panic!("started with refused settings"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("offender") && err.contains("refused"), "{err}");
}
