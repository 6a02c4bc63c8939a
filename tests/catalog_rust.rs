//! The bundled Rust destinations (mixpanel, ga4, posthog, segment, http) against loopback
//! receivers that check the request shape each README documents and answer with the
//! vendor's own success, throttling, server-error and permanent-error responses.
//!
//! One host per plugin, with one destination per behaviour of its receiver:
//! - `ok`: the vendor's success answer; method, path, query, headers and body are checked;
//! - `throttled`: 429 with `Retry-After: 1` first: delivered, no sooner than the hint;
//! - `server_error`: a 5xx first: delivered after a retry;
//! - `rejecting` (and `bad_key`): the vendor's permanent error: dead letters and no retry,
//!   or the handling the README documents (Mixpanel's `failed_records`, Segment's resend
//!   of each event alone after a 400).
//!
//! Calls a destination does not take are dead-lettered with the documented reason.
//! The support `Receiver` does not record request methods, so every receiver sits behind
//! a [`Tap`]: a loopback relay that records the method and passes the request and the
//! answer (status, `Retry-After`, body) through unchanged.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use switchyard_e2e::admin::Row;
use switchyard_e2e::receiver::{serve_fallback, Received};
use switchyard_e2e::{Receiver, Reply, TestHost};

// ---- a relay that records methods, in front of a scripted `Receiver` ----

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
        let methods = Arc::<Mutex<Vec<String>>>::default();
        let state: TapState = (rx.clone(), methods.clone(), reqwest::Client::new());
        let addr = serve_fallback(relay, state).await;
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

    /// Assert that `n` requests came to `prefix` (then none is retried).
    fn assert_count(&self, prefix: &str, n: usize) {
        let uris: Vec<String> = self.requests(prefix).into_iter().map(|r| r.uri).collect();
        assert_eq!(uris.len(), n, "requests to {prefix}: {uris:?}");
    }

    /// Assert that requests came, all with `method`.
    fn assert_methods(&self, method: &str) {
        let methods = self.methods.lock().unwrap().clone();
        let all = !methods.is_empty() && methods.iter().all(|m| m == method);
        assert!(all, "{methods:?}");
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
    headers.remove(header::HOST);
    headers.remove(header::CONTENT_LENGTH);
    let url = rx.url(&uri.to_string());
    let request = client.request(method, url).headers(headers).body(body);
    let answer = request.send().await.expect("the receiver answers");
    let status = answer.status();
    let retry_after = answer.headers().get(header::RETRY_AFTER).cloned();
    let mut resp = (status, answer.bytes().await.unwrap_or_default()).into_response();
    if let Some(v) = retry_after {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

fn reply(status: u16, body: &str) -> Reply {
    Reply::status(status).body(body)
}

/// The vendor's 429, with `Retry-After: 1`.
fn throttle(body: &str) -> Reply {
    reply(429, body).header("retry-after", "1")
}

// ---- hosts, admin rows, dead letters ----

/// A host with one `plugin` destination per (name, tap, settings), sent `batch` once.
async fn host_with(
    plugin: &str,
    dests: &[(&str, &Tap, String)],
    batch: &Value,
) -> (tempfile::TempDir, TestHost) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = String::new();
    for (name, tap, settings) in dests {
        config += &format!(
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
        );
    }
    let host = TestHost::start(dir.path(), &config).await;
    assert_eq!(host.send("batch", batch).await.status(), 200);
    (dir, host)
}

/// Poll the admin row of `name` (every 50 ms, at most 60 s) until it shows `delivered`
/// and `dead` dead letters.
async fn settled(host: &TestHost, name: &str, delivered: u64, dead: u64) -> Value {
    let what = format!("{delivered} delivered, {dead} dead letters");
    host.admin()
        .wait(
            Row::Destination(name),
            &what,
            Duration::from_secs(60),
            |r| r["delivered"] == delivered && r["dead_letters"] == dead,
        )
        .await
}

/// Assert the dead letters of `name`: exactly the `messageId`s that are keys of `want`,
/// each with a reason that starts with its value.
async fn assert_dead(host: &TestHost, name: &str, want: Value) {
    let list = host.admin().dead_letters(name).await;
    let want = want.as_object().unwrap();
    assert_eq!(list.len(), want.len(), "{name}: {list:#?}");
    for d in &list {
        let id = d["messageId"].as_str().unwrap();
        let reason = d["reason"].as_str().unwrap();
        let prefix = want.get(id).and_then(Value::as_str);
        let prefix = prefix.unwrap_or_else(|| panic!("{name}: {id} is dead: {reason}"));
        assert!(
            reason.starts_with(prefix),
            "{name}: {id}: {reason:?}, not {prefix:?}"
        );
    }
}

/// `{id: reason}` for each of `ids`.
fn each(ids: &[&str], reason: &str) -> Value {
    let map = ids.iter().map(|id| (id.to_string(), json!(reason)));
    Value::Object(map.collect())
}

/// `a` with the keys of `b` added.
fn merged(mut a: Value, b: Value) -> Value {
    let b = b.as_object().unwrap().clone();
    a.as_object_mut().unwrap().extend(b);
    a
}

/// The `messageId`s of a batch, in order.
fn ids_of(batch: &Value) -> Vec<&str> {
    let items = batch["batch"].as_array().unwrap();
    items
        .iter()
        .map(|e| e["messageId"].as_str().unwrap())
        .collect()
}

// ---- requests ----

fn body(r: &Received) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

/// Assert a request's path and query, and these headers (`None`: absent).
fn assert_request(r: &Received, uri: &str, headers: &[(&str, Option<&str>)]) {
    assert_eq!(r.uri, uri);
    for (name, want) in headers {
        let got = r.headers.get(*name).map(|v| v.to_str().unwrap());
        assert_eq!(got, *want, "{uri}: header {name}");
    }
}

/// Assert that `actual` has `expected`'s shape: each key of an expected object with its
/// value (recursively; `null` means the key is absent), arrays of the same length element
/// by element, any other value equal.
fn assert_shape(at: &str, actual: &Value, expected: &Value) {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => {
            for (k, want) in e {
                let got = a.get(k).unwrap_or(&Value::Null);
                assert_shape(&format!("{at}.{k}"), got, want);
            }
        }
        (Value::Array(a), Value::Array(e)) => {
            assert_eq!(a.len(), e.len(), "{at}: {actual}");
            for (i, (got, want)) in a.iter().zip(e).enumerate() {
                assert_shape(&format!("{at}[{i}]"), got, want);
            }
        }
        _ => assert_eq!(actual, expected, "{at}"),
    }
}

