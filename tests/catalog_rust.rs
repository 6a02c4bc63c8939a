//! The bundled Rust destinations (mixpanel, ga4, posthog, segment, http) against loopback
//! receivers that check the request shape each README documents and answer with the
//! vendor's own success, throttling, server-error and permanent-error responses.
//!
//! One host per plugin, with one destination per behaviour of the receiver:
//! - `ok`: the vendor's success answer; the request is checked field by field;
//! - `throttled`: 429 with `Retry-After: 1` first: delivered, no sooner than the hint;
//! - `server_error`: a 5xx first: delivered after a retry;
//! - `rejecting`: the vendor's permanent error: dead letters and no retry, or the vendor
//!   handling the README documents (Mixpanel's `failed_records`, Segment's per-event resend).
//!
//! Calls a destination does not take are dead-lettered with the documented reason.
//! The support `Receiver` does not record the request method, so every receiver sits
//! behind a [`Tap`]: a loopback relay that records the method and passes the request and
//! the answer (status, `Retry-After`, body) through unchanged.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use switchyard_e2e::receiver::Received;
use switchyard_e2e::{Receiver, Reply, TestHost};

// ---- a method-recording relay in front of a `Receiver` ----

type TapState = (Receiver, Arc<Mutex<Vec<String>>>, reqwest::Client);

/// A scripted [`Receiver`] behind a relay that records each request's method.
struct Tap {
    rx: Receiver,
    addr: std::net::SocketAddr,
    methods: Arc<Mutex<Vec<String>>>,
}

impl Tap {
    /// Answers `script` in order, then `default`.
    async fn start(script: Vec<Reply>, default: Reply) -> Tap {
        let rx = Receiver::start().await;
        rx.script(script);
        rx.default_reply(default);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let methods = Arc::<Mutex<Vec<String>>>::default();
        let state: TapState = (rx.clone(), methods.clone(), reqwest::Client::new());
        let app = axum::Router::new().fallback(relay).with_state(state);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Tap { rx, addr, methods }
    }
    fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }
    /// Requests whose path (and query) starts with `prefix`, in arrival order.
    fn requests(&self, prefix: &str) -> Vec<Received> {
        let all = self.rx.received();
        all.into_iter()
            .filter(|r| r.uri.starts_with(prefix))
            .collect()
    }
    /// Assert that there were requests and that all used `method`.
    fn assert_methods(&self, method: &str) {
        let methods = self.methods.lock().unwrap().clone();
        assert!(
            !methods.is_empty() && methods.iter().all(|m| m == method),
            "{methods:?}"
        );
    }
}

