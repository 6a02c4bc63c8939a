//! The `mixpanel` destination.
//!
//! - `track`, `page` and `screen` become Mixpanel events, sent in one request per batch
//!   to the Import API: `POST {endpoint}/import?strict=1[&project_id=…]`, with HTTP Basic
//!   auth of a service account (with `project_id`) or of the project's API secret.
//! - `identify` becomes a profile update (`$set` of the traits) through the Engage API:
//!   `POST {endpoint}/engage?verbose=1` (the "profile-set" operation), authorised by the
//!   project `token` in the body.
//! - `group` and `alias` are rejected with the reason.
//!
//! Outcomes: the kit's standard classification, plus Mixpanel's partial failures: a 400
//! from `/import?strict=1` lists `failed_records` by index; those events are rejected
//! with Mixpanel's message and the others were imported (delivered). A `/engage` answer
//! `{"status":0,"error":…}` rejects the profile updates with that error.
//!
//! Deletion (a privacy regulation's `DELETE`): [`deletion`], through Mixpanel's
//! GDPR API.

use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use switchyard_destination_kit::{self as kit, Event, EventType, Failure, Outcome};

const NAME: &str = "mixpanel";
const DEFAULT_ENDPOINT: &str = "https://api.mixpanel.com";
/// Largest batch: Mixpanel takes at most 2000 records per /import or /engage request.
const MAX_BATCH: u32 = 1000;
/// Mixpanel's limit on one /import request body (uncompressed), with some headroom.
const MAX_IMPORT_BYTES: usize = 9 * 1024 * 1024;

const SETTINGS_SCHEMA: &str = r#"{
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "endpoint": {"type": "string", "default": "https://api.mixpanel.com", "description": "API base URL: https://api.mixpanel.com, https://api-eu.mixpanel.com (EU residency), https://api-in.mixpanel.com (India), or a proxy"},
    "project_id": {"type": ["string", "integer"], "description": "Project id; required with a service account"},
    "service_account_user": {"type": "string", "description": "Service account user name (Basic auth user of /import)"},
    "service_account_secret": {"type": "string", "description": "Service account secret (Basic auth password of /import)"},
    "api_secret": {"type": "string", "description": "Project API secret (Basic auth user of /import), when no service account is given"},
    "token": {"type": "string", "description": "Project token: sent as properties.token, and required for identify (Engage API) and deletions (GDPR API)"},
    "gdpr_api_token": {"type": "string", "description": "GDPR OAuth token (Profile & Preferences, Data & Privacy): required to delete users (privacy regulations)"},
    "gdpr_endpoint": {"type": "string", "default": "https://mixpanel.com", "description": "Base URL of the GDPR API: https://mixpanel.com, https://eu.mixpanel.com (EU residency), or a proxy"}
  },
  "oneOf": [
    {"required": ["service_account_user", "service_account_secret", "project_id"]},
    {"required": ["api_secret"]}
  ]
}"#;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default = "default_endpoint")]
    endpoint: String,
    #[serde(default, deserialize_with = "kit::string_or_integer")]
    project_id: Option<String>,
    #[serde(default)]
    service_account_user: Option<String>,
    #[serde(default)]
    service_account_secret: Option<String>,
    #[serde(default)]
    api_secret: Option<String>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    gdpr_api_token: Option<String>,
    #[serde(default = "deletion::default_gdpr_endpoint")]
    gdpr_endpoint: String,
}

fn default_endpoint() -> String {
    DEFAULT_ENDPOINT.into()
}

mod deletion;

/// How /import is authorised.
enum Auth<'a> {
    ServiceAccount {
        user: &'a str,
        secret: &'a str,
        project_id: &'a str,
    },
    ApiSecret(&'a str),
}