fn basic(user: &str, password: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}

/// The first of `got` was answered 429, and the next came at least ~1 s later.
fn assert_hint_respected(got: &[Received]) {
    assert_eq!(got[0].status, 429, "the first request was throttled");
    let gap = got[1].at.duration_since(got[0].at);
    assert!(
        gap >= Duration::from_millis(990),
        "Retry-After: 1 honoured ({gap:?})"
    );
}

fn ms(time: &Value) -> i64 {
    let text = time.as_str().unwrap();
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap()
        .timestamp_millis()
}

/// Event times: T0 and T0 + 1 s.
const T0: &str = "2024-05-01T12:00:00.123Z";
const T0_MS: i64 = 1_714_564_800_123;
const T1: &str = "2024-05-01T12:00:01.123Z";
const UUID: &str = "0b8a5f4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b";
const JSON: Option<&str> = Some("application/json");

// ---- mixpanel ----

const MP_IMPORTED: &str = r#"{"code":200,"num_records_imported":2,"status":"OK"}"#;
const MP_ENGAGED: &str = r#"{"status":1,"error":null}"#;
const MP_429: &str = r#"{"code":429,"error":"Project exceeded rate limits. Please retry the request with exponential backoff.","status":"Failed"}"#;
/// strict=1: record 1 failed validation, the others were imported.
const MP_400: &str = r#"{"code":400,"error":"some data points in the request failed validation","failed_records":[{"index":1,"$insert_id":"x","field":"properties.$current_url","message":"'properties.$current_url' is invalid: must be a string"}],"num_records_imported":1,"status":"Bad Request"}"#;
const MP_ENGAGE_REFUSED: &str = r#"{"status":0,"error":"$token is not a valid project token"}"#;
const MP_401: &str = r#"{"code":401,"error":"Invalid credentials","status":"error"}"#;
const MP_LONG_ID: &str = "ajs-next-1714564800123-6f1c2e9a-77aa-4e0b-bb8e-2f0c7d3a5b11";

