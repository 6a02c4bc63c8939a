//! The bundled destinations in other languages against loopback receivers that
//! check the vendor's request shape and answer with the vendor's success and
//! error responses; and JS and Python destinations delivering beside the Rust
//! webhook in one host.

use std::time::Duration;

use serde_json::{json, Value};
use switchyard_e2e::admin::Row;
use switchyard_e2e::{eventually, Receiver, Reply, TestHost};

/// How long a destination's row may take to show the expected counts.
const WAIT: Duration = Duration::from_secs(60);

fn dest(name: &str, plugin: &str, rx: &Receiver, settings: &str) -> String {
    format!(
        r#"
[[destinations]]
name = "{name}"
plugin = "{plugin}"
allowed_hosts = ["{origin}"]
settings = {settings}
retry = {{ initial_ms = 20, max_ms = 200, window = "1m" }}
batch = {{ max_events = 100, max_bytes = 512000, linger_ms = 50 }}
"#,
        origin = rx.origin()
    )
}

fn events() -> Value {
    json!({"batch": [
        {"type": "track", "userId": "user-1", "event": "Order Completed", "messageId": "c-track",
         "properties": {"revenue": 19.99, "orderId": "o-1"}, "context": {"ip": "203.0.113.7"}},
        {"type": "identify", "userId": "user-1", "messageId": "c-identify", "traits": {"email": "ada@example.com"}},
        {"type": "page", "anonymousId": "anon-7", "name": "Pricing", "messageId": "c-page"}
    ]})
}

/// Poll the admin row of destination `name` until `check` holds of it (at most [`WAIT`]).
async fn wait_row(
    host: &TestHost,
    name: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    host.admin()
        .wait(Row::Destination(name), what, WAIT, check)
        .await
}

fn body_of(rx: &Receiver) -> Value {
    let got = rx.received();
    let ok = got
        .iter()
        .find(|r| r.status == 200)
        .expect("a request answered 200");
    serde_json::from_slice(&ok.body).unwrap()
}

#[tokio::test]
async fn slack_in_javascript_speaks_the_incoming_webhook_api() {
    let dir = tempfile::tempdir().unwrap();
    let ok = Receiver::start().await;
    let throttled = Receiver::start().await;
    throttled.script(vec![Reply::status(429)
        .header("retry-after", "1")
        .body("rate_limited")]);
    let gone = Receiver::start().await;
    gone.default_reply(Reply::status(404).body("channel_not_found"));
    let flaky = Receiver::start().await;
    flaky.script(vec![Reply::status(503).body("service_unavailable")]);
    let settings = |rx: &Receiver| {
        format!(
            r##"{{ webhook_url = "{}", channel = "#signups" }}"##,
            rx.url("/services/T0/B0/X")
        )
    };
    let config = [
        ("ok", &ok),
        ("throttled", &throttled),
        ("gone", &gone),
        ("flaky", &flaky),
    ]
    .iter()
    .map(|(n, rx)| dest(n, "slack", rx, &settings(rx)))
    .collect::<String>();
    let host = TestHost::start(dir.path(), &config).await;
    assert_eq!(host.send("batch", &events()).await.status(), 200);

    wait_row(&host, "ok", "3 delivered", |r| r["delivered"] == 3).await;
    let req = ok.received().into_iter().next().unwrap();
    assert_eq!(req.uri, "/services/T0/B0/X");
    assert_eq!(req.headers["content-type"], "application/json");
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    let text = body["text"].as_str().unwrap();
    assert!(
        text.contains("Order Completed") && text.contains("user-1"),
        "{text}"
    );
    assert!(
        text.contains("identify") && text.contains("Pricing"),
        "{text}"
    );
    assert_eq!(body["channel"], "#signups");

    let r = wait_row(&host, "throttled", "delivery after the 429", |r| {
        r["delivered"] == 3
    })
    .await;
    assert!(r["retried"].as_u64() >= Some(3), "{r}");
    let got = throttled.received();
    assert!(
        got[1].at.duration_since(got[0].at) >= Duration::from_millis(990),
        "Retry-After honoured"
    );

    let r = wait_row(&host, "gone", "dead letters", |r| r["dead_letters"] == 3).await;
    assert_eq!(r["delivered"], 0);
    assert_eq!(gone.received().len(), 1, "a 404 is not retried");

    wait_row(&host, "flaky", "delivery after the 503", |r| {
        r["delivered"] == 3
    })
    .await;
    host.stop().await;
}

