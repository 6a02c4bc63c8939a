//! Many batches in flight (the book, `concepts/delivery.md`): a fixed and an adaptive limit
//! against a slow receiver, what the admin API shows, and per-user order while
//! several batches are out. `make test` runs this suite on both stores.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_e2e::{
    all_arrive, ids, sdk_batch, webhook_destination as webhook, Receiver, Reply, TestHost,
};

/// The row of `name` in `GET /admin/destinations`.
async fn row(host: &TestHost, name: &str) -> Value {
    host.admin().destination(name).await
}

#[tokio::test]
async fn a_fixed_concurrency_puts_that_many_batches_in_flight_and_no_more() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    rx.default_reply(Reply::status(200).delayed(Duration::from_millis(300)));
    let extra = "concurrency = 4\nbatch = { max_events = 10, max_bytes = 512000, linger_ms = 0 }";
    let host = TestHost::start(dir.path(), &webhook("slow", &rx, extra)).await;
    for i in 0..4 {
        let body = sdk_batch(&format!("f{i}"), 50);
        assert_eq!(host.send("batch", &body).await.status(), 200);
    }
    // While the 20 batches drain, the admin API shows the limit and the batches out.
    let start = Instant::now();
    let mut seen_full = false;
    while start.elapsed() < Duration::from_secs(10) && !seen_full {
        let r = row(&host, "slow").await;
        assert_eq!(r["concurrency"]["mode"], "fixed", "{r}");
        assert_eq!(r["concurrency"]["limit"], 4, "{r}");
        assert!(r["batches_in_flight"].as_u64().unwrap() <= 4, "{r}");
        seen_full = r["batches_in_flight"] == 4 && r["in_flight"].as_u64().unwrap() >= 31;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seen_full, "four batches of ten out at once");
    let want: Vec<String> = (0..4).flat_map(|i| ids(&format!("f{i}"), 50)).collect();
    all_arrive(&rx, &want).await;
    let took = start.elapsed();
    assert_eq!(rx.most_concurrent(), 4, "never more than the limit");
    // 20 batches of 300 ms, four at a time: about 1.5 s, not the 6 s of one at a time.
    assert!(took < Duration::from_secs(4), "took {took:?}");
    assert_eq!(rx.delivered_ids().len(), 200, "each event once");
    host.stop().await;
}

#[tokio::test]
async fn the_adaptive_limit_climbs_against_a_slow_vendor_that_keeps_up() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    rx.default_reply(Reply::status(200).delayed(Duration::from_millis(100)));
    // The default is adaptive, up to 16.
    let extra = "batch = { max_events = 5, max_bytes = 512000, linger_ms = 0 }";
    let host = TestHost::start(dir.path(), &webhook("vendor", &rx, extra)).await;
    let r = row(&host, "vendor").await;
    assert_eq!(r["concurrency"]["mode"], "adaptive", "{r}");
    assert_eq!(r["concurrency"]["max"], 16, "{r}");
    for i in 0..10 {
        let body = sdk_batch(&format!("a{i}"), 100);
        assert_eq!(host.send("batch", &body).await.status(), 200);
    }
    let want: Vec<String> = (0..10).flat_map(|i| ids(&format!("a{i}"), 100)).collect();
    let start = Instant::now();
    all_arrive(&rx, &want).await;
    let took = start.elapsed();
    // 200 batches of 100 ms would take 20 s one at a time.
    assert!(took < Duration::from_secs(8), "took {took:?}");
    assert!(
        rx.most_concurrent() >= 8,
        "the limit climbed: {} at once",
        rx.most_concurrent()
    );
    let r = row(&host, "vendor").await;
    assert!(r["concurrency"]["limit"].as_u64().unwrap() >= 8, "{r}");
    assert!(
        r["concurrency"]["reference_rtt_ms"].as_f64().unwrap() >= 100.0,
        "{r}"
    );
    assert_eq!(rx.delivered_ids().len(), 1000, "each event once");
    host.stop().await;
}

