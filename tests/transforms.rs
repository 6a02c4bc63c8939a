//! Transformations end to end: real transform components (the bundled
//! `mask-pii` and `consent`, and the misbehaving test guest) in a destination's
//! chain, through a real host, delivering to a receiver on loopback.

use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use switchyard_e2e::admin::Row;
use switchyard_e2e::{eventually, webhook_destination, Receiver, TestHost};

/// A `[[transforms]]` table.
fn transform(name: &str, plugin: &str, settings: &str, extra: &str) -> String {
    format!(
        "\n[[transforms]]\nname = \"{name}\"\nplugin = \"{plugin}\"\nsettings = {settings}\n{extra}\n"
    )
}

/// The webhook `name` to `rx` with this chain of transformations.
fn hook(name: &str, rx: &Receiver, chain: &[&str]) -> String {
    let list: Vec<String> = chain.iter().map(|c| format!("\"{c}\"")).collect();
    webhook_destination(
        name,
        rx,
        &format!(
            "transforms = [{}]\nbatch = {{ max_events = 50, max_bytes = 512000, linger_ms = 20 }}",
            list.join(", ")
        ),
    )
}

fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// An identify call with PII and this consent (`None`: no consent object).
fn identify(id: &str, advertising: Option<bool>) -> Value {
    let mut context = json!({"ip": "203.0.113.9", "locale": "de-DE"});
    if let Some(ok) = advertising {
        context["consent"] = json!({"categoryPreferences": {"Advertising": ok, "Analytics": true}});
    }
    json!({
        "messageId": id,
        "userId": format!("user-{id}"),
        "traits": {"email": "  Jane.Doe@Example.COM ", "phone": "+1 (650) 555-0100", "plan": "pro"},
        "context": context,
    })
}

#[tokio::test]
async fn bundled_transforms_chained_two_deep_hash_strip_and_drop_before_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let config = [
        transform(
            "mask",
            "mask-pii",
            r#"{ hash = ["traits.email", "traits.phone"], remove = ["context.ip"] }"#,
            "",
        ),
        transform(
            "ads-consent",
            "consent",
            r#"{ categories = ["Advertising"] }"#,
            "",
        ),
        hook("ads", &rx, &["mask", "ads-consent"]),
    ]
    .concat();
    let host = TestHost::start(dir.path(), &config).await;

    for (id, consent) in [("yes", Some(true)), ("no", Some(false)), ("bare", None)] {
        let r = host.send("identify", &identify(id, consent)).await;
        assert_eq!(r.status(), 200);
    }
    let admin = host.admin();
    let row = admin
        .wait(
            Row::Destination("ads"),
            "two delivered, one filtered",
            Duration::from_secs(30),
            |r| r["delivered"] == 2 && r["filtered"] == 1,
        )
        .await;

    // What the vendor got: hashed as the Conversions API expects, without the IP.
    let got = rx.event("yes").expect("the consenting event arrived");
    assert_eq!(got["traits"]["email"], sha256("jane.doe@example.com"));
    assert_eq!(got["traits"]["phone"], sha256("16505550100"));
    assert_eq!(got["traits"]["plan"], "pro");
    assert!(got["context"].get("ip").is_none(), "{got}");
    assert_eq!(got["context"]["locale"], "de-DE");
    assert_eq!(got["userId"], "user-yes");
    assert!(rx.event("bare").is_some(), "no consent object: it passes");
    assert!(
        rx.event("no").is_none(),
        "no consent for Advertising: dropped"
    );

    // Counted per destination and per transformation; not dead-lettered.
    assert_eq!(row["dead_letters"], 0, "{row}");
    let chain = row["transforms"].as_array().expect("transforms in the row");
    assert_eq!(chain.len(), 2);
    assert_eq!(chain[0]["name"], "mask");
    assert_eq!(chain[0]["filtered"], 0);
    assert_eq!(chain[1]["name"], "ads-consent");
    assert_eq!(chain[1]["filtered"], 1);
    assert_eq!(chain[1]["plugin"], "consent");
    assert_eq!(chain[1]["sha256"].as_str().unwrap().len(), 64);
    assert!(admin.dead_letters("ads").await.is_empty());

    // The delivery debugger says which transformation filtered it, and why.
    let attempts = admin.get("/admin/destinations/ads/attempts").await;
    let outcomes: Vec<&Value> = attempts
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| a["events"].as_array().unwrap())
        .collect();
    let filtered = outcomes
        .iter()
        .find(|e| e["messageId"] == "no")
        .expect("the dropped event is in an attempt");
    assert_eq!(filtered["outcome"], "filtered");
    assert_eq!(
        filtered["reason"],
        "transform `ads-consent`: no consent for Advertising"
    );

    // And in /metrics.
    let text = admin.metrics().await;
    assert!(
        text.contains(
            "switchyard_transform_filtered_total{destination=\"ads\",transform=\"ads-consent\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains("switchyard_destination_filtered_total{destination=\"ads\"} 1"));

    // The plugins are listed with their kind.
    assert_eq!(admin.plugin("consent").await["kind"], "transform");
    assert_eq!(admin.plugin("webhook").await["kind"], "destination");
    host.stop().await;
}

