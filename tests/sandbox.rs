//! The sandbox: a misbehaving destination (tests/guests/misbehave) never takes
//! the host or another destination down; each violation has its outcome, its
//! tagged log line and its counter.

use std::time::Duration;

use serde_json::Value;
use switchyard_e2e::admin::Row;
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

/// A destination of the misbehave guest's `warm` mode posting to `rx` at
/// `/name`, one event per batch and one batch at a time, so that each batch
/// meets the instance the one before it left.
fn warm(name: &str, rx: &Receiver, settings: &str, more: &str) -> String {
    format!(
        r#"
[[destinations]]
name = "{name}"
plugin = "misbehave"
allowed_hosts = ["{origin}"]
settings = {{ mode = "warm", url = "{url}"{settings} }}
concurrency = 1
batch = {{ max_events = 1, max_bytes = 512000, linger_ms = 0 }}
retry = {{ initial_ms = 20, max_ms = 100, window = "1m" }}
limits = {{ memory_mb = 16, timeout_ms = 2000 }}
{more}
"#,
        origin = rx.origin(),
        url = rx.url(&format!("/{name}")),
    )
}

/// What the `warm` mode posted to `/name`, in order of arrival.
fn posts(rx: &Receiver, name: &str) -> Vec<(Value, String)> {
    let mut got: Vec<_> = rx
        .received()
        .into_iter()
        .filter(|r| r.uri == format!("/{name}"))
        .collect();
    got.sort_by_key(|r| r.at);
    got.into_iter()
        .map(|r| {
            let auth = r
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            (serde_json::from_slice(&r.body).unwrap(), auth)
        })
        .collect()
}

/// The batch counter of each of `name`'s posts, in order.
fn calls(rx: &Receiver, name: &str) -> Vec<u64> {
    posts(rx, name)
        .iter()
        .map(|(b, _)| b["calls"].as_u64().unwrap())
        .collect()
}

/// Send `n` tracks of user `user`, with `properties`, one request.
async fn tracks(host: &TestHost, user: &str, n: usize, properties: Value) {
    let batch: Vec<Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "type": "track", "event": "E", "userId": user,
                "messageId": format!("{user}-{i}"), "properties": properties,
            })
        })
        .collect();
    let sent = host
        .send("batch", &serde_json::json!({ "batch": batch }))
        .await;
    assert_eq!(sent.status(), 200);
}

#[tokio::test]
async fn a_warm_instance_keeps_its_own_state_and_never_another_destinations() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let config = format!(
        "{}{}",
        warm("warm-a", &rx, r#", tag = "a""#, ""),
        warm("warm-b", &rx, r#", tag = "b""#, "")
    );
    let host = TestHost::start(dir.path(), &config).await;
    tracks(&host, "u", 8, Value::Null).await;
    eventually(Duration::from_secs(20), "8 batches each", || {
        (posts(&rx, "warm-a").len() >= 8 && posts(&rx, "warm-b").len() >= 8).then_some(())
    })
    .await;
    for (name, tag) in [("warm-a", "a"), ("warm-b", "b")] {
        let got = posts(&rx, name);
        for (body, _) in &got {
            assert_eq!(body["tag"], tag, "{body}");
            assert_eq!(
                body["first_tag"], tag,
                "an instance only ever served {name}: {body}"
            );
        }
        let calls: Vec<u64> = got
            .iter()
            .map(|(b, _)| b["calls"].as_u64().unwrap())
            .collect();
        assert!(
            calls.iter().any(|&c| c > 1),
            "{name}'s batches met the instance the batch before left: {calls:?}"
        );
    }
    host.stop().await;
}

#[tokio::test]
async fn a_trap_discards_the_warm_instance_and_the_next_batch_gets_a_clean_one() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let host = TestHost::start(dir.path(), &warm("warm-trap", &rx, "", "")).await;
    tracks(&host, "ok", 3, Value::Null).await;
    eventually(Duration::from_secs(20), "3 batches", || {
        (posts(&rx, "warm-trap").len() >= 3).then_some(())
    })
    .await;
    tracks(&host, "boom", 1, serde_json::json!({ "trap": true })).await;
    eventually(Duration::from_secs(20), "the trapping batch, twice", || {
        (posts(&rx, "warm-trap").len() >= 5).then_some(())
    })
    .await;
    assert_eq!(
        &calls(&rx, "warm-trap")[..5],
        &[1, 2, 3, 4, 1],
        "the trap's instance served its 4th batch, and its retry got a fresh one"
    );
    host.admin()
        .wait(
            Row::Destination("warm-trap"),
            "two traps counted",
            Duration::from_secs(20),
            |row| row["violations"]["traps"].as_u64() >= Some(2),
        )
        .await;
    host.stop().await;
}

