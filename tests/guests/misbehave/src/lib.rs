#![allow(unsafe_code)] // the code that wit-bindgen generates for the canonical ABI
//! A destination that misbehaves on purpose, to test the sandbox. Never bundled.
//!
//! `settings.mode` picks the misbehaviour of `deliver`:
//! - `ok`: deliver everything (and do nothing else);
//! - `trap`: panic; `loop`: spin forever; `memory`: allocate without end;
//! - `recursion`: recurse without end; `log-flood`: write 100 000 log lines;
//! - `stdout-flood`: print 20 000 lines to stdout (100 times the per-call cap; each
//!   line is a WASI write, so more would only test the machine's speed against the
//!   500 ms deadline of the sandbox tests);
//! - `fetch`: `http.send` a GET to `settings.url` (a POST with `settings.body` when
//!   given, with `settings.headers`) and report the answer as the outcome
//!   (denied → reject, anything else → delivered when 2xx, retry otherwise);
//! - `log-forge`: log a line that holds a line break and a terminal escape;
//! - `wrong-count`: return one outcome too many;
//! - `huge-reason`: reject with a 1 MB reason;
//! - `leak`: try to leak `settings.secret` (a `${secret:NAME}`): log it, send it to
//!   `settings.other` (an allowed host that is not one of the secret's), send it to
//!   `settings.url` with a guessed placeholder, and reject with all it saw, the
//!   answer included;
//! - `warm`: count the batches this instance served and keep state across
//!   them (the first `settings.tag` it saw, the first `settings.secret` token
//!   it saw, `settings.leak_kb` more KiB of memory per batch), then POST them
//!   to `settings.url` as `{"tag", "first_tag", "calls", "events"}` with
//!   `authorization: Bearer <the first token>`; an event whose JSON holds
//!   `"trap":true` panics after the POST.
//!
//! `check` refuses `{"mode": "refuse"}`.

use serde::Deserialize;

wit_bindgen::generate!({
    world: "destination",
    path: "../../../wit",
});

use switchyard::destination::http;
use switchyard::destination::log;
use switchyard::destination::types::RetryHint;

#[derive(Deserialize)]
struct Settings {
    mode: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    other: Option<String>,
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    leak_kb: Option<usize>,
}

/// State the `warm` mode keeps in the instance, from batch to batch.
mod kept {
    use std::sync::atomic::AtomicU32;
    use std::sync::{Mutex, OnceLock};

    /// Batches this instance served.
    pub static CALLS: AtomicU32 = AtomicU32::new(0);
    /// The first tag it saw.
    pub static FIRST_TAG: OnceLock<String> = OnceLock::new();
    /// The first secret token it saw.
    pub static FIRST_TOKEN: OnceLock<String> = OnceLock::new();
    /// Memory it never gives back.
    pub static LEAKED: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
}

struct Misbehave;

#[inline(never)]
#[allow(unconditional_recursion)] // the point of the `recursion` mode
fn recurse(depth: u64, buf: &mut [u8; 64]) -> u64 {
    buf[(depth % 64) as usize] = depth as u8;
    let mut local = [0u8; 64];
    local.copy_from_slice(buf);
    recurse(depth + 1, &mut local) + local[0] as u64
}

impl Guest for Misbehave {
    fn describe() -> Metadata {
        Metadata {
            name: "misbehave".into(),
            version: "0.0.1".into(),
            settings_schema: r#"{"type":"object","required":["mode"]}"#.into(),
            max_batch: 50,
        }
    }

    fn check(settings: String) -> Result<(), String> {
        let s: Settings = serde_json::from_str(&settings).map_err(|e| format!("settings: {e}"))?;
        if s.mode == "refuse" {
            return Err("mode `refuse` is refused".into());
        }
        Ok(())
    }

