//! Properties of the parsers that face the outside, on generated input: a
//! request body's normalisation, timestamps, and the config file. They run in
//! `make test`; the same functions are fuzzed by `make fuzz` (`fuzz/`), and
//! each input a fuzzer ever crashed on is kept as a case below.

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use serde_json::{Map, Value};

use switchyard::config::Config;
use switchyard::event_type::EventType;
use switchyard::ingest::normalize::{broken_promise, normalize_body, parse_time, BodyKind};

/// Field names that mean something to a Segment message, and some that do not.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("type".to_string()),
        Just("messageId".to_string()),
        Just("userId".to_string()),
        Just("anonymousId".to_string()),
        Just("timestamp".to_string()),
        Just("originalTimestamp".to_string()),
        Just("sentAt".to_string()),
        Just("context".to_string()),
        Just("integrations".to_string()),
        Just("event".to_string()),
        Just("properties".to_string()),
        Just("traits".to_string()),
        Just("batch".to_string()),
        "[a-zA-Z_]{0,8}",
    ]
}

/// Strings a client might send where a time, an id or a name goes.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("track".to_string()),
        Just("identify".to_string()),
        Just("2026-12-01T10:00:00Z".to_string()),
        Just("+12026-01-01T00:00:00Z".to_string()),
        Just("1969-12-31T23:59:59.999999999-23:59".to_string()),
        Just("12345678901234567890123".to_string()),
        ".{0,40}",
    ]
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn kinds() -> Vec<BodyKind> {
    let mut kinds = vec![BodyKind::Batch];
    for t in ["track", "identify", "page", "screen", "group", "alias"] {
        kinds.push(BodyKind::Single(EventType::parse(t).unwrap()));
    }
    kinds
}

/// Normalise `body` as every endpoint would; panics, or breaks a promise, fail.
fn check_body(body: Map<String, Value>) -> Result<(), TestCaseError> {
    let now = Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap();
    for kind in kinds() {
        if let Ok(accepted) = normalize_body(body.clone(), kind, now, Some("203.0.113.9")) {
            prop_assert_eq!(broken_promise(&accepted), None, "{:?} {:?}", kind, body);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        // Failures are kept as cases in `regressions` below, by hand.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_object_normalises_within_its_promises(body in prop::collection::btree_map(key(), json(), 0..10)) {
        check_body(body.into_iter().collect())?;
    }

    #[test]
    fn any_batch_normalises_within_its_promises(
        items in prop::collection::vec(prop::collection::btree_map(key(), json(), 0..8), 0..12),
        context in json(),
        sent_at in json(),
    ) {
        let batch: Vec<Value> = items
            .into_iter()
            .map(|m| Value::Object(m.into_iter().collect()))
            .collect();
        let mut body = Map::new();
        body.insert("batch".into(), Value::Array(batch));
        body.insert("context".into(), context);
        body.insert("sentAt".into(), sent_at);
        check_body(body)?;
    }

    #[test]
    fn any_bytes_are_refused_or_normalised(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&bytes) {
            check_body(body)?;
        }
    }

    #[test]
    fn a_parsed_time_is_a_real_time(v in json()) {
        if let Some(t) = parse_time(&v) {
            prop_assert!(chrono::Datelike::year(&t) >= -262_000);
        }
    }

    #[test]
    fn any_config_text_parses_or_says_where_it_is_wrong(
        lines in prop::collection::vec(prop_oneof![
            Just("[server]".to_string()),
            Just("[store]".to_string()),
            Just("[[sources]]".to_string()),
            Just("[[destinations]]".to_string()),
            Just("name = \"d\"".to_string()),
            Just("plugin = \"webhook\"".to_string()),
            Just("write_key = \"k\"".to_string()),
            Just("listen = \"127.0.0.1:0\"".to_string()),
            Just("concurrency = 99999999999".to_string()),
            Just("retry = { initial_ms = 18446744073709551615, max_ms = 0, window = \"9999999999y\" }".to_string()),
            Just("rate = { per_second = 0, burst = 0 }".to_string()),
            Just("limits = { timeout_ms = 18446744073709551615 }".to_string()),
            "[a-z_]{1,10} = .{0,20}",
            ".{0,30}",
        ], 0..12)
    ) {
        let text = lines.join("\n");
        let dir = std::env::temp_dir();
        if let Err(e) = Config::parse(&text, "prop.toml", &dir) {
            let message = format!("{e:#}");
            prop_assert!(message.contains("prop.toml"), "{message}");
        }
    }

    /// The NATS message path (`make fuzz` runs it as `nats_message`): every
    /// text written into a header reads back exactly, on one line; any
    /// header a message may arrive with reads into a job without a panic.
    #[test]
    fn nats_headers_read_back_exactly_and_any_headers_make_a_job(
        texts in prop::collection::vec(any_text(), 6),
        raw in prop::collection::vec(("[A-Za-z-]{1,24}", "[^\r\n]{0,40}"), 0..8),
        payload in prop::collection::vec(any::<u8>(), 0..64),
        delivered in any::<i64>(),
    ) {
        use switchyard::store::nats::{headers, job_of, route_keys_of, Delivery};
        for t in &texts {
            let v = headers::encode(t);
            let wire = over_the_wire(&v);
            prop_assert!(wire.is_some(), "{:?} written with a line break: {:?}", t, v);
            let wire = wire.unwrap_or_default();
            prop_assert_eq!(headers::decode(&wire), t.as_str());
        }
        let map = headers::Headers::new()
            .text("Switchyard-Message-Id", &texts[0])
            .text("Switchyard-Source", &texts[1])
            .text("Switchyard-Type", &texts[2])
            .text("Switchyard-User", &texts[3])
            .text("Switchyard-Event", &texts[4])
            .text("Switchyard-Integrations", &texts[5])
            .into_map();
        let delivery = Delivery { sequence: 1, published: 0, delivered };
        // A type of the six comes back as it is; any other text is no event.
        let job = job_of(Some(&map), &payload, delivery, 10);
        let typed = switchyard::event_type::EventType::parse(&texts[2]);
        prop_assert_eq!(job.as_ref().ok().map(|j| j.event_type), typed);
        let typed_map = headers::Headers::new()
            .text("Switchyard-Message-Id", &texts[0])
            .text("Switchyard-Source", &texts[1])
            .text("Switchyard-Type", "identify")
            .into_map();
        let job = job_of(Some(&typed_map), &payload, delivery, 10).unwrap();
        prop_assert_eq!(&job.message_id, &texts[0]);
        prop_assert_eq!(&*job.source, texts[1].as_str());
        prop_assert_eq!(route_keys_of(Some(&map)).event_name, Some(texts[4].clone()));
        let mut any = async_nats::HeaderMap::new();
        for (name, value) in &raw {
            any.insert(name.as_str(), value.as_str());
        }
        let _ = job_of(Some(&any), &payload, delivery, 10);
        let _ = route_keys_of(Some(&any));
    }
}

