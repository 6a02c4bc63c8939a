//! Hardening, round 3: what a review that read the code as an attacker found,
//! each case end to end through a real host (and a real `nats-server` where
//! the NATS path is the point). The README's "Guarantees and how they are
//! tested" names these tests.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use switchyard_e2e::host::{config_text, config_text_nats, ADMIN_TOKEN, WRITE_KEY};
use switchyard_e2e::nats::NatsServer;
use switchyard_e2e::{eventually, test_guest, webhook_destination, Receiver, TestHost};

/// Every messageId that reached `rx` under `path` answered 2xx, with how many times.
fn counts(rx: &Receiver, path: &str) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for r in rx.received() {
        if r.uri.starts_with(path) && (200..300).contains(&r.status) {
            for id in switchyard_e2e::receiver::ids_in(&r.body) {
                *seen.entry(id).or_insert(0) += 1;
            }
        }
    }
    seen
}

/// Wait (at most 60 s) until every id in `want` reached `rx` under `path`;
/// then, `settle` later (for anything misrouted or repeated to arrive too),
/// nothing else arrived there and nothing twice.
async fn each_once(rx: &Receiver, path: &str, want: &[String], settle: Duration) {
    eventually(Duration::from_secs(60), "every event", || {
        let got = counts(rx, path);
        want.iter().all(|id| got.contains_key(id)).then_some(())
    })
    .await;
    tokio::time::sleep(settle).await;
    let got = counts(rx, path);
    assert_eq!(got.len(), want.len(), "something else reached {path}");
    assert!(got.values().all(|n| *n == 1), "delivered twice: {got:?}");
}

/// POST `body` to `/v1/{kind}` of `host`: status and JSON answer.
async fn send(host: &TestHost, kind: &str, body: &Value) -> (u16, Value) {
    let resp = host.send(kind, body).await;
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Each payload of the issue, from a (public) write key, under load on a real
/// `nats-server`: refused, and every other event delivered once, where its
/// filters send it.
#[tokio::test]
async fn header_injection_through_ids_is_refused_and_nothing_is_misrouted_or_lost() {
    let server = NatsServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let destinations = format!(
        "{}{}",
        webhook_destination("hooks", &rx, ""),
        webhook_destination(
            "billing",
            &rx,
            "[destinations.filter]\ntypes = [\"identify\"]"
        ),
    );
    let host = TestHost::start_config(
        dir.path(),
        &config_text_nats(dir.path(), &destinations, &server.url()),
    )
    .await;
    // The id a forged Nats-Msg-Id would have made a duplicate of.
    let victim = "later-victim";
    let payloads = [
        json!({"type": "track", "event": "E", "userId": "u\nx"}),
        json!({"type": "track", "event": "E", "userId": "u\r\nSwitchyard-Only: billing"}),
        json!({"type": "track", "event": "E", "userId": "u\r\nSwitchyard-Received-At: 0"}),
        json!({"type": "track", "event": "E", "userId": format!("u\r\nNats-Msg-Id: test/{victim}")}),
        json!({"type": "track", "event": "E", "anonymousId": "a\r\nSwitchyard-Only: billing"}),
        json!({"type": "track", "event": "E", "userId": "u", "messageId": "m\r\nSwitchyard-Only: billing"}),
    ];
    // A single call is refused whole, with a JSON reason.
    for p in &payloads {
        let (status, body) = send(&host, "track", p).await;
        assert_eq!(status, 400, "{p}: {body}");
        assert!(body.to_string().contains("control characters"), "{body}");
    }
    // Under load: batches of good events with every payload among them.
    let mut good = Vec::new();
    let mut sends = Vec::new();
    for b in 0..20 {
        let mut items: Vec<Value> = (0..25)
            .map(|i| {
                let id = format!("good-{b}-{i}");
                good.push(id.clone());
                json!({"type": "track", "event": "E", "userId": format!("user-{i}"), "messageId": id})
            })
            .collect();
        items.extend(payloads.iter().cloned());
        let host = &host;
        sends.push(async move { send(host, "batch", &json!({"batch": items})).await });
    }
    for (status, body) in futures::future::join_all(sends).await {
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["rejected"].as_array().map(Vec::len),
            Some(payloads.len()),
            "{body}"
        );
    }
    let (status, _) = send(
        &host,
        "track",
        &json!({"event": "E", "userId": "u", "messageId": victim}),
    )
    .await;
    assert_eq!(status, 200);
    good.push(victim.to_string());

    each_once(&rx, "/hooks", &good, Duration::from_secs(2)).await;
    assert!(
        counts(&rx, "/billing").is_empty(),
        "a track event reached billing"
    );
    for d in ["hooks", "billing"] {
        assert!(
            host.admin().dead_letters(d).await.is_empty(),
            "{d} dead-lettered"
        );
    }
    host.stop().await;
}

