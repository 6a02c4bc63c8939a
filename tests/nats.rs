//! Switchyard on NATS JetStream (`[store] kind = "nats"`): the delivery
//! guarantees on a real `nats-server`, several hosts on one stream, and a server
//! that goes away.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use switchyard_e2e::admin::Row;
use switchyard_e2e::binary::{spawn, wait_healthy, write_config};
use switchyard_e2e::host::{config_text_nats, WRITE_KEY};
use switchyard_e2e::nats::{NatsCluster, NatsServer};
use switchyard_e2e::{
    all_arrive, eventually, ids, sdk_batch, webhook_destination as webhook, Receiver, Reply,
    TestHost,
};

#[tokio::test]
async fn retries_dead_letters_replay_and_dedup_on_nats() {
    let server = NatsServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let flaky = Receiver::start().await;
    flaky.script(vec![
        Reply::status(500),
        Reply::status(429).header("retry-after", "1"),
        Reply::status(503),
    ]);
    let broken = Receiver::start().await;
    broken.default_reply(Reply::status(400).body("bad payload"));
    let dests = format!(
        "{}{}",
        webhook("flaky", &flaky, ""),
        webhook("broken", &broken, "")
    );
    let host = TestHost::start_config(
        dir.path(),
        &config_text_nats(dir.path(), &dests, &server.url()),
    )
    .await;

    assert_eq!(host.send("batch", &sdk_batch("n", 10)).await.status(), 200);
    // The same batch again: JetStream's duplicate window drops it.
    assert_eq!(host.send("batch", &sdk_batch("n", 10)).await.status(), 200);
    all_arrive(&flaky, &ids("n", 10)).await;
    let got = flaky.received();
    let after_429 = got.iter().position(|r| r.status == 429).unwrap();
    assert!(
        got[after_429 + 1].at.duration_since(got[after_429].at) >= Duration::from_millis(990),
        "Retry-After honoured"
    );

    let start = std::time::Instant::now();
    while host.admin().destination("broken").await["dead_letters"] != 10 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{}",
            host.admin().destination("broken").await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dead = host.admin().dead_letters("broken").await;
    assert_eq!(dead.len(), 10);
    assert!(
        dead.iter()
            .all(|d| d["reason"].as_str().unwrap().contains("bad payload")),
        "{dead:?}"
    );
    broken.default_reply(Reply::status(200));
    assert_eq!(host.admin().replay("broken").await, 10);
    all_arrive(&broken, &ids("n", 10)).await;

    tokio::time::sleep(Duration::from_millis(500)).await;
    let delivered = flaky.delivered_ids();
    assert_eq!(delivered.len(), 10, "each event once: {delivered:?}");
    host.stop().await;
}