/// Any text, control characters and all (the ids and names clients send).
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,24}",
        prop::collection::vec(any::<char>(), 0..24).prop_map(|c| c.into_iter().collect()),
        "[ \t\r\n\u{0}-\u{1f}\u{7f}-\u{9f}\u{2028}a:]{0,12}",
        Just("json:\"x\"".to_string()),
    ]
}

/// What the NATS client's parser does to a header value on the wire: the
/// value must hold no line break, and it is trimmed at both ends.
fn over_the_wire(v: &async_nats::HeaderValue) -> Option<String> {
    let s = v.as_str();
    (!s.contains(['\r', '\n'])).then(|| s.trim().to_string())
}

/// Inputs that once broke a parser (from fuzzing and from issue #18).
#[test]
fn regressions() {
    let cases = [
        // A 400 KB batch context merged into 500 items (issue #18): refused or within the limits.
        format!(
            r#"{{"batch":[{}],"context":{{"pad":"{}"}}}}"#,
            vec![r#"{"type":"track","event":"e","userId":"u"}"#; 500].join(","),
            "x".repeat(400_000)
        ),
        // A time past year 9999.
        r#"{"type":"track","event":"e","userId":"u","timestamp":"+12026-01-01T00:00:00Z"}"#.into(),
        // A float that serde_json's fast parser read one digit off, so the stored
        // event differed from the one checked (found by the properties above).
        r#"{"batch":[{"type":1.1263271664625038e-278}],"userId":0}"#.into(),
        r#"{"type":"track","event":"e","userId":"u","properties":{"x":1.1263271664625038e-278}}"#
            .into(),
        // Integers beyond 2^64 as ids.
        r#"{"type":"identify","userId":123456789012345678901234567890}"#.into(),
    ];
    for case in cases {
        let Ok(Value::Object(body)) = serde_json::from_str::<Value>(&case) else {
            panic!("not JSON: {}", &case[..60.min(case.len())]);
        };
        check_body(body).unwrap();
    }
}