impl Settings {
    fn parse(raw: &str) -> Result<Settings, String> {
        let mut s: Settings = kit::parse_settings(raw, NAME)?;
        kit::check_endpoint(NAME, "endpoint", &mut s.endpoint)?;
        kit::check_endpoint(NAME, "gdpr_endpoint", &mut s.gdpr_endpoint)?;
        for (field, value) in [
            ("project_id", &s.project_id),
            ("service_account_user", &s.service_account_user),
            ("service_account_secret", &s.service_account_secret),
            ("api_secret", &s.api_secret),
            ("token", &s.token),
            ("gdpr_api_token", &s.gdpr_api_token),
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err(format!("{NAME} settings: {field} must not be empty"));
            }
        }
        if let Some(id) = &s.project_id {
            if !id.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "{NAME} settings: project_id must be the numeric project id, got {id:?}"
                ));
            }
        }
        match (&s.service_account_user, &s.service_account_secret) {
            (Some(_), None) => {
                return Err(format!(
                    "{NAME} settings: service_account_secret is required with service_account_user"
                ))
            }
            (None, Some(_)) => {
                return Err(format!(
                    "{NAME} settings: service_account_user is required with service_account_secret"
                ))
            }
            (Some(_), Some(_)) if s.project_id.is_none() => {
                return Err(format!(
                    "{NAME} settings: project_id is required with a service account"
                ))
            }
            (None, None) if s.api_secret.is_none() => {
                return Err(format!(
                    "{NAME} settings: give service_account_user, service_account_secret and project_id, or api_secret"
                ))
            }
            _ => {}
        }
        Ok(s)
    }

    /// The service account wins when both forms are given.
    fn auth(&self) -> Auth<'_> {
        match (
            &self.service_account_user,
            &self.service_account_secret,
            &self.project_id,
        ) {
            (Some(user), Some(secret), Some(project_id)) => Auth::ServiceAccount {
                user,
                secret,
                project_id,
            },
            _ => Auth::ApiSecret(self.api_secret.as_deref().unwrap_or_default()),
        }
    }

    fn import_request(&self) -> (String, Vec<(String, String)>) {
        let (url, authorization) = match self.auth() {
            Auth::ServiceAccount {
                user,
                secret,
                project_id,
            } => (
                format!(
                    "{}/import?strict=1&project_id={}",
                    self.endpoint,
                    kit::url_encode(project_id)
                ),
                kit::basic_auth(user, secret),
            ),
            Auth::ApiSecret(secret) => (
                format!("{}/import?strict=1", self.endpoint),
                kit::basic_auth(secret, ""),
            ),
        };
        (url, vec![("authorization".into(), authorization)])
    }
}

/// Mixpanel's `distinct_id`: the user id, else the anonymous id as `$device:<id>`
/// (Simplified ID Merge).
fn distinct_id(message: &Value) -> Option<String> {
    kit::id_field(message, "userId")
        .or_else(|| kit::id_field(message, "anonymousId").map(|anon| format!("$device:{anon}")))
}

/// `$insert_id` must be at most 36 characters of letters, digits and `-`: the
/// `messageId` when it fits, else a stable 32-hex-digit hash of it (still deduplicates).
fn insert_id(message_id: &str) -> String {
    let fits = !message_id.is_empty()
        && message_id.len() <= 36
        && message_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if fits {
        message_id.to_string()
    } else {
        hex::encode(&Sha256::digest(message_id.as_bytes())[..16])
    }
}

/// The event name of a `track`, `page` or `screen` call.
fn event_name(kind: EventType, message: &Value) -> Option<String> {
    let named = |what: &str| {
        let name = kit::str_at(message, "name").filter(|n| !n.trim().is_empty());
        let category = kit::str_at(message, "category").filter(|c| !c.trim().is_empty());
        Some(match (category, name) {
            (Some(c), Some(n)) => format!("Viewed {c} {n} {what}"),
            (None, Some(n)) | (Some(n), None) => format!("Viewed {n} {what}"),
            (None, None) => format!("Loaded a {what}"),
        })
    };
    match kind {
        EventType::Track => kit::str_at(message, "event")
            .filter(|e| !e.trim().is_empty())
            .map(str::to_string),
        EventType::Page => named("Page"),
        EventType::Screen => named("Screen"),
        _ => None,
    }
}