async fn relay(
    State((rx, methods, client)): State<TapState>,
    method: Method,
    uri: Uri,
    mut headers: HeaderMap,
    body: Bytes,
) -> Response {
    methods.lock().unwrap().push(method.to_string());
    for h in [
        header::HOST,
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
    ] {
        headers.remove(h);
    }
    let answer = client
        .request(method, rx.url(&uri.to_string()))
        .headers(headers)
        .body(body)
        .send()
        .await
        .expect("the receiver answers");
    let status = answer.status();
    let retry_after = answer.headers().get(header::RETRY_AFTER).cloned();
    let mut resp = (status, answer.bytes().await.unwrap_or_default()).into_response();
    if let Some(v) = retry_after {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

// ---- hosts, admin rows, dead letters ----

fn dest(name: &str, plugin: &str, tap: &Tap, settings: &str) -> String {
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
        origin = tap.origin()
    )
}

/// A host with one `plugin` destination per (name, tap, settings), sent `batch` once.
async fn host_with(
    plugin: &str,
    dests: &[(&str, &Tap, String)],
    batch: &Value,
) -> (tempfile::TempDir, TestHost) {
    let dir = tempfile::tempdir().unwrap();
    let config: String = dests
        .iter()
        .map(|(name, tap, settings)| dest(name, plugin, tap, settings))
        .collect();
    let host = TestHost::start(dir.path(), &config).await;
    assert_eq!(host.send("batch", batch).await.status(), 200);
    (dir, host)
}

async fn row(host: &TestHost, name: &str) -> Value {
    let d = host.destinations().await;
    let rows = d.as_array().unwrap();
    rows.iter().find(|r| r["name"] == name).unwrap().clone()
}

/// Poll the admin row of `name` (every 50 ms, at most 60 s) until `delivered` and
/// `dead_letters` have these values.
async fn settled(host: &TestHost, name: &str, delivered: u64, dead: u64) -> Value {
    let start = std::time::Instant::now();
    loop {
        let r = row(host, name).await;
        if r["delivered"] == delivered && r["dead_letters"] == dead {
            return r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{name}: timed out waiting for {delivered} delivered and {dead} dead letters: {r}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `messageId` → reason of the dead letters of `name`.
async fn dead_letters(host: &TestHost, name: &str) -> BTreeMap<String, String> {
    let url = host.url(&format!("/admin/destinations/{name}/dead-letters"));
    let list: Vec<Value> = host
        .http
        .get(url)
        .bearer_auth(switchyard_e2e::host::ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = |v: &Value| v.as_str().unwrap().to_string();
    list.iter()
        .map(|d| (text(&d["messageId"]), text(&d["reason"])))
        .collect()
}

// ---- requests ----

fn body(r: &Received) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

fn header_of<'a>(r: &'a Received, name: &str) -> Option<&'a str> {
    r.headers.get(name).map(|v| v.to_str().unwrap())
}

fn basic(user: &str, password: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}

/// Time from a request answered 429 to the next one (the retry) in `got`.
fn retry_gap(got: &[Received]) -> Duration {
    assert_eq!(got[0].status, 429, "the first request was throttled");
    got[1].at.duration_since(got[0].at)
}

fn assert_hint_respected(got: &[Received]) {
    let gap = retry_gap(got);
    assert!(
        gap >= Duration::from_millis(990),
        "Retry-After: 1 honoured ({gap:?})"
    );
}

/// 2024-05-01T12:00:00.123Z, and that plus one second, in ms since the epoch.
const T0: &str = "2024-05-01T12:00:00.123Z";
const T0_MS: i64 = 1_714_564_800_123;
const T1: &str = "2024-05-01T12:00:01.123Z";
const UUID: &str = "0b8a5f4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b";

// ---- mixpanel ----

const MP_LONG_ID: &str = "ajs-next-1714564800123-6f1c2e9a-77aa-4e0b-bb8e-2f0c7d3a5b11";

fn mp_import_ok(n: usize) -> Reply {
    Reply::status(200).body(&format!(
        r#"{{"code":200,"num_records_imported":{n},"status":"OK"}}"#
    ))
}

fn mp_engage_ok() -> Reply {
    Reply::status(200).body(r#"{"status":1,"error":null}"#)
}

#[tokio::test]
async fn mixpanel_speaks_the_import_and_engage_apis() {
    let ok = Tap::start(vec![mp_import_ok(2), mp_engage_ok()], Reply::status(500)).await;
    let throttled = Tap::start(
        vec![
            Reply::status(429).header("retry-after", "1").body(
                r#"{"code":429,"error":"Project exceeded rate limits. Please retry the request with exponential backoff.","status":"Failed"}"#,
            ),
            mp_engage_ok(),
            mp_import_ok(2),
        ],
        Reply::status(500),
    )
    .await;
    let server_error = Tap::start(
        vec![
            Reply::status(503).body("Service Unavailable"),
            mp_engage_ok(),
            mp_import_ok(2),
        ],
        Reply::status(500),
    )
    .await;
    // strict=1: record 1 (the page) fails validation, record 0 is imported; and /engage
    // refuses the profile update with status 0.
    let rejecting = Tap::start(
        vec![
            Reply::status(400).body(
                r#"{"code":400,"error":"some data points in the request failed validation","failed_records":[{"index":1,"$insert_id":"x","field":"properties.$current_url","message":"'properties.$current_url' is invalid: must be a string"}],"num_records_imported":1,"status":"Bad Request"}"#,
            ),
            Reply::status(200).body(r#"{"status":0,"error":"$token is not a valid project token"}"#),
        ],
        Reply::status(500),
    )
    .await;
    let bad_key = Tap::start(
        vec![
            Reply::status(401)
                .body(r#"{"code":401,"error":"Invalid credentials","status":"error"}"#),
            mp_engage_ok(),
        ],
        Reply::status(500),
    )
    .await;
    let token = "0123456789abcdef0123456789abcdef";
    let service_account = |tap: &Tap| {
        format!(
            r#"{{ endpoint = "{}", project_id = 3141592, service_account_user = "sa.1a2b3c.mp-service-account", service_account_secret = "sa-secret", token = "{token}" }}"#,
            tap.origin()
        )
    };
    let api_secret = format!(
        r#"{{ endpoint = "{}", api_secret = "proj-secret", token = "{token}" }}"#,
        throttled.origin()
    );
    let batch = json!({"batch": [
        {"type": "track", "messageId": UUID, "userId": "user-1", "anonymousId": "anon-7",
         "event": "Order Completed", "properties": {"orderId": "o-42", "revenue": 19.99},
         "context": {"ip": "203.0.113.7", "page": {"url": "https://example.com/checkout", "referrer": "https://example.com/cart"}},
         "timestamp": T0},
        {"type": "page", "messageId": MP_LONG_ID, "anonymousId": "anon-7", "name": "Pricing", "category": "Docs",
         "properties": {"url": "https://example.com/pricing"}, "timestamp": T1},
        {"type": "identify", "messageId": "mp-identify", "userId": "user-1", "anonymousId": "anon-7",
         "traits": {"email": "jane@example.com", "firstName": "Jane", "plan": "pro"}, "context": {"ip": "203.0.113.7"}},
        {"type": "group", "messageId": "mp-group", "userId": "user-1", "groupId": "acme-inc"},
        {"type": "alias", "messageId": "mp-alias", "userId": "user-1", "previousId": "anon-7"}
    ]});
    let dests = [
        ("ok", &ok, service_account(&ok)),
        ("throttled", &throttled, api_secret),
        (
            "server_error",
            &server_error,
            service_account(&server_error),
        ),
        ("rejecting", &rejecting, service_account(&rejecting)),
        ("bad_key", &bad_key, service_account(&bad_key)),
    ];
    let (_dir, host) = host_with("mixpanel", &dests, &batch).await;

    // ok: track and page in one /import request, identify in one /engage request.
    settled(&host, "ok", 3, 2).await;
    ok.assert_methods("POST");
    let imports = ok.requests("/import");
    assert_eq!(imports.len(), 1);
    let import = &imports[0];
    assert_eq!(import.uri, "/import?strict=1&project_id=3141592");
    let sa = basic("sa.1a2b3c.mp-service-account", "sa-secret");
    assert_eq!(header_of(import, "authorization"), Some(sa.as_str()));
    assert_eq!(header_of(import, "content-type"), Some("application/json"));
    let records = body(import);
    assert_eq!(records.as_array().unwrap().len(), 2);
    assert_eq!(records[0]["event"], "Order Completed");
    let p = &records[0]["properties"];
    assert_eq!(p["time"], T0_MS, "time in ms");
    assert_eq!(p["distinct_id"], "user-1");
    assert_eq!(p["$insert_id"], UUID);
    assert_eq!(
        (&p["$user_id"], &p["$device_id"]),
        (&json!("user-1"), &json!("anon-7"))
    );
    assert_eq!(
        (&p["token"], &p["mp_lib"]),
        (&json!(token), &json!("switchyard"))
    );
    assert_eq!(p["ip"], "203.0.113.7");
    assert_eq!(p["$current_url"], "https://example.com/checkout");
    assert_eq!(p["$referrer"], "https://example.com/cart");
    assert_eq!(
        (&p["orderId"], &p["revenue"]),
        (&json!("o-42"), &json!(19.99))
    );
    assert_eq!(records[1]["event"], "Viewed Docs Pricing Page");
    let p = &records[1]["properties"];
    assert_eq!(p["distinct_id"], "$device:anon-7", "Simplified ID Merge");
    assert!(p.get("$user_id").is_none(), "{p}");
    let hashed = hex::encode(&Sha256::digest(MP_LONG_ID.as_bytes())[..16]);
    assert_eq!(
        p["$insert_id"], hashed,
        "a messageId over 36 characters is hashed"
    );
    assert_eq!(p["time"], T0_MS + 1000);
    assert_eq!(p["$current_url"], "https://example.com/pricing");
    let engage = ok.requests("/engage");
    assert_eq!(engage.len(), 1);
    assert_eq!(engage[0].uri, "/engage?verbose=1");
    assert_eq!(header_of(&engage[0], "authorization"), None);
    assert_eq!(
        header_of(&engage[0], "content-type"),
        Some("application/json")
    );
    let profile = json!([{"$token": token, "$distinct_id": "user-1", "$ip": "203.0.113.7",
        "$set": {"$email": "jane@example.com", "$first_name": "Jane", "plan": "pro"}}]);
    assert_eq!(body(&engage[0]), profile);
    let dead = dead_letters(&host, "ok").await;
    assert_eq!(
        dead["mp-group"],
        "mixpanel destination does not support group calls"
    );
    assert!(
        dead["mp-alias"].starts_with("mixpanel destination does not support alias calls"),
        "{dead:?}"
    );

    // throttled (API secret auth): the import is retried after Retry-After.
    let r = settled(&host, "throttled", 3, 2).await;
    assert!(r["retried"].as_u64() >= Some(2), "{r}");
    let imports = throttled.requests("/import");
    assert_eq!(imports.len(), 2);
    assert_eq!(
        imports[1].uri, "/import?strict=1",
        "no project_id without a service account"
    );
    let secret = basic("proj-secret", "");
    assert_eq!(
        header_of(&imports[1], "authorization"),
        Some(secret.as_str())
    );
    assert_hint_respected(&imports);

    settled(&host, "server_error", 3, 2).await;
    assert_eq!(
        server_error.requests("/import").len(),
        2,
        "retried once after the 503"
    );

    // rejecting: only the listed record and the refused profile update are dead letters.
    settled(&host, "rejecting", 1, 4).await;
    let dead = dead_letters(&host, "rejecting").await;
    assert_eq!(
        dead[MP_LONG_ID],
        "mixpanel refused the event: 'properties.$current_url' is invalid: must be a string"
    );
    assert_eq!(
        dead["mp-identify"],
        "mixpanel refused the profile update: $token is not a valid project token"
    );
    assert!(!dead.contains_key(UUID), "the other record was imported");
    assert_eq!(
        rejecting.requests("/import").len(),
        1,
        "a 400 is not retried"
    );

    // bad_key: a 401 rejects the imports, without a retry.
    settled(&host, "bad_key", 1, 4).await;
    let dead = dead_letters(&host, "bad_key").await;
    assert!(
        dead[UUID].starts_with("mixpanel answered 401: "),
        "{dead:?}"
    );
    assert_eq!(bad_key.requests("/import").len(), 1, "a 401 is not retried");
    host.stop().await;
}

// ---- ga4 ----

#[tokio::test]
async fn ga4_speaks_the_measurement_protocol() {
    let collected = || Reply::status(204).body("");
    let ok = Tap::start(vec![], collected()).await;
    let throttled = Tap::start(
        vec![Reply::status(429).header("retry-after", "1").body(
            r#"{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED"}}"#,
        )],
        collected(),
    )
    .await;
    let server_error = Tap::start(
        vec![Reply::status(500).body("Internal Server Error")],
        collected(),
    )
    .await;
    let rejecting = Tap::start(
        vec![],
        Reply::status(400).body(
            r#"{"error":{"code":400,"message":"Invalid JSON payload received.","status":"INVALID_ARGUMENT"}}"#,
        ),
    )
    .await;
    let settings = |tap: &Tap| {
        format!(
            r#"{{ measurement_id = "G-ABCDEF1234", api_secret = "mp-secret-XYZ", endpoint = "{}" }}"#,
            tap.origin()
        )
    };
    let web = json!({"ip": "203.0.113.7", "userAgent": "Mozilla/5.0",
                     "page": {"referrer": "https://www.google.com/"}});
    let batch = json!({"batch": [
        {"type": "page", "messageId": "ga-page", "anonymousId": "1234567.7654321", "userId": "user-1",
         "name": "Pricing", "properties": {"url": "https://example.com/pricing", "path": "/pricing"},
         "context": web, "timestamp": T0},
        {"type": "track", "messageId": "ga-purchase", "anonymousId": "1234567.7654321", "userId": "user-1",
         "event": "Order Completed", "context": web, "timestamp": T1,
         "properties": {"orderId": "o-42", "revenue": 19.98, "currency": "EUR", "coupon": "SPRING",
            "products": [{"product_id": "p-1", "sku": "TEE-BLU-M", "name": "Blue Tee", "price": 9.99, "quantity": 2, "category": "Shirts"}]}},
        {"type": "track", "messageId": "ga-video", "userId": "user-2", "event": "Video Played",
         "properties": {"videoId": "v-9", "fullScreen": true, "session_id": 1714564800}},
        {"type": "identify", "messageId": "ga-identify", "userId": "user-1", "traits": {"plan": "pro"}},
        {"type": "screen", "messageId": "ga-screen", "userId": "user-1", "name": "Checkout"},
        {"type": "group", "messageId": "ga-group", "userId": "user-1", "groupId": "acme-inc"},
        {"type": "alias", "messageId": "ga-alias", "userId": "user-1", "previousId": "anon-7"}
    ]});
    let dests = [
        ("ok", &ok, settings(&ok)),
        ("throttled", &throttled, settings(&throttled)),
        ("server_error", &server_error, settings(&server_error)),
        ("rejecting", &rejecting, settings(&rejecting)),
    ];
    let started_ms = chrono::Utc::now().timestamp_millis();
    let (_dir, host) = host_with("ga4", &dests, &batch).await;

    // ok: one request per client, in order of first appearance.
    settled(&host, "ok", 3, 4).await;
    ok.assert_methods("POST");
    let got = ok.requests("/");
    assert_eq!(got.len(), 2, "two clients, two requests");
    for r in &got {
        assert_eq!(
            r.uri,
            "/mp/collect?measurement_id=G-ABCDEF1234&api_secret=mp-secret-XYZ"
        );
        assert_eq!(header_of(r, "content-type"), Some("application/json"));
        assert_eq!(header_of(r, "authorization"), None);
    }
    let first = body(&got[0]);
    assert_eq!(
        (&first["client_id"], &first["user_id"]),
        (&json!("1234567.7654321"), &json!("user-1"))
    );
    assert_eq!(
        first["timestamp_micros"],
        T0_MS * 1000,
        "the first event's time, in µs"
    );
    assert_eq!(
        (&first["ip_override"], &first["user_agent"]),
        (&json!("203.0.113.7"), &json!("Mozilla/5.0"))
    );
    let page = &first["events"][0];
    assert_eq!(page["name"], "page_view");
    assert_eq!(page["timestamp_micros"], T0_MS * 1000);
    assert_eq!(
        page["params"],
        json!({"engagement_time_msec": 1, "page_location": "https://example.com/pricing",
               "page_title": "Pricing", "page_referrer": "https://www.google.com/", "path": "/pricing"})
    );
    let purchase = &first["events"][1];
    assert_eq!(
        purchase["name"], "purchase",
        "Order Completed is GA4's purchase"
    );
    assert_eq!(purchase["timestamp_micros"], (T0_MS + 1000) * 1000);
    assert_eq!(
        purchase["params"],
        json!({"engagement_time_msec": 1, "transaction_id": "o-42", "value": 19.98, "currency": "EUR",
               "coupon": "SPRING", "items": [{"item_id": "p-1", "item_name": "Blue Tee",
               "item_category": "Shirts", "price": 9.99, "quantity": 2}]})
    );
    assert_eq!(first["events"].as_array().unwrap().len(), 2);
    let second = body(&got[1]);
    assert_eq!(
        (&second["client_id"], &second["user_id"]),
        (&json!("user-2"), &json!("user-2"))
    );
    assert!(second.get("ip_override").is_none(), "{second}");
    let micros = second["timestamp_micros"].as_i64().unwrap();
    assert!(
        micros >= started_ms * 1000,
        "received now, so now: {micros}"
    );
    let video = &second["events"][0];
    assert_eq!(video["name"], "video_played");
    assert_eq!(
        video["params"],
        json!({"engagement_time_msec": 1, "session_id": 1714564800, "video_id": "v-9", "full_screen": "true"})
    );
    let dead = dead_letters(&host, "ok").await;
    assert_eq!(
        dead["ga-identify"],
        "identify calls are not sent: the Measurement Protocol has no identify call (user_id travels with each event)"
    );
    assert!(
        dead["ga-screen"]
            .starts_with("screen calls are not sent: GA4 allows screen_view only for app streams"),
        "{dead:?}"
    );
    assert_eq!(
        dead["ga-group"],
        "group calls are not sent: GA4 has no group call"
    );
    assert_eq!(
        dead["ga-alias"],
        "alias calls are not sent: GA4 has no alias call"
    );

    // throttled: the first client's request got the 429; it comes again after 1 s.
    settled(&host, "throttled", 3, 4).await;
    let client = |c: &str| -> Vec<Received> {
        let got = throttled.requests("/mp/collect");
        got.into_iter()
            .filter(|r| body(r)["client_id"] == c)
            .collect()
    };
    assert_hint_respected(&client("1234567.7654321"));
    assert_eq!(
        client("user-2").len(),
        1,
        "the other client was delivered at once"
    );

    settled(&host, "server_error", 3, 4).await;
    assert_eq!(
        server_error.requests("/").len(),
        3,
        "one request retried after the 500"
    );

    settled(&host, "rejecting", 0, 7).await;
    let dead = dead_letters(&host, "rejecting").await;
    assert!(
        dead["ga-purchase"].starts_with("ga4 answered 400: "),
        "{dead:?}"
    );
    assert_eq!(rejecting.requests("/").len(), 2, "a 400 is not retried");
    host.stop().await;
}

// ---- posthog ----

#[tokio::test]
async fn posthog_speaks_the_batch_capture_api() {
    let captured = || Reply::status(200).body(r#"{"status":1}"#);
    let ok = Tap::start(vec![], captured()).await;
    let throttled = Tap::start(
        vec![Reply::status(429).header("retry-after", "1").body(
            r#"{"type":"validation_error","code":"rate_limited","detail":"Rate limit exceeded"}"#,
        )],
        captured(),
    )
    .await;
    let server_error = Tap::start(
        vec![Reply::status(503).body("upstream unavailable")],
        captured(),
    )
    .await;
    let rejecting = Tap::start(
        vec![],
        Reply::status(401).body(
            r#"{"type":"authentication_error","code":"invalid_api_key","detail":"Project API key invalid. You can find your project API key in PostHog project settings.","attr":null}"#,
        ),
    )
    .await;
    let settings = |tap: &Tap, extra: &str| {
        format!(
            r#"{{ api_key = "phc_test", endpoint = "{}"{extra} }}"#,
            tap.origin()
        )
    };
    let batch = json!({"batch": [
        {"type": "track", "messageId": UUID, "userId": "user-1", "event": "Order Completed",
         "properties": {"orderId": "o-42", "revenue": 19.99}, "context": {"ip": "203.0.113.7"}, "timestamp": T0},
        {"type": "identify", "messageId": "ph-identify", "userId": "user-1", "anonymousId": "anon-7",
         "traits": {"email": "jane@example.com", "plan": "pro"}},
        {"type": "page", "messageId": "ajs-next-1714564800123-pricing", "anonymousId": "anon-7", "name": "Pricing",
         "properties": {"url": "https://example.com/pricing", "path": "/pricing"},
         "context": {"page": {"referrer": "https://www.google.com/"}}},
        {"type": "screen", "messageId": "ph-screen", "userId": "user-2", "name": "Checkout"},
        {"type": "group", "messageId": "ph-group", "userId": "user-1", "groupId": "acme-inc",
         "traits": {"name": "Acme Inc", "employees": 120}},
        {"type": "alias", "messageId": "ph-alias", "userId": "user-1", "previousId": "anon-7"}
    ]});
    let dests = [
        ("ok", &ok, settings(&ok, "")),
        (
            "throttled",
            &throttled,
            settings(&throttled, ", historical_migration = true"),
        ),
        ("server_error", &server_error, settings(&server_error, "")),
        ("rejecting", &rejecting, settings(&rejecting, "")),
    ];
    let (_dir, host) = host_with("posthog", &dests, &batch).await;

    // ok: every call type in one POST /batch/.
    settled(&host, "ok", 6, 0).await;
    ok.assert_methods("POST");
    let got = ok.requests("/");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].uri, "/batch/");
    assert_eq!(header_of(&got[0], "content-type"), Some("application/json"));
    assert_eq!(header_of(&got[0], "authorization"), None);
    let b = body(&got[0]);
    assert_eq!(
        (&b["api_key"], &b["historical_migration"]),
        (&json!("phc_test"), &json!(false))
    );
    let events = b["batch"].as_array().unwrap();
    assert_eq!(events.len(), 6);
    let by_name = |n: &str| {
        events
            .iter()
            .find(|e| e["event"] == n)
            .unwrap_or_else(|| panic!("{n}"))
    };
    let track = by_name("Order Completed");
    assert_eq!(
        (&track["distinct_id"], &track["timestamp"]),
        (&json!("user-1"), &json!(T0))
    );
    assert_eq!(track["uuid"], UUID, "a UUID messageId is PostHog's uuid");
    let p = &track["properties"];
    assert_eq!(
        (&p["orderId"], &p["revenue"], &p["$ip"]),
        (&json!("o-42"), &json!(19.99), &json!("203.0.113.7"))
    );
    assert_eq!(p["$lib"], "switchyard");
    assert!(p["$lib_version"].is_string(), "{p}");
    let identify = by_name("$identify");
    assert_eq!(identify["distinct_id"], "user-1");
    assert_eq!(
        identify["properties"]["$set"],
        json!({"email": "jane@example.com", "plan": "pro"})
    );
    assert_eq!(identify["properties"]["$anon_distinct_id"], "anon-7");
    assert!(identify.get("uuid").is_none(), "not a UUID: no uuid");
    let page = by_name("$pageview");
    assert_eq!(page["distinct_id"], "anon-7");
    assert!(page.get("uuid").is_none(), "not a UUID: no uuid");
    let p = &page["properties"];
    assert_eq!(
        (&p["$current_url"], &p["$pathname"]),
        (&json!("https://example.com/pricing"), &json!("/pricing"))
    );
    assert_eq!(
        (&p["$referrer"], &p["title"]),
        (&json!("https://www.google.com/"), &json!("Pricing"))
    );
    let screen = by_name("$screen");
    assert_eq!(
        (
            &screen["distinct_id"],
            &screen["properties"]["$screen_name"]
        ),
        (&json!("user-2"), &json!("Checkout"))
    );
    let group = &by_name("$groupidentify")["properties"];
    assert_eq!(
        (&group["$group_type"], &group["$group_key"]),
        (&json!("company"), &json!("acme-inc"))
    );
    assert_eq!(
        group["$group_set"],
        json!({"name": "Acme Inc", "employees": 120})
    );
    let alias = by_name("$create_alias");
    assert_eq!(
        (&alias["distinct_id"], &alias["properties"]["alias"]),
        (&json!("anon-7"), &json!("user-1"))
    );

    let r = settled(&host, "throttled", 6, 0).await;
    assert!(r["retried"].as_u64() >= Some(6), "{r}");
    let got = throttled.requests("/batch/");
    assert_eq!(body(&got[1])["historical_migration"], true);
    assert_hint_respected(&got);

    settled(&host, "server_error", 6, 0).await;
    assert_eq!(
        server_error.requests("/").len(),
        2,
        "retried once after the 503"
    );

    settled(&host, "rejecting", 0, 6).await;
    let dead = dead_letters(&host, "rejecting").await;
    assert!(
        dead["ph-alias"].starts_with("posthog answered 401: "),
        "{dead:?}"
    );
    assert_eq!(rejecting.requests("/").len(), 1, "a 401 is not retried");
    host.stop().await;
}

// ---- segment ----

#[tokio::test]
async fn segment_forwards_to_a_tracking_api() {
    let success = || Reply::status(200).body(r#"{"success":true}"#);
    let ok = Tap::start(vec![], success()).await;
    let throttled = Tap::start(
        vec![Reply::status(429)
            .header("retry-after", "1")
            .body("Too Many Requests")],
        success(),
    )
    .await;
    let server_error = Tap::start(
        vec![Reply::status(500).body("Internal Server Error")],
        success(),
    )
    .await;
    // A 400 for the batch, then one answer per event resent alone: the second is refused.
    let invalid = || Reply::status(400).body(r#"{"success":false,"message":"invalid event"}"#);
    let rejecting = Tap::start(
        vec![
            invalid(),
            success(),
            invalid(),
            success(),
            success(),
            success(),
        ],
        success(),
    )
    .await;
    let bad_key = Tap::start(
        vec![],
        Reply::status(401).body(r#"{"success":false,"message":"invalid write key"}"#),
    )
    .await;
    let settings = |tap: &Tap| {
        format!(
            r#"{{ write_key = "wk_web", endpoint = "{}" }}"#,
            tap.origin()
        )
    };
    let now = chrono::Utc::now();
    let earlier = (now - chrono::Duration::seconds(5)).to_rfc3339();
    let batch = json!({
        "sentAt": now.to_rfc3339(),
        "context": {"library": {"name": "analytics-node", "version": "2.1.0"}},
        "batch": [
            {"type": "track", "messageId": UUID, "userId": "user-1", "event": "Order Completed",
             "properties": {"orderId": "o-42", "revenue": 19.99}, "timestamp": earlier},
            {"type": "identify", "messageId": "sg-identify", "userId": "user-1",
             "traits": {"email": "jane@example.com", "plan": "pro"}, "timestamp": earlier},
            {"type": "page", "messageId": "sg-page", "anonymousId": "anon-7", "name": "Pricing",
             "properties": {"url": "https://example.com/pricing"}, "integrations": {"All": true, "Mixpanel": false}},
            {"type": "group", "messageId": "sg-group", "userId": "user-1", "groupId": "acme-inc", "traits": {"name": "Acme Inc"}},
            {"type": "alias", "messageId": "sg-alias", "userId": "user-1", "previousId": "anon-7"}
        ]
    });
    let ids = [UUID, "sg-identify", "sg-page", "sg-group", "sg-alias"];
    let dests = [
        ("ok", &ok, settings(&ok)),
        ("throttled", &throttled, settings(&throttled)),
        ("server_error", &server_error, settings(&server_error)),
        ("rejecting", &rejecting, settings(&rejecting)),
        ("bad_key", &bad_key, settings(&bad_key)),
    ];
    let (_dir, host) = host_with("segment", &dests, &batch).await;
    let sent_ms = chrono::Utc::now().timestamp_millis();

    settled(&host, "ok", 5, 0).await;
    ok.assert_methods("POST");
    let got = ok.requests("/");
    assert_eq!(got.len(), 1, "one request per batch");
    assert_eq!(got[0].uri, "/v1/batch");
    assert_eq!(
        header_of(&got[0], "authorization"),
        Some(basic("wk_web", "").as_str())
    );
    assert_eq!(header_of(&got[0], "content-type"), Some("application/json"));
    let b = body(&got[0]);
    let ms = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
            .unwrap()
            .timestamp_millis()
    };
    let sent_at = ms(&b["sentAt"]);
    assert!(
        sent_at >= now.timestamp_millis() && sent_at <= chrono::Utc::now().timestamp_millis(),
        "sentAt is now"
    );
    let events = b["batch"].as_array().unwrap();
    let got_ids: Vec<&str> = events
        .iter()
        .map(|e| e["messageId"].as_str().unwrap())
        .collect();
    assert_eq!(got_ids, ids, "each event as received, messageId included");
    for e in events {
        for hop in ["receivedAt", "sentAt", "originalTimestamp", "writeKey"] {
            assert!(e.get(hop).is_none(), "{hop} removed: {e}");
        }
        assert_eq!(e["context"]["library"]["name"], "analytics-node");
    }
    // The corrected time (receivedAt − (sentAt − timestamp)): 5 s before the host got it.
    let ts = ms(&events[0]["timestamp"]);
    assert!(
        (now.timestamp_millis() - 5001..=sent_ms - 4999).contains(&ts),
        "{ts}"
    );
    assert_eq!(
        (&events[0]["type"], &events[0]["event"]),
        (&json!("track"), &json!("Order Completed"))
    );
    assert_eq!(
        events[0]["properties"],
        json!({"orderId": "o-42", "revenue": 19.99})
    );
    assert_eq!(
        events[1]["traits"],
        json!({"email": "jane@example.com", "plan": "pro"})
    );
    assert_eq!(
        events[2]["integrations"],
        json!({"All": true, "Mixpanel": false})
    );
    assert_eq!(
        (&events[3]["groupId"], &events[4]["previousId"]),
        (&json!("acme-inc"), &json!("anon-7"))
    );

    settled(&host, "throttled", 5, 0).await;
    assert_hint_respected(&throttled.requests("/v1/batch"));

    settled(&host, "server_error", 5, 0).await;
    assert_eq!(
        server_error.requests("/").len(),
        2,
        "retried once after the 500"
    );

    // rejecting: after the batch's 400, each event alone; only the refused one is dead.
    settled(&host, "rejecting", 4, 1).await;
    let got = rejecting.requests("/v1/batch");
    assert_eq!(got.len(), 6, "the batch, then each of its 5 events alone");
    let alone: Vec<Vec<String>> = got[1..]
        .iter()
        .map(|r| {
            body(r)["batch"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["messageId"].as_str().unwrap().to_string())
                .collect()
        })
        .collect();
    assert_eq!(alone, ids.map(|id| vec![id.to_string()]));
    let dead = dead_letters(&host, "rejecting").await;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead["sg-identify"],
        r#"segment answered 400: {"success":false,"message":"invalid event"}"#
    );

    settled(&host, "bad_key", 0, 5).await;
    assert_eq!(
        bad_key.requests("/").len(),
        1,
        "a 401 is neither retried nor resent per event"
    );
    host.stop().await;
}

// ---- http ----

#[tokio::test]
async fn http_sends_batches_or_templated_events() {
    let ok = Tap::start(vec![], Reply::status(200)).await;
    let per_event = Tap::start(vec![], Reply::status(201)).await;
    let throttled = Tap::start(
        vec![Reply::status(429).header("retry-after", "1")],
        Reply::status(200),
    )
    .await;
    // Per-event mode: the first event's request fails with a 503, the others go through.
    let server_error = Tap::start(vec![Reply::status(503).body("busy")], Reply::status(200)).await;
    let rejecting = Tap::start(
        vec![],
        Reply::status(422).body(r#"{"error":"schema mismatch"}"#),
    )
    .await;
    let url = |tap: &Tap| format!("{}/v2/events", tap.origin());
    let batch_mode = |tap: &Tap| {
        format!(
            r#"{{ url = "{}", headers = {{ Authorization = "Bearer t0k", X-Source = "switchyard" }} }}"#,
            url(tap)
        )
    };
    let template = r#"{"id": "{{messageId}}", "kind": "{{type}}", "user": "{{ userId }}", "payload": {{event}}}"#;
    let templated = format!(
        r#"{{ url = "{}", method = "put", batch = false, headers = {{ Content-Type = "application/vnd.collector+json" }}, body_template = '{template}' }}"#,
        url(&per_event)
    );
    let one_by_one = format!(r#"{{ url = "{}", batch = false }}"#, url(&server_error));
    let batch = json!({"batch": [
        {"type": "track", "messageId": UUID, "userId": "user-1", "event": "Order Completed",
         "properties": {"orderId": "o-42", "revenue": 19.99}},
        {"type": "identify", "messageId": "http-identify", "userId": "user \"quoted\"", "traits": {"email": "jane@example.com"}},
        {"type": "page", "messageId": "http-page", "anonymousId": "anon-7", "name": "Pricing"}
    ]});
    let ids = [UUID, "http-identify", "http-page"];
    let dests = [
        ("ok", &ok, batch_mode(&ok)),
        ("per_event", &per_event, templated),
        ("throttled", &throttled, batch_mode(&throttled)),
        ("server_error", &server_error, one_by_one),
        ("rejecting", &rejecting, batch_mode(&rejecting)),
    ];
    let (_dir, host) = host_with("http", &dests, &batch).await;

    // ok (batch mode): one POST, the JSON array of the events as the host stored them.
    settled(&host, "ok", 3, 0).await;
    ok.assert_methods("POST");
    let got = ok.requests("/");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].uri, "/v2/events");
    assert_eq!(header_of(&got[0], "content-type"), Some("application/json"));
    assert_eq!(header_of(&got[0], "authorization"), Some("Bearer t0k"));
    assert_eq!(header_of(&got[0], "x-source"), Some("switchyard"));
    let stored = body(&got[0]);
    let stored = stored.as_array().unwrap();
    assert_eq!(ok.rx.delivered_ids(), ids);
    assert_eq!(
        stored[0]["properties"],
        json!({"orderId": "o-42", "revenue": 19.99})
    );
    assert!(
        stored.iter().all(|e| e["receivedAt"].is_string()),
        "{stored:?}"
    );

    // per_event: one PUT per event, the template filled in, the Content-Type overridden.
    settled(&host, "per_event", 3, 0).await;
    per_event.assert_methods("PUT");
    let got = per_event.requests("/v2/events");
    assert_eq!(got.len(), 3);
    for (i, r) in got.iter().enumerate() {
        assert_eq!(
            header_of(r, "content-type"),
            Some("application/vnd.collector+json")
        );
        let b = body(r);
        assert_eq!((&b["id"], &b["kind"]), (&json!(ids[i]), &stored[i]["type"]));
        assert_eq!(b["payload"], stored[i], "{{{{event}}}} is the event's JSON");
    }
    assert_eq!(body(&got[0])["user"], "user-1");
    assert_eq!(
        body(&got[1])["user"],
        "user \"quoted\"",
        "text is JSON-escaped"
    );
    assert_eq!(body(&got[2])["user"], "", "empty for an anonymous event");

    settled(&host, "throttled", 3, 0).await;
    assert_hint_respected(&throttled.requests("/v2/events"));

    // server_error (per-event mode): only the event whose request failed is retried.
    let r = settled(&host, "server_error", 3, 0).await;
    assert_eq!(r["retried"], 1, "{r}");
    let got = server_error.requests("/v2/events");
    let order: Vec<String> = got
        .iter()
        .map(|r| body(r)["messageId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(order, [UUID, "http-identify", "http-page", UUID]);
    assert_eq!(got[0].status, 503);

    settled(&host, "rejecting", 0, 3).await;
    let dead = dead_letters(&host, "rejecting").await;
    assert_eq!(
        dead["http-page"],
        r#"receiver answered 422: {"error":"schema mismatch"}"#
    );
    assert_eq!(rejecting.requests("/").len(), 1, "a 422 is not retried");
    host.stop().await;
}
