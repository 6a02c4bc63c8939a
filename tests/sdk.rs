//! Segment's tracking API as the SDKs use it (the book, `concepts/ingest.md`): the short paths
//! of analytics.js and the mobile SDKs, `text/plain` with the write key in the
//! body, CORS per source, gzip and deflate bodies, partial acceptance of a
//! batch, every timestamp form, `context.ip` behind a trusted proxy, the
//! settings document of analytics.js, and the official Python SDKs sending gzip.

use std::io::Write;
use std::time::Duration;

use serde_json::{json, Value};
use switchyard_e2e::host::{config_text, WRITE_KEY};
use switchyard_e2e::{
    all_arrive, eventually, ids, sdk_batch, webhook_destination as webhook, workspace_root,
    Receiver, TestHost,
};

const PAGE: &str = "https://shop.example.com";

/// A host whose test source allows `PAGE` and trusts 127.0.0.1 as a proxy when asked.
async fn host(dir: &std::path::Path, rx: &Receiver, trust_loopback: bool) -> TestHost {
    let mut config = config_text(dir, &webhook("hooks", rx, "")).replacen(
        &format!("write_key = \"{WRITE_KEY}\"\n"),
        &format!("write_key = \"{WRITE_KEY}\"\nallowed_origins = [\"{PAGE}\"]\n"),
        1,
    );
    config.push_str("[[sources]]\nname = \"server\"\nwrite_key = \"wk_server\"\n");
    if trust_loopback {
        config = config.replacen(
            "[server]\n",
            "[server]\ntrusted_proxies = [\"127.0.0.0/8\"]\n",
            1,
        );
    }
    TestHost::start_config(dir, &config).await
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(body).unwrap();
    e.finish().unwrap()
}

fn deflate(body: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(body).unwrap();
    e.finish().unwrap()
}

/// The stored event of `id`, as the destination received it.
async fn delivered(rx: &Receiver, id: &str) -> Value {
    eventually(Duration::from_secs(20), id, || rx.event(id)).await
}

#[tokio::test]
async fn the_short_paths_take_text_plain_with_the_write_key_in_the_body() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let host = host(dir.path(), &rx, false).await;
    let calls = [
        (
            "t",
            json!({"type": "track", "event": "E", "userId": "u", "messageId": "short-t"}),
        ),
        (
            "i",
            json!({"type": "identify", "userId": "u", "messageId": "short-i"}),
        ),
        (
            "p",
            json!({"type": "page", "name": "Home", "userId": "u", "messageId": "short-p"}),
        ),
        (
            "s",
            json!({"type": "screen", "name": "Home", "userId": "u", "messageId": "short-s"}),
        ),
        (
            "g",
            json!({"type": "group", "groupId": "g1", "userId": "u", "messageId": "short-g"}),
        ),
        (
            "a",
            json!({"type": "alias", "previousId": "anon", "userId": "u", "messageId": "short-a"}),
        ),
    ];
    for (path, mut body) in calls.clone() {
        // As analytics.js sends them: text/plain, the key in the body, `_metadata`.
        body["writeKey"] = json!(WRITE_KEY);
        body["_metadata"] = json!({"bundled": ["Segment.io"], "unbundled": []});
        body["sentAt"] = json!(chrono::Utc::now().to_rfc3339());
        let resp = host
            .http
            .post(host.url(&format!("/v1/{path}")))
            .header("content-type", "text/plain")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "/v1/{path}");
    }
    // /v1/b, as analytics.js's batching mode and the mobile SDKs send it.
    let mut batch = sdk_batch("short-b", 3);
    batch["writeKey"] = json!(WRITE_KEY);
    let resp = host
        .http
        .post(host.url("/v1/b"))
        .header("content-type", "text/plain")
        .body(batch.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut want: Vec<String> = calls.iter().map(|(p, _)| format!("short-{p}")).collect();
    want.extend(ids("short-b", 3));
    all_arrive(&rx, &want).await;
    let e = delivered(&rx, "short-s").await;
    assert_eq!(e["type"], "screen");
    assert!(e.get("writeKey").is_none(), "the key is not stored: {e}");
    host.stop().await;
}