/// One /import record: `{"event": name, "properties": {...}}`.
fn import_record(
    settings: &Settings,
    event: &Event,
    message: &Value,
    name: String,
) -> Result<Value, Failure> {
    let distinct =
        distinct_id(message).ok_or_else(|| kit::reject("event has no userId or anonymousId"))?;
    let time =
        kit::timestamp_ms(message).ok_or_else(|| kit::reject("event has no valid timestamp"))?;
    let mut props = kit::object_at(message, "properties");
    let page_url =
        kit::str_at(message, "context.page.url").or_else(|| kit::str_at(message, "properties.url"));
    if let Some(url) = page_url {
        props
            .entry("$current_url")
            .or_insert_with(|| Value::from(url));
    }
    if let Some(referrer) = kit::str_at(message, "context.page.referrer") {
        props
            .entry("$referrer")
            .or_insert_with(|| Value::from(referrer));
    }
    if let Some(ip) = kit::str_at(message, "context.ip") {
        props.entry("ip").or_insert_with(|| Value::from(ip));
    }
    if let Some(anon) = kit::id_field(message, "anonymousId") {
        props.insert("$device_id".into(), Value::from(anon));
    }
    if let Some(user) = kit::id_field(message, "userId") {
        props.insert("$user_id".into(), Value::from(user));
    }
    props.insert("mp_lib".into(), Value::from("switchyard"));
    if let Some(token) = &settings.token {
        props.insert("token".into(), Value::from(token.as_str()));
    }
    props.insert("time".into(), Value::from(time));
    props.insert("distinct_id".into(), Value::from(distinct));
    props.insert(
        "$insert_id".into(),
        Value::from(insert_id(&event.message_id)),
    );
    Ok(json!({ "event": name, "properties": props }))
}

/// Segment's special traits, as Mixpanel's reserved profile properties.
const RESERVED_TRAITS: &[(&str, &str)] = &[
    ("email", "$email"),
    ("firstName", "$first_name"),
    ("first_name", "$first_name"),
    ("lastName", "$last_name"),
    ("last_name", "$last_name"),
    ("name", "$name"),
    ("phone", "$phone"),
    ("avatar", "$avatar"),
    ("createdAt", "$created"),
    ("created_at", "$created"),
];

/// One /engage profile update: `{"$token", "$distinct_id", "$set", "$ip"?}`.
fn engage_record(settings: &Settings, message: &Value) -> Result<Value, Failure> {
    let token = settings.token.as_deref().ok_or_else(|| {
        kit::reject("identify needs settings.token (the project token) for Mixpanel's Engage API")
    })?;
    let distinct =
        distinct_id(message).ok_or_else(|| kit::reject("event has no userId or anonymousId"))?;
    let mut set = Map::new();
    for (key, value) in kit::object_at(message, "traits") {
        let key = RESERVED_TRAITS
            .iter()
            .find(|(from, _)| *from == key)
            .map_or(key, |(_, to)| (*to).to_string());
        set.insert(key, value);
    }
    let mut record = json!({ "$token": token, "$distinct_id": distinct, "$set": set });
    if let Some(ip) = kit::str_at(message, "context.ip") {
        record["$ip"] = Value::from(ip);
    }
    Ok(record)
}

