//! The sandbox: a misbehaving destination (tests/guests/misbehave) never takes
//! the host or another destination down; each violation has its outcome, its
//! tagged log line and its counter.

use std::time::Duration;

use serde_json::Value;
use switchyard_e2e::logs::lines_with;
use switchyard_e2e::{eventually, sdk_batch, Receiver, Reply, TestHost};

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

fn offender(name: &str, settings: &str, allowed: &str) -> String {
    format!(
        r#"
[[destinations]]
name = "{name}"
plugin = "misbehave"
allowed_hosts = [{allowed}]
settings = {settings}
retry = {{ initial_ms = 50, max_ms = 200, window = "1m" }}
limits = {{ memory_mb = 16, timeout_ms = 500 }}
"#
    )
}

/// Run `offender` beside a healthy webhook, send 20 events, and check that the
/// host still serves and the healthy destination got everything. Returns the
/// offender's admin row once `done` holds for it, and the dead letters' reasons.
async fn beside_a_healthy_destination(
    offender: &str,
    name: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
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
            .find(|r| r["name"] == name)
            .unwrap()
            .clone();
        if done(&row) {
            break row;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{name} never reached the expected state: {row}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let health = host.http.get(host.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200, "the host still serves");
    host.stop().await;
    row
}

fn tagged(name: &str, text: &str) -> bool {
    !lines_with(&[&format!("destination=\"{name}\""), text]).is_empty()
}

#[tokio::test]
async fn a_trapping_guest_is_retried_and_counted() {
    let name = "off-trap";
    let row =
        beside_a_healthy_destination(&offender(name, r#"{ mode = "trap" }"#, ""), name, |r| {
            r["violations"]["traps"].as_u64() >= Some(2)
        })
        .await;
    assert_eq!(row["delivered"], 0);
    assert!(row["retried"].as_u64() >= Some(20), "{row}");
    assert!(tagged(name, "guest trapped"), "log line");
    assert!(
        tagged(name, "deliberate trap"),
        "the guest's panic message reaches the log through stderr"
    );
}

#[tokio::test]
async fn a_guest_that_loops_forever_is_stopped_at_its_deadline() {
    let name = "off-loop";
    let row =
        beside_a_healthy_destination(&offender(name, r#"{ mode = "loop" }"#, ""), name, |r| {
            r["violations"]["timeouts"].as_u64() >= Some(2)
        })
        .await;
    assert_eq!(row["delivered"], 0);
    assert!(tagged(name, "exceeded its deadline"));
}

#[tokio::test]
async fn a_memory_bomb_hits_the_memory_cap() {
    let name = "off-memory";
    let row =
        beside_a_healthy_destination(&offender(name, r#"{ mode = "memory" }"#, ""), name, |r| {
            r["violations"]["traps"].as_u64() >= Some(2)
        })
        .await;
    assert_eq!(row["delivered"], 0);
    assert!(tagged(name, "linear memory cap of 16 MiB exceeded"));
    let peak = row["memory_peak_bytes"].as_u64().unwrap();
    assert!(
        peak > 1 << 20 && peak <= 16 << 20,
        "peak within the cap: {peak}"
    );
}

#[tokio::test]
async fn deep_recursion_overflows_the_guest_stack_not_the_host() {
    let name = "off-recursion";
    let row = beside_a_healthy_destination(
        &offender(name, r#"{ mode = "recursion" }"#, ""),
        name,
        |r| r["violations"]["traps"].as_u64() >= Some(2),
    )
    .await;
    assert_eq!(row["delivered"], 0);
    assert!(tagged(name, "guest trapped"));
}

#[tokio::test]
async fn a_log_flood_is_capped_and_the_batch_still_delivers() {
    let name = "off-logflood";
    let row = beside_a_healthy_destination(
        &offender(name, r#"{ mode = "log-flood" }"#, ""),
        name,
        |r| r["delivered"] == 20,
    )
    .await;
    assert!(
        row["violations"]["log_lines_dropped"].as_u64() > Some(0),
        "{row}"
    );
    assert!(tagged(name, "guest log capped"));
    let kept = lines_with(&[&format!("destination=\"{name}\""), "flood line"]).len();
    assert!(
        kept <= 20 * switchyard::imports::log::MAX_LINES_PER_CALL as usize,
        "{kept} lines kept"
    );
}

#[tokio::test]
async fn a_stdout_flood_is_capped_and_the_batch_still_delivers() {
    let name = "off-stdout";
    let row = beside_a_healthy_destination(
        &offender(name, r#"{ mode = "stdout-flood" }"#, ""),
        name,
        |r| r["delivered"] == 20,
    )
    .await;
    assert_eq!(row["violations"]["traps"], 0);
    assert!(tagged(name, "[stdout] stdout flood line 0"));
}

async fn denied(name: &str, url: &str, allowed: &str) -> Value {
    let settings = format!(r#"{{ mode = "fetch", url = "{url}" }}"#);
    let row = beside_a_healthy_destination(&offender(name, &settings, allowed), name, |r| {
        r["dead_letters"] == 20
    })
    .await;
    assert_eq!(row["delivered"], 0);
    assert!(
        row["violations"]["egress_denied"].as_u64() >= Some(1),
        "{row}"
    );
    assert!(tagged(name, "egress denied"), "a log line for the denial");
    row
}

#[tokio::test]
async fn egress_to_a_host_outside_the_allowlist_is_denied() {
    let outside = Receiver::start().await;
    denied(
        "off-outside",
        &outside.url("/steal"),
        "\"https://api.example.com\"",
    )
    .await;
    assert!(
        outside.received().is_empty(),
        "nothing reached the host outside the allowlist"
    );
}

#[tokio::test]
async fn egress_to_a_loopback_port_not_allowed_is_denied() {
    let allowed = Receiver::start().await;
    let other = Receiver::start().await;
    denied(
        "off-port",
        &other.url("/x"),
        &format!("\"{}\"", allowed.origin()),
    )
    .await;
    assert!(other.received().is_empty());
}

#[tokio::test]
async fn egress_to_the_metadata_service_is_denied() {
    denied(
        "off-metadata",
        "http://169.254.169.254/latest/meta-data/",
        "\"http://*.amazonaws.com\"",
    )
    .await;
}

#[tokio::test]
async fn a_redirect_outside_the_allowlist_is_denied() {
    let outside = Receiver::start().await;
    let redirector = Receiver::start().await;
    redirector.default_reply(Reply::status(302).header("location", &outside.url("/stolen")));
    denied(
        "off-redirect",
        &redirector.url("/go"),
        &format!("\"{}\"", redirector.origin()),
    )
    .await;
    assert!(
        !redirector.received().is_empty(),
        "the allowed host was called"
    );
    assert!(outside.received().is_empty(), "the redirect target was not");
}

#[tokio::test]
async fn a_slow_response_is_cut_off_and_retried() {
    let slow = Receiver::start().await;
    slow.default_reply(Reply::status(200).delayed(Duration::from_secs(5)));
    let name = "off-slow";
    let settings = format!(r#"{{ mode = "fetch", url = "{}" }}"#, slow.url("/slow"));
    let row = beside_a_healthy_destination(
        &offender(name, &settings, &format!("\"{}\"", slow.origin())),
        name,
        |r| r["retried"].as_u64() >= Some(20),
    )
    .await;
    assert_eq!(row["delivered"], 0);
}

#[tokio::test]
async fn a_huge_response_is_refused_by_the_size_cap() {
    let huge = Receiver::start().await;
    huge.default_reply(Reply::status(200).body(&"x".repeat(2 << 20)));
    let name = "off-huge";
    let settings = format!(r#"{{ mode = "fetch", url = "{}" }}"#, huge.url("/huge"));
    let row = beside_a_healthy_destination(
        &offender(name, &settings, &format!("\"{}\"", huge.origin())),
        name,
        |r| r["retried"].as_u64() >= Some(20),
    )
    .await;
    assert_eq!(row["delivered"], 0);
    assert!(tagged(name, "TooLarge"), "the guest saw too-large");
}

#[tokio::test]
async fn a_wrong_number_of_outcomes_is_a_contract_violation() {
    let name = "off-count";
    let row = beside_a_healthy_destination(
        &offender(name, r#"{ mode = "wrong-count" }"#, ""),
        name,
        |r| r["violations"]["contract"].as_u64() >= Some(2),
    )
    .await;
    assert_eq!(
        row["delivered"], 0,
        "a wrong-length outcome list delivers nothing"
    );
    assert!(tagged(name, "broke the contract"));
}

#[tokio::test]
async fn a_huge_outcome_reason_is_clipped() {
    let name = "off-reason";
    let dir_row = beside_a_healthy_destination(
        &offender(name, r#"{ mode = "huge-reason" }"#, ""),
        name,
        |r| r["dead_letters"] == 20,
    )
    .await;
    assert_eq!(dir_row["delivered"], 0);
    let line = lines_with(&[&format!("destination=\"{name}\""), "dead-lettered"]);
    assert!(!line.is_empty());
    assert!(
        line.iter().all(|l| l.len() < 2_000),
        "reasons are clipped to 1000 characters"
    );
}

#[tokio::test]
async fn settings_a_plugin_refuses_stop_the_start_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let err = match TestHost::try_start(
        dir.path(),
        &offender("off-refuse", r#"{ mode = "refuse" }"#, ""),
    )
    .await
    {
        Ok(_) => panic!("started with refused settings"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("off-refuse") && err.contains("refused"),
        "{err}"
    );
}

#[tokio::test]
async fn repeated_violations_degrade_then_pause_the_destination() {
    let name = "off-health";
    let row =
        beside_a_healthy_destination(&offender(name, r#"{ mode = "trap" }"#, ""), name, |r| {
            r["health"] == "paused"
        })
        .await;
    assert!(
        row["health_reason"].as_str().unwrap().contains("trapped"),
        "{row}"
    );
}