#[tokio::test]
async fn a_chain_runs_in_order_and_a_drop_ends_it() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let config = [
        transform(
            "first",
            "misbehave-transform",
            r#"{ mode = "tag", tag = "first" }"#,
            "",
        ),
        transform(
            "second",
            "misbehave-transform",
            r#"{ mode = "tag", tag = "second" }"#,
            "",
        ),
        hook("ordered", &rx, &["first", "second"]),
        // The same transformations, the other way round, for another destination.
        hook("reversed", &rx, &["second", "first"]),
    ]
    .concat();
    let host = TestHost::start(dir.path(), &config).await;
    for (id, name) in [("t-1", "Signed Up"), ("t-2", "drop me")] {
        let body = json!({"messageId": id, "userId": "u", "event": name});
        assert_eq!(host.send("track", &body).await.status(), 200);
    }
    let admin = host.admin();
    for dest in ["ordered", "reversed"] {
        admin
            .wait(
                Row::Destination(dest),
                "one delivered, one filtered",
                Duration::from_secs(30),
                |r| r["delivered"] == 1 && r["filtered"] == 1,
            )
            .await;
    }
    let steps = |path: &str| -> Vec<Value> {
        rx.received()
            .iter()
            .filter(|r| r.uri == path)
            .flat_map(|r| serde_json::from_slice::<Vec<Value>>(&r.body).unwrap())
            .map(|e| e["properties"]["steps"].clone())
            .collect()
    };
    assert_eq!(steps("/ordered"), vec![json!(["first", "second"])]);
    assert_eq!(steps("/reversed"), vec![json!(["second", "first"])]);
    // The first link dropped it: the second never saw it.
    let row = admin.destination("ordered").await;
    assert_eq!(row["transforms"][0]["filtered"], 1, "{row}");
    assert_eq!(row["transforms"][1]["filtered"], 0, "{row}");
    host.stop().await;
}

