//! What an operator sees: `/metrics` read back with a Prometheus text-format
//! parser as events flow, its access rules, `[server] metrics_listen`, and
//! `/readyz` (a plugin that did not load here; its other failure cases where
//! they happen: a full disk in `faults.rs`, a stopped NATS server in `nats.rs`).

use std::time::Duration;

use serde_json::json;
use switchyard_e2e::host::{config_text, ADMIN_TOKEN};
use switchyard_e2e::{all_arrive, ids, sdk_batch, webhook_destination, Receiver, TestHost};

/// A scrape, parsed.
struct Scrape(prometheus_parse::Scrape);

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let lines = text.lines().map(|l| Ok(l.to_string()));
        Scrape(prometheus_parse::Scrape::parse(lines).expect("the Prometheus text format"))
    }

    /// The value of `metric` whose labels include `labels` (0 when absent).
    fn value(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .samples
            .iter()
            .filter(|s| s.metric == metric)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => panic!("{metric} is not a single value"),
            })
            .sum()
    }

    /// Whether `metric` is typed as `kind` (`counter`, `gauge`, `histogram`).
    fn typed(&self, metric: &str, kind: &str) -> bool {
        self.0.samples.iter().any(|s| {
            s.metric == metric
                && matches!(
                    (&s.value, kind),
                    (prometheus_parse::Value::Counter(_), "counter")
                        | (prometheus_parse::Value::Gauge(_), "gauge")
                        | (prometheus_parse::Value::Histogram(_), "histogram")
                )
        })
    }
}

