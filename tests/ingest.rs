//! Ingest end to end: Segment-shaped requests over real HTTP, delivered through
//! the real webhook component to a loopback receiver.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use switchyard_e2e::{eventually, sdk_batch, Receiver, TestHost};

/// The webhook to `rx` at `/<name>`, without batch linger.
fn webhook(name: &str, rx: &Receiver, extra: &str) -> String {
    let batch = "batch = { max_events = 100, max_bytes = 512000, linger_ms = 0 }";
    switchyard_e2e::webhook_destination(name, rx, &format!("{batch}\n{extra}"))
}

#[tokio::test]
async fn sdk_batch_reaches_the_receiver_signed_and_normalised() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let host = TestHost::start(dir.path(), &webhook("hooks", &rx, "")).await;

    let body = sdk_batch("sdk", 30);
    let resp = host.send("batch", &body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"success": true})
    );

    let want: Vec<String> = (0..30).map(|i| format!("sdk-{i}")).collect();
    eventually(
        Duration::from_secs(20),
        "all 30 events at the receiver",
        || {
            let got = rx.delivered_ids();
            want.iter().all(|id| got.contains(id)).then_some(())
        },
    )
    .await;

    for req in rx.received() {
        assert_eq!(req.uri, "/hooks");
        assert_eq!(req.headers["content-type"], "application/json");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(&req.body);
        let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(
            req.headers["x-switchyard-signature"],
            expected.as_str(),
            "signature over the exact body"
        );
        let events: Vec<Value> = serde_json::from_slice(&req.body).unwrap();
        for e in events {
            assert_eq!(e["type"], "track");
            assert_eq!(
                e["context"]["library"]["name"], "analytics-node",
                "batch context merged"
            );
            assert_eq!(
                e["context"]["page"]["path"], "/checkout",
                "item context kept"
            );
            let received =
                chrono::DateTime::parse_from_rfc3339(e["receivedAt"].as_str().unwrap()).unwrap();
            let ts =
                chrono::DateTime::parse_from_rfc3339(e["timestamp"].as_str().unwrap()).unwrap();
            let skew = (received - ts).num_milliseconds();
            // The client stamped the event 5 s before sentAt: corrected timestamp = receivedAt - 5 s.
            assert!(
                (4_900..=5_100).contains(&skew),
                "timestamp corrected by sentAt: {skew} ms"
            );
            assert!(e["originalTimestamp"].is_string());
            assert!(e.get("writeKey").is_none());
        }
    }
    host.stop().await;
}