#[tokio::test]
async fn mixpanel_speaks_the_import_and_engage_apis() {
    let token = "0123456789abcdef0123456789abcdef";
    // One call sends /import (track, page) first, then /engage (identify).
    let (imported, engaged) = (reply(200, MP_IMPORTED), reply(200, MP_ENGAGED));
    let retry = |first: Reply| vec![first, engaged.clone(), imported.clone()];
    let ok = Tap::start(vec![imported.clone(), engaged.clone()], reply(500, "")).await;
    let throttled = Tap::start(retry(throttle(MP_429)), reply(500, "")).await;
    let server_error = Tap::start(retry(reply(503, "Service Unavailable")), reply(500, "")).await;
    let refused = vec![reply(400, MP_400), reply(200, MP_ENGAGE_REFUSED)];
    let rejecting = Tap::start(refused, reply(500, "")).await;
    let bad_key = Tap::start(vec![reply(401, MP_401), engaged.clone()], reply(500, "")).await;
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
         "event": "Order Completed", "properties": {"orderId": "o-42", "revenue": 19.99}, "timestamp": T0,
         "context": {"ip": "203.0.113.7", "page": {"url": "https://example.com/checkout", "referrer": "https://example.com/cart"}}},
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
    let unsupported = json!({
        "mp-group": "mixpanel destination does not support group calls",
        "mp-alias": "mixpanel destination does not support alias calls"
    });

    // ok: track and page in one /import request (service account), identify in /engage.
    settled(&host, "ok", 3, 2).await;
    assert_dead(&host, "ok", unsupported.clone()).await;
    ok.assert_methods("POST");
    let (imports, engages) = (ok.requests("/import"), ok.requests("/engage"));
    assert_eq!((imports.len(), engages.len()), (1, 1));
    let sa = basic("sa.1a2b3c.mp-service-account", "sa-secret");
    let sa_auth = [("authorization", Some(sa.as_str())), ("content-type", JSON)];
    assert_request(&imports[0], "/import?strict=1&project_id=3141592", &sa_auth);
    let hashed = hex::encode(&Sha256::digest(MP_LONG_ID.as_bytes())[..16]);
    let records = json!([
        {"event": "Order Completed", "properties": {
            "time": T0_MS, "distinct_id": "user-1", "$insert_id": UUID, "$user_id": "user-1",
            "$device_id": "anon-7", "token": token, "mp_lib": "switchyard", "ip": "203.0.113.7",
            "$current_url": "https://example.com/checkout", "$referrer": "https://example.com/cart",
            "orderId": "o-42", "revenue": 19.99}},
        {"event": "Viewed Docs Pricing Page", "properties": {
            "time": T0_MS + 1000, "distinct_id": "$device:anon-7", "$insert_id": hashed,
            "$user_id": null, "$device_id": "anon-7", "$current_url": "https://example.com/pricing"}}
    ]);
    assert_shape("import", &body(&imports[0]), &records);
    let no_auth = [("authorization", None), ("content-type", JSON)];
    assert_request(&engages[0], "/engage?verbose=1", &no_auth);
    let profile = json!([{"$token": token, "$distinct_id": "user-1", "$ip": "203.0.113.7",
        "$set": {"$email": "jane@example.com", "$first_name": "Jane", "plan": "pro"}}]);
    assert_eq!(body(&engages[0]), profile);

    // throttled (API secret auth): the import is sent again after Retry-After.
    let r = settled(&host, "throttled", 3, 2).await;
    assert!(r["retried"].as_u64() >= Some(2), "{r}");
    let imports = throttled.requests("/import");
    let secret = basic("proj-secret", "");
    let secret_auth = [("authorization", Some(secret.as_str()))];
    assert_request(&imports[1], "/import?strict=1", &secret_auth);
    assert_hint_respected(&imports);
    throttled.assert_count("/import", 2);

    settled(&host, "server_error", 3, 2).await;
    server_error.assert_count("/import", 2);

    // rejecting: only the record listed in failed_records and the refused profile update.
    settled(&host, "rejecting", 1, 4).await;
    let refused = json!({
        MP_LONG_ID: "mixpanel refused the event: 'properties.$current_url' is invalid: must be a string",
        "mp-identify": "mixpanel refused the profile update: $token is not a valid project token"
    });
    assert_dead(&host, "rejecting", merged(refused, unsupported.clone())).await;
    rejecting.assert_count("/import", 1);

    // bad_key: a 401 rejects the imports, without a retry.
    settled(&host, "bad_key", 1, 4).await;
    let bad = each(&[UUID, MP_LONG_ID], "mixpanel answered 401: {\"code\":401");
    assert_dead(&host, "bad_key", merged(bad, unsupported)).await;
    bad_key.assert_count("/import", 1);
    host.stop().await;
}