/// Send the /import records (indices into the batch) in requests of at most
/// `MAX_IMPORT_BYTES`, and write each event's outcome.
fn send_imports(settings: &Settings, records: Vec<(usize, Value)>, outcomes: &mut [Outcome]) {
    let (url, headers) = settings.import_request();
    let mut chunk: Vec<(usize, Value)> = Vec::new();
    let mut size = 2;
    for (index, record) in records {
        let len = serde_json::to_string(&record).map_or(0, |s| s.len()) + 1;
        if !chunk.is_empty() && size + len > MAX_IMPORT_BYTES {
            import_chunk(&url, &headers, std::mem::take(&mut chunk), outcomes);
            size = 2;
        }
        size += len;
        chunk.push((index, record));
    }
    if !chunk.is_empty() {
        import_chunk(&url, &headers, chunk, outcomes);
    }
}

fn import_chunk(
    url: &str,
    headers: &[(String, String)],
    chunk: Vec<(usize, Value)>,
    outcomes: &mut [Outcome],
) {
    let (indices, body): (Vec<usize>, Vec<Value>) = chunk.into_iter().unzip();
    let answer = kit::post_json(url, headers, &body);
    for (i, outcome) in indices.into_iter().zip(import_outcomes(body.len(), answer)) {
        outcomes[i] = outcome;
    }
}

/// The outcomes of the `n` records of one /import request, from its answer:
/// with strict=1, a 400 lists the records that failed validation by index (the
/// others were imported); the kit maps them back.
fn import_outcomes(n: usize, answer: Result<kit::Response, kit::http::Error>) -> Vec<Outcome> {
    kit::record_outcomes(NAME, n, answer, |resp| {
        (resp.status == 400).then(|| {
            failed_records(resp)
                .into_iter()
                .map(|(i, why)| (i, kit::reject(format!("mixpanel refused the event: {why}"))))
                .collect()
        })
    })
}

/// `failed_records` of a strict-mode 400: (index in the request, "field: message").
fn failed_records(resp: &kit::Response) -> Vec<(usize, String)> {
    let Ok(body) = resp.json::<Value>() else {
        return Vec::new();
    };
    let Some(records) = body.get("failed_records").and_then(Value::as_array) else {
        return Vec::new();
    };
    records
        .iter()
        .filter_map(|r| {
            let index = usize::try_from(r.get("index")?.as_u64()?).ok()?;
            let field = r.get("field").and_then(Value::as_str).unwrap_or("");
            let message = r
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("failed validation");
            let why = if field.is_empty() || message.contains(field) {
                message.to_string()
            } else {
                format!("{field}: {message}")
            };
            Some((index, why))
        })
        .collect()
}

/// Send the profile updates in one /engage request and write each event's outcome.
fn send_engage(settings: &Settings, records: Vec<(usize, Value)>, outcomes: &mut [Outcome]) {
    let (indices, body): (Vec<usize>, Vec<Value>) = records.into_iter().unzip();
    let url = format!("{}/engage?verbose=1", settings.endpoint);
    let outcome = engage_outcome(kit::post_json(&url, &[], &body));
    for i in indices {
        outcomes[i] = outcome.clone();
    }
}

/// The outcome of an /engage request: with verbose=1 Mixpanel answers 200 with
/// `{"status":1,"error":null}`, or `{"status":0,"error":"..."}` when it refused the updates.
fn engage_outcome(answer: Result<kit::Response, kit::http::Error>) -> Outcome {
    match answer {
        Ok(resp) if resp.is_success() => match resp.json::<Value>() {
            Ok(v) if v.get("status").and_then(Value::as_i64) == Some(0) => {
                Err(kit::reject(format!(
                    "mixpanel refused the profile update: {}",
                    v.get("error").and_then(Value::as_str).unwrap_or("status 0")
                )))
            }
            _ => Ok(()),
        },
        answer => kit::classify_as(NAME, answer),
    }
}

struct Mixpanel;

impl kit::Destination for Mixpanel {
    const NAME: &'static str = NAME;
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SETTINGS_SCHEMA: &'static str = SETTINGS_SCHEMA;
    const MAX_BATCH: u32 = MAX_BATCH;
    type Settings = Settings;

    fn settings(raw: &str) -> Result<Settings, String> {
        Settings::parse(raw)
    }