/// A standing defence, on both stores: every control character, and a lone
/// UTF-16 surrogate, in every id and string field. Ids with one are refused
/// (a rejected item), other fields keep them; what was accepted arrives once,
/// exactly as sent, and only where its filter sends it.
#[tokio::test]
async fn every_control_character_in_every_field_is_refused_or_kept_exactly_on_both_stores() {
    let server = NatsServer::start().await;
    for nats in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let rx = Receiver::start().await;
        let destinations = format!(
            "{}{}",
            webhook_destination("all", &rx, ""),
            webhook_destination(
                "named",
                &rx,
                "[destinations.filter]\nevents = [\"Order Completed\"]"
            ),
        );
        let config = if nats {
            config_text_nats(dir.path(), &destinations, &server.url())
        } else {
            config_text(dir.path(), &destinations)
        };
        let host = TestHost::start_config(dir.path(), &config).await;
        let controls: Vec<char> = (0u32..0x20)
            .chain([0x7f])
            .chain(0x80..0xa0)
            .filter_map(char::from_u32)
            .collect();
        let ids = [
            "userId",
            "anonymousId",
            "messageId",
            "groupId",
            "previousId",
        ];
        let texts = ["event", "name", "properties", "traits", "context"];
        let mut accepted = Vec::new();
        let mut expected_named = Vec::new();
        for (f, field) in ids.iter().chain(texts.iter()).enumerate() {
            let items: Vec<Value> = controls
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let bad = format!("x{c}y");
                    let id = format!("{}-{f}-{i}", if nats { "n" } else { "e" });
                    let mut item = json!({"type": "group", "event": "Order Completed",
                        "userId": "u", "groupId": "g", "messageId": id});
                    match *field {
                        "properties" | "traits" | "context" => {
                            item[field] = json!({"k": bad.clone()})
                        }
                        "event" => {
                            item["type"] = json!("track");
                            item["event"] = json!(bad.clone());
                        }
                        other => item[other] = json!(bad.clone()),
                    }
                    if *field == "previousId" {
                        item["type"] = json!("alias");
                    }
                    item
                })
                .collect();
            let (status, body) = send(&host, "batch", &json!({"batch": items})).await;
            assert_eq!(
                status,
                if ids.contains(field) { 400 } else { 200 },
                "{field}: {body}"
            );
            if !ids.contains(field) {
                assert!(body.get("rejected").is_none(), "{field}: {body}");
                for item in &items {
                    let id = item["messageId"].as_str().unwrap().to_string();
                    // The filter names track events; the other types pass it.
                    if item["type"] != "track" || item["event"] == "Order Completed" {
                        expected_named.push(id.clone());
                    }
                    accepted.push((id, item.clone()));
                }
            } else {
                assert!(body.to_string().contains("control characters"), "{body}");
            }
        }
        // A lone surrogate is not JSON text: the request is refused whole, clearly.
        let resp = host
            .http
            .post(host.url("/v1/track"))
            .basic_auth(WRITE_KEY, Some(""))
            .header("content-type", "application/json")
            .body(r#"{"userId":"u\ud800","event":"E","messageId":"surrogate"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        assert!(resp.json::<Value>().await.is_ok());

        let want: Vec<String> = accepted.iter().map(|(id, _)| id.clone()).collect();
        each_once(&rx, "/all", &want, Duration::from_millis(500)).await;
        // Kept exactly: the fields arrive as sent.
        for (id, sent) in &accepted {
            let got = rx.event(id).unwrap();
            for field in texts {
                if let Some(v) = sent.get(field) {
                    assert_eq!(
                        got.get(field).and_then(|g| if v.is_object() {
                            g.get("k")
                        } else {
                            Some(g)
                        }),
                        if v.is_object() { v.get("k") } else { Some(v) },
                        "{id} {field}"
                    );
                }
            }
        }
        let mut named: Vec<String> = counts(&rx, "/named").into_keys().collect();
        named.sort();
        expected_named.sort();
        assert_eq!(
            named, expected_named,
            "nats={nats}: the filter on event names"
        );
        host.stop().await;
    }
}