async fn scrape(host: &TestHost) -> Scrape {
    let resp = host
        .http
        .get(host.url("/metrics"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    Scrape::parse(&resp.text().await.unwrap())
}

#[tokio::test]
async fn metrics_move_as_events_flow_and_need_the_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let host = TestHost::start(dir.path(), &webhook_destination("hooks", &rx, "")).await;

    // No token, a wrong token: refused, with a JSON reason.
    let open = host.http.get(host.url("/metrics")).send().await.unwrap();
    assert_eq!(open.status(), 401);
    let wrong = host.http.get(host.url("/metrics")).bearer_auth("nope");
    assert_eq!(wrong.send().await.unwrap().status(), 401);

    let before = scrape(&host).await;
    assert_eq!(before.value("switchyard_ready", &[]), 1.0);
    let dest = [("destination", "hooks")];
    assert_eq!(
        before.value(
            "switchyard_destination_health",
            &[("destination", "hooks"), ("state", "healthy")]
        ),
        1.0
    );

    // 10 good events, one of them twice; a batch with one refused event; a bad write key.
    assert_eq!(host.send("batch", &sdk_batch("m", 10)).await.status(), 200);
    assert_eq!(host.send("batch", &sdk_batch("m", 1)).await.status(), 200);
    let mixed = json!({"batch": [
        {"type": "track", "userId": "u", "event": "Ok", "messageId": "m-ok"},
        {"type": "track", "event": "No user", "messageId": "m-bad"},
    ]});
    assert_eq!(host.send("batch", &mixed).await.status(), 200);
    let anonymous = host
        .http
        .post(host.url("/v1/track"))
        .basic_auth("not-a-key", Some(""))
        .json(&json!({"userId": "u", "event": "E"}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let mut want = ids("m", 10);
    want.push("m-ok".into());
    all_arrive(&rx, &want).await;

    // Delivery counters settle just after the receiver answered.
    let start = std::time::Instant::now();
    let after = loop {
        let s = scrape(&host).await;
        if s.value("switchyard_destination_delivered_total", &dest) >= 11.0 {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "delivered never reached 11"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The webhook's instance stays warm for its next batch.
    assert!(after.value("switchyard_warm_instances", &[]) >= 1.0);
    let source = [("source", "test")];
    let ok = [("source", "test"), ("status", "200")];
    assert_eq!(after.value("switchyard_ingest_requests_total", &ok), 3.0);
    assert_eq!(
        after.value(
            "switchyard_ingest_requests_total",
            &[("source", ""), ("status", "401")]
        ),
        1.0
    );
    assert_eq!(
        after.value("switchyard_events_accepted_total", &source),
        11.0
    );
    assert_eq!(
        after.value("switchyard_events_deduplicated_total", &source),
        1.0
    );
    assert_eq!(
        after.value("switchyard_events_rejected_total", &source),
        1.0
    );
    assert_eq!(
        after.value("switchyard_destination_delivered_total", &dest),
        11.0
    );
    assert_eq!(
        after.value("switchyard_destination_dead_lettered_total", &dest),
        0.0
    );
    assert_eq!(after.value("switchyard_destination_queued", &dest), 0.0);
    assert_eq!(
        after.value("switchyard_delivery_latency_seconds_count", &dest),
        11.0
    );
    assert!(after.value("switchyard_delivery_latency_seconds_sum", &dest) > 0.0);
    assert!(after.value("switchyard_plugin_call_duration_seconds_count", &dest) >= 1.0);
    assert!(after.value("switchyard_store_commit_duration_seconds_count", &[]) >= 1.0);
    assert!(after.value("switchyard_store_commit_events_sum", &[]) >= 11.0);
    assert!(after.value("switchyard_plugin_memory_peak_bytes", &dest) > 0.0);
    assert!(after.typed("switchyard_destination_delivered_total", "counter"));
    assert!(after.typed("switchyard_destination_queued", "gauge"));
    assert!(after.typed("switchyard_delivery_latency_seconds", "histogram"));
    assert!(after.typed("switchyard_sandbox_violations_total", "counter"));
    assert_eq!(
        after.value(
            "switchyard_sandbox_violations_total",
            &[("destination", "hooks"), ("kind", "trap")]
        ),
        0.0
    );

    // An event its integrations object keeps from `hooks` is counted as filtered.
    assert_eq!(
        after.value("switchyard_destination_filtered_total", &dest),
        0.0
    );
    let off = json!({"type": "track", "userId": "u", "event": "Not for hooks",
        "messageId": "m-off", "integrations": {"hooks": false}});
    assert_eq!(host.send("track", &off).await.status(), 200);
    assert_eq!(
        scrape(&host)
            .await
            .value("switchyard_destination_filtered_total", &dest),
        1.0
    );
    assert_eq!(host.admin().destination("hooks").await["filtered"], 1);

    // The vendor fails: retries are counted and health leaves `healthy`.
    rx.default_reply(switchyard_e2e::Reply::status(503));
    assert_eq!(host.send("batch", &sdk_batch("f", 3)).await.status(), 200);
    let start = std::time::Instant::now();
    loop {
        let s = scrape(&host).await;
        let degraded = s.value(
            "switchyard_destination_health",
            &[("destination", "hooks"), ("state", "healthy")],
        ) == 0.0;
        if s.value("switchyard_destination_retried_total", &dest) >= 3.0 && degraded {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "retries or health never showed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    host.stop().await;
}

#[tokio::test]
async fn metrics_listen_serves_metrics_and_probes_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let port = switchyard_e2e::free_port();
    let config = config_text(dir.path(), &webhook_destination("hooks", &rx, "")).replacen(
        "[server]\n",
        &format!("[server]\nmetrics_listen = \"127.0.0.1:{port}\"\n"),
        1,
    );
    let host = TestHost::start_config(dir.path(), &config).await;
    let http = reqwest::Client::new();
    let metrics = http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let scrape = Scrape::parse(&metrics.text().await.unwrap());
    assert_eq!(scrape.value("switchyard_ready", &[]), 1.0);
    let ready = http
        .get(format!("http://127.0.0.1:{port}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body, json!({"status": "ready", "reasons": []}));
    // Nothing else is served there.
    let admin = http
        .get(format!("http://127.0.0.1:{port}/admin/destinations"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), 404);
    host.stop().await;
    // And it stops with the host.
    assert!(http
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .is_err());
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_naming_the_source_destination_and_message_id() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    // The vendor refuses every event: each is dead-lettered, and logged so.
    rx.default_reply(switchyard_e2e::Reply::status(400).body(r#"{"error":"bad"}"#));
    let config = format!(
        "{}\n[log]\nformat = \"json\"\nlevel = \"info\"\n",
        config_text(dir.path(), &webhook_destination("hooks", &rx, ""))
    );
    let (file, base) = switchyard_e2e::binary::write_config(dir.path(), &config);
    let log_path = dir.path().join("host.log");
    let mut child = switchyard_e2e::binary::run_command(&switchyard_e2e::switchyard_bin(), &file)
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    switchyard_e2e::binary::wait_healthy(&base).await;
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1/track"))
        .basic_auth(switchyard_e2e::host::WRITE_KEY, Some(""))
        .json(&json!({"userId": "u", "event": "E", "messageId": "logged-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let start = std::time::Instant::now();
    let line = loop {
        let text = std::fs::read_to_string(&log_path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        if let Some(l) = lines.iter().find(|l| l["message_id"] == "logged-1") {
            break l.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no line names the event:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(line["destination"], "hooks", "{line}");
    assert_eq!(line["source"], "test", "{line}");
    assert_eq!(line["level"], "WARN", "{line}");
    assert!(line["timestamp"].is_string(), "{line}");
    let message = line["message"].as_str().unwrap_or_default();
    assert!(message.contains("dead-lettered"), "{line}");
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

#[tokio::test]
async fn the_delivery_debugger_shows_each_attempt_with_its_requests_and_outcomes() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    // The first answer fails with a body that says why; the retry is delivered.
    rx.script(vec![
        switchyard_e2e::Reply::status(500).body(r#"{"error":"vendor overloaded"}"#)
    ]);
    let host = TestHost::start(dir.path(), &webhook_destination("hooks", &rx, "")).await;
    assert_eq!(host.send("batch", &sdk_batch("dbg", 3)).await.status(), 200);
    all_arrive(&rx, &ids("dbg", 3)).await;

    let admin = host.admin();
    let start = std::time::Instant::now();
    let all = loop {
        let all = admin.get("/admin/destinations/hooks/attempts").await;
        if all.as_array().map_or(0, Vec::len) >= 2 {
            break all;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "attempts: {all}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Newest first: the delivery, then the failure.
    let (delivered, failed) = (&all[0], &all[1]);
    assert!(delivered["id"].as_u64() > failed["id"].as_u64());
    let outcomes = |a: &serde_json::Value| -> Vec<String> {
        a["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{}:{}",
                    e["messageId"].as_str().unwrap(),
                    e["outcome"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(
        outcomes(failed),
        ["dbg-0:retry", "dbg-1:retry", "dbg-2:retry"]
    );
    assert_eq!(
        outcomes(delivered),
        ["dbg-0:delivered", "dbg-1:delivered", "dbg-2:delivered"]
    );
    assert_eq!(failed["events"][0]["attempt"], 1);
    assert_eq!(delivered["events"][0]["attempt"], 2);
    assert!(
        failed["events"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("500"),
        "{failed}"
    );

    // The request as sent (the signature redacted) and the vendor's answer.
    let request = &failed["requests"][0];
    assert_eq!(request["method"], "POST");
    assert_eq!(request["url"], rx.url("/hooks"));
    let headers = request["headers"].as_array().unwrap();
    let header = |name: &str| {
        headers
            .iter()
            .find(|h| h[0].as_str().unwrap().eq_ignore_ascii_case(name))
            .map(|h| h[1].as_str().unwrap().to_string())
    };
    assert_eq!(
        header("x-switchyard-signature").as_deref(),
        Some("[redacted]"),
        "{request}"
    );
    assert!(
        request["body"].as_str().unwrap().contains("dbg-0"),
        "{request}"
    );
    assert!(request["body_bytes"].as_u64().unwrap() > 0);
    assert_eq!(request["response"]["status"], 500);
    assert_eq!(
        request["response"]["body"],
        r#"{"error":"vendor overloaded"}"#
    );
    assert!(failed["sha256"].as_str().unwrap().len() == 64);

    // Only the failures, and one attempt by its id.
    let only_failed = admin
        .get("/admin/destinations/hooks/attempts?failed=true")
        .await;
    assert_eq!(only_failed.as_array().unwrap().len(), 1, "{only_failed}");
    assert_eq!(only_failed[0]["id"], failed["id"]);
    let one = admin
        .get(&format!(
            "/admin/destinations/hooks/attempts/{}",
            failed["id"]
        ))
        .await;
    assert_eq!(&one, failed);
    let gone = admin
        .request(
            reqwest::Method::GET,
            "/admin/destinations/hooks/attempts/999999",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    let body: serde_json::Value = gone.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("999999"),
        "{body}"
    );
    let bad = admin
        .request(
            reqwest::Method::GET,
            "/admin/destinations/hooks/attempts?colour=red",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    host.stop().await;
}

#[tokio::test]
async fn the_source_debugger_shows_the_newest_events_and_the_refused_ones() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let host = TestHost::start(dir.path(), &webhook_destination("hooks", &rx, "")).await;
    let body = json!({"batch": [
        {"type": "track", "userId": "u1", "event": "First", "messageId": "src-1"},
        {"type": "identify", "event": "no user", "messageId": "src-bad"},
        {"type": "identify", "userId": "u2", "traits": {"plan": "pro"}, "messageId": "src-2"},
    ]});
    assert_eq!(host.send("batch", &body).await.status(), 200);
    let seen = host.admin().get("/admin/sources/test/events").await;
    let events = seen["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{seen}");
    assert_eq!(events[0]["messageId"], "src-2");
    assert_eq!(events[0]["type"], "identify");
    // As stored: normalised, with what ingest adds.
    assert_eq!(events[0]["event"]["traits"]["plan"], "pro");
    assert!(events[0]["event"]["receivedAt"].is_string(), "{seen}");
    assert_eq!(events[1]["messageId"], "src-1");
    let rejected = seen["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1, "{seen}");
    assert_eq!(rejected[0]["messageId"], "src-bad");
    assert!(
        rejected[0]["message"].as_str().unwrap().contains("userId"),
        "{seen}"
    );
    let one = host.admin().get("/admin/sources/test/events?limit=1").await;
    assert_eq!(one["events"].as_array().unwrap().len(), 1);
    let unknown = host
        .admin()
        .request(reqwest::Method::GET, "/admin/sources/nope/events")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    host.stop().await;
}

#[tokio::test]
async fn switchyard_status_prints_the_overview_of_a_running_host() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let config = config_text(dir.path(), &webhook_destination("hooks", &rx, ""));
    let (file, base) = switchyard_e2e::binary::write_config(dir.path(), &config);
    let mut child = switchyard_e2e::binary::spawn(&file);
    switchyard_e2e::binary::wait_healthy(&base).await;
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1/batch"))
        .basic_auth(switchyard_e2e::host::WRITE_KEY, Some(""))
        .json(&sdk_batch("st", 20))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    all_arrive(&rx, &ids("st", 20)).await;
    let admin = switchyard_e2e::Admin::new(base.clone(), ADMIN_TOKEN);
    let start = std::time::Instant::now();
    loop {
        let row = admin.destination("hooks").await;
        if row["delivered"] == 20 {
            assert!(row["delivered_per_second"].as_f64().unwrap() > 0.0, "{row}");
            assert!(row["latency_p50_ms"].is_u64(), "{row}");
            assert!(
                row["latency_p99_ms"].as_u64() >= row["latency_p50_ms"].as_u64(),
                "{row}"
            );
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{row}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let out = std::process::Command::new(switchyard_e2e::switchyard_bin())
        .args(["status", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("SOURCE"), "{text}");
    assert!(lines[1].starts_with("test "), "{text}");
    let row = lines
        .iter()
        .find(|l| l.starts_with("hooks "))
        .unwrap_or_else(|| panic!("no row for hooks:\n{text}"));
    assert!(row.contains("healthy"), "{row}");
    assert!(
        row.split_whitespace().any(|c| c == "20"),
        "delivered 20: {row}"
    );

    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    // With no host there, it says so and fails.
    let out = std::process::Command::new(switchyard_e2e::switchyard_bin())
        .args(["status", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is it running?"), "{err}");
}

#[tokio::test]
async fn a_plugin_that_did_not_load_makes_readyz_say_so_until_a_valid_file_loads_it() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    // `broken` uses a plugin whose file is not a component; `hooks` is fine.
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::write(plugins.join("garbage.wasm"), b"not a component").unwrap();
    let broken = webhook_destination("broken", &rx, "")
        .replace("plugin = \"webhook\"", "plugin = \"garbage\"");
    let destinations = format!("{}{broken}", webhook_destination("hooks", &rx, ""));
    let host = TestHost::start_config(dir.path(), &config_text(dir.path(), &destinations)).await;

    // Serving, not ready, and saying which destination and file.
    let (status, body) = host.admin().readyz().await;
    assert_eq!(status, 503);
    let reason = &body["reasons"][0];
    assert_eq!(reason["check"], "plugin", "{body}");
    let message = reason["message"].as_str().unwrap();
    assert!(
        message.contains("`broken`") && message.contains("`garbage`"),
        "{message}"
    );
    assert_eq!(scrape(&host).await.value("switchyard_ready", &[]), 0.0);
    let row = host.admin().destination("broken").await;
    assert!(row["plugin_error"].as_str().is_some(), "{row}");

    // Events are taken and delivered by the others; broken's wait in its queue.
    assert_eq!(host.send("batch", &sdk_batch("w", 3)).await.status(), 200);
    all_arrive(&rx, &ids("w", 3)).await;
    let admin = host.admin();
    admin
        .wait(
            switchyard_e2e::admin::Row::Destination("broken"),
            "three queued",
            Duration::from_secs(10),
            |r| r["queued"] == 3,
        )
        .await;

    // A valid file in its place loads it: ready, and the queue drains.
    let webhook = switchyard_e2e::destination_component("webhook");
    let tmp = plugins.join(".garbage.tmp");
    std::fs::copy(webhook, &tmp).unwrap();
    std::fs::rename(&tmp, plugins.join("garbage.wasm")).unwrap();
    admin
        .wait(
            switchyard_e2e::admin::Row::Destination("broken"),
            "delivered after the plugin loaded",
            Duration::from_secs(30),
            |r| r["delivered"] == 3 && r.get("plugin_error").is_none(),
        )
        .await;
    let ready = host.http.get(host.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let broken_hits = rx
        .received()
        .iter()
        .filter(|r| r.uri.starts_with("/broken") && r.status == 200)
        .count();
    assert!(broken_hits >= 1);
    host.stop().await;
}