    fn deliver(settings: String, events: Vec<Event>) -> Vec<Result<(), Failure>> {
        let s: Settings = match serde_json::from_str(&settings) {
            Ok(s) => s,
            Err(e) => return vec![Err(Failure::Reject(e.to_string())); events.len()],
        };
        match s.mode.as_str() {
            "trap" => panic!("misbehave: deliberate trap"),
            "loop" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "recursion" => {
                let mut buf = [0u8; 64];
                let n = recurse(0, &mut buf);
                vec![Err(Failure::Reject(format!("unreachable {n}"))); events.len()]
            }
            "log-flood" => {
                for i in 0..100_000 {
                    log::log(log::Level::Info, &format!("flood line {i}"));
                }
                vec![Ok(()); events.len()]
            }
            "stdout-flood" => {
                for i in 0..20_000 {
                    println!("stdout flood line {i}");
                }
                vec![Ok(()); events.len()]
            }
            "log-forge" => {
                log::log(
                    log::Level::Info,
                    "forge-1\nERROR switchyard: forged-line\r\n\u{1b}[2J",
                );
                vec![Ok(()); events.len()]
            }
            "fetch" => {
                let req = http::Request {
                    method: if s.body.is_some() { "POST" } else { "GET" }.into(),
                    url: s.url.unwrap_or_default(),
                    headers: s.headers,
                    body: s.body.unwrap_or_default().into_bytes(),
                };
                let outcome = match http::send(&req) {
                    Ok(resp) if (200..300).contains(&resp.status) => Ok(()),
                    Ok(resp) => Err(Failure::Retry(RetryHint {
                        reason: format!("status {}", resp.status),
                        after_ms: None,
                    })),
                    Err(http::Error::Denied(why)) => Err(Failure::Reject(format!("denied: {why}"))),
                    Err(e) => Err(Failure::Retry(RetryHint {
                        reason: format!("{e:?}"),
                        after_ms: None,
                    })),
                };
                vec![outcome; events.len()]
            }
            "leak" => {
                let secret = s.secret.clone().unwrap_or_default();
                log::log(log::Level::Warn, &format!("leak: the secret is {secret}"));
                let post = |url: &str, headers: Vec<(String, String)>, body: String| {
                    http::send(&http::Request {
                        method: "POST".into(),
                        url: url.to_string(),
                        headers,
                        body: body.into_bytes(),
                    })
                };
                let elsewhere = post(
                    s.other.as_deref().unwrap_or(""),
                    vec![("x-key".into(), secret.clone())],
                    secret.clone(),
                );
                let elsewhere = match elsewhere {
                    Err(http::Error::Denied(why)) => format!("denied: {why}"),
                    other => format!("{other:?}"),
                };
                let echoed = post(
                    s.url.as_deref().unwrap_or(""),
                    vec![
                        ("content-type".into(), "application/json".into()),
                        ("authorization".into(), format!("Bearer {secret}")),
                    ],
                    format!(r#"{{"key":"{secret}","guess":"${{secret:k}}"}}"#),
                );
                let echo = match echoed {
                    Ok(resp) => String::from_utf8_lossy(&resp.body).into_owned(),
                    Err(e) => format!("{e:?}"),
                };
                let reason = format!("seen {secret}; other host: {elsewhere}; echo: {echo}");
                vec![Err(Failure::Reject(reason)); events.len()]
            }
            "warm" => {
                let calls = kept::CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                let tag = s.tag.clone().unwrap_or_default();
                let first_tag = kept::FIRST_TAG.get_or_init(|| tag.clone()).clone();
                let token = kept::FIRST_TOKEN
                    .get_or_init(|| s.secret.clone().unwrap_or_default())
                    .clone();
                if let Some(kb) = s.leak_kb {
                    let mut leaked = kept::LEAKED.lock().unwrap_or_else(|p| p.into_inner());
                    leaked.push(vec![1u8; kb << 10]);
                    std::hint::black_box(&leaked);
                }
                let body = serde_json::json!({
                    "tag": tag, "first_tag": first_tag, "calls": calls, "events": events.len(),
                });
                let sent = http::send(&http::Request {
                    method: "POST".into(),
                    url: s.url.clone().unwrap_or_default(),
                    headers: vec![
                        ("content-type".into(), "application/json".into()),
                        ("authorization".into(), format!("Bearer {token}")),
                    ],
                    body: body.to_string().into_bytes(),
                });
                if events.iter().any(|e| e.json.contains("\"trap\":true")) {
                    panic!("misbehave: a trap in a warm instance");
                }
                match sent {
                    Ok(r) if (200..300).contains(&r.status) => vec![Ok(()); events.len()],
                    other => vec![
                        Err(Failure::Retry(RetryHint {
                            reason: format!("{other:?}"),
                            after_ms: None,
                        }));
                        events.len()
                    ],
                }
            }
            "wrong-count" => vec![Ok(()); events.len() + 1],
            "huge-reason" => vec![Err(Failure::Reject("x".repeat(1 << 20))); events.len()],
            _ => vec![Ok(()); events.len()],
        }
    }
}

export!(Misbehave);
