//! Delivery end to end: retries, dead letters, routing, and restarts.

use std::time::Duration;

use serde_json::{json, Value};
use switchyard_e2e::{
    all_arrive, eventually, ids, sdk_batch, webhook_destination as webhook, Receiver, Reply,
    TestHost,
};

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

    // The reason is kept with each dead letter.
    let dead = host.admin().dead_letters("hooks").await;
    assert_eq!(dead.len(), 5);
    for d in dead {
        let reason = d["reason"].as_str().unwrap();
        assert!(
            reason.contains("400") && reason.contains("bad payload"),
            "{reason}"
        );
        assert_eq!(d["attempts"], 1);
    }
    host.stop().await;
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
    // Receipt comes before the settle: the queue empties right after.
    let start = std::time::Instant::now();
    loop {
        let d: Value = host.destinations().await;
        if d[0]["queued"] == 0 && d[0]["in_flight"] == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the queue never emptied: {d}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    host.stop().await;
}

#[tokio::test]
async fn one_hanging_destination_does_not_hold_up_the_other_three() {
    let dir = tempfile::tempdir().unwrap();
    let hang = Receiver::start().await;
    hang.default_reply(Reply::status(200).delayed(Duration::from_secs(20)));
    let others = [
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    ];
    let mut dests = webhook(
        "hang",
        &hang,
        "limits = { memory_mb = 64, timeout_ms = 30000 }",
    );
    for (i, rx) in others.iter().enumerate() {
        dests.push_str(&webhook(&format!("ok{i}"), rx, ""));
    }
    let host = TestHost::start(dir.path(), &dests).await;
    for i in 0..4 {
        assert_eq!(
            host.send("batch", &sdk_batch(&format!("h{i}"), 25))
                .await
                .status(),
            200
        );
    }
    let want: Vec<String> = (0..4).flat_map(|i| ids(&format!("h{i}"), 25)).collect();
    for rx in &others {
        all_arrive(rx, &want).await;
    }
    assert!(
        hang.received().is_empty(),
        "the hanging receiver has not answered anything yet"
    );
    // Meanwhile the hanging destination holds its batch in flight.
    let start = std::time::Instant::now();
    loop {
        let d = host.destinations().await;
        let row = d
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "hang")
            .unwrap()
            .clone();
        if row["in_flight"].as_u64().unwrap() > 0 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{row}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(hang.received().is_empty());
}

#[tokio::test]
async fn per_user_ordering_holds_a_user_behind_its_retry_and_lets_others_flow() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    // The first request is throttled for a second.
    rx.script(vec![Reply::status(429).header("retry-after", "1")]);
    let extra =
        "ordering = \"user\"\nbatch = { max_events = 1, max_bytes = 512000, linger_ms = 0 }";
    let host = TestHost::start(dir.path(), &webhook("ordered", &rx, extra)).await;
    let ev = |id: &str, user: &str| json!({"type": "track", "userId": user, "event": "E", "messageId": id});
    let batch = json!({"batch": [ev("a1", "A"), ev("a2", "A"), ev("a3", "A"), ev("b1", "B"), ev("b2", "B")]});
    assert_eq!(host.send("batch", &batch).await.status(), 200);
    let want: Vec<String> = ["a1", "a2", "a3", "b1", "b2"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    all_arrive(&rx, &want).await;

    let delivered = rx.delivered_ids();
    let pos = |id: &str| delivered.iter().position(|d| d == id).unwrap();
    assert!(
        pos("a1") < pos("a2") && pos("a2") < pos("a3"),
        "A in order: {delivered:?}"
    );
    assert!(pos("b1") < pos("b2"), "B in order: {delivered:?}");
    // The throttled first request held its user's first event for a second; the
    // other user's events went meanwhile. (The embedded store takes A's first; on
    // NATS whichever partition answered first.)
    let throttled = switchyard_e2e::receiver::ids_in(&rx.received()[0].body);
    let (held, other) = if throttled.contains(&"a1".to_string()) {
        ("a1", ["b1", "b2"])
    } else {
        assert_eq!(
            throttled,
            ["b1"],
            "the first request is one user's first event"
        );
        ("b1", ["a1", "a2"])
    };
    for id in other {
        assert!(
            pos(id) < pos(held),
            "{id} not held behind {held}: {delivered:?}"
        );
    }
    assert_eq!(delivered.len(), 5, "each once: {delivered:?}");
    host.stop().await;
}