/// What a guest may not choose: the `Host` its request names, and its framing.
#[tokio::test]
async fn a_guest_that_sets_host_or_framing_headers_is_denied_and_reaches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let mut destinations = String::new();
    for (name, header, value) in [
        ("host", "Host", "attacker.example"),
        ("te", "Transfer-Encoding", "chunked"),
    ] {
        destinations.push_str(&format!(
            r#"
[[destinations]]
name = "{name}"
plugin = "misbehave"
allowed_hosts = ["{origin}"]
settings = {{ mode = "fetch", url = "{url}", body = "{{}}", headers = [["{header}", "{value}"]] }}
retry = {{ initial_ms = 20, max_ms = 100, window = "1m" }}
"#,
            origin = rx.origin(),
            url = rx.url(&format!("/{name}")),
        ));
    }
    let host = TestHost::start(dir.path(), &destinations).await;
    let body = json!({"userId": "u", "event": "E", "messageId": "m1"});
    assert_eq!(host.send("track", &body).await.status(), 200);
    for (name, header) in [("host", "host"), ("te", "transfer-encoding")] {
        let dead = dead_letters(&host, name, Duration::from_secs(20)).await;
        let reason = dead[0]["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains("denied") && reason.contains(header),
            "{name}: {reason}"
        );
    }
    assert!(rx.received().is_empty(), "a request went out");
    host.stop().await;
}