#[tokio::test]
async fn cors_answers_preflights_for_allowed_origins_and_refuses_others() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let host = host(dir.path(), &rx, false).await;
    let preflight = |origin: &str| {
        host.http
            .request(reqwest::Method::OPTIONS, host.url("/v1/t"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type, x-retry-count",
            )
            .send()
    };
    let ok = preflight(PAGE).await.unwrap();
    assert_eq!(ok.status(), 204);
    assert_eq!(ok.headers()["access-control-allow-origin"], PAGE);
    let allowed = ok.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap();
    for h in [
        "authorization",
        "content-type",
        "x-retry-count",
        "content-encoding",
    ] {
        assert!(allowed.contains(h), "{h} in {allowed}");
    }
    let refused = preflight("https://evil.example.net").await.unwrap();
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "origin_not_allowed", "{body}");

    let post = |origin: &'static str, key: &'static str, id: &'static str| {
        host.http
            .post(host.url("/v1/t"))
            .header("origin", origin)
            .header("content-type", "text/plain")
            .body(
                json!({"writeKey": key, "event": "E", "userId": "u", "messageId": id}).to_string(),
            )
            .send()
    };
    let ok = post(PAGE, WRITE_KEY, "from-the-page").await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["access-control-allow-origin"], PAGE);
    // The `server` source allows no origin: a page may not use its key.
    let refused = post(PAGE, "wk_server", "page-with-server-key")
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let refused = post("https://evil.example.net", WRITE_KEY, "from-evil")
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert!(refused
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    all_arrive(&rx, &["from-the-page".to_string()]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        rx.delivered_ids(),
        ["from-the-page"],
        "nothing refused is stored"
    );
    host.stop().await;
}

#[tokio::test]
async fn gzip_and_deflate_bodies_are_read_and_bombs_and_corrupt_streams_refused() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let host = host(dir.path(), &rx, false).await;
    let send = |encoding: &'static str, body: Vec<u8>| {
        host.http
            .post(host.url("/v1/batch"))
            .basic_auth(WRITE_KEY, Some(""))
            .header("content-type", "application/json")
            .header("content-encoding", encoding)
            .body(body)
            .send()
    };
    let gz = sdk_batch("gz", 20).to_string();
    assert_eq!(
        send("gzip", gzip(gz.as_bytes())).await.unwrap().status(),
        200
    );
    let df = sdk_batch("df", 20).to_string();
    assert_eq!(
        send("deflate", deflate(df.as_bytes()))
            .await
            .unwrap()
            .status(),
        200
    );

    // 64 MB of spaces in a JSON body, compressed to about 64 KB: refused after 500 KB.
    let mut bomb = b"{\"batch\": [".to_vec();
    bomb.extend(std::iter::repeat_n(b' ', 64 << 20));
    bomb.extend(b"]}");
    let packed = gzip(&bomb);
    assert!(packed.len() < 200 * 1024, "{}", packed.len());
    let started = std::time::Instant::now();
    let resp = send("gzip", packed).await.unwrap();
    assert_eq!(resp.status(), 413);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded work: {:?}",
        started.elapsed()
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "too_large", "{body}");

    let mut corrupt = gzip(sdk_batch("bad", 5).to_string().as_bytes());
    let mid = corrupt.len() / 2;
    corrupt[mid..].iter_mut().for_each(|b| *b = !*b);
    let resp = send("gzip", corrupt).await.unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("gzip"), "{body}");

    let mut want = ids("gz", 20);
    want.extend(ids("df", 20));
    all_arrive(&rx, &want).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        rx.delivered_ids().len(),
        40,
        "nothing of the refused bodies"
    );
    host.stop().await;
}

#[tokio::test]
async fn one_bad_event_among_99_good_ones_is_named_and_the_99_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let host = host(dir.path(), &rx, false).await;
    let mut batch = sdk_batch("part", 99);
    let items = batch["batch"].as_array_mut().unwrap();
    items.insert(
        17,
        json!({"type": "track", "event": "E", "messageId": "no-user"}),
    );
    let resp = host.send("batch", &batch).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["success"], true);
    assert_eq!(
        body["rejected"],
        json!([{"index": 17, "messageId": "no-user", "code": "missing_field",
                "message": "`userId` or `anonymousId` is required"}])
    );
    all_arrive(&rx, &ids("part", 99)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.delivered_ids().len(), 99);

    // The admin API keeps it, per source and reason.
    let sources = host.admin().get("/admin/sources").await;
    let test = sources
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "test")
        .unwrap()
        .clone();
    assert_eq!(test["rejected"], 1, "{sources}");
    assert_eq!(test["rejected_by_code"]["missing_field"], 1);
    let kept = host.admin().get("/admin/sources/test/rejected").await;
    assert_eq!(kept["recent"][0]["messageId"], "no-user", "{kept}");
    assert_eq!(kept["recent"][0]["index"], 17);
    host.stop().await;
}