#[tokio::test]
async fn back_pressure_lowers_the_adaptive_limit() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    rx.default_reply(Reply::status(200).delayed(Duration::from_millis(50)));
    let extra = "batch = { max_events = 5, max_bytes = 512000, linger_ms = 0 }";
    let host = TestHost::start(dir.path(), &webhook("pushy", &rx, extra)).await;
    for i in 0..4 {
        let body = sdk_batch(&format!("p{i}"), 100);
        assert_eq!(host.send("batch", &body).await.status(), 200);
    }
    let want: Vec<String> = (0..4).flat_map(|i| ids(&format!("p{i}"), 100)).collect();
    all_arrive(&rx, &want).await;
    let before = row(&host, "pushy").await["concurrency"]["limit"]
        .as_u64()
        .unwrap();
    assert!(before >= 8, "climbed first: {before}");
    // The vendor now answers 503 to everything.
    rx.default_reply(Reply::status(503).delayed(Duration::from_millis(50)));
    let body = sdk_batch("later", 100);
    assert_eq!(host.send("batch", &body).await.status(), 200);
    let start = Instant::now();
    loop {
        let r = row(&host, "pushy").await;
        if r["concurrency"]["limit"].as_u64().unwrap() <= before / 2 {
            assert_eq!(
                r["concurrency"]["last_change"], "back-pressure: halved",
                "{r}"
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the limit falls: {r}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    host.stop().await;
}

#[tokio::test]
async fn a_users_events_are_never_in_two_batches_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    rx.default_reply(Reply::status(200).delayed(Duration::from_millis(60)));
    let extra = "ordering = \"user\"\nconcurrency = 8\n\
                 batch = { max_events = 4, max_bytes = 512000, linger_ms = 0 }";
    let host = TestHost::start(dir.path(), &webhook("ordered", &rx, extra)).await;
    let users = 12;
    let per_user = 8;
    let mut events = Vec::new();
    for n in 0..per_user {
        for u in 0..users {
            events.push(json!({
                "type": "track", "event": "E", "userId": format!("u{u}"),
                "messageId": format!("u{u}-{n}"),
            }));
        }
    }
    assert_eq!(
        host.send("batch", &json!({ "batch": events }))
            .await
            .status(),
        200
    );
    let want: Vec<String> = (0..users)
        .flat_map(|u| (0..per_user).map(move |n| format!("u{u}-{n}")))
        .collect();
    all_arrive(&rx, &want).await;
    // Each request's events, with when it arrived and when it was answered.
    let received = rx.received();
    let mut out: Vec<(Instant, Vec<String>)> = received
        .iter()
        .map(|r| (r.at, switchyard_e2e::receiver::ids_in(&r.body)))
        .collect();
    out.sort_by_key(|(at, _)| *at);
    for u in 0..users {
        let seen: Vec<usize> = out
            .iter()
            .flat_map(|(_, ids)| ids.iter())
            .filter_map(|id| id.strip_prefix(&format!("u{u}-"))?.parse().ok())
            .collect();
        assert_eq!(
            seen,
            (0..per_user).collect::<Vec<_>>(),
            "u{u} in order, once"
        );
    }
    for (_, ids) in &out {
        let mut users: Vec<&str> = ids.iter().map(|i| i.split('-').next().unwrap()).collect();
        users.sort();
        let n = users.len();
        users.dedup();
        assert_eq!(users.len(), n, "one event per user per batch: {ids:?}");
    }
    assert!(
        rx.most_concurrent() > 1,
        "batches overlapped: {}",
        rx.most_concurrent()
    );
    host.stop().await;
}

/// A plain Python receiver (the standard library's threading server, keep-alive,
/// Nagle's algorithm on), started on a free port; killed when dropped.
struct PythonReceiver {
    child: std::process::Child,
    port: u16,
}

impl PythonReceiver {
    fn start() -> PythonReceiver {
        use std::io::BufRead as _;
        let script =
            switchyard_e2e::workspace_root().join("tests/support/vendors/python_receiver.py");
        let mut child = std::process::Command::new("python3")
            .arg(script)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("the receiver prints its port");
        PythonReceiver { child, port }
    }
}

impl Drop for PythonReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How long `concurrency` takes to drain a paused backlog of 20,000 events,
/// in batches of 20, to a fresh Python receiver.
async fn drain_to_python(concurrency: &str) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let python = PythonReceiver::start();
    let origin = format!("http://127.0.0.1:{}", python.port);
    let table = switchyard_e2e::webhook_table(
        "py",
        &format!("{origin}/hook"),
        &origin,
        &format!("{concurrency}\nbatch = {{ max_events = 20, max_bytes = 512000, linger_ms = 0 }}"),
    );
    let host = TestHost::start(dir.path(), &table).await;
    let admin = host.admin();
    assert_eq!(
        admin.post("/admin/destinations/py/pause").await.status(),
        200
    );
    for i in 0..200 {
        let body = sdk_batch(&format!("b{i}"), 100);
        assert_eq!(host.send("batch", &body).await.status(), 200);
    }
    let start = Instant::now();
    assert_eq!(
        admin.post("/admin/destinations/py/resume").await.status(),
        200
    );
    let mut trace = Vec::new();
    loop {
        let r = row(&host, "py").await;
        let limit = r["concurrency"]["limit"].as_u64().unwrap_or(0);
        if trace.last().map(|(_, l, _)| *l) != Some(limit) {
            trace.push((
                start.elapsed().as_millis(),
                limit,
                r["concurrency"]["last_change"].clone(),
            ));
        }
        if r["delivered"] == 20_000 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{concurrency}: not drained in 2 minutes: {r}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = start.elapsed();
    let r = row(&host, "py").await;
    eprintln!(
        "{concurrency}: 20,000 events in {took:?}; {}; (ms, limit, why): {trace:?}",
        r["concurrency"]
    );
    host.stop().await;
    took
}

/// A receiver whose later answers on a connection are slower than its first
/// (the Nagle and delayed-ACK wait of a plain Python server) does not make the
/// adaptive limit collapse. Here it drains a backlog at 0.83 to 0.92 of a
/// fixed 16 (the limit it collapsed to made it 0.08 to 0.3); the bound leaves
/// room for a loaded machine, and BENCHMARKS.md carries the goal.
#[tokio::test]
async fn the_adaptive_limit_drains_to_a_python_receiver_about_as_fast_as_a_fixed_sixteen() {
    let fixed = drain_to_python("concurrency = 16").await;
    let adaptive = drain_to_python("concurrency = { adaptive = true, max = 16 }").await;
    let ratio = fixed.as_secs_f64() / adaptive.as_secs_f64();
    eprintln!("adaptive drains at {ratio:.2} of a fixed 16");
    assert!(
        ratio >= 0.7,
        "adaptive took {adaptive:?}, a fixed 16 {fixed:?} ({ratio:.2})"
    );
}