#[tokio::test]
async fn a_misbehaving_transform_is_contained_and_degrades_only_its_destination() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let short = r#"retry = { initial_ms = 50, max_ms = 100, window = "2s" }"#;
    let mut config = vec![transform(
        "fine",
        "misbehave-transform",
        r#"{ mode = "tag", tag = "fine" }"#,
        "",
    )];
    let bad = [
        ("spin", "loop", "limits = { timeout_ms = 300 }"),
        ("crash", "trap", ""),
        ("bomb", "memory", "limits = { memory_mb = 16 }"),
        ("forge", "change-id", ""),
        ("count", "wrong-count", ""),
    ];
    for (name, mode, limits) in bad {
        config.push(transform(
            name,
            "misbehave-transform",
            &format!("{{ mode = \"{mode}\" }}"),
            limits,
        ));
        let dest = format!("via-{name}");
        config.push(switchyard_e2e::webhook_table(
            &dest,
            &rx.url(&format!("/{dest}")),
            &rx.origin(),
            &format!("transforms = [\"{name}\"]\n{short}"),
        ));
    }
    config.push(hook("healthy", &rx, &["fine"]));
    let host = TestHost::start(dir.path(), &config.concat()).await;

    let ids: Vec<String> = (0..5).map(|i| format!("c-{i}")).collect();
    for id in &ids {
        let body = json!({"messageId": id, "userId": "u", "event": "Clicked"});
        assert_eq!(host.send("track", &body).await.status(), 200);
    }
    let admin = host.admin();
    admin
        .wait(
            Row::Destination("healthy"),
            "all five delivered",
            Duration::from_secs(30),
            |r| r["delivered"] == 5,
        )
        .await;
    let kinds = [
        ("spin", "timeouts"),
        ("crash", "traps"),
        ("bomb", "traps"),
        ("forge", "contract"),
        ("count", "contract"),
    ];
    for (name, kind) in kinds {
        let dest = format!("via-{name}");
        // Every event is retried, then dead-lettered when the 2 s window closes,
        // with the transformation named in the reason.
        let row = admin
            .wait(
                Row::Destination(&dest),
                "its events dead-lettered",
                Duration::from_secs(60),
                |r| r["dead_letters"] == 5,
            )
            .await;
        assert_eq!(row["delivered"], 0, "{row}");
        let violations = &row["transforms"][0]["violations"];
        assert!(
            violations[kind].as_u64().unwrap() > 0,
            "{dest}: {violations}"
        );
        let letters = admin.dead_letters(&dest).await;
        let reason = letters[0]["reason"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            reason.contains(&format!("transform `{name}`")),
            "{dest}: {reason}"
        );
    }
    // Nothing reached the receiver but the healthy destination's events.
    let paths: std::collections::BTreeSet<String> =
        rx.received().iter().map(|r| r.uri.clone()).collect();
    assert_eq!(
        paths.into_iter().collect::<Vec<_>>(),
        vec!["/healthy".to_string()]
    );
    let health = host.http.get(host.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    host.stop().await;
}