// ---- ga4 ----

const GA_429: &str = r#"{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED"}}"#;
const GA_400: &str = r#"{"error":{"code":400,"message":"Invalid JSON payload received.","status":"INVALID_ARGUMENT"}}"#;

#[tokio::test]
async fn ga4_speaks_the_measurement_protocol() {
    let collected = || reply(204, "");
    let ok = Tap::start(vec![], collected()).await;
    let throttled = Tap::start(vec![throttle(GA_429)], collected()).await;
    let server_error = Tap::start(vec![reply(500, "Internal Server Error")], collected()).await;
    let rejecting = Tap::start(vec![], reply(400, GA_400)).await;
    let settings = |tap: &Tap| {
        format!(
            r#"{{ measurement_id = "G-ABCDEF1234", api_secret = "mp-secret-XYZ", endpoint = "{}" }}"#,
            tap.origin()
        )
    };
    let web = json!({"ip": "203.0.113.7", "userAgent": "Mozilla/5.0", "page": {"referrer": "https://www.google.com/"}});
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
    let unsupported = json!({
        "ga-identify": "identify calls are not sent: the Measurement Protocol has no identify call (user_id travels with each event)",
        "ga-screen": "screen calls are not sent: GA4 allows screen_view only for app streams",
        "ga-group": "group calls are not sent: GA4 has no group call",
        "ga-alias": "alias calls are not sent: GA4 has no alias call"
    });

    // ok: one request per client, in order of first appearance.
    settled(&host, "ok", 3, 4).await;
    assert_dead(&host, "ok", unsupported.clone()).await;
    ok.assert_methods("POST");
    let got = ok.requests("/");
    assert_eq!(got.len(), 2, "two clients, two requests");
    let url = "/mp/collect?measurement_id=G-ABCDEF1234&api_secret=mp-secret-XYZ";
    for r in &got {
        assert_request(r, url, &[("content-type", JSON), ("authorization", None)]);
    }
    let first = json!({
        "client_id": "1234567.7654321", "user_id": "user-1", "timestamp_micros": T0_MS * 1000,
        "ip_override": "203.0.113.7", "user_agent": "Mozilla/5.0",
        "events": [
            {"name": "page_view", "timestamp_micros": T0_MS * 1000, "params": {
                "engagement_time_msec": 1, "page_location": "https://example.com/pricing",
                "page_title": "Pricing", "page_referrer": "https://www.google.com/", "path": "/pricing"}},
            {"name": "purchase", "timestamp_micros": (T0_MS + 1000) * 1000, "params": {
                "engagement_time_msec": 1, "transaction_id": "o-42", "value": 19.98, "currency": "EUR",
                "coupon": "SPRING", "items": [{"item_id": "p-1", "item_name": "Blue Tee",
                "item_category": "Shirts", "price": 9.99, "quantity": 2}]}}
        ]
    });
    assert_eq!(body(&got[0]), first);
    // Sent without a context.ip: ingest adds the sender's address, as Segment's API does.
    let second = json!({"client_id": "user-2", "user_id": "user-2", "ip_override": "127.0.0.1",
        "events": [{"name": "video_played", "params": {
            "engagement_time_msec": 1, "session_id": 1714564800, "video_id": "v-9", "full_screen": "true"}}]});
    assert_shape("second", &body(&got[1]), &second);
    let micros = body(&got[1])["timestamp_micros"].as_i64().unwrap();
    assert!(micros >= started_ms * 1000, "no timestamp: now ({micros})");

    // throttled: the first client's request got the 429, and comes again after 1 s.
    settled(&host, "throttled", 3, 4).await;
    let of_client = |c: &str| -> Vec<Received> {
        let got = throttled.requests("/mp/collect");
        got.into_iter()
            .filter(|r| body(r)["client_id"] == c)
            .collect()
    };
    assert_hint_respected(&of_client("1234567.7654321"));
    assert_eq!(
        of_client("user-2").len(),
        1,
        "the other client went through at once"
    );

    settled(&host, "server_error", 3, 4).await;
    server_error.assert_count("/mp/collect", 3);

    settled(&host, "rejecting", 0, 7).await;
    let refused = each(
        &["ga-page", "ga-purchase", "ga-video"],
        "ga4 answered 400: ",
    );
    assert_dead(&host, "rejecting", merged(refused, unsupported)).await;
    rejecting.assert_count("/mp/collect", 2);
    host.stop().await;
}