#[tokio::test]
async fn the_rate_limit_spaces_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let extra = "rate = { per_second = 20, burst = 5 }\nbatch = { max_events = 100, max_bytes = 512000, linger_ms = 0 }";
    let host = TestHost::start(dir.path(), &webhook("limited", &rx, extra)).await;
    let start = std::time::Instant::now();
    assert_eq!(host.send("batch", &sdk_batch("rl", 30)).await.status(), 200);
    all_arrive(&rx, &ids("rl", 30)).await;
    // 5 go at once, the other 25 at 20/s: at least 1.25 s.
    assert!(
        start.elapsed() >= Duration::from_millis(1_200),
        "{:?}",
        start.elapsed()
    );
    assert!(
        rx.received()
            .iter()
            .all(|r| switchyard_e2e::receiver::ids_in(&r.body).len() <= 5),
        "batches capped by burst"
    );
    host.stop().await;
}

#[tokio::test]
async fn a_failing_destination_degrades_pauses_and_recovers_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    rx.default_reply(Reply::status(503));
    let host = TestHost::start(dir.path(), &webhook("flaky", &rx, "")).await;
    assert_eq!(host.send("batch", &sdk_batch("hp", 5)).await.status(), 200);
    let start = std::time::Instant::now();
    loop {
        let d = host.destinations().await;
        if d[0]["health"] == "paused" {
            assert!(
                d[0]["health_reason"].as_str().unwrap().contains("503"),
                "{d}"
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "never paused: {d}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rx.default_reply(Reply::status(200));
    all_arrive(&rx, &ids("hp", 5)).await;
    let start = std::time::Instant::now();
    loop {
        let d = host.destinations().await;
        if d[0]["health"] == "healthy" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "never recovered: {d}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    host.stop().await;
}

#[tokio::test]
async fn an_operator_can_pause_and_resume_a_destination() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let host = TestHost::start(dir.path(), &webhook("hooks", &rx, "")).await;
    let admin = host.admin();
    assert_eq!(
        host.http
            .post(host.url("/admin/destinations/hooks/pause"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        admin.post("/admin/destinations/nope/pause").await.status(),
        404
    );
    assert_eq!(
        admin.post("/admin/destinations/hooks/pause").await.status(),
        200
    );
    assert_eq!(host.send("batch", &sdk_batch("p", 5)).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        rx.received().is_empty(),
        "nothing goes out while paused: {:?}",
        rx.delivered_ids()
    );
    let d = host.destinations().await;
    assert_eq!(d[0]["health"], "paused");
    assert_eq!(d[0]["queued"], 5);

    // The pause outlives a restart (it is kept in the store).
    host.stop().await;
    let host = TestHost::start(dir.path(), &webhook("hooks", &rx, "")).await;
    let admin = host.admin();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        rx.received().is_empty(),
        "delivered after a restart while paused"
    );
    assert_eq!(host.destinations().await[0]["health"], "paused");

    assert_eq!(
        admin
            .post("/admin/destinations/hooks/resume")
            .await
            .status(),
        200
    );
    all_arrive(&rx, &ids("p", 5)).await;
    // And so does the resume.
    host.stop().await;
    let host = TestHost::start(dir.path(), &webhook("hooks", &rx, "")).await;
    assert_ne!(host.destinations().await[0]["health"], "paused");
    host.stop().await;
}