    fn deliver(settings: Settings, events: Vec<Event>) -> Vec<kit::Outcome> {
        let mut outcomes: Vec<Outcome> = vec![Ok(()); events.len()];
        let mut imports = Vec::new();
        let mut profiles = Vec::new();
        for (i, event) in events.iter().enumerate() {
            let message = kit::event_json(event);
            let record = match event.event_type {
                EventType::Track | EventType::Page | EventType::Screen => {
                    match event_name(event.event_type, &message) {
                        Some(name) => import_record(&settings, event, &message, name)
                            .map(|r| imports.push((i, r))),
                        None => Err(kit::reject("track event has no name")),
                    }
                }
                EventType::Identify => {
                    engage_record(&settings, &message).map(|r| profiles.push((i, r)))
                }
                EventType::Group => Err(kit::reject(
                    "mixpanel destination does not support group calls",
                )),
                EventType::Alias => Err(kit::reject(
                    "mixpanel destination does not support alias calls (Simplified ID Merge links ids through $device_id and $user_id on events)",
                )),
            };
            if let Err(failure) = record {
                outcomes[i] = Err(failure);
            }
        }
        if !imports.is_empty() {
            send_imports(&settings, imports, &mut outcomes);
        }
        if !profiles.is_empty() {
            send_engage(&settings, profiles, &mut outcomes);
        }
        outcomes
    }
}