#[tokio::test]
async fn single_calls_write_key_in_body_import_and_dedup() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let host = TestHost::start(dir.path(), &webhook("hooks", &rx, "")).await;

    let calls = [
        (
            "track",
            json!({"userId": "u1", "event": "Signed Up", "messageId": "m-track"}),
        ),
        (
            "identify",
            json!({"userId": "u1", "traits": {"email": "a@b.c"}, "messageId": "m-identify"}),
        ),
        (
            "page",
            json!({"anonymousId": "a1", "name": "Home", "messageId": "m-page"}),
        ),
        (
            "screen",
            json!({"anonymousId": "a1", "name": "Main", "messageId": "m-screen"}),
        ),
        (
            "group",
            json!({"userId": "u1", "groupId": "g1", "messageId": "m-group"}),
        ),
        (
            "alias",
            json!({"userId": "u2", "previousId": "u1", "messageId": "m-alias"}),
        ),
    ];
    for (kind, body) in &calls {
        let resp = host.send(kind, body).await;
        assert_eq!(resp.status(), 200, "{kind}");
    }
    // writeKey in the body instead of Basic auth, on /v1/import (= batch).
    let resp = host
        .http
        .post(host.url("/v1/import"))
        .json(
            &json!({"writeKey": switchyard_e2e::host::WRITE_KEY, "batch": [
                {"type": "track", "userId": "u3", "event": "Imported", "messageId": "m-import"}
            ]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // The same messageId again: acknowledged, not delivered twice.
    assert_eq!(host.send("track", &calls[0].1).await.status(), 200);

    let want = [
        "m-track",
        "m-identify",
        "m-page",
        "m-screen",
        "m-group",
        "m-alias",
        "m-import",
    ];
    eventually(Duration::from_secs(20), "the seven events", || {
        let got = rx.delivered_ids();
        want.iter()
            .all(|id| got.iter().any(|g| g == id))
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = rx.delivered_ids();
    assert_eq!(
        got.iter().filter(|id| *id == "m-track").count(),
        1,
        "deduplicated: {got:?}"
    );
    let types: Vec<String> = rx
        .received()
        .iter()
        .flat_map(|r| serde_json::from_slice::<Vec<Value>>(&r.body).unwrap())
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    for t in ["track", "identify", "page", "screen", "group", "alias"] {
        assert!(
            types.iter().any(|x| x == t),
            "type {t} set from the endpoint: {types:?}"
        );
    }
    host.stop().await;
}

#[tokio::test]
async fn every_bad_input_gets_its_status_and_a_json_error_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let host = TestHost::start(dir.path(), &webhook("hooks", &rx, "")).await;
    let url = |p: &str| host.url(p);
    let good = json!({"userId": "u", "event": "E"});
    let big_prop = "x".repeat(33 * 1024);
    let over_request: Vec<Value> = (0..20)
        .map(|i| json!({"type": "track", "userId": "u", "event": "E", "messageId": format!("big-{i}"), "properties": {"p": "y".repeat(30 * 1024)}}))
        .collect();
    let too_many: Vec<Value> = (0..2_501)
        .map(|_| json!({"type": "identify", "userId": "u"}))
        .collect();

    let cases: Vec<(&str, reqwest::RequestBuilder, u16)> = vec![
        ("no key", host.http.post(url("/v1/track")).json(&good), 401),
        (
            "unknown key",
            host.http
                .post(url("/v1/track"))
                .basic_auth("nope", Some(""))
                .json(&good),
            401,
        ),
        (
            "bad key in body",
            host.http
                .post(url("/v1/track"))
                .json(&json!({"writeKey": "nope", "userId": "u", "event": "E"})),
            401,
        ),
        (
            "not JSON",
            host.http
                .post(url("/v1/track"))
                .basic_auth("wk_test", Some(""))
                .header("content-type", "application/json")
                .body("{not json"),
            400,
        ),
        (
            "not an object",
            host.http
                .post(url("/v1/track"))
                .basic_auth("wk_test", Some(""))
                .json(&json!([1, 2])),
            400,
        ),
        (
            "form content type",
            host.http
                .post(url("/v1/track"))
                .basic_auth("wk_test", Some(""))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("a=b"),
            415,
        ),
        (
            "no user",
            host.http
                .post(url("/v1/track"))
                .basic_auth("wk_test", Some(""))
                .json(&json!({"event": "E"})),
            400,
        ),
        (
            "track without event",
            host.http
                .post(url("/v1/track"))
                .basic_auth("wk_test", Some(""))
                .json(&json!({"userId": "u"})),
            400,
        ),
        (
            "long messageId",
            host.http
                .post(url("/v1/track"))
                .basic_auth("wk_test", Some(""))
                .json(&json!({"userId": "u", "event": "E", "messageId": "m".repeat(101)})),
            400,
        ),
        (
            "event over 32 KB",
            host.http
                .post(url("/v1/track"))
                .basic_auth("wk_test", Some(""))
                .json(&json!({"userId": "u", "event": "E", "properties": {"p": big_prop}})),
            400,
        ),
        (
            "request over 500 KB",
            host.http
                .post(url("/v1/batch"))
                .basic_auth("wk_test", Some(""))
                .json(&json!({"batch": over_request})),
            413,
        ),
        (
            "batch over 2500 events",
            host.http
                .post(url("/v1/batch"))
                .basic_auth("wk_test", Some(""))
                .json(&json!({"batch": too_many})),
            400,
        ),
        (
            "batch not an array",
            host.http
                .post(url("/v1/batch"))
                .basic_auth("wk_test", Some(""))
                .json(&json!({"batch": {}})),
            400,
        ),
        (
            "a batch with no valid event",
            host.http
                .post(url("/v1/batch"))
                .basic_auth("wk_test", Some(""))
                .json(&json!({"batch": [
                    {"type": "track", "event": "E", "messageId": "no-user"},
                    {"type": "track", "userId": "u"}
                ]})),
            400,
        ),
        (
            "unknown type in batch",
            host.http
                .post(url("/v1/batch"))
                .basic_auth("wk_test", Some(""))
                .json(&json!({"batch": [{"type": "purchase", "userId": "u"}]})),
            400,
        ),
        (
            "unknown endpoint",
            host.http
                .post(url("/v1/purchase"))
                .basic_auth("wk_test", Some(""))
                .json(&good),
            404,
        ),
    ];
    for (what, req, status) in cases {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{what}");
        let body: Value = resp
            .json()
            .await
            .unwrap_or_else(|e| panic!("{what}: body is not JSON: {e}"));
        assert_eq!(body["success"], false, "{what}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: {body}"
        );
    }

    // A key in the header names the source of a request refused before its
    // body was read (#35): the 413 and the bad JSON count under `test`, and
    // each is one refused event of that source.
    let metrics = host.admin().metrics().await;
    for line in [
        r#"switchyard_ingest_requests_total{source="test",status="413"} 1"#,
        r#"switchyard_ingest_requests_total{source="test",status="415"} 1"#,
        r#"switchyard_ingest_requests_total{source="",status="401"} 3"#,
    ] {
        assert!(metrics.contains(line), "{line} not in:\n{metrics}");
    }
    let rejected = host.admin().get("/admin/sources/test/rejected").await;
    assert_eq!(rejected["counts"]["too_large"], 1, "{rejected}");
    assert_eq!(rejected["counts"]["invalid_request"], 2, "{rejected}");

    // A good event after all of that: it is the only thing the receiver ever sees.
    assert_eq!(
        host.send(
            "track",
            &json!({"userId": "u", "event": "E", "messageId": "the-good-one"})
        )
        .await
        .status(),
        200
    );
    eventually(Duration::from_secs(20), "the good event", || {
        (!rx.delivered_ids().is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.delivered_ids(), ["the-good-one"]);
    let d = host.destinations().await;
    assert_eq!(d[0]["queued"], 0);
    assert_eq!(d[0]["dead_letters"], 0);
    host.stop().await;
}

#[tokio::test]
async fn stored_sizes_numbers_clocks_and_error_answers_hold_up() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let host = TestHost::start(dir.path(), &webhook("hooks", &rx, "")).await;
    // A 40 KB batch context copied into each of 200 small events would store 8 MB.
    let items: Vec<Value> = (0..200)
        .map(|i| json!({"type": "track", "userId": "u", "event": "E", "messageId": format!("amp-{i}")}))
        .collect();
    let body = json!({"batch": items, "context": {"pad": "p".repeat(30 * 1024)}});
    let resp = host.send("batch", &body).await;
    assert_eq!(resp.status(), 413);
    let answer: Value = resp.json().await.unwrap();
    assert!(
        answer["message"].as_str().unwrap().contains("as stored"),
        "{answer}"
    );
    // One event that the batch context pushes over 32 KB is refused; its neighbour is stored.
    let body = json!({"context": {"pad": "p".repeat(31 * 1024)}, "batch": [
        {"type": "track", "userId": "u", "event": "E", "messageId": "fits", "context": {"pad": "short"}},
        {"type": "track", "userId": "u", "event": "E", "messageId": "too-big", "properties": {"q": "q".repeat(2048)}},
    ]});
    let answer: Value = host.send("batch", &body).await.json().await.unwrap();
    assert_eq!(answer["rejected"][0]["messageId"], "too-big", "{answer}");
    assert_eq!(answer["rejected"][0]["code"], "too_large");

    // An id beyond 2^53 keeps its digits (the webhook reads numbers as doubles);
    // an absurd clock falls back to receivedAt.
    let raw = r#"{"userId": 9007199254740993, "event": "E", "messageId": "big-id",
                  "originalTimestamp": "0001-01-01T00:00:00Z", "sentAt": "9999-12-31T00:00:00Z"}"#;
    let resp = host
        .http
        .post(host.url("/v1/track"))
        .basic_auth(switchyard_e2e::host::WRITE_KEY, Some(""))
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let want = ["fits".to_string(), "big-id".to_string()];
    switchyard_e2e::all_arrive(&rx, &want).await;
    let event = rx.event("big-id").unwrap();
    assert_eq!(
        event["userId"], "9007199254740993",
        "2^53 + 1 keeps its last digit"
    );
    assert_eq!(event["timestamp"], event["receivedAt"], "{event}");

    // Error answers: an unknown path is a JSON 404, an unknown query parameter a JSON 400.
    let resp = host
        .http
        .get(host.url("/no/such/path"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["success"], false);
    let resp = host
        .admin()
        .request(
            reqwest::Method::GET,
            "/admin/destinations/hooks/dead-letters?sincee=1",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let answer: Value = resp.json().await.unwrap();
    assert!(
        answer["message"].as_str().unwrap().contains("since"),
        "{answer}"
    );
    host.stop().await;
}