#[tokio::test]
async fn a_guest_that_leaks_is_recycled_before_its_memory_cap_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    // 1 MiB more per batch against a cap of 16 MiB: 30 batches would need 30.
    let host = TestHost::start(dir.path(), &warm("warm-leak", &rx, ", leak_kb = 1024", "")).await;
    tracks(&host, "u", 30, Value::Null).await;
    eventually(Duration::from_secs(30), "30 batches", || {
        (posts(&rx, "warm-leak").len() >= 30).then_some(())
    })
    .await;
    let calls = calls(&rx, "warm-leak");
    // Kept while it grew (about 1 MiB of its own, then 1 MiB a batch), and
    // replaced once past three quarters of the cap, again and again.
    assert!(
        calls.iter().any(|&c| c >= 8)
            && calls.iter().all(|&c| c < 16)
            && calls.iter().filter(|&&c| c == 1).count() >= 2,
        "kept, then replaced before the cap, and again: {calls:?}"
    );
    eprintln!("warm-leak calls: {calls:?}");
    let row = host.admin().destination("warm-leak").await;
    assert_eq!(row["delivered"], 30, "{row}");
    assert_eq!(
        row["violations"]["traps"], 0,
        "never trapped on the cap: {row}"
    );
    assert_eq!(row["dead_letters"], 0, "{row}");
    host.stop().await;
}

#[tokio::test]
async fn a_secret_token_kept_from_an_earlier_batch_is_useless() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let value = "warm-secret-value-0123456789";
    let file = dir.path().join("k.txt");
    std::fs::write(&file, value).unwrap();
    let secrets = format!(
        r#"secrets = {{ k = {{ from = "file:{}", hosts = ["{}"] }} }}"#,
        file.display(),
        rx.origin()
    );
    let config = warm("warm-token", &rx, r#", secret = "${secret:k}""#, &secrets);
    let host = TestHost::start(dir.path(), &config).await;
    tracks(&host, "u", 3, Value::Null).await;
    eventually(Duration::from_secs(20), "3 batches", || {
        (posts(&rx, "warm-token").len() >= 3).then_some(())
    })
    .await;
    let got = posts(&rx, "warm-token");
    assert_eq!(got[0].0["calls"], 1);
    assert_eq!(
        got[0].1,
        format!("Bearer {value}"),
        "the first call's own token works"
    );
    for (body, auth) in &got[1..] {
        assert!(
            body["calls"].as_u64() > Some(1),
            "the same instance: {body}"
        );
        assert!(
            !auth.contains(value) && auth.starts_with("Bearer sy-secret-k-"),
            "a token of an earlier call resolves to nothing: {auth}"
        );
    }
    host.stop().await;
}

/// The pool holds as many instances of a Python component (componentize-py
/// makes 14 core instances of each) as it has slots: four kept warm at once in
/// a pool of four, none of them given up for lack of core instances.
#[tokio::test]
async fn a_pool_holds_as_many_python_instances_as_it_has_slots() {
    use switchyard::runtime::{CallContext, Event, Runtime};
    let root = switchyard_e2e::workspace_root();
    let bytes = std::fs::read(root.join("target/destinations/amplitude.wasm")).unwrap();
    let settings =
        std::fs::read_to_string(root.join("destinations/amplitude/sample-settings.json")).unwrap();
    // The suites' shared compiled cache: compiled once, loaded in milliseconds after.
    let runtime = Runtime::new(Some(root.join("target/test-compiled-cache")), 4).unwrap();
    let plugin = runtime.load("amplitude", &bytes).await.unwrap();
    let event = Event {
        message_id: "m1".into(),
        event_type: switchyard::runtime::bindings::switchyard::destination::types::EventType::Track,
        json: r#"{"type":"track","event":"E","userId":"u","messageId":"m1","properties":{}}"#
            .into(),
    };
    for i in 0..4 {
        let ctx = CallContext::dry_run(&format!("py-{i}"), Default::default());
        let outcomes = plugin
            .deliver(&ctx, &settings, std::slice::from_ref(&event))
            .await;
        assert!(outcomes.is_ok(), "{i}: {outcomes:?}");
        assert_eq!(runtime.warm_instances(), i + 1, "all kept so far");
    }
}