// ---- posthog ----

const PH_429: &str =
    r#"{"type":"validation_error","code":"rate_limited","detail":"Rate limit exceeded"}"#;
const PH_401: &str = r#"{"type":"authentication_error","code":"invalid_api_key","detail":"Project API key invalid. You can find your project API key in PostHog project settings.","attr":null}"#;

#[tokio::test]
async fn posthog_speaks_the_batch_capture_api() {
    let captured = || reply(200, r#"{"status":1}"#);
    let ok = Tap::start(vec![], captured()).await;
    let throttled = Tap::start(vec![throttle(PH_429)], captured()).await;
    let server_error = Tap::start(vec![reply(503, "upstream unavailable")], captured()).await;
    let rejecting = Tap::start(vec![], reply(401, PH_401)).await;
    let settings = |tap: &Tap, extra: &str| {
        format!(
            r#"{{ api_key = "phc_test", endpoint = "{}"{extra} }}"#,
            tap.origin()
        )
    };
    let page_id = "ajs-next-1714564800123-pricing";
    let batch = json!({"batch": [
        {"type": "track", "messageId": UUID, "userId": "user-1", "event": "Order Completed",
         "properties": {"orderId": "o-42", "revenue": 19.99}, "context": {"ip": "203.0.113.7"}, "timestamp": T0},
        {"type": "identify", "messageId": "ph-identify", "userId": "user-1", "anonymousId": "anon-7",
         "traits": {"email": "jane@example.com", "plan": "pro"}},
        {"type": "page", "messageId": page_id, "anonymousId": "anon-7", "name": "Pricing",
         "properties": {"url": "https://example.com/pricing", "path": "/pricing"},
         "context": {"page": {"referrer": "https://www.google.com/"}}},
        {"type": "screen", "messageId": "ph-screen", "userId": "user-2", "name": "Checkout"},
        {"type": "group", "messageId": "ph-group", "userId": "user-1", "groupId": "acme-inc",
         "traits": {"name": "Acme Inc", "employees": 120}},
        {"type": "alias", "messageId": "ph-alias", "userId": "user-1", "previousId": "anon-7"}
    ]});
    let historical = settings(&throttled, ", historical_migration = true");
    let dests = [
        ("ok", &ok, settings(&ok, "")),
        ("throttled", &throttled, historical),
        ("server_error", &server_error, settings(&server_error, "")),
        ("rejecting", &rejecting, settings(&rejecting, "")),
    ];
    let (_dir, host) = host_with("posthog", &dests, &batch).await;

    // ok: every call type, in one POST /batch/.
    settled(&host, "ok", 6, 0).await;
    ok.assert_methods("POST");
    ok.assert_count("/", 1);
    let got = ok.requests("/");
    assert_request(
        &got[0],
        "/batch/",
        &[("content-type", JSON), ("authorization", None)],
    );
    let expected = json!({"api_key": "phc_test", "historical_migration": false, "batch": [
        {"event": "Order Completed", "distinct_id": "user-1", "timestamp": T0, "uuid": UUID,
         "properties": {"orderId": "o-42", "revenue": 19.99, "$ip": "203.0.113.7"}},
        {"event": "$identify", "distinct_id": "user-1", "uuid": null, "properties": {
            "$set": {"email": "jane@example.com", "plan": "pro"}, "$anon_distinct_id": "anon-7"}},
        {"event": "$pageview", "distinct_id": "anon-7", "uuid": null, "properties": {
            "$current_url": "https://example.com/pricing", "$pathname": "/pricing",
            "$referrer": "https://www.google.com/", "title": "Pricing"}},
        {"event": "$screen", "distinct_id": "user-2", "properties": {"$screen_name": "Checkout"}},
        {"event": "$groupidentify", "distinct_id": "user-1", "properties": {"$group_type": "company",
            "$group_key": "acme-inc", "$group_set": {"name": "Acme Inc", "employees": 120}}},
        {"event": "$create_alias", "distinct_id": "anon-7", "properties": {"alias": "user-1"}}
    ]});
    let b = body(&got[0]);
    assert_shape("body", &b, &expected);
    for e in b["batch"].as_array().unwrap() {
        assert_eq!(e["properties"]["$lib"], "switchyard");
        assert!(e["properties"]["$lib_version"].is_string(), "{e}");
    }

    let r = settled(&host, "throttled", 6, 0).await;
    assert!(r["retried"].as_u64() >= Some(6), "{r}");
    let got = throttled.requests("/batch/");
    assert_eq!(body(&got[1])["historical_migration"], true);
    assert_hint_respected(&got);

    settled(&host, "server_error", 6, 0).await;
    server_error.assert_count("/batch/", 2);

    settled(&host, "rejecting", 0, 6).await;
    let why = "posthog answered 401: {\"type\":\"authentication_error\"";
    assert_dead(&host, "rejecting", each(&ids_of(&batch), why)).await;
    rejecting.assert_count("/", 1);
    host.stop().await;
}

// ---- segment ----

const SG_OK: &str = r#"{"success":true}"#;
const SG_400: &str = r#"{"success":false,"message":"invalid event"}"#;

#[tokio::test]
async fn segment_forwards_to_a_tracking_api() {
    let ok = Tap::start(vec![], reply(200, SG_OK)).await;
    let throttled = Tap::start(vec![throttle("Too Many Requests")], reply(200, SG_OK)).await;
    let server_error =
        Tap::start(vec![reply(500, "Internal Server Error")], reply(200, SG_OK)).await;
    // A 400 for the batch, then one answer per event sent alone: the second is refused.
    let one_bad = vec![reply(400, SG_400), reply(200, SG_OK), reply(400, SG_400)];
    let rejecting = Tap::start(one_bad, reply(200, SG_OK)).await;
    let key_error = reply(401, r#"{"success":false,"message":"invalid write key"}"#);
    let bad_key = Tap::start(vec![], key_error).await;
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
    let ids = ids_of(&batch);
    let dests = [
        ("ok", &ok, settings(&ok)),
        ("throttled", &throttled, settings(&throttled)),
        ("server_error", &server_error, settings(&server_error)),
        ("rejecting", &rejecting, settings(&rejecting)),
        ("bad_key", &bad_key, settings(&bad_key)),
    ];
    let (_dir, host) = host_with("segment", &dests, &batch).await;
    let sent_ms = chrono::Utc::now().timestamp_millis();

    // ok: one request; each event as received, without this hop's times.
    settled(&host, "ok", 5, 0).await;
    ok.assert_methods("POST");
    ok.assert_count("/", 1);
    let got = ok.requests("/");
    let auth = basic("wk_web", "");
    let basic_auth = ("authorization", Some(auth.as_str()));
    assert_request(&got[0], "/v1/batch", &[basic_auth, ("content-type", JSON)]);
    let b = body(&got[0]);
    let sent_at = ms(&b["sentAt"]);
    let later = chrono::Utc::now().timestamp_millis();
    let now_ms = now.timestamp_millis();
    assert!((now_ms..=later).contains(&sent_at), "sentAt is now: {b}");
    let e = &b["batch"];
    assert_eq!(e.as_array().unwrap().len(), ids.len());
    for (i, id) in ids.iter().enumerate() {
        let hop = json!({"messageId": id, "receivedAt": null, "sentAt": null, "originalTimestamp": null,
                         "writeKey": null, "context": {"library": {"name": "analytics-node"}}});
        assert_shape(id, &e[i], &hop);
    }
    let kept = json!([
        {"type": "track", "userId": "user-1", "event": "Order Completed", "properties": {"orderId": "o-42", "revenue": 19.99}},
        {"type": "identify", "traits": {"email": "jane@example.com", "plan": "pro"}},
        {"type": "page", "integrations": {"All": true, "Mixpanel": false}},
        {"type": "group", "groupId": "acme-inc"},
        {"type": "alias", "previousId": "anon-7"}
    ]);
    assert_shape("batch", e, &kept);
    // The corrected time (receivedAt − (sentAt − timestamp)): 5 s before the host got it.
    let ts = ms(&e[0]["timestamp"]);
    let range = now_ms - 5001..=sent_ms - 4999;
    assert!(range.contains(&ts), "{ts} in {range:?}");

    settled(&host, "throttled", 5, 0).await;
    assert_hint_respected(&throttled.requests("/v1/batch"));

    settled(&host, "server_error", 5, 0).await;
    server_error.assert_count("/v1/batch", 2);

    // rejecting: after the batch's 400, each event alone; only the refused one is dead.
    settled(&host, "rejecting", 4, 1).await;
    rejecting.assert_count("/v1/batch", 6);
    let got = rejecting.requests("/v1/batch");
    let alone: Vec<Value> = got[1..].iter().map(|r| body(r)["batch"].clone()).collect();
    let one_each: Vec<Value> = ids.iter().map(|id| json!([{"messageId": id}])).collect();
    assert_shape("alone", &Value::Array(alone), &Value::Array(one_each));
    let why = format!("segment answered 400: {SG_400}");
    assert_dead(&host, "rejecting", json!({"sg-identify": why})).await;

    settled(&host, "bad_key", 0, 5).await;
    assert_dead(&host, "bad_key", each(&ids, "segment answered 401: ")).await;
    bad_key.assert_count("/v1/batch", 1);
    host.stop().await;
}

// ---- http ----

#[tokio::test]
async fn http_sends_batches_or_templated_events() {
    let ok = Tap::start(vec![], reply(200, "")).await;
    let per_event = Tap::start(vec![], reply(201, "")).await;
    let throttled = Tap::start(vec![throttle("slow down")], reply(200, "")).await;
    // One request per event: the first one fails with a 503, the others go through.
    let server_error = Tap::start(vec![reply(503, "busy")], reply(200, "")).await;
    let rejecting = Tap::start(vec![], reply(422, r#"{"error":"schema mismatch"}"#)).await;
    let url = |tap: &Tap| format!("{}/v2/events", tap.origin());
    let batch_mode = |tap: &Tap| {
        let headers = r#"{ Authorization = "Bearer t0k", X-Source = "switchyard" }"#;
        format!(r#"{{ url = "{}", headers = {headers} }}"#, url(tap))
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
    let ids = ids_of(&batch);
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
    ok.assert_count("/", 1);
    let got = ok.requests("/");
    let bearer = ("authorization", Some("Bearer t0k"));
    let headers = [
        ("content-type", JSON),
        bearer,
        ("x-source", Some("switchyard")),
    ];
    assert_request(&got[0], "/v2/events", &headers);
    assert_eq!(ok.rx.delivered_ids(), ids);
    let stored = body(&got[0]);
    for e in stored.as_array().unwrap() {
        assert!(e["receivedAt"].is_string(), "as the host stored it: {e}");
    }
    let track = json!({"type": "track", "userId": "user-1", "properties": {"orderId": "o-42", "revenue": 19.99}});
    assert_shape("track", &stored[0], &track);

    // per_event: one PUT per event, the template filled in, Content-Type overridden.
    settled(&host, "per_event", 3, 0).await;
    per_event.assert_methods("PUT");
    per_event.assert_count("/v2/events", 3);
    let kind = ("content-type", Some("application/vnd.collector+json"));
    let users = ["user-1", "user \"quoted\"", ""]; // JSON-escaped; empty when anonymous
    for (i, r) in per_event.requests("/").iter().enumerate() {
        assert_request(r, "/v2/events", &[kind]);
        let want = json!({"id": ids[i], "kind": stored[i]["type"], "user": users[i], "payload": stored[i]});
        assert_eq!(body(r), want, "request {i}");
    }

    settled(&host, "throttled", 3, 0).await;
    assert_hint_respected(&throttled.requests("/v2/events"));

    // server_error (one request per event): only the event that failed is sent again.
    let r = settled(&host, "server_error", 3, 0).await;
    assert_eq!(r["retried"], 1, "{r}");
    let got = server_error.requests("/v2/events");
    let sent: Vec<Value> = got.iter().map(|r| body(r)["messageId"].clone()).collect();
    assert_eq!(sent, [UUID, "http-identify", "http-page", UUID]);
    assert_eq!(got[0].status, 503);

    settled(&host, "rejecting", 0, 3).await;
    let why = r#"receiver answered 422: {"error":"schema mismatch"}"#;
    assert_dead(&host, "rejecting", each(&ids, why)).await;
    rejecting.assert_count("/v2/events", 1);
    host.stop().await;
}