#[tokio::test]
async fn two_hosts_share_the_work_of_one_stream() {
    let server = NatsServer::start().await;
    let rx = Receiver::start().await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let dest = webhook(
        "shared",
        &rx,
        "batch = { max_events = 10, max_bytes = 512000, linger_ms = 0 }",
    );
    let a = TestHost::start_config(
        dir_a.path(),
        &config_text_nats(dir_a.path(), &dest, &server.url()),
    )
    .await;
    let b = TestHost::start_config(
        dir_b.path(),
        &config_text_nats(dir_b.path(), &dest, &server.url()),
    )
    .await;
    let mut want = Vec::new();
    for i in 0..20 {
        let host = if i % 2 == 0 { &a } else { &b };
        assert_eq!(
            host.send("batch", &sdk_batch(&format!("two{i}"), 10))
                .await
                .status(),
            200
        );
        want.extend(ids(&format!("two{i}"), 10));
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    all_arrive(&rx, &want).await;
    let (da, db) = (
        a.admin().destination("shared").await["delivered"]
            .as_u64()
            .unwrap(),
        b.admin().destination("shared").await["delivered"]
            .as_u64()
            .unwrap(),
    );
    assert!(da > 0 && db > 0, "both hosts delivered: {da} + {db}");
    assert!(da + db >= 200);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn kill_9_of_one_host_loses_nothing_the_other_delivers_it() {
    let server = NatsServer::start().await;
    let rx = Receiver::start().await;
    // Slow deliveries so that the victim dies holding jobs.
    rx.default_reply(Reply::status(200).delayed(Duration::from_millis(50)));
    let dest = webhook(
        "shared",
        &rx,
        "limits = { memory_mb = 64, timeout_ms = 2000 }",
    );
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (file_a, base_a) = write_config(
        dir_a.path(),
        &config_text_nats(dir_a.path(), &dest, &server.url()),
    );
    let (file_b, base_b) = write_config(
        dir_b.path(),
        &config_text_nats(dir_b.path(), &dest, &server.url()),
    );
    let mut victim = spawn(&file_a);
    let mut survivor = spawn(&file_b);
    wait_healthy(&base_a).await;
    wait_healthy(&base_b).await;

    let client = reqwest::Client::new();
    let mut acked = Vec::new();
    for i in 0..40 {
        if i == 20 {
            Command::new("kill")
                .args(["-9", &victim.id().to_string()])
                .status()
                .unwrap();
        }
        let base = if i % 2 == 0 { &base_a } else { &base_b };
        let r = client
            .post(format!("{base}/v1/batch"))
            .basic_auth(WRITE_KEY, Some(""))
            .json(&sdk_batch(&format!("k{i}"), 10))
            .send()
            .await;
        if r.is_ok_and(|r| r.status() == 200) {
            acked.extend(ids(&format!("k{i}"), 10));
        }
    }
    let _ = victim.wait();
    assert!(acked.len() >= 200);
    // The survivor delivers everything, including what the victim held (after ack_wait).
    eventually(
        Duration::from_secs(60),
        "every acknowledged event through the survivor",
        || {
            let got = rx.delivered_ids();
            acked.iter().all(|id| got.contains(id)).then_some(())
        },
    )
    .await;
    survivor.kill().unwrap();
    let _ = survivor.wait();
}

#[tokio::test]
async fn a_stopped_nats_server_gets_503_with_retry_after_and_delivery_resumes() {
    let mut server = NatsServer::start().await;
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let host = TestHost::start_config(
        dir.path(),
        &config_text_nats(dir.path(), &webhook("hooks", &rx, ""), &server.url()),
    )
    .await;
    assert_eq!(host.send("batch", &sdk_batch("up", 5)).await.status(), 200);
    all_arrive(&rx, &ids("up", 5)).await;

    server.stop();
    let resp = host
        .send(
            "track",
            &json!({"userId": "u", "event": "E", "messageId": "while-down"}),
        )
        .await;
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    assert_eq!(resp.json::<Value>().await.unwrap()["success"], false);
    // Not ready while the server is away, and /readyz says so.
    let ready = host.http.get(host.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["reasons"][0]["check"], "nats", "{ready}");
    let start = std::time::Instant::now();
    loop {
        let metrics = host.admin().request(reqwest::Method::GET, "/metrics");
        let text = metrics.send().await.unwrap().text().await.unwrap();
        if text.contains("switchyard_nats_connected 0") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the metrics never showed the disconnection:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    server.restart().await;
    let start = std::time::Instant::now();
    loop {
        let r = host.send("batch", &sdk_batch("back", 5)).await;
        if r.status() == 200 {
            break;
        }
        assert_eq!(r.status(), 503, "only 503 while the server comes back");
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "ingest never recovered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    all_arrive(&rx, &ids("back", 5)).await;
    let ready = host.http.get(host.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "{:?}", ready.text().await);
    host.stop().await;
}

#[tokio::test]
async fn per_user_order_holds_across_two_hosts() {
    let server = NatsServer::start().await;
    let rx = Receiver::start().await;
    // The first request is throttled for a second.
    rx.script(vec![Reply::status(429).header("retry-after", "1")]);
    let extra =
        "ordering = \"user\"\nbatch = { max_events = 1, max_bytes = 512000, linger_ms = 0 }";
    let dest = webhook("ordered", &rx, extra);
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = TestHost::start_config(
        dir_a.path(),
        &config_text_nats(dir_a.path(), &dest, &server.url()),
    )
    .await;
    let b = TestHost::start_config(
        dir_b.path(),
        &config_text_nats(dir_b.path(), &dest, &server.url()),
    )
    .await;
    // Two users in different partitions (users of one partition share its order).
    let user_a = "user-A".to_string();
    let user_b = (0..)
        .map(|i| format!("user-B{i}"))
        .find(|u| {
            switchyard::store::nats::partition(u) != switchyard::store::nats::partition(&user_a)
        })
        .unwrap();
    let ev = |id: &str, user: &str| json!({"type": "track", "userId": user, "event": "E", "messageId": id});
    // Both users' events go in through both hosts, in order.
    for (i, host) in [&a, &b, &a, &b].iter().enumerate() {
        let batch =
            json!({"batch": [ev(&format!("a{i}"), &user_a), ev(&format!("b{i}"), &user_b)]});
        assert_eq!(host.send("batch", &batch).await.status(), 200);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let want: Vec<String> = (0..4)
        .flat_map(|i| [format!("a{i}"), format!("b{i}")])
        .collect();
    all_arrive(&rx, &want).await;
    let delivered = rx.delivered_ids();
    let pos = |id: &str| delivered.iter().position(|d| d == id).unwrap();
    for i in 0..3 {
        assert!(
            pos(&format!("a{i}")) < pos(&format!("a{}", i + 1)),
            "user A in order: {delivered:?}"
        );
        assert!(
            pos(&format!("b{i}")) < pos(&format!("b{}", i + 1)),
            "user B in order: {delivered:?}"
        );
    }
    // The throttled event's user waited; the other user's events went meanwhile.
    let throttled = switchyard_e2e::receiver::ids_in(&rx.received()[0].body);
    let held = throttled[0].chars().next().unwrap();
    let other = if held == 'a' { 'b' } else { 'a' };
    assert!(
        pos(&format!("{other}1")) < pos(&throttled[0]),
        "{other} flowed while {held} waited: {delivered:?}"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_throttled_batch_keeps_its_lease_two_hosts_deliver_each_event_once() {
    // Each batch of 5 waits 2.5 s for its rate tokens after it is claimed, longer
    // than the 2 s lease: without renewal the server would hand it to the other host.
    let server = NatsServer::start().await;
    let rx = Receiver::start().await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let dest = webhook(
        "throttled",
        &rx,
        "rate = { per_second = 2, burst = 5 }\nconcurrency = 2\n\
         batch = { max_events = 5, max_bytes = 512000, linger_ms = 0 }",
    );
    let config = |dir: &std::path::Path| {
        config_text_nats(dir, &dest, &server.url()).replacen(
            "kind = \"nats\"\n",
            "kind = \"nats\"\nack_wait = \"2s\"\n",
            1,
        )
    };
    let a = TestHost::start_config(dir_a.path(), &config(dir_a.path())).await;
    let b = TestHost::start_config(dir_b.path(), &config(dir_b.path())).await;
    assert_eq!(a.send("batch", &sdk_batch("lease", 40)).await.status(), 200);
    let want = ids("lease", 40);
    eventually(
        Duration::from_secs(40),
        "all 40 events at the receiver",
        || {
            let got = rx.delivered_ids();
            want.iter().all(|id| got.contains(id)).then_some(())
        },
    )
    .await;
    // Wait out a lease more: a job handed to the other host would arrive by now.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut got = rx.delivered_ids();
    got.sort();
    let n = got.len();
    got.dedup();
    assert_eq!(n, got.len(), "no event delivered twice");
    assert_eq!(n, 40);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_pause_on_one_host_holds_every_host_and_the_rate_is_shared() {
    let server = NatsServer::start().await;
    let rx = Receiver::start().await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // 10 events/s in all, in batches of one.
    let dest = webhook(
        "shared",
        &rx,
        "rate = { per_second = 10, burst = 2 }\n\
         batch = { max_events = 1, max_bytes = 512000, linger_ms = 0 }",
    );
    let start = |dir: std::path::PathBuf| {
        let config = config_text_nats(&dir, &dest, &server.url());
        async move { TestHost::start_config(&dir, &config).await }
    };
    let a = start(dir_a.path().to_path_buf()).await;
    let b = start(dir_b.path().to_path_buf()).await;

    assert_eq!(
        a.admin()
            .post("/admin/destinations/shared/pause")
            .await
            .status(),
        200
    );
    // B follows within a poll (1 s).
    let asked = std::time::Instant::now();
    while b.admin().destination("shared").await["health"] != "paused" {
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "host B never paused"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(b.send("batch", &sdk_batch("held", 5)).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        rx.received().is_empty(),
        "delivered while paused on another host"
    );

    // Resumed on B: both deliver, sharing 10 events/s.
    assert_eq!(
        b.admin()
            .post("/admin/destinations/shared/resume")
            .await
            .status(),
        200
    );
    let started = std::time::Instant::now();
    for i in 0..5 {
        let host = if i % 2 == 0 { &a } else { &b };
        assert_eq!(
            host.send("batch", &sdk_batch(&format!("r{i}"), 5))
                .await
                .status(),
            200
        );
    }
    let mut want = ids("held", 5);
    for i in 0..5 {
        want.extend(ids(&format!("r{i}"), 5));
    }
    all_arrive(&rx, &want).await;
    let took = started.elapsed();
    // 30 events at 10/s with a burst of 2 in all: at least 2.5 s. Each host at
    // the full rate (20/s in all) would take about half of that.
    assert!(
        took >= Duration::from_millis(2500),
        "30 events in {took:?}: the hosts did not share the rate"
    );
    let (da, db) = (
        a.admin().destination("shared").await["delivered"]
            .as_u64()
            .unwrap(),
        b.admin().destination("shared").await["delivered"]
            .as_u64()
            .unwrap(),
    );
    assert!(da > 0 && db > 0, "both hosts delivered: {da} + {db}");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn with_three_replicas_a_server_killed_under_load_loses_no_acknowledged_event() {
    let mut cluster = NatsCluster::start().await;
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_text_nats(dir.path(), &webhook("hooks", &rx, ""), &cluster.url()).replacen(
        "[store]\n",
        "[store]\nreplicas = 3\n",
        1,
    );
    let host = TestHost::start_config(dir.path(), &config).await;
    let mut acked = Vec::new();
    let mut refused = 0;
    for i in 0..40 {
        if i == 15 {
            cluster.kill_9(0);
        }
        let prefix = format!("r3-{i}");
        let resp = host
            .http
            .post(host.url("/v1/batch"))
            .basic_auth(switchyard_e2e::host::WRITE_KEY, Some(""))
            .json(&sdk_batch(&prefix, 10))
            .send()
            .await
            .unwrap();
        if resp.status() == 200 {
            acked.extend(ids(&prefix, 10));
        } else {
            assert_eq!(resp.status(), 503);
            refused += 1;
        }
    }
    assert!(acked.len() >= 300, "{refused} of 40 requests refused");
    switchyard_e2e::all_arrive_within(&rx, &acked, Duration::from_secs(60)).await;
    host.stop().await;
}

/// The on-call figures on NATS (#35): the retries this host scheduled show as
/// `retrying` with the next attempt's time, leave the count once delivered
/// again, and "retry now" is refused with why (JetStream keeps a nak's delay).
#[tokio::test]
async fn retries_waiting_on_nats_are_counted_and_retry_now_says_why_it_cannot() {
    let server = NatsServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let down = Receiver::start().await;
    down.script(vec![Reply::status(503).header("retry-after", "3")]);
    let host = TestHost::start_config(
        dir.path(),
        &config_text_nats(
            dir.path(),
            &webhook(
                "later",
                &down,
                "batch = { max_events = 10, linger_ms = 200 }",
            ),
            &server.url(),
        ),
    )
    .await;
    assert_eq!(host.send("batch", &sdk_batch("w", 3)).await.status(), 200);
    let row = host
        .admin()
        .wait(
            Row::Destination("later"),
            "three retries waiting",
            Duration::from_secs(20),
            |r| r["retrying"] == 3,
        )
        .await;
    let wait = row["next_retry_in_ms"].as_u64().unwrap();
    assert!((1..=3_000).contains(&wait), "{row}");
    assert_eq!(row["attention"], "retrying", "{row}");
    let refused = host
        .admin()
        .post("/admin/destinations/later/retry-now")
        .await;
    assert_eq!(refused.status(), 422);
    let body: Value = refused.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("NATS"), "{body}");
    // Delivered on the next attempt: nothing waits any more.
    all_arrive(&down, &ids("w", 3)).await;
    let row = host
        .admin()
        .wait(
            Row::Destination("later"),
            "no retry waiting",
            Duration::from_secs(10),
            |r| r["retrying"] == 0,
        )
        .await;
    assert!(row["next_retry_at"].is_null(), "{row}");
    host.stop().await;
}

#[tokio::test]
async fn a_message_on_the_stream_that_is_no_event_is_dead_lettered_with_why() {
    let server = NatsServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let host = TestHost::start_config(
        dir.path(),
        &config_text_nats(dir.path(), &webhook("hooks", &rx, ""), &server.url()),
    )
    .await;
    // Something other than a host of ours publishes onto the events stream:
    // no `Switchyard-Type` header, and a body with no Segment `type`.
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    js.publish("sy.ev.0", r#"{"hello":"world"}"#.into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(host.send("batch", &sdk_batch("ok", 3)).await.status(), 200);
    all_arrive(&rx, &ids("ok", 3)).await;
    let start = std::time::Instant::now();
    let dead = loop {
        let dead = host.admin().dead_letters("hooks").await;
        if !dead.is_empty() {
            break dead;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no dead letter");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(dead.len(), 1, "{dead:?}");
    let reason = dead[0]["reason"].as_str().unwrap();
    assert!(reason.contains("not a Switchyard event"), "{reason}");
    // Nothing of it reached the vendor.
    assert!(!rx.events().iter().any(|e| e.get("hello").is_some()));
    host.stop().await;
}