/// Wait (at most `timeout`) until `destination` has a dead letter; all of them.
async fn dead_letters(host: &TestHost, destination: &str, timeout: Duration) -> Vec<Value> {
    let start = std::time::Instant::now();
    loop {
        let dead = host.admin().dead_letters(destination).await;
        if !dead.is_empty() {
            return dead;
        }
        assert!(
            start.elapsed() < timeout,
            "no dead letter of {destination} within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A credential-named setting in a request body is hidden in the delivery
/// debugger, as recordings and shadows hide it.
#[tokio::test]
async fn the_delivery_debugger_hides_credential_settings_in_request_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let key = "k-live-5f3a9c0e1d2b";
    let destinations = format!(
        r#"
[[destinations]]
name = "leaky"
plugin = "misbehave"
allowed_hosts = ["{origin}"]
settings = {{ mode = "fetch", url = "{url}", api_key = "{key}", body = '{{"api_key":"{key}","n":1}}' }}
"#,
        origin = rx.origin(),
        url = rx.url("/leaky"),
    );
    let host = TestHost::start(dir.path(), &destinations).await;
    let body = json!({"userId": "u", "event": "E", "messageId": "m1"});
    assert_eq!(host.send("track", &body).await.status(), 200);
    eventually(
        Duration::from_secs(20),
        "the request at the receiver",
        || (!rx.received().is_empty()).then_some(()),
    )
    .await;
    let admin = host.admin();
    let mut shown = Value::Null;
    for _ in 0..100 {
        shown = admin.get("/admin/destinations/leaky/attempts").await;
        if shown.to_string().contains("\\\"n\\\":1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = shown.to_string();
    assert!(text.contains("\\\"n\\\":1"), "the body is shown: {text}");
    assert!(!text.contains(key), "the key is shown: {text}");
    // The vendor got it, as the guest sent it.
    assert!(String::from_utf8_lossy(&rx.received()[0].body).contains(key));
    host.stop().await;
}

/// A request to the admin API, the status page or `/metrics` that names a
/// host this one is not is refused (DNS rebinding); an IP, `localhost` and
/// `[server] admin_hosts` are served. `/readyz` says what failed only to the
/// token. The settings document may not be kept by a shared cache.
#[tokio::test]
async fn admin_routes_refuse_a_rebound_host_name_and_readyz_keeps_details_for_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::write(plugins.join("garbage.wasm"), b"not a component").unwrap();
    let broken = webhook_destination("broken", &rx, "")
        .replace("plugin = \"webhook\"", "plugin = \"garbage\"");
    let config = config_text(
        dir.path(),
        &format!("{}{broken}", webhook_destination("hooks", &rx, "")),
    )
    .replace(
        "[store]",
        "admin_hosts = [\"switchyard.corp.test\"]\n[store]",
    );
    let host = TestHost::start_config(dir.path(), &config).await;
    let get = |path: &str, host_header: &str| {
        host.http
            .get(host.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .header("host", host_header)
            .send()
    };
    for path in ["/admin/destinations", "/status/login", "/metrics"] {
        let refused = get(path, "attacker.example:8088").await.unwrap();
        assert_eq!(refused.status(), 421, "{path}");
        let body: Value = refused.json().await.unwrap();
        assert!(
            body["message"].as_str().unwrap().contains("admin_hosts"),
            "{body}"
        );
        for ok in ["127.0.0.1", "localhost:8088", "switchyard.corp.test"] {
            assert_eq!(get(path, ok).await.unwrap().status(), 200, "{path} {ok}");
        }
    }
    // Ingest is for anyone, under any name.
    let ingest = host
        .http
        .post(host.url("/v1/track"))
        .basic_auth(WRITE_KEY, Some(""))
        .header("host", "collect.example")
        .json(&json!({"userId": "u", "event": "E"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ingest.status(), 200);

    let open = host.http.get(host.url("/readyz")).send().await.unwrap();
    assert_eq!(open.status(), 503);
    let open = open.text().await.unwrap();
    assert!(
        open.contains("plugin") && !open.contains("garbage"),
        "{open}"
    );
    let (status, detailed) = host.admin().readyz().await;
    assert_eq!(status, 503);
    assert!(detailed.to_string().contains("garbage"), "{detailed}");

    let settings = host
        .http
        .get(host.url(&format!("/v1/projects/{WRITE_KEY}/settings")))
        .send()
        .await
        .unwrap();
    let cache = settings.headers()["cache-control"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cache.contains("no-store") && cache.contains("private"),
        "{cache}"
    );
    assert!(settings.headers()["vary"]
        .to_str()
        .unwrap()
        .contains("Host"));
    host.stop().await;
}

/// A client that connects from 127.0.0.`n` and does not follow redirects
/// (another address of loopback, as another machine would be).
fn browser_at(n: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, n]))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A slow body on a page route is cut at `request_timeout`; one address
/// cannot hold every connection (another still sends events); failed logins
/// are paced; the cookie is `Secure` only on a trusted proxy's word.
#[tokio::test]
async fn slow_bodies_one_address_and_wrong_logins_cannot_shut_others_out() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let config = config_text(dir.path(), &webhook_destination("hooks", &rx, "")).replace(
        "[store]",
        "request_timeout = \"1s\"\nmax_connections_per_ip = 4\ntrusted_proxies = [\"127.0.0.2\"]\n[store]",
    );
    let host = TestHost::start_config(dir.path(), &config).await;

    // A login form that never finishes its body: 408 after about a second.
    let mut slow = tokio::net::TcpStream::connect(host.addr).await.unwrap();
    slow.write_all(
        b"POST /status/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ntoken",
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let mut answer = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), slow.read(&mut answer))
        .await
        .expect("answered")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]).to_string();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(3));
    drop(slow);
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Kept-alive connections from 127.0.0.1 take its four slots (the test
    // client may hold one already); the next is closed at once.
    let mut held = Vec::new();
    let refused = loop {
        let mut c = tokio::net::TcpStream::connect(host.addr).await.unwrap();
        let _ = c
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await;
        let mut buf = [0u8; 256];
        let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
            .await
            .expect("answered or closed, not left hanging")
            .unwrap_or(0);
        if n == 0 {
            break held.len();
        }
        assert!(
            held.len() < 4,
            "more than four connections served from one address"
        );
        held.push(c);
    };
    assert!(refused >= 2, "refused after {refused} connections");
    // Another address is served meanwhile.
    let other = browser_at(3);
    let resp = other
        .post(host.url("/v1/track"))
        .basic_auth(WRITE_KEY, Some(""))
        .json(&json!({"userId": "u", "event": "E", "messageId": "from-elsewhere"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Five wrong tokens, then even the right one waits.
    let login = |client: &reqwest::Client, token: &str, proto: &str| {
        client
            .post(host.url("/status/login"))
            .header("x-forwarded-proto", proto)
            .form(&[("token", token)])
            .send()
    };
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for _ in 0..5 {
        let r = login(&browser, "wrong-token-0123456789", "http")
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = login(&browser, ADMIN_TOKEN, "http").await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));

    // From an address that is not a trusted proxy, X-Forwarded-Proto is not believed.
    let untrusted = browser_at(4);
    let r = login(&untrusted, ADMIN_TOKEN, "https").await.unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(!cookie.contains("Secure"), "{cookie}");
    let proxy = browser_at(2);
    let r = login(&proxy, ADMIN_TOKEN, "https").await.unwrap();
    assert_eq!(r.status(), 303);
    assert!(r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("; Secure"));
    host.stop().await;
}

/// `admin_token = "generate"`: made at first start, printed once, kept in
/// the store's directory, the same after a restart. A guest's log line with
/// a line break stays one line of the host's log.
#[tokio::test]
async fn a_generated_admin_token_is_printed_once_and_a_guest_cannot_forge_log_lines() {
    let dir = tempfile::tempdir().unwrap();
    let destinations = r#"
[[destinations]]
name = "forger"
plugin = "misbehave"
settings = { mode = "log-forge" }
"#;
    let config = config_text(dir.path(), destinations).replace(
        &format!("admin_token = \"{ADMIN_TOKEN}\""),
        "admin_token = \"generate\"",
    );
    let (file, base) = switchyard_e2e::binary::write_config(dir.path(), &config);
    let bin = switchyard_e2e::switchyard_bin();
    let _ = test_guest("misbehave");
    let run = |n: usize| {
        let log = std::fs::File::create(dir.path().join(format!("stderr-{n}.log"))).unwrap();
        switchyard_e2e::binary::run_command(&bin, &file)
            .env_remove("RUST_LOG")
            .stderr(log)
            .spawn()
            .unwrap()
    };
    let mut first = run(1);
    switchyard_e2e::binary::wait_healthy(&base).await;
    let kept = std::fs::read_to_string(dir.path().join("data/admin-token")).unwrap();
    let token = kept.trim().to_string();
    assert_eq!(token.len(), 64);
    let client = reqwest::Client::new();
    let ok = client
        .get(format!("{base}/admin/destinations"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let sent = client
        .post(format!("{base}/v1/track"))
        .basic_auth(WRITE_KEY, Some(""))
        .json(&json!({"userId": "u", "event": "E"}))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200);
    let log_1 = dir.path().join("stderr-1.log");
    eventually(
        Duration::from_secs(20),
        "the guest's line in the log",
        || {
            std::fs::read_to_string(&log_1)
                .ok()
                .filter(|t| t.contains("forge-1"))
        },
    )
    .await;
    first.kill().unwrap();
    let _ = first.wait();
    let text = std::fs::read_to_string(&log_1).unwrap();
    assert_eq!(text.matches(&token).count(), 1, "printed once: {text}");
    for line in text.lines() {
        assert!(
            !line.starts_with("ERROR switchyard: forged-line") && !line.contains('\u{1b}'),
            "a forged line: {line:?}"
        );
    }
    let line = text.lines().find(|l| l.contains("forge-1")).unwrap();
    assert!(
        line.contains("forge-1\\nERROR switchyard: forged-line\\r"),
        "{line}"
    );

    let mut second = run(2);
    switchyard_e2e::binary::wait_healthy(&base).await;
    let ok = client
        .get(format!("{base}/admin/destinations"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200, "the kept token serves after a restart");
    second.kill().unwrap();
    let _ = second.wait();
    let text = std::fs::read_to_string(dir.path().join("stderr-2.log")).unwrap();
    assert!(!text.contains(&token), "printed again: {text}");
}

/// A NATS URL's credentials never reach an error or a log line.
#[tokio::test]
async fn a_failed_nats_connect_does_not_show_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let port = switchyard_e2e::free_port();
    let url = format!("nats://app:hunter2-secret@127.0.0.1:{port}");
    let err = match TestHost::try_start_config(dir.path(), &config_text_nats(dir.path(), "", &url))
        .await
    {
        Ok(_) => panic!("started without a server"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("nats://***@127.0.0.1"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

/// `max_deliver` on the consumers, and a message on its last delivery goes to
/// dead letters, never dropped: here the deliveries were used up by another
/// client of the consumer while the destination was paused.
#[tokio::test]
async fn a_message_on_its_last_delivery_is_dead_lettered_not_dropped() {
    use async_nats::jetstream::{self, consumer::PullConsumer, AckKind};
    use futures::StreamExt as _;

    let server = NatsServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    // 60 s of retries at most 60 s apart: a bound of 4 · 1 + 100 deliveries.
    let destination = switchyard_e2e::webhook_table(
        "hooks",
        &rx.url("/hooks"),
        &rx.origin(),
        "retry = { initial_ms = 20, max_ms = 60000, window = \"1m\" }",
    );
    let config = config_text_nats(dir.path(), &destination, &server.url());
    let host = TestHost::start_config(dir.path(), &config).await;
    assert_eq!(
        host.admin()
            .post("/admin/destinations/hooks/pause")
            .await
            .status(),
        200
    );
    let body = json!({"userId": "u", "event": "E", "messageId": "worn-out"});
    assert_eq!(host.send("track", &body).await.status(), 200);
    host.stop().await;

    let client = async_nats::connect(server.url()).await.unwrap();
    let js = jetstream::new(client);
    let stream = js.get_stream("SWITCHYARD_EVENTS").await.unwrap();
    let mut consumer: PullConsumer = stream.get_consumer("dest-hooks").await.unwrap();
    let bound = consumer.info().await.unwrap().config.max_deliver;
    assert_eq!(bound, 104);
    // Up to its next-to-last delivery (the host may have had one before the pause).
    loop {
        let mut batch = consumer
            .fetch()
            .max_messages(1)
            .expires(Duration::from_secs(2))
            .messages()
            .await
            .unwrap();
        let m = batch.next().await.expect("the message again").unwrap();
        let delivered = m.info().unwrap().delivered;
        m.ack_with(AckKind::Nak(None)).await.unwrap();
        if delivered >= bound - 1 {
            break;
        }
    }

    let host = TestHost::start_config(dir.path(), &config).await;
    assert_eq!(
        host.admin()
            .post("/admin/destinations/hooks/resume")
            .await
            .status(),
        200
    );
    let dead = dead_letters(&host, "hooks", Duration::from_secs(20)).await;
    assert_eq!(dead[0]["messageId"], "worn-out", "{dead:?}");
    let reason = dead[0]["reason"].as_str().unwrap();
    assert!(reason.contains("104 times"), "{reason}");
    assert!(rx.received().is_empty());
    host.stop().await;
}