switchyard_destination_kit::export_deleting_destination!(Mixpanel);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_ids_fit_mixpanel_rules() {
        assert_eq!(
            insert_id("0b8a5f4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"),
            "0b8a5f4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
        );
        let long = insert_id("ajs-next-1700000000000-0b8a5f4e-1c2d-4e5f-8a9b");
        assert_eq!(long.len(), 32);
        assert_eq!(
            long,
            insert_id("ajs-next-1700000000000-0b8a5f4e-1c2d-4e5f-8a9b")
        );
        assert_eq!(insert_id("a_b").len(), 32);
    }

    #[test]
    fn page_and_screen_names() {
        let m = json!({"name": "Pricing"});
        assert_eq!(
            event_name(EventType::Page, &m).as_deref(),
            Some("Viewed Pricing Page")
        );
        let m = json!({"name": "Pricing", "category": "Docs"});
        assert_eq!(
            event_name(EventType::Page, &m).as_deref(),
            Some("Viewed Docs Pricing Page")
        );
        assert_eq!(
            event_name(EventType::Screen, &json!({})).as_deref(),
            Some("Loaded a Screen")
        );
        assert_eq!(
            event_name(EventType::Page, &json!({})).as_deref(),
            Some("Loaded a Page")
        );
    }

    fn resp(status: u16, body: &str) -> kit::Response {
        kit::Response {
            status,
            headers: vec![("retry-after".into(), "2".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn strict_import_failures_reject_only_the_failed_records() {
        let body = r#"{"code":400,"error":"some data points in the request failed validation","failed_records":[{"index":1,"$insert_id":"x","field":"properties.time","message":"'properties.time' is invalid: must be specified as seconds since epoch"}],"num_records_imported":2,"status":"Bad Request"}"#;
        let out = import_outcomes(3, Ok(resp(400, body)));
        assert!(out[0].is_ok() && out[2].is_ok());
        match &out[1] {
            Err(Failure::Reject(why)) => assert!(why.contains("properties.time"), "{why}"),
            other => panic!("{other:?}"),
        }
        let out = import_outcomes(2, Ok(resp(400, r#"{"error":"bad"}"#)));
        assert!(out
            .iter()
            .all(|o| matches!(o, Err(Failure::Reject(w)) if w.contains("400"))));
        let out = import_outcomes(2, Ok(resp(429, "")));
        assert!(out
            .iter()
            .all(|o| matches!(o, Err(Failure::Retry(h)) if h.after_ms == Some(2000))));
        let out = import_outcomes(2, Ok(resp(401, "")));
        assert!(out.iter().all(|o| matches!(o, Err(Failure::Reject(_)))));
        assert!(import_outcomes(
            2,
            Ok(resp(
                200,
                r#"{"code":200,"num_records_imported":2,"status":"OK"}"#
            ))
        )
        .iter()
        .all(Result::is_ok));
    }

    #[test]
    fn a_whole_delivery_maps_vendor_indices_past_local_rejects() {
        // Event 1 (a group call) is refused locally, so /import gets 3 records and
        // its index 1 is event 2.
        kit::mock::respond(|_| {
            kit::mock::answer(
                400,
                &[],
                r#"{"failed_records":[{"index":1,"field":"event","message":"too long"}]}"#,
            )
        });
        let event = |i: usize, t: EventType, json: &str| Event {
            message_id: format!("m{i}"),
            event_type: t,
            json: json.to_string(),
        };
        let events = vec![
            event(
                0,
                EventType::Track,
                r#"{"type":"track","event":"A","userId":"u","timestamp":"2026-01-01T00:00:00.000Z"}"#,
            ),
            event(
                1,
                EventType::Group,
                r#"{"type":"group","groupId":"g","userId":"u"}"#,
            ),
            event(
                2,
                EventType::Track,
                r#"{"type":"track","event":"B","userId":"u","timestamp":"2026-01-01T00:00:00.000Z"}"#,
            ),
            event(
                3,
                EventType::Track,
                r#"{"type":"track","event":"C","userId":"u","timestamp":"2026-01-01T00:00:00.000Z"}"#,
            ),
        ];
        let settings = Settings::parse(r#"{"api_secret":"s"}"#).unwrap();
        let out = <Mixpanel as kit::Destination>::deliver(settings, events);
        let sent = kit::mock::requests();
        assert_eq!(sent.len(), 1, "{out:?}");
        assert!(sent[0].url.contains("/import"), "{}", sent[0].url);
        assert!(out[0].is_ok() && out[3].is_ok(), "{out:?}");
        assert!(matches!(&out[1], Err(Failure::Reject(w)) if w.contains("group")));
        assert!(matches!(&out[2], Err(Failure::Reject(w)) if w.contains("too long")));
    }

    #[test]
    fn engage_status_zero_rejects() {
        assert!(engage_outcome(Ok(resp(200, r#"{"status":1,"error":null}"#))).is_ok());
        assert!(matches!(
            engage_outcome(Ok(resp(200, r#"{"status":0,"error":"Invalid token"}"#))),
            Err(Failure::Reject(w)) if w.contains("Invalid token")
        ));
        assert!(matches!(
            engage_outcome(Ok(resp(503, ""))),
            Err(Failure::Retry(_))
        ));
    }

    #[test]
    fn settings_need_one_auth_form() {
        assert!(Settings::parse(r#"{"api_secret":"s"}"#).is_ok());
        assert!(Settings::parse(
            r#"{"service_account_user":"u","service_account_secret":"s","project_id":123}"#
        )
        .is_ok());
        let e = Settings::parse(r#"{"service_account_user":"u","service_account_secret":"s"}"#)
            .unwrap_err();
        assert!(e.contains("project_id"), "{e}");
        let e = Settings::parse(r#"{"service_account_user":"u","api_secret":"s"}"#).unwrap_err();
        assert!(e.contains("service_account_secret"), "{e}");
        let e = Settings::parse(r#"{"token":"t"}"#).unwrap_err();
        assert!(e.contains("api_secret"), "{e}");
        let e = Settings::parse(r#"{"api_secret":"s","projectid":1}"#).unwrap_err();
        assert!(e.contains("unknown field `projectid`"), "{e}");
        let e = Settings::parse(r#"{"api_secret":"s","project_id":true}"#).unwrap_err();
        assert!(e.starts_with("mixpanel settings: project_id:"), "{e}");
    }
}
