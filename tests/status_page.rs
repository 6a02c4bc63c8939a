//! The status page (`/status`) in headless Chromium, as an operator uses it:
//! a wrong token is refused and the right one logs in (an HttpOnly, SameSite
//! cookie); the overview turns a destination degraded by itself while its
//! receiver fails; a failed attempt shows its request and response; a dead
//! letter's replay button delivers it; pause and resume; a form without its
//! CSRF token is refused, in the browser and from outside it.
//!
//! With `SWITCHYARD_SCREENSHOTS=1` the overview and a destination page are
//! saved to docs/ (the README shows them).

use std::time::Duration;

use fantoccini::{Client, Locator};
use serde_json::json;
use switchyard_e2e::browser::{chromium, driver};
use switchyard_e2e::host::ADMIN_TOKEN;
use switchyard_e2e::{eventually, webhook_table, workspace_root, Receiver, Reply, TestHost};

/// The text of the first element matching `css`, once it satisfies `ok` (the
/// page's live part refreshes every 2 s).
async fn wait_text(b: &Client, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    for _ in 0..300 {
        if let Ok(e) = b.find(Locator::Css(css)).await {
            if let Ok(t) = e.text().await {
                if ok(&t) {
                    return t;
                }
                last = t;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: `{css}` still says `{last}`");
}

async fn text_of(b: &Client, css: &str) -> String {
    match b.find(Locator::Css(css)).await {
        Ok(e) => e.text().await.unwrap(),
        Err(e) => panic!("`{css}` on {:?}: {e}", b.current_url().await),
    }
}

/// The element matching `css`, once it is there (after a navigation, say).
async fn wait_for(b: &Client, css: &str) -> fantoccini::elements::Element {
    for _ in 0..200 {
        if let Ok(e) = b.find(Locator::Css(css)).await {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no `{css}` on {:?}", b.current_url().await);
}

async fn click(b: &Client, css: &str) {
    b.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("`{css}`: {e}"))
        .click()
        .await
        .unwrap();
}

async fn log_in(b: &Client, host: &TestHost, token: &str) {
    b.goto(&host.url("/status")).await.unwrap();
    // Not logged in: sent to the login form.
    assert!(b
        .current_url()
        .await
        .unwrap()
        .path()
        .ends_with("/status/login"));
    let field = b.find(Locator::Css("input[name=token]")).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(token).await.unwrap();
    click(b, "form[action='/status/login'] button").await;
    // Either the overview or the form again, with why.
    wait_for(b, "#live, #login-error").await;
}

fn save_screenshot(png: &[u8], name: &str) {
    if std::env::var("SWITCHYARD_SCREENSHOTS").as_deref() == Ok("1") {
        std::fs::write(workspace_root().join("docs").join(name), png).unwrap();
    }
}

#[tokio::test]
async fn an_operator_logs_in_watches_a_failure_opens_its_attempt_and_replays_a_dead_letter() {
    let dir = tempfile::tempdir().unwrap();
    // `hooks`' vendor is down; `ledger`'s refuses the first request (a dead
    // letter at once), then takes everything.
    let down = Receiver::start().await;
    down.default_reply(Reply::status(503).body(r#"{"error":"vendor down for maintenance"}"#));
    let picky = Receiver::start().await;
    picky.script(vec![Reply::status(400).body(r#"{"error":"bad record"}"#)]);
    let slow_retries = "retry = { initial_ms = 1000, max_ms = 1000, window = \"10m\" }";
    let destinations = format!(
        "{}{}",
        webhook_table("hooks", &down.url("/hooks"), &down.origin(), slow_retries),
        webhook_table(
            "ledger",
            &picky.url("/ledger"),
            &picky.origin(),
            slow_retries
        ),
    );
    let host = TestHost::start(dir.path(), &destinations).await;
    let event = json!({"batch": [{"type": "track", "event": "Order Completed", "userId": "u1",
        "messageId": "status-1", "properties": {"total": 12}}]});
    assert_eq!(host.send("batch", &event).await.status(), 200);

    let driver = driver().await;
    let b = chromium(&driver, dir.path()).await;

    // A wrong token is refused: the form again, with why, and no session.
    log_in(&b, &host, "not-the-token").await;
    let refused = text_of(&b, "#login-error").await;
    assert!(refused.contains("not the admin token"), "{refused}");
    assert!(b.get_all_cookies().await.unwrap().is_empty());

    // The right one: a session cookie the page's scripts cannot read.
    log_in(&b, &host, ADMIN_TOKEN).await;
    assert_eq!(b.current_url().await.unwrap().path(), "/status");
    let cookie = b.get_named_cookie("switchyard_session").await.unwrap();
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)");
    let from_script = b.execute("return document.cookie", vec![]).await.unwrap();
    assert_eq!(from_script, json!(""));

    // The overview turns `hooks` degraded by itself (its live part refreshes),
    // with the vendor's answer as the last error.
    let hooks_health = "tr[data-destination=hooks] [data-health]";
    let health = wait_text(&b, hooks_health, "hooks degrades", |t| t != "healthy").await;
    assert!(health == "degraded" || health == "paused", "{health}");
    let last_error = wait_text(
        &b,
        "tr[data-destination=hooks] td:last-child",
        "a last error",
        |t| t.contains("503"),
    )
    .await;
    assert!(last_error.contains("503"), "{last_error}");
    assert_eq!(text_of(&b, "tr[data-source=test] a").await, "test");
    save_screenshot(&b.screenshot().await.unwrap(), "status-overview.png");

    // A failed attempt, opened from the destination page: the request the
    // component sent and the vendor's answer.
    click(&b, "tr[data-destination=hooks] a").await;
    wait_for(&b, "#operate").await;
    assert!(text_of(&b, "h1").await.contains("hooks"));
    wait_text(&b, "svg.chart title", "the chart", |t| {
        t.contains("per minute")
    })
    .await;
    // The adaptive limit (its reference once a window closed) and the chart of its moves.
    wait_text(&b, "#concurrency", "the limit's line", |t| {
        t.contains("Concurrency: adaptive") && t.contains("of at most 16")
    })
    .await;
    assert!(b
        .find(Locator::Css("svg.chart.limit polyline"))
        .await
        .is_ok());
    save_screenshot(&b.screenshot().await.unwrap(), "status-destination.png");
    click(&b, "tr[data-attempt][data-failed=true] a").await;
    wait_for(&b, "#outcomes").await;
    let request = text_of(&b, "section.exchange h3").await;
    assert_eq!(request, format!("POST {}", down.url("/hooks")));
    assert!(text_of(&b, "pre.request-body").await.contains("status-1"));
    assert_eq!(text_of(&b, "section.exchange .status").await, "503");
    assert!(text_of(&b, "pre.response-body")
        .await
        .contains("vendor down for maintenance"));
    assert!(text_of(&b, "#outcomes").await.contains("retry"));

    // `ledger` dead-lettered it; its replay button queues it again and the
    // vendor, answering 200 now, receives it.
    b.goto(&host.url("/status/destinations/ledger"))
        .await
        .unwrap();
    let row = wait_text(&b, "tr[data-dead-letter=status-1]", "a dead letter", |t| {
        t.contains("400")
    })
    .await;
    assert!(row.contains("track"), "{row}");
    click(&b, "form[action$='/ledger/replay'] button").await;
    assert!(wait_for(&b, "#flash")
        .await
        .text()
        .await
        .unwrap()
        .contains("Replayed 1"));
    eventually(
        Duration::from_secs(20),
        "the replayed event delivered",
        || {
            picky
                .delivered_ids()
                .contains(&"status-1".to_string())
                .then_some(())
        },
    )
    .await;
    b.goto(&host.url("/status/destinations/ledger"))
        .await
        .unwrap();
    wait_for(&b, "#operate").await;
    assert!(b.find(Locator::Css("tr[data-dead-letter]")).await.is_err());

    // Pause and resume from the page.
    click(&b, "form[action$='/ledger/pause'] button").await;
    assert!(wait_for(&b, "#flash")
        .await
        .text()
        .await
        .unwrap()
        .contains("Paused"));
    assert_eq!(host.admin().destination("ledger").await["health"], "paused");
    click(&b, "form[action$='/ledger/resume'] button").await;
    wait_for(&b, "form[action$='/ledger/pause']").await;
    assert_eq!(
        host.admin().destination("ledger").await["health"],
        "healthy"
    );

    // A form stripped of its CSRF token is refused, and nothing changes.
    b.execute(
        "document.querySelector(\"form[action$='/ledger/pause'] input[name=csrf]\").remove()",
        vec![],
    )
    .await
    .unwrap();
    click(&b, "form[action$='/ledger/pause'] button").await;
    assert!(wait_for(&b, ".refused")
        .await
        .text()
        .await
        .unwrap()
        .contains("CSRF"));
    assert_eq!(
        host.admin().destination("ledger").await["health"],
        "healthy"
    );

    // From outside the browser: the session cookie alone is not enough, and no
    // cookie at all is sent to the login form.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = host.url("/status/destinations/ledger/pause");
    let with_cookie = http
        .post(&url)
        .header("cookie", format!("switchyard_session={}", cookie.value()))
        .form(&[("csrf", "guessed")])
        .send()
        .await
        .unwrap();
    assert_eq!(with_cookie.status(), 403);
    let without = http.post(&url).send().await.unwrap();
    assert_eq!(without.status(), 303);
    assert_eq!(without.headers()["location"], "/status/login");
    assert_eq!(
        host.admin().destination("ledger").await["health"],
        "healthy"
    );

    // Logging out ends the session on the server too.
    click(&b, "form[action='/status/logout'] button").await;
    wait_for(&b, "input[name=token]").await;
    let after = http
        .get(host.url("/status"))
        .header("cookie", format!("switchyard_session={}", cookie.value()))
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 303);
    b.close().await.unwrap();
    host.stop().await;
}

#[tokio::test]
async fn a_shadow_versions_differences_show_on_the_destination_page() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let retries = "retry = { initial_ms = 20, max_ms = 200, window = \"1m\" }";
    let host = TestHost::start(
        dir.path(),
        &webhook_table("wh", &rx.url("/wh"), &rx.origin(), retries),
    )
    .await;
    let drift = std::fs::read(switchyard_e2e::test_guest("drift")).unwrap();
    let staged = host
        .admin()
        .request(reqwest::Method::PUT, "/admin/plugins/webhook?stage=shadow")
        .body(drift)
        .send()
        .await
        .unwrap();
    assert_eq!(staged.status(), 200);
    let event = json!({"batch": [{"type": "track", "event": "Signed Up", "userId": "u1",
        "messageId": "shadowed-1"}]});
    assert_eq!(host.send("batch", &event).await.status(), 200);
    let admin = host.admin();
    let mut differed = false;
    for _ in 0..200 {
        let view = admin.get("/admin/plugins/webhook/trial").await;
        if view["trial"]["shadow"]["differed"].as_u64() >= Some(1) {
            differed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(differed, "the shadow compared a batch");

    let driver = driver().await;
    let b = chromium(&driver, dir.path()).await;
    log_in(&b, &host, ADMIN_TOKEN).await;
    b.goto(&host.url("/status/destinations/wh")).await.unwrap();
    wait_for(&b, "#trial").await;
    assert_eq!(text_of(&b, "#trial-stage").await, "shadow");
    let figures = text_of(&b, "#trial-figures").await;
    assert!(figures.contains("1 different"), "{figures}");
    let diffs = text_of(&b, "#trial-differences").await;
    assert!(diffs.contains("request 1 body at /"), "{diffs}");
    assert!(diffs.contains("shadowed-1"), "{diffs}");
    b.close().await.unwrap();
    host.stop().await;
}

/// The on-call engineer's first hour (#35): a destination whose vendor refuses
/// everything shows as dead-lettering on the overview, with the count; one
/// whose vendor is down shows its retries and when the next attempt comes;
/// once the vendor is back, "Retry now" delivers at once instead of at that
/// time; `switchyard status --format json` holds the same figures.
#[tokio::test]
async fn the_overview_shows_dead_lettering_and_the_next_attempt_and_retry_now_delivers() {
    let dir = tempfile::tempdir().unwrap();
    let refusing = Receiver::start().await;
    refusing.default_reply(Reply::status(400).body(r#"{"error":"schema mismatch"}"#));
    let down = Receiver::start().await;
    // The vendor asks for a minute (a hint longer than the backoff wins).
    down.default_reply(
        Reply::status(503)
            .header("retry-after", "60")
            .body(r#"{"error":"vendor down"}"#),
    );
    let late = "retry = { initial = \"1s\", max = \"10m\", window = \"1h\" }";
    let destinations = format!(
        "{}{}",
        webhook_table("ledger", &refusing.url("/l"), &refusing.origin(), ""),
        webhook_table("hooks", &down.url("/h"), &down.origin(), late),
    );
    let host = TestHost::start(dir.path(), &destinations).await;
    let batch: Vec<_> = (0..3)
        .map(|i| json!({"type": "track", "event": "E", "userId": format!("u{i}"), "messageId": format!("oc-{i}")}))
        .collect();
    assert_eq!(
        host.send("batch", &json!({ "batch": batch }))
            .await
            .status(),
        200
    );

    let driver = driver().await;
    let b = chromium(&driver, dir.path()).await;
    log_in(&b, &host, ADMIN_TOKEN).await;

    // `ledger` is dead-lettering, with its count; its health is still healthy
    // (a rejection says nothing of the vendor's health), so the badge is what
    // tells the truth.
    let badge = wait_text(
        &b,
        "tr[data-destination=ledger] [data-attention]",
        "ledger dead-lettering",
        |t| t == "dead-lettering 3",
    )
    .await;
    assert_eq!(badge, "dead-lettering 3");
    assert_eq!(
        text_of(&b, "tr[data-destination=ledger] [data-dead-letters]").await,
        "3"
    );
    // `hooks` is retrying, and says when the next attempt comes.
    wait_text(
        &b,
        "tr[data-destination=hooks] [data-attention]",
        "hooks retrying",
        |t| t == "retrying 3",
    )
    .await;
    let next = text_of(&b, "tr[data-destination=hooks] [data-next-attempt]").await;
    assert!(
        next.starts_with("in ") && (next.contains("s") || next.contains("m")),
        "{next}"
    );
    let api = host.admin().destination("hooks").await;
    assert_eq!(api["retrying"], 3, "{api}");
    let wait = api["next_retry_in_ms"].as_u64().unwrap();
    assert!((30_000..=60_000).contains(&wait), "{api}");
    assert!(api["next_retry_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert!(api["oldest_queued_age_ms"].as_u64().is_some(), "{api}");
    assert!(text_of(&b, "tr[data-destination=hooks] td.last-error")
        .await
        .contains("503"));
    save_screenshot(
        &b.screenshot().await.unwrap(),
        "status-overview-failing.png",
    );

    // The source page names each event and its user, and leads back.
    b.goto(&host.url("/status/sources/test")).await.unwrap();
    wait_text(&b, "tr[data-message-id=oc-0] td.user", "the user", |t| {
        t == "u0"
    })
    .await;
    assert_eq!(
        text_of(&b, "tr[data-message-id=oc-0] td.event-name").await,
        "E"
    );
    click(&b, "main a[href='/status']").await;
    wait_for(&b, "table#destinations").await;
    // A browser's first request for an icon is answered.
    let icon = host
        .http
        .get(host.url("/favicon.ico"))
        .send()
        .await
        .unwrap();
    assert_eq!(icon.status(), 200);
    assert_eq!(icon.headers()["content-type"], "image/svg+xml");

    // The CLI holds the same figures.
    // (The test host listens on a port it chose: the CLI gets a config naming it.)
    let text = std::fs::read_to_string(switchyard_e2e::host::config_file(dir.path()))
        .unwrap()
        .replace("127.0.0.1:0", &host.addr.to_string());
    let cli_config = dir.path().join("cli.toml");
    std::fs::write(&cli_config, text).unwrap();
    // (The host runs in this test's runtime: the CLI is awaited, not waited for.)
    let out = tokio::process::Command::new(switchyard_e2e::switchyard_bin())
        .args(["status", "--format", "json", "--config"])
        .arg(&cli_config)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = status["destinations"].as_array().unwrap();
    let of = |name: &str| rows.iter().find(|d| d["name"] == name).unwrap().clone();
    assert_eq!(of("ledger")["dead_letters"], 3);
    assert_eq!(of("ledger")["attention"], "dead-lettering");
    assert_eq!(of("hooks")["retrying"], 3);
    assert!(of("hooks")["next_retry_in_ms"].as_u64().is_some());

    // The vendor is back; "Retry now" on the destination page delivers the
    // three at once rather than in a minute.
    down.default_reply(Reply::status(200));
    b.goto(&host.url("/status/destinations/hooks"))
        .await
        .unwrap();
    wait_text(&b, "#next-attempt", "the next attempt", |t| {
        t.contains("in ")
    })
    .await;
    save_screenshot(
        &b.screenshot().await.unwrap(),
        "status-destination-retrying.png",
    );
    let pressed = std::time::Instant::now();
    click(&b, "form[action$='/hooks/retry-now'] button").await;
    let flash = wait_for(&b, "#flash").await.text().await.unwrap();
    assert!(flash.contains("3 waiting retries made due"), "{flash}");
    eventually(Duration::from_secs(5), "the retries delivered", || {
        (down.delivered_ids().len() == 3).then_some(())
    })
    .await;
    let took = pressed.elapsed();
    eprintln!("retry now: delivered {took:?} after the click");
    assert!(took < Duration::from_secs(2), "{took:?}");
    // The old error is kept, dimmed: deliveries have succeeded since.
    b.goto(&host.url("/status")).await.unwrap();
    wait_for(&b, "tr[data-destination=hooks] td.last-error.resolved").await;
    assert!(b
        .find(Locator::Css("tr[data-destination=hooks] [data-attention]"))
        .await
        .is_err());
    b.close().await.unwrap();
    host.stop().await;
}

/// An identify whose user gave (or refused) consent to advertising.
fn consenting(id: &str, advertising: bool) -> serde_json::Value {
    json!({
        "type": "identify", "messageId": id, "userId": format!("user-{id}"),
        "context": {"consent": {"categoryPreferences": {"Advertising": advertising}}},
    })
}

/// The counts of a funnel's steps, by key.
fn step_counts(funnel: &serde_json::Value) -> std::collections::BTreeMap<String, u64> {
    funnel["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["key"].as_str().unwrap().to_string(),
                s["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_delivery_funnel_adds_up_to_what_was_sent() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    // `hooks` takes identify and track only, and drops what lacks consent.
    let config = format!(
        "\n[[transforms]]\nname = \"ads-consent\"\nplugin = \"consent\"\nsettings = {{ categories = [\"Advertising\"] }}\n{}",
        switchyard_e2e::webhook_destination(
            "hooks",
            &rx,
            "transforms = [\"ads-consent\"]\nfilter = { types = [\"identify\", \"track\"] }\nbatch = { max_events = 50, max_bytes = 512000, linger_ms = 20 }",
        )
    );
    let host = TestHost::start(dir.path(), &config).await;
    let send = |kind: &'static str, body: serde_json::Value| {
        let host = &host;
        async move { host.send(kind, &body).await.status().as_u16() }
    };
    // 4 delivered, 2 filtered by the transformation, 3 by routing.
    for i in 0..4 {
        assert_eq!(
            send("identify", consenting(&format!("yes-{i}"), true)).await,
            200
        );
    }
    for i in 0..2 {
        assert_eq!(
            send("identify", consenting(&format!("no-{i}"), false)).await,
            200
        );
    }
    for i in 0..3 {
        let page = json!({"messageId": format!("page-{i}"), "anonymousId": "a", "name": "Home"});
        assert_eq!(send("page", page).await, 200);
    }
    // 2 refused at ingest (not objects), 1 duplicate of a delivered event.
    let refused = send("batch", json!({"batch": [42, "not an event"]})).await;
    assert!(refused >= 400, "{refused}");
    eventually(Duration::from_secs(20), "the first four delivered", || {
        (rx.delivered_ids().len() == 4).then_some(())
    })
    .await;
    assert_eq!(send("identify", consenting("yes-0", true)).await, 200);
    // The vendor turns to refusing: 2 dead-lettered.
    rx.default_reply(Reply::status(400).body(r#"{"error":"schema mismatch"}"#));
    for i in 0..2 {
        assert_eq!(
            send("identify", consenting(&format!("late-{i}"), true)).await,
            200
        );
    }
    let admin = |path: String| {
        let admin = host.admin();
        async move {
            let r = admin
                .request(reqwest::Method::GET, &path)
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    let expected: std::collections::BTreeMap<String, u64> = [
        ("sent", 14),
        ("refused", 2),
        ("duplicates", 1),
        ("suppressed", 0),
        ("received", 11),
        ("filtered_by_routing", 3),
        ("filtered_by_transformation", 2),
        ("delivered", 4),
        ("dead_lettered", 2),
        ("retrying", 0),
        ("waiting", 0),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut last = Default::default();
    for _ in 0..200 {
        let (status, funnel) = admin("/admin/destinations/hooks/funnel".into()).await;
        assert_eq!(status, 200, "{funnel}");
        last = step_counts(&funnel);
        if last == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(last, expected);
    // The steps add up to what was sent.
    let sent = last["sent"];
    let settled: u64 = [
        "refused",
        "duplicates",
        "suppressed",
        "filtered_by_routing",
        "filtered_by_transformation",
        "delivered",
        "dead_lettered",
    ]
    .iter()
    .map(|k| last[*k])
    .sum();
    assert_eq!(settled, sent);
    let (_, day) = admin("/admin/destinations/hooks/funnel?window=24h".into()).await;
    assert_eq!(day["window"], "24h");
    assert_eq!(step_counts(&day), expected);
    // A window it does not keep is a clear 400.
    let (status, bad) = admin("/admin/destinations/hooks/funnel?window=7d".into()).await;
    assert_eq!(status, 400);
    assert!(bad["message"].as_str().unwrap().contains("24h"), "{bad}");
    // The source's funnel: what it was sent, and what `hooks` did with it.
    let (_, source) = admin("/admin/sources/test/funnel".into()).await;
    let s = step_counts(&source);
    assert_eq!(
        (s["sent"], s["refused"], s["duplicates"], s["received"]),
        (14, 2, 1, 11)
    );
    let hooks = &source["destinations"][0];
    assert_eq!(hooks["destination"], "hooks");
    assert_eq!(
        (
            &hooks["delivered"],
            &hooks["filtered_by_transformation"],
            &hooks["dead_lettered"]
        ),
        (&json!(4), &json!(2), &json!(2))
    );

    // The same on the page, with a link from each step to its events.
    let driver = driver().await;
    let b = chromium(&driver, dir.path()).await;
    log_in(&b, &host, ADMIN_TOKEN).await;
    b.goto(&host.url("/status/destinations/hooks"))
        .await
        .unwrap();
    for (key, count) in &expected {
        let css = format!("#funnel tr[data-step={key}] td[data-count]");
        assert_eq!(text_of(&b, &css).await, count.to_string(), "{key}");
    }
    let section = wait_for(&b, "section#funnel-section").await;
    save_screenshot(
        &section.screenshot().await.unwrap(),
        "status-destination-funnel.png",
    );
    click(&b, "#funnel-window a[href$='window=24h']").await;
    wait_text(&b, "#funnel-window b", "the day window", |t| t == "24h").await;
    assert_eq!(
        text_of(&b, "#funnel tr[data-step=delivered] td[data-count]").await,
        "4"
    );
    click(&b, "#funnel tr[data-step=dead_lettered] a").await;
    wait_for(&b, "section#dead-letters").await;
    assert_eq!(
        b.current_url().await.unwrap().fragment(),
        Some("dead-letters")
    );
    b.goto(&host.url("/status/sources/test")).await.unwrap();
    wait_text(
        &b,
        "#funnel-destinations tr[data-destination=hooks] td[data-delivered]",
        "hooks' deliveries from the source",
        |t| t == "4",
    )
    .await;
    assert_eq!(
        text_of(&b, "#funnel tr[data-step=refused] td[data-count]").await,
        "2"
    );
    b.close().await.unwrap();
    host.stop().await;
}

#[tokio::test]
async fn the_privacy_page_lists_the_regulations_and_what_they_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let host = TestHost::start(
        dir.path(),
        &webhook_table("hooks", &rx.url("/hooks"), &rx.origin(), ""),
    )
    .await;
    let resp = host
        .admin()
        .request(reqwest::Method::POST, "/admin/regulations")
        .json(
            &json!({"type": "SUPPRESS", "subjects": {"userId": ["mallory@example.com", "trent"]},
            "sources": ["test"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let id = resp.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let event = json!({"batch": [{"type": "track", "event": "Viewed", "userId": "trent",
        "messageId": "privacy-page-1"}, {"type": "track", "event": "Viewed", "userId": "victor",
        "messageId": "privacy-page-2"}]});
    assert_eq!(host.send("batch", &event).await.status(), 200);
    // A deletion, once done, shows what it erased and what the destination said.
    let resp = host
        .admin()
        .request(reqwest::Method::POST, "/admin/regulations")
        .json(&json!({"type": "DELETE", "subjects": {"userId": ["victor"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let deletion = resp.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let ended = host
        .admin()
        .regulation_ended(&deletion, Duration::from_secs(20))
        .await;
    assert_eq!(ended["state"], "done", "{ended}");

    let driver = driver().await;
    let b = chromium(&driver, dir.path()).await;
    log_in(&b, &host, ADMIN_TOKEN).await;
    click(&b, "header a[href='/status/privacy']").await;
    wait_for(&b, "#regulations").await;
    let row = format!("tr[data-regulation='{id}']");
    assert_eq!(text_of(&b, &format!("{row} td.num")).await, "2");
    let row = text_of(&b, &row).await;
    for part in ["SUPPRESS", "test", "the admin API", "done"] {
        assert!(row.contains(part), "{part} not in `{row}`");
    }
    assert_eq!(
        text_of(&b, "#suppressed tr[data-source='test'] td.num").await,
        "1"
    );
    let deleted = text_of(&b, &format!("#deletions tr[data-deletion='{deletion}']")).await;
    for part in ["done", "hooks: not_supported"] {
        assert!(deleted.contains(part), "{part} not in `{deleted}`");
    }
    let page = b.source().await.unwrap();
    assert!(
        !page.contains("mallory") && !page.contains("trent") && !page.contains("victor"),
        "an id shows"
    );
    b.close().await.unwrap();
    host.stop().await;
}