#[tokio::test]
async fn a_transform_is_hot_swapped_under_load_and_rolled_back_without_losing_events() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let config = [
        transform("mask", "mask-pii", r#"{ remove = ["context.ip"] }"#, ""),
        hook("masked", &rx, &["mask"]),
    ]
    .concat();
    let host = TestHost::start(dir.path(), &config).await;
    let admin = host.admin();
    let original = admin.plugin("mask-pii").await["sha256"]
        .as_str()
        .unwrap()
        .to_string();

    let sender = {
        let http = host.http.clone();
        let url = host.url("/v1/batch");
        tokio::spawn(async move {
            for round in 0..40 {
                let batch: Vec<Value> = (0..10)
                    .map(|i| {
                        json!({"type": "track", "event": "E", "userId": "u",
                               "messageId": format!("s-{round}-{i}"),
                               "context": {"ip": "198.51.100.1"}})
                    })
                    .collect();
                let r = http
                    .post(&url)
                    .basic_auth(switchyard_e2e::host::WRITE_KEY, Some(""))
                    .json(&json!({ "batch": batch }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let file = dir.path().join("plugins/mask-pii.wasm");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, switchyard_e2e::with_custom_section(bytes, "v2")).unwrap();
    let swapped = admin
        .wait(
            Row::Plugin("mask-pii"),
            "the new version serving",
            Duration::from_secs(20),
            |p| p["sha256"] != original.as_str(),
        )
        .await;
    assert_eq!(swapped["previous_sha256"], original.as_str());
    // Roll back through the admin API while events still flow.
    let r = admin.post("/admin/plugins/mask-pii/rollback").await;
    assert_eq!(r.status(), 200);
    sender.await.unwrap();

    let want: Vec<String> = (0..40)
        .flat_map(|round| (0..10).map(move |i| format!("s-{round}-{i}")))
        .collect();
    switchyard_e2e::all_arrive(&rx, &want).await;
    let got = rx.delivered_ids();
    assert_eq!(got.len(), want.len(), "each event exactly once");
    assert!(rx.events().iter().all(|e| e["context"].get("ip").is_none()));
    assert_eq!(admin.plugin("mask-pii").await["sha256"], original.as_str());
    host.stop().await;
}

#[tokio::test]
async fn a_destination_whose_transform_did_not_load_waits_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let config = [
        transform("mask", "mask-pii", r#"{ remove = ["context.ip"] }"#, ""),
        hook("waiting", &rx, &["mask"]),
    ]
    .concat();
    // A plugins directory of its own, without the transformation's file.
    let plugins = dir.path().join("own-plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    for name in ["webhook", "mask-pii"] {
        std::fs::copy(
            switchyard_e2e::destination_component(name),
            plugins.join(format!("{name}.wasm")),
        )
        .unwrap();
    }
    let file = plugins.join("mask-pii.wasm");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::remove_file(&file).unwrap();
    let text = switchyard_e2e::host::config_for(
        "127.0.0.1:0",
        &dir.path().join("data"),
        &plugins,
        &config,
    );
    let host = TestHost::start_config(dir.path(), &text).await;
    let (status, body) = host.admin().readyz().await;
    assert_eq!(status, 503);
    let text = body.to_string();
    assert!(text.contains("plugin `mask-pii` did not load"), "{text}");
    let body =
        json!({"messageId": "w-1", "userId": "u", "event": "E", "context": {"ip": "1.1.1.1"}});
    assert_eq!(host.send("track", &body).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(rx.received().is_empty(), "nothing goes out untransformed");

    // The file comes back: the transformation loads, and the event goes, masked.
    std::fs::write(&file, bytes).unwrap();
    eventually(
        Duration::from_secs(30),
        "the waiting event delivered",
        || rx.event("w-1"),
    )
    .await;
    assert!(rx.event("w-1").unwrap()["context"].get("ip").is_none());
    host.stop().await;
}

#[tokio::test]
async fn javascript_and_python_transforms_chained_two_deep_rename_and_hold_to_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let config = [
        transform(
            "rename",
            "mapping",
            r#"{ rename_events = { "Order Completed" = "purchase" }, rename_properties = { revenue = "value" } }"#,
            "",
        ),
        transform(
            "plan",
            "tracking-plan",
            r#"{ on_violation = "drop", plan = { purchase = { type = "object", required = ["value"], properties = { value = { type = "number" }, currency = { type = "string" } }, additionalProperties = false } } }"#,
            "",
        ),
        hook("shop", &rx, &["rename", "plan"]),
    ]
    .concat();
    let host = TestHost::start(dir.path(), &config).await;
    let sends = [
        ("p-ok", json!({"revenue": 12.5, "currency": "EUR"})),
        ("p-bad", json!({"revenue": "twelve"})),
        ("p-extra", json!({"revenue": 1, "coupon": "X"})),
    ];
    for (id, props) in &sends {
        let body = json!({"messageId": id, "userId": "u", "event": "Order Completed", "properties": props});
        assert_eq!(host.send("track", &body).await.status(), 200);
    }
    let row = host
        .admin()
        .wait(
            Row::Destination("shop"),
            "one delivered, two filtered",
            Duration::from_secs(60),
            |r| r["delivered"] == 1 && r["filtered"] == 2,
        )
        .await;
    let got = rx.event("p-ok").expect("the planned purchase arrived");
    assert_eq!(got["event"], "purchase");
    assert_eq!(got["properties"], json!({"value": 12.5, "currency": "EUR"}));
    assert_eq!(row["transforms"][1]["filtered"], 2, "{row}");
    let attempts = host.admin().get("/admin/destinations/shop/attempts").await;
    let reasons: Vec<String> = attempts
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| a["events"].as_array().unwrap().clone())
        .filter(|e| e["outcome"] == "filtered")
        .map(|e| e["reason"].as_str().unwrap().to_string())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("properties.value is string, expected number")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("properties.coupon is not in the plan")),
        "{reasons:?}"
    );
    host.stop().await;
}

#[tokio::test]
async fn a_transform_looks_things_up_only_at_its_allowed_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let lookup = Receiver::start().await;
    let short = r#"retry = { initial_ms = 50, max_ms = 100, window = "2s" }"#;
    let fetch = format!(
        "{{ mode = \"fetch\", url = \"{}\" }}",
        lookup.url("/lookup")
    );
    let config = [
        transform(
            "enrich",
            "misbehave-transform",
            &fetch,
            &format!("allowed_hosts = [\"{}\"]", lookup.origin()),
        ),
        // The same lookup without allowed_hosts: every request is denied.
        transform("sneaky", "misbehave-transform", &fetch, ""),
        hook("enriched", &rx, &["enrich"]),
        switchyard_e2e::webhook_table(
            "denied",
            &rx.url("/denied"),
            &rx.origin(),
            &format!("transforms = [\"sneaky\"]\n{short}"),
        ),
    ]
    .concat();
    let host = TestHost::start(dir.path(), &config).await;
    let body = json!({"messageId": "l-1", "userId": "u", "event": "E"});
    assert_eq!(host.send("track", &body).await.status(), 200);
    let admin = host.admin();
    admin
        .wait(
            Row::Destination("enriched"),
            "delivered",
            Duration::from_secs(30),
            |r| r["delivered"] == 1,
        )
        .await;
    assert_eq!(rx.event("l-1").unwrap()["properties"]["looked_up"], 200);
    let row = admin
        .wait(
            Row::Destination("denied"),
            "dead-lettered",
            Duration::from_secs(30),
            |r| r["dead_letters"] == 1,
        )
        .await;
    assert!(
        row["transforms"][0]["violations"]["egress_denied"]
            .as_u64()
            .unwrap()
            >= 1,
        "{row}"
    );
    let letters = admin.dead_letters("denied").await;
    let reason = letters[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("transform `sneaky`: lookup:")
            && reason.contains("is not in its allowed_hosts"),
        "{reason}"
    );
    // The lookup host saw the allowed transformation's request only.
    assert_eq!(lookup.received().len(), 1);
    host.stop().await;
}

#[tokio::test]
async fn a_batch_enriched_past_max_bytes_sends_what_fits_and_the_rest_later() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let max_bytes = 4_000;
    let config = [
        transform("pad", "misbehave-transform", r#"{ mode = "pad", pad = 1000 }"#, ""),
        switchyard_e2e::webhook_table(
            "padded",
            &rx.url("/padded"),
            &rx.origin(),
            &format!(
                "transforms = [\"pad\"]\nbatch = {{ max_events = 100, max_bytes = {max_bytes}, linger_ms = 300 }}"
            ),
        ),
    ]
    .concat();
    let host = TestHost::start(dir.path(), &config).await;
    let batch: Vec<Value> = (0..12)
        .map(|i| json!({"type": "track", "event": "E", "userId": "u", "messageId": format!("b-{i}")}))
        .collect();
    let r = host
        .http
        .post(host.url("/v1/batch"))
        .basic_auth(switchyard_e2e::host::WRITE_KEY, Some(""))
        .json(&json!({ "batch": batch }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let want: Vec<String> = (0..12).map(|i| format!("b-{i}")).collect();
    switchyard_e2e::all_arrive(&rx, &want).await;
    assert_eq!(rx.delivered_ids().len(), 12, "each exactly once");
    let requests = rx.received();
    assert!(
        requests.len() >= 3,
        "the enriched events went in several batches"
    );
    for r in &requests {
        // The webhook's body is the batch's events as a JSON array.
        let events: Vec<Value> = serde_json::from_slice(&r.body).unwrap();
        let bytes: usize = events.iter().map(|e| e.to_string().len()).sum();
        assert!(bytes <= max_bytes, "{bytes} bytes of events in one request");
    }
    let row = host.admin().destination("padded").await;
    assert_eq!(row["dead_letters"], 0, "{row}");
    host.stop().await;
}
