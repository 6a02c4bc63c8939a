//! Delivery end to end: retries, dead letters, routing, and restarts.

use std::time::Duration;

use serde_json::{json, Value};
use switchyard_e2e::{eventually, sdk_batch, Receiver, Reply, TestHost};

fn webhook(name: &str, rx: &Receiver, extra: &str) -> String {
    format!(
        r#"
[[destinations]]
name = "{name}"
plugin = "webhook"
allowed_hosts = ["{origin}"]
settings = {{ url = "{url}", secret = "s3cret" }}
retry = {{ initial_ms = 20, max_ms = 200, window = "1m" }}
{extra}
"#,
        origin = rx.origin(),
        url = rx.url(&format!("/{name}")),
    )
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

async fn all_arrive(rx: &Receiver, want: &[String]) {
    eventually(
        Duration::from_secs(20),
        "every event at the receiver",
        || {
            let got = rx.delivered_ids();
            want.iter().all(|id| got.contains(id)).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn transient_failures_are_retried_until_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    rx.script(vec![
        Reply::status(500),
        Reply::status(503),
        Reply::status(429).header("retry-after", "1"),
        Reply::status(500),
    ]);
    let host = TestHost::start(dir.path(), &webhook("hooks", &rx, "")).await;
    assert_eq!(host.send("batch", &sdk_batch("r", 10)).await.status(), 200);
    all_arrive(&rx, &ids("r", 10)).await;

    let got = rx.received();
    let statuses: Vec<u16> = got.iter().map(|r| r.status).collect();
    assert_eq!(&statuses[..4], &[500, 503, 429, 500], "{statuses:?}");
    // Every event answered 429 waits at least Retry-After (1 s) before its next attempt.
    let throttled = switchyard_e2e::receiver::ids_in(&got[2].body);
    assert!(!throttled.is_empty());
    for id in &throttled {
        let next = got[3..]
            .iter()
            .find(|r| switchyard_e2e::receiver::ids_in(&r.body).contains(id))
            .unwrap_or_else(|| panic!("{id} never retried"));
        let waited = next.at.duration_since(got[2].at);
        assert!(
            waited >= Duration::from_millis(990),
            "Retry-After: 1 honoured for {id}: waited {waited:?}"
        );
    }
    let d = host.destinations().await;
    assert_eq!(d[0]["delivered"], 10);
    assert_eq!(d[0]["dead_letters"], 0);
    host.stop().await;
}

#[tokio::test]
async fn permanent_failures_are_dead_lettered_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    rx.default_reply(Reply::status(400).body("{\"error\":\"bad payload\"}"));
    let host = TestHost::start(dir.path(), &webhook("hooks", &rx, "")).await;
    assert_eq!(host.send("batch", &sdk_batch("dl", 5)).await.status(), 200);
    let start = std::time::Instant::now();
    let d = loop {
        let d = host.destinations().await;
        if d[0]["dead_letters"] == 5 {
            break d;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "never dead-lettered: {d}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(d[0]["queued"], 0);
    assert_eq!(rx.received().len(), 1, "a 400 is not retried");
    host.stop().await;

    // The reason is kept with each dead letter (read from the stopped host's store).
    let store = switchyard::store::embedded::EmbeddedStore::open(
        &dir.path().join("data"),
        Duration::from_secs(60),
    )
    .unwrap();
    use switchyard::store::Store;
    let dead = store.dead_letters("hooks", None, None).await.unwrap();
    assert_eq!(dead.len(), 5);
    for d in dead {
        assert!(
            d.reason.contains("400") && d.reason.contains("bad payload"),
            "{}",
            d.reason
        );
        assert_eq!(d.attempts, 1);
    }
}

#[tokio::test]
async fn a_retry_window_that_closes_sends_events_to_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    rx.default_reply(Reply::status(503));
    let extra = "";
    let dest = webhook("hooks", &rx, extra).replace("window = \"1m\"", "window = \"300ms\"");
    let host = TestHost::start(dir.path(), &dest).await;
    assert_eq!(host.send("batch", &sdk_batch("w", 3)).await.status(), 200);
    let start = std::time::Instant::now();
    loop {
        let d = host.destinations().await;
        if d[0]["dead_letters"] == 3 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "never dead-lettered: {d}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(rx.received().len() >= 2, "retried before giving up");
    host.stop().await;
}

#[tokio::test]
async fn filters_and_the_integrations_object_route_events() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let dests = format!(
        "{}{}",
        webhook("all", &rx, ""),
        webhook(
            "orders",
            &rx,
            "[destinations.filter]\ntypes = [\"track\"]\nevents = [\"Order Completed\"]"
        ),
    );
    let host = TestHost::start(dir.path(), &dests).await;
    let batch = json!({"batch": [
        {"type": "track", "userId": "u", "event": "Order Completed", "messageId": "order"},
        {"type": "track", "userId": "u", "event": "Viewed", "messageId": "viewed"},
        {"type": "identify", "userId": "u", "messageId": "identify"},
        {"type": "track", "userId": "u", "event": "Order Completed", "messageId": "only-orders",
         "integrations": {"All": false, "orders": true}},
        {"type": "track", "userId": "u", "event": "Viewed", "messageId": "nowhere",
         "integrations": {"all": false}}
    ]});
    assert_eq!(host.send("batch", &batch).await.status(), 200);
    eventually(Duration::from_secs(20), "routed events", || {
        (rx.delivered_ids().len() >= 5).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let by_path = |path: &str| -> Vec<String> {
        let mut v: Vec<String> = rx
            .received()
            .iter()
            .filter(|r| r.uri == path)
            .flat_map(|r| switchyard_e2e::receiver::ids_in(&r.body))
            .collect();
        v.sort();
        v
    };
    assert_eq!(by_path("/all"), ["identify", "order", "viewed"]);
    assert_eq!(by_path("/orders"), ["only-orders", "order"]);
    host.stop().await;
}

#[tokio::test]
async fn acknowledged_events_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    rx.default_reply(Reply::status(503));
    let dest = webhook("hooks", &rx, "").replace(
        "initial_ms = 20, max_ms = 200",
        "initial_ms = 100, max_ms = 200",
    );
    let host = TestHost::start(dir.path(), &dest).await;
    for i in 0..5 {
        assert_eq!(
            host.send("batch", &sdk_batch(&format!("restart{i}"), 20))
                .await
                .status(),
            200
        );
    }
    host.stop().await;
    assert!(rx.delivered_ids().is_empty());

    rx.default_reply(Reply::status(200));
    let host = TestHost::start(dir.path(), &dest).await;
    let want: Vec<String> = (0..5)
        .flat_map(|i| ids(&format!("restart{i}"), 20))
        .collect();
    all_arrive(&rx, &want).await;
    let d: Value = host.destinations().await;
    assert_eq!(d[0]["queued"], 0);
    host.stop().await;
}
