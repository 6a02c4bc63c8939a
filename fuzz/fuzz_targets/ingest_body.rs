//! A request body, as any endpoint of ingest would take it: never a panic, and
//! what is accepted keeps `normalize_body`'s promises (`broken_promise`).
#![no_main]

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use switchyard::event_type::EventType;
use switchyard::ingest::normalize::{broken_promise, normalize_body, parse_time, BodyKind};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let _ = parse_time(&value);
    let Value::Object(body) = value else {
        return;
    };
    let now = Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap();
    let mut kinds = vec![BodyKind::Batch];
    for t in ["track", "identify", "page", "screen", "group", "alias"] {
        kinds.push(BodyKind::Single(EventType::parse(t).unwrap()));
    }
    for kind in kinds {
        if let Ok(accepted) = normalize_body(body.clone(), kind, now, Some("203.0.113.9")) {
            if let Some(broken) = broken_promise(&accepted) {
                panic!("{kind:?}: {broken}");
            }
        }
    }
});