#[tokio::test]
async fn every_timestamp_form_is_read_and_a_bad_one_does_not_refuse_the_event() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let host = host(dir.path(), &rx, false).await;
    let forms = [
        json!("2026-11-30T10:00:00.000Z"),
        json!("2026-11-30T10:00:00+0000"),
        json!("2026-11-30 10:00:00"),
        json!("2026-11-30T10:00:00"),
        json!(1_796_032_800_000_i64),
    ];
    let mut items: Vec<Value> = forms
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"type": "track", "event": "E", "userId": "u", "messageId": format!("ts-{i}"), "timestamp": t}))
        .collect();
    items.push(json!({"type": "track", "event": "E", "userId": "u", "messageId": "ts-date", "timestamp": "2026-11-30"}));
    items.push(json!({"type": "track", "event": "E", "userId": "u", "messageId": "ts-bad", "timestamp": "last tuesday"}));
    let resp = host.send("batch", &json!({ "batch": items })).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert!(body.get("rejected").is_none(), "{body}");
    for (i, form) in forms.iter().enumerate() {
        let e = delivered(&rx, &format!("ts-{i}")).await;
        assert_eq!(e["timestamp"], "2026-11-30T10:00:00.000Z", "{form}");
    }
    assert_eq!(
        delivered(&rx, "ts-date").await["timestamp"],
        "2026-11-30T00:00:00.000Z"
    );
    let bad = delivered(&rx, "ts-bad").await;
    assert_eq!(bad["timestamp"], bad["receivedAt"]);
    let warnings = bad["context"]["switchyard"]["warnings"].to_string();
    assert!(warnings.contains("last tuesday"), "{bad}");
    host.stop().await;
}

#[tokio::test]
async fn context_ip_comes_from_the_peer_or_from_a_trusted_proxy() {
    for trusted in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let rx = Receiver::start().await;
        let host = host(dir.path(), &rx, trusted).await;
        let send = |id: &'static str, context: Value| {
            host.http
                .post(host.url("/v1/track"))
                .basic_auth(WRITE_KEY, Some(""))
                .header("x-forwarded-for", "203.0.113.7")
                .json(&json!({"event": "E", "userId": "u", "messageId": id, "context": context}))
                .send()
        };
        assert_eq!(send("ip-none", json!({})).await.unwrap().status(), 200);
        assert_eq!(
            send("ip-given", json!({"ip": "198.51.100.4"}))
                .await
                .unwrap()
                .status(),
            200
        );
        let e = delivered(&rx, "ip-none").await;
        let want = if trusted { "203.0.113.7" } else { "127.0.0.1" };
        assert_eq!(e["context"]["ip"], want, "trusted proxy: {trusted}");
        assert_eq!(e["context"]["library"]["name"], "unknown");
        let e = delivered(&rx, "ip-given").await;
        assert_eq!(e["context"]["ip"], "198.51.100.4", "the client's own wins");
        host.stop().await;
    }
}

#[tokio::test]
async fn the_settings_document_points_analytics_js_at_this_host() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let host = host(dir.path(), &rx, false).await;
    let url = host.url(&format!("/v1/projects/{WRITE_KEY}/settings"));
    let resp = host
        .http
        .get(&url)
        .header("origin", PAGE)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["access-control-allow-origin"], PAGE);
    let doc: Value = resp.json().await.unwrap();
    let segment = &doc["integrations"]["Segment.io"];
    assert_eq!(segment["apiKey"], WRITE_KEY);
    assert_eq!(segment["apiHost"], format!("{}/v1", host.addr));
    assert_eq!(segment["protocol"], "http");
    assert_eq!(doc["plan"]["track"]["__default"]["enabled"], true);
    let unknown = host
        .http
        .get(host.url("/v1/projects/nope/settings"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["success"], false);
    host.stop().await;
}

#[tokio::test]
async fn the_official_python_sdks_send_gzip_batches_that_arrive() {
    let python = workspace_root().join("tests/sdks/python/.venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `make sdks`",
        python.display()
    );
    let script = workspace_root().join("tests/sdks/python/send.py");
    let run = |sdk: &'static str, url: String, prefix: &'static str| {
        tokio::process::Command::new(&python)
            .arg(&script)
            .args([sdk, &url, WRITE_KEY, prefix, "250"])
            .output()
    };
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let host = host(dir.path(), &rx, false).await;
    for sdk in ["rudder", "segment"] {
        // First against a plain receiver, to see what it sends: gzip, to /v1/batch.
        let spy = Receiver::start().await;
        let out = run(sdk, spy.url(""), "spy").await.unwrap();
        assert!(
            out.status.success(),
            "{sdk}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let sent = spy.received();
        assert!(!sent.is_empty(), "{sdk} sent nothing");
        for r in &sent {
            assert_eq!(r.uri, "/v1/batch", "{sdk}");
            assert_eq!(r.headers["content-encoding"], "gzip", "{sdk}");
        }
        let out = run(sdk, host.url(""), sdk).await.unwrap();
        assert!(
            out.status.success(),
            "{sdk}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        all_arrive(&rx, &ids(sdk, 250)).await;
        let e = delivered(&rx, &format!("{sdk}-3")).await;
        assert_eq!(e["event"], "Order Completed");
        assert_eq!(e["properties"]["total"], 3);
        assert!(
            e["context"]["library"]["name"]
                .as_str()
                .unwrap()
                .contains("analytics"),
            "{e}"
        );
    }
    host.stop().await;
}
