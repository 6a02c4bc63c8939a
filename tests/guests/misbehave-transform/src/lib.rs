//! A test-only transformation that misbehaves on purpose, chosen by
//! `settings.mode`, so the suite can show the host contains it:
//! - `loop`: spins forever (the deadline stops it);
//! - `trap`: panics;
//! - `memory`: grows memory until the cap stops it;
//! - `change-id`, `change-type`, `not-json`, `huge`: keeps an event it broke;
//! - `wrong-count`: returns one verdict too many;
//! - `tag`: a well-behaved step that appends `settings.tag` to `properties.steps`
//!   (to show the order of a chain), and drops events named `drop me`;
//! - `fetch`: a lookup at `settings.url` through the `http` import;
//! - `pad`: a well-behaved step that adds `settings.pad` bytes to each event;
//! - `identity`: keeps every event as it came, without parsing it (the fixed
//!   cost of a link, for the bench).

use serde::Deserialize;
use switchyard_transform_kit::serde_json::{json, Value};
use switchyard_transform_kit::{self as kit, Event, Guest, Message, Metadata, Step, Verdict};

#[derive(Deserialize)]
struct Settings {
    mode: String,
    #[serde(default)]
    tag: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    pad: usize,
}

struct Misbehave;

impl Guest for Misbehave {
    fn describe() -> Metadata {
        Metadata {
            name: "misbehave-transform".into(),
            version: "0.0.1".into(),
            settings_schema: r#"{"type":"object","required":["mode"]}"#.into(),
            max_batch: 1000,
        }
    }

    fn check(settings: String) -> Result<(), String> {
        kit::parse_settings::<Settings>(&settings, "misbehave-transform").map(|_| ())
    }

    fn transform(settings: String, events: Vec<Event>) -> Vec<Verdict> {
        let s: Settings = kit::parse_settings(&settings, "misbehave-transform").expect("checked");
        let keep = |e: &Event, f: &dyn Fn(&mut Value)| {
            let mut v: Value = kit::serde_json::from_str(&e.json).expect("the host sends JSON");
            f(&mut v);
            Verdict::Keep(v.to_string())
        };
        match s.mode.as_str() {
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "trap" => panic!("misbehave-transform: deliberate trap"),
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "change-id" => events
                .iter()
                .map(|e| keep(e, &|v| v["messageId"] = json!("another")))
                .collect(),
            "change-type" => events
                .iter()
                .map(|e| keep(e, &|v| v["type"] = json!("alias")))
                .collect(),
            "not-json" => events.iter().map(|_| Verdict::Keep("{".into())).collect(),
            "identity" => events
                .iter()
                .map(|e| Verdict::Keep(e.json.clone()))
                .collect(),
            "pad" => events
                .iter()
                .map(|e| keep(e, &|v| v["properties"]["pad"] = json!("p".repeat(s.pad))))
                .collect(),
            "huge" => events
                .iter()
                .map(|e| {
                    keep(e, &|v| {
                        v["properties"] = json!({"pad": "x".repeat(64 * 1024)})
                    })
                })
                .collect(),
            "wrong-count" => {
                let mut v: Vec<Verdict> = events
                    .iter()
                    .map(|e| Verdict::Keep(e.json.clone()))
                    .collect();
                v.push(Verdict::Drop("extra".into()));
                v
            }
            "fetch" => events
                .iter()
                .map(|e| {
                    let req = kit::http::Request {
                        method: "GET".into(),
                        url: s.url.clone(),
                        headers: vec![],
                        body: vec![],
                    };
                    match kit::http::send(&req) {
                        Ok(r) => keep(e, &|v| v["properties"]["looked_up"] = json!(r.status)),
                        Err(err) => Verdict::Fail(kit::Failure::Reject(format!("lookup: {err:?}"))),
                    }
                })
                .collect(),
            _ => {
                let messages =
                    events
                        .iter()
                        .map(|e| match kit::serde_json::from_str::<Value>(&e.json) {
                            Ok(Value::Object(m)) => m,
                            _ => Message::new(),
                        });
                messages
                    .map(|m| match tag(&s.tag, m) {
                        Step::Keep(m) => Verdict::Keep(Value::Object(m).to_string()),
                        Step::Drop(why) => Verdict::Drop(why),
                        Step::Fail(f) => Verdict::Fail(f),
                        Step::Pass => Verdict::Fail(kit::Failure::Reject("unexpected".into())),
                    })
                    .collect()
            }
        }
    }
}

/// `tag`: record this step in `properties.steps`; drop `drop me`.
fn tag(tag: &str, mut m: Message) -> Step {
    if m.get("event").and_then(Value::as_str) == Some("drop me") {
        return Step::Drop(format!("{tag} drops `drop me`"));
    }
    let props = m
        .entry("properties")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("properties is an object");
    let steps = props.entry("steps").or_insert_with(|| json!([]));
    if let Some(list) = steps.as_array_mut() {
        list.push(json!(tag));
    }
    Step::Keep(m)
}

switchyard_transform_kit::export_transform!(Misbehave);