#[tokio::test]
async fn amplitude_in_python_speaks_the_http_v2_api() {
    let dir = tempfile::tempdir().unwrap();
    let ok = Receiver::start().await;
    ok.default_reply(Reply::status(200).body(r#"{"code":200,"events_ingested":3}"#));
    let throttled = Receiver::start().await;
    throttled.script(vec![Reply::status(429)
        .header("retry-after", "1")
        .body(r#"{"code":429,"error":"Too many requests"}"#)]);
    let invalid = Receiver::start().await;
    invalid.default_reply(Reply::status(400).body(
        r#"{"code":400,"error":"Request missing required field","missing_field":"api_key"}"#,
    ));
    let settings = |rx: &Receiver| {
        format!(
            r#"{{ api_key = "key-123", endpoint = "{}" }}"#,
            rx.url("/2/httpapi")
        )
    };
    let config = [
        ("ok", &ok),
        ("throttled", &throttled),
        ("invalid", &invalid),
    ]
    .iter()
    .map(|(n, rx)| dest(n, "amplitude", rx, &settings(rx)))
    .collect::<String>();
    let host = TestHost::start(dir.path(), &config).await;
    assert_eq!(host.send("batch", &events()).await.status(), 200);

    wait_row(&host, "ok", "3 delivered", |r| r["delivered"] == 3).await;
    let req = ok.received().into_iter().next().unwrap();
    assert_eq!(req.uri, "/2/httpapi");
    assert_eq!(req.headers["content-type"], "application/json");
    let body = body_of(&ok);
    assert_eq!(body["api_key"], "key-123");
    let evs = body["events"].as_array().unwrap();
    assert_eq!(evs.len(), 3);
    let track = evs.iter().find(|e| e["insert_id"] == "c-track").unwrap();
    assert_eq!(track["event_type"], "Order Completed");
    assert_eq!(track["user_id"], "user-1");
    assert!(
        track["time"].as_i64().unwrap() > 1_700_000_000_000,
        "time in ms"
    );
    assert_eq!(track["event_properties"]["orderId"], "o-1");
    assert_eq!(track["ip"], "203.0.113.7");
    let identify = evs.iter().find(|e| e["insert_id"] == "c-identify").unwrap();
    assert_eq!(identify["event_type"], "$identify");
    assert_eq!(
        identify["user_properties"]["$set"]["email"],
        "ada@example.com"
    );
    let page = evs.iter().find(|e| e["insert_id"] == "c-page").unwrap();
    assert_eq!(page["device_id"], "anon-7");

    wait_row(&host, "throttled", "delivery after the 429", |r| {
        r["delivered"] == 3
    })
    .await;
    let got = throttled.received();
    assert!(
        got[1].at.duration_since(got[0].at) >= Duration::from_millis(990),
        "the hint was respected"
    );
    let r = wait_row(&host, "invalid", "dead letters", |r| r["dead_letters"] == 3).await;
    assert_eq!(r["delivered"], 0);
    host.stop().await;
}

#[tokio::test]
async fn javascript_and_python_deliver_beside_the_rust_webhook_in_one_host() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, slack, amp) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    let config = [
        dest(
            "hooks",
            "webhook",
            &hook,
            &format!(r#"{{ url = "{}" }}"#, hook.url("/hook")),
        ),
        dest(
            "team-chat",
            "slack",
            &slack,
            &format!(r#"{{ webhook_url = "{}" }}"#, slack.url("/services/x")),
        ),
        dest(
            "analytics",
            "amplitude",
            &amp,
            &format!(
                r#"{{ api_key = "k", endpoint = "{}" }}"#,
                amp.url("/2/httpapi")
            ),
        ),
    ]
    .concat();
    let host = TestHost::start(dir.path(), &config).await;
    for i in 0..5 {
        let batch = json!({"batch": (0..10).map(|j| json!({"type": "track", "userId": format!("u{j}"), "event": "Signed Up", "messageId": format!("mix-{i}-{j}")})).collect::<Vec<_>>()});
        assert_eq!(host.send("batch", &batch).await.status(), 200);
    }
    for name in ["hooks", "team-chat", "analytics"] {
        wait_row(&host, name, "50 delivered", |r| r["delivered"] == 50).await;
    }
    eventually(Duration::from_secs(10), "the webhook's 50 ids", || {
        (hook.delivered_ids().len() == 50).then_some(())
    })
    .await;
    let amp_ids: Vec<String> = amp
        .received()
        .iter()
        .flat_map(|r| {
            serde_json::from_slice::<Value>(&r.body).unwrap()["events"]
                .as_array()
                .unwrap()
                .clone()
        })
        .map(|e| e["insert_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(amp_ids.len(), 50);
    let plugins = host.admin().plugins().await;
    assert_eq!(
        plugins.len(),
        3,
        "three plugins in three languages: {plugins:?}"
    );
    host.stop().await;
}
