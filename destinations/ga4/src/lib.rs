//! The `ga4` destination: Google Analytics 4 through the Measurement Protocol.
//!
//! `POST {endpoint}/mp/collect?measurement_id=…&api_secret=…` with a body
//! `{"client_id", "user_id"?, "timestamp_micros", "ip_override"?, "user_agent"?, "events": [...]}`.
//!
//! One Measurement Protocol request describes one client (and one user), and carries at
//! most 25 events and 130 kB: a batch is grouped by client (in order of first
//! appearance) and each group is sent in as few requests as those limits allow.
//!
//! - `track` → a GA4 event: Segment's e-commerce and lifecycle names become GA4's
//!   recommended events (`Order Completed` → `purchase`, ...), any other name is made
//!   GA4-safe (`Order Completed` → `order_completed`); properties become parameters.
//! - `page` → `page_view` with `page_location`, `page_title`, `page_referrer`.
//! - `screen`, `identify`, `group`, `alias` → rejected with the reason (`screen_view`
//!   is reserved for app streams; GA4 has no identify, group or alias call).
//!
//! Outcomes: the Measurement Protocol answers 2xx even for payloads it drops, so 2xx
//! is delivered; 408, 429 and 5xx retry; any other status rejects (the kit's standard
//! classification).

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::{json, Map, Value};
use switchyard_destination_kit::{self as kit, Event, EventType, Failure, Outcome};

const NAME: &str = "ga4";
const DEFAULT_ENDPOINT: &str = "https://www.google-analytics.com";
const MAX_BATCH: u32 = 100;
/// Measurement Protocol limits.
const MAX_EVENTS_PER_REQUEST: usize = 25;
const MAX_BODY_BYTES: usize = 130_000;
const MAX_PARAMS: usize = 25;
const MAX_NAME_CHARS: usize = 40;
const MAX_VALUE_CHARS: usize = 100;
const MAX_ITEMS: usize = 200;
const MAX_ITEM_CUSTOM_PARAMS: usize = 10;
const MAX_USER_ID_CHARS: usize = 256;

const SETTINGS_SCHEMA: &str = r#"{
  "type": "object",
  "required": ["measurement_id", "api_secret"],
  "additionalProperties": false,
  "properties": {
    "measurement_id": {"type": "string", "description": "Measurement ID of the web data stream, e.g. G-XXXXXXXXXX"},
    "api_secret": {"type": "string", "description": "Measurement Protocol API secret of that stream"},
    "endpoint": {"type": "string", "default": "https://www.google-analytics.com", "description": "Base URL: https://www.google-analytics.com, https://region1.google-analytics.com (EU collection), or a proxy"}
  }
}"#;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    measurement_id: String,
    api_secret: String,
    #[serde(default = "default_endpoint")]
    endpoint: String,
}

fn default_endpoint() -> String {
    DEFAULT_ENDPOINT.into()
}

impl Settings {
    fn parse(raw: &str) -> Result<Settings, String> {
        let mut s: Settings = kit::parse_settings(raw, NAME)?;
        kit::check_endpoint(NAME, "endpoint", &mut s.endpoint)?;
        for (field, value) in [
            ("measurement_id", &s.measurement_id),
            ("api_secret", &s.api_secret),
        ] {
            if value.trim().is_empty() {
                return Err(format!("{NAME} settings: {field} must not be empty"));
            }
            if value.chars().any(char::is_whitespace) {
                return Err(format!("{NAME} settings: {field} must not contain spaces"));
            }
        }
        Ok(s)
    }

    fn url(&self) -> String {
        format!(
            "{}/mp/collect?measurement_id={}&api_secret={}",
            self.endpoint,
            kit::url_encode(&self.measurement_id),
            kit::url_encode(&self.api_secret)
        )
    }
}

/// Event names GA4 reserves (Measurement Protocol reference, "Reserved names").
const RESERVED_EVENTS: &[&str] = &[
    "ad_activeview",
    "ad_click",
    "ad_exposure",
    "ad_impression",
    "ad_query",
    "ad_reward",
    "adunit_exposure",
    "app_background",
    "app_clear_data",
    "app_exception",
    "app_install",
    "app_remove",
    "app_store_refund",
    "app_store_subscription_cancel",
    "app_store_subscription_convert",
    "app_store_subscription_renew",
    "app_update",
    "app_upgrade",
    "dynamic_link_app_open",
    "dynamic_link_app_update",
    "dynamic_link_first_open",
    "error",
    "first_open",
    "first_visit",
    "in_app_purchase",
    "notification_dismiss",
    "notification_foreground",
    "notification_open",
    "notification_receive",
    "notification_send",
    "os_update",
    "screen_view",
    "session_start",
    "session_start_with_rollout",
    "user_engagement",
];

/// Name prefixes GA4 reserves for events and parameters.
const RESERVED_PREFIXES: &[&str] = &["google_", "ga_", "firebase_", "gtag."];

/// Segment's spec'd event names that have a GA4 recommended event.
const RECOMMENDED: &[(&str, &str)] = &[
    ("Order Completed", "purchase"),
    ("Order Refunded", "refund"),
    ("Product Added", "add_to_cart"),
    ("Product Removed", "remove_from_cart"),
    ("Product Viewed", "view_item"),
    ("Product Clicked", "select_item"),
    ("Product List Viewed", "view_item_list"),
    ("Product Added to Wishlist", "add_to_wishlist"),
    ("Cart Viewed", "view_cart"),
    ("Checkout Started", "begin_checkout"),
    ("Payment Info Entered", "add_payment_info"),
    ("Promotion Viewed", "view_promotion"),
    ("Promotion Clicked", "select_promotion"),
    ("Product Shared", "share"),
    ("Products Searched", "search"),
    ("Signed Up", "sign_up"),
    ("Logged In", "login"),
];

/// GA4 events about one product, whose properties describe that product.
const SINGLE_PRODUCT_EVENTS: &[&str] = &[
    "add_to_cart",
    "remove_from_cart",
    "view_item",
    "select_item",
    "add_to_wishlist",
];

/// A GA4-safe name: snake_case (`Order Completed`, `orderCompleted` → `order_completed`),
/// letters, digits and underscores only, starting with a letter, at most 40 characters.
/// `None` when nothing usable is left.
fn safe_name(raw: &str) -> Option<String> {
    let mut out = String::new();
    let mut prev_lower_or_digit = false;
    let mut pending_sep = false;
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() {
            if c.is_ascii_uppercase() && prev_lower_or_digit {
                pending_sep = true;
            }
            if pending_sep && !out.is_empty() {
                out.push('_');
            }
            pending_sep = false;
            out.push(c.to_ascii_lowercase());
            prev_lower_or_digit = c.is_ascii_lowercase() || c.is_ascii_digit();
        } else {
            pending_sep = true;
            prev_lower_or_digit = false;
        }
    }
    let out = out.trim_start_matches(|c: char| c.is_ascii_digit() || c == '_');
    let mut out: String = out.chars().take(MAX_NAME_CHARS).collect();
    while out.ends_with('_') {
        out.pop();
    }
    (!out.is_empty()).then_some(out)
}

fn reserved_prefix(name: &str) -> bool {
    RESERVED_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The GA4 event name of a `track` event.
fn track_name(event: &str) -> Result<String, Failure> {
    if let Some((_, ga4)) = RECOMMENDED
        .iter()
        .find(|(segment, _)| segment.eq_ignore_ascii_case(event.trim()))
    {
        return Ok((*ga4).to_string());
    }
    let name = safe_name(event).ok_or_else(|| {
        kit::reject(format!(
            "event name {event:?} has no letters or digits GA4 can use"
        ))
    })?;
    if RESERVED_EVENTS.contains(&name.as_str()) || reserved_prefix(&name) {
        return Err(kit::reject(format!(
            "GA4 reserves the event name {name:?} (from {event:?})"
        )));
    }
    Ok(name)
}

/// A parameter value GA4 takes: strings cut to `limit` characters, numbers as they are,
/// booleans as "true"/"false"; `None` for null, arrays and objects.
fn param_value(value: &Value, limit: usize) -> Option<Value> {
    match value {
        Value::String(s) => Some(Value::String(s.chars().take(limit).collect())),
        Value::Number(_) => Some(value.clone()),
        Value::Bool(b) => Some(Value::String(b.to_string())),
        _ => None,
    }
}

/// Longest value of a few parameters GA4 lets be longer than 100 characters.
fn value_limit(param: &str) -> usize {
    match param {
        "page_location" => 1000,
        "page_referrer" => 420,
        "page_title" => 300,
        _ => MAX_VALUE_CHARS,
    }
}

/// Ordered parameters: the first value of a name wins, and at most 25 are kept.
#[derive(Default)]
struct Params {
    entries: Vec<(String, Value)>,
    names: BTreeSet<String>,
    dropped: usize,
}

impl Params {
    /// Add a parameter under a name already GA4-safe.
    fn put(&mut self, name: &str, value: &Value) {
        if self.names.contains(name) {
            return;
        }
        let value = if name == "items" {
            Some(value.clone())
        } else {
            param_value(value, value_limit(name))
        };
        let Some(value) = value else { return };
        if self.entries.len() >= MAX_PARAMS {
            self.dropped += 1;
            return;
        }
        self.names.insert(name.to_string());
        self.entries.push((name.to_string(), value));
    }

    /// Add a property under its GA4-safe name (reserved names are skipped).
    fn put_property(&mut self, raw: &str, value: &Value) {
        match safe_name(raw) {
            Some(name) if !reserved_prefix(&name) && name != "firebase_conversion" => {
                self.put(&name, value)
            }
            _ => self.dropped += 1,
        }
    }

    fn into_object(self) -> Map<String, Value> {
        self.entries.into_iter().collect()
    }
}

/// The first present property among `names`.
fn first<'a>(props: &'a Map<String, Value>, names: &[&str]) -> Option<&'a Value> {
    names
        .iter()
        .find_map(|n| props.get(*n).filter(|v| !v.is_null()))
}

/// A Segment product as a GA4 item.
fn item_of(product: &Map<String, Value>) -> Value {
    const STANDARD: &[(&str, &[&str])] = &[
        ("item_id", &["product_id", "productId", "sku", "id"]),
        ("item_name", &["name"]),
        ("item_brand", &["brand"]),
        ("item_category", &["category"]),
        ("item_variant", &["variant"]),
        ("price", &["price"]),
        ("quantity", &["quantity"]),
        ("coupon", &["coupon"]),
        ("index", &["position"]),
        ("affiliation", &["affiliation"]),
        ("discount", &["discount"]),
    ];
    let mut item = Map::new();
    let mut used: BTreeSet<&str> = BTreeSet::new();
    for (ga4, segment) in STANDARD {
        used.extend(segment.iter().copied());
        if let Some(v) = first(product, segment).and_then(|v| param_value(v, MAX_VALUE_CHARS)) {
            item.insert((*ga4).to_string(), v);
        }
    }
    let mut custom = 0;
    for (key, value) in product {
        if used.contains(key.as_str()) || custom >= MAX_ITEM_CUSTOM_PARAMS {
            continue;
        }
        let Some(name) = safe_name(key).filter(|n| !reserved_prefix(n)) else {
            continue;
        };
        if item.contains_key(&name) {
            continue;
        }
        if let Some(v) = param_value(value, MAX_VALUE_CHARS) {
            item.insert(name, v);
            custom += 1;
        }
    }
    Value::Object(item)
}

/// The parameters of an event: GA4's standard ones from Segment's spec'd properties
/// first, then the other properties under GA4-safe names.
fn params_of(name: &str, kind: EventType, message: &Value) -> Params {
    let mut props = kit::object_at(message, "properties");
    let mut params = Params::default();
    let engagement = props
        .remove("engagement_time_msec")
        .filter(Value::is_number)
        .unwrap_or_else(|| json!(1));
    params.put("engagement_time_msec", &engagement);
    if let Some(session) = props.remove("session_id") {
        params.put("session_id", &session);
    }

    if kind == EventType::Page {
        let location = kit::str_at(message, "context.page.url")
            .map(Value::from)
            .or_else(|| props.get("url").cloned());
        let title = kit::str_at(message, "context.page.title")
            .map(Value::from)
            .or_else(|| props.get("title").cloned())
            .or_else(|| kit::value_at(message, "name").cloned());
        let referrer = kit::str_at(message, "context.page.referrer")
            .map(Value::from)
            .or_else(|| props.get("referrer").cloned());
        for (param, value) in [
            ("page_location", location),
            ("page_title", title),
            ("page_referrer", referrer),
        ] {
            if let Some(v) = value {
                params.put(param, &v);
            }
        }
        for key in ["url", "title", "referrer"] {
            props.remove(key);
        }
    }

    // Segment's e-commerce spec → GA4's recommended parameters.
    let renames: &[(&str, &[&str])] = &[
        ("transaction_id", &["order_id", "orderId"]),
        ("value", &["value", "revenue", "total"]),
        ("currency", &["currency"]),
        ("coupon", &["coupon"]),
        ("shipping", &["shipping"]),
        ("tax", &["tax"]),
        ("affiliation", &["affiliation"]),
        ("search_term", &["query"]),
        ("item_list_id", &["list_id"]),
        ("method", &["method"]),
    ];
    let promotion_renames: &[(&str, &[&str])] = &[
        ("promotion_id", &["promotion_id"]),
        ("promotion_name", &["name"]),
        ("creative_name", &["creative"]),
        ("creative_slot", &["position"]),
    ];
    let ecommerce = RECOMMENDED.iter().any(|(_, ga4)| *ga4 == name);
    if ecommerce {
        let promotion = name == "view_promotion" || name == "select_promotion";
        let extra: &[(&str, &[&str])] = if promotion { promotion_renames } else { &[] };
        for (ga4, segment) in renames.iter().chain(extra) {
            if let Some(v) = first(&props, segment).cloned() {
                params.put(ga4, &v);
                for s in *segment {
                    props.remove(*s);
                }
            }
        }
        if SINGLE_PRODUCT_EVENTS.contains(&name) {
            let item = item_of(&props);
            if !params.names.contains("value") {
                if let Some(price) = props.get("price").and_then(Value::as_f64) {
                    let quantity = props.get("quantity").and_then(Value::as_f64).unwrap_or(1.0);
                    params.put("value", &json!(price * quantity));
                }
            }
            params.put("items", &json!([item]));
            props.clear();
        } else if let Some(Value::Array(products)) = props.remove("products") {
            let items: Vec<Value> = products
                .iter()
                .filter_map(Value::as_object)
                .take(MAX_ITEMS)
                .map(item_of)
                .collect();
            params.put("items", &Value::Array(items));
        }
        if params.names.contains("value") && !params.names.contains("currency") {
            params.put("currency", &json!("USD"));
        }
    }
    for (key, value) in &props {
        params.put_property(key, value);
    }
    params
}

/// One GA4 event and the request-level fields of its client.
struct Ga4Event {
    /// client_id, user_id, ip_override, user_agent: events share a request only when
    /// all four are equal.
    client: (String, Option<String>, Option<String>, Option<String>),
    event: Value,
    micros: Option<i64>,
}

fn ga4_event(event: &Event, now_ms: i64) -> Result<Ga4Event, Failure> {
    let message = kit::event_json(event);
    let name = match event.event_type {
        EventType::Track => track_name(kit::str_at(&message, "event").unwrap_or_default())?,
        EventType::Page => "page_view".to_string(),
        EventType::Screen => {
            return Err(kit::reject(
                "screen calls are not sent: GA4 allows screen_view only for app streams (this destination sends to a web stream's measurement_id)",
            ))
        }
        EventType::Identify => {
            return Err(kit::reject(
                "identify calls are not sent: the Measurement Protocol has no identify call (user_id travels with each event)",
            ))
        }
        EventType::Group => {
            return Err(kit::reject(
                "group calls are not sent: GA4 has no group call",
            ))
        }
        EventType::Alias => {
            return Err(kit::reject(
                "alias calls are not sent: GA4 has no alias call",
            ))
        }
    };
    let user_id = kit::id_field(&message, "userId");
    let client_id = kit::id_field(&message, "anonymousId")
        .or_else(|| user_id.clone())
        .ok_or_else(|| kit::reject("event has no anonymousId or userId for client_id"))?;
    let user_id = user_id.filter(|u| u.chars().count() <= MAX_USER_ID_CHARS);
    let ip = kit::str_at(&message, "context.ip").map(str::to_string);
    let agent = kit::str_at(&message, "context.userAgent").map(str::to_string);
    let params = params_of(&name, event.event_type, &message);
    if params.dropped > 0 {
        kit::debug(&format!(
            "{}: {} properties not sent (GA4 keeps 25 parameters with safe names)",
            event.message_id, params.dropped
        ));
    }
    // Only past times are sent (GA4 clamps anything older than 72 hours to 72 hours ago).
    let micros = kit::timestamp_ms(&message)
        .filter(|ms| *ms <= now_ms)
        .map(|ms| ms * 1000);
    let mut body = json!({ "name": name, "params": params.into_object() });
    if let Some(m) = micros {
        body["timestamp_micros"] = json!(m);
    }
    Ok(Ga4Event {
        client: (client_id, user_id, ip, agent),
        event: body,
        micros,
    })
}

/// The request body for one client's events.
fn body_of(client: &Ga4Event, events: &[&Ga4Event]) -> Value {
    let (client_id, user_id, ip, agent) = &client.client;
    let mut body = json!({ "client_id": client_id });
    if let Some(u) = user_id {
        body["user_id"] = json!(u);
    }
    if let Some(m) = events.iter().find_map(|e| e.micros) {
        body["timestamp_micros"] = json!(m);
    }
    if let Some(ip) = ip {
        body["ip_override"] = json!(ip);
    }
    if let Some(a) = agent {
        body["user_agent"] = json!(a);
    }
    body["events"] = Value::Array(events.iter().map(|e| e.event.clone()).collect());
    body
}

/// Send one client's events (indices into the batch) in requests of at most 25 events
/// and 130 kB, and write the outcomes.
fn send_group(url: &str, group: &[(usize, &Ga4Event)], outcomes: &mut [Outcome]) {
    for chunk in group.chunks(MAX_EVENTS_PER_REQUEST) {
        send_chunk(url, chunk, outcomes);
    }
}

fn send_chunk(url: &str, chunk: &[(usize, &Ga4Event)], outcomes: &mut [Outcome]) {
    let events: Vec<&Ga4Event> = chunk.iter().map(|(_, e)| *e).collect();
    let body = body_of(events[0], &events);
    let size = serde_json::to_string(&body).map_or(0, |s| s.len());
    if size > MAX_BODY_BYTES {
        if chunk.len() == 1 {
            outcomes[chunk[0].0] = Err(kit::reject(format!(
                "event is {size} bytes as a GA4 request; the Measurement Protocol takes at most {MAX_BODY_BYTES}"
            )));
            return;
        }
        let (a, b) = chunk.split_at(chunk.len() / 2);
        send_chunk(url, a, outcomes);
        send_chunk(url, b, outcomes);
        return;
    }
    // The Measurement Protocol answers 2xx to whatever it receives (its debug
    // endpoint names bad fields, never records), so a request's answer is every
    // record's: there is no per-record detail to read.
    let answer = kit::post_json(url, &[], &body);
    for ((i, _), outcome) in
        chunk
            .iter()
            .zip(kit::record_outcomes(NAME, chunk.len(), answer, |_| None))
    {
        outcomes[*i] = outcome;
    }
}

struct Ga4;

impl kit::Destination for Ga4 {
    const NAME: &'static str = NAME;
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SETTINGS_SCHEMA: &'static str = SETTINGS_SCHEMA;
    const MAX_BATCH: u32 = MAX_BATCH;
    type Settings = Settings;

    fn settings(raw: &str) -> Result<Settings, String> {
        Settings::parse(raw)
    }

    fn deliver(settings: Settings, events: Vec<Event>) -> Vec<kit::Outcome> {
        let now = kit::now_ms();
        let mut outcomes: Vec<Outcome> = vec![Ok(()); events.len()];
        let converted: Vec<Result<Ga4Event, Failure>> =
            events.iter().map(|e| ga4_event(e, now)).collect();
        // Group by client, in order of first appearance, keeping each client's order.
        let mut groups: Vec<Vec<(usize, &Ga4Event)>> = Vec::new();
        for (i, result) in converted.iter().enumerate() {
            match result {
                Ok(e) => match groups.iter_mut().find(|g| g[0].1.client == e.client) {
                    Some(group) => group.push((i, e)),
                    None => groups.push(vec![(i, e)]),
                },
                Err(failure) => outcomes[i] = Err(failure.clone()),
            }
        }
        let url = settings.url();
        for group in &groups {
            send_group(&url, group, &mut outcomes);
        }
        outcomes
    }
}

switchyard_destination_kit::export_destination!(Ga4);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_made_safe() {
        assert_eq!(
            safe_name("Order Completed").as_deref(),
            Some("order_completed")
        );
        assert_eq!(safe_name("orderId").as_deref(), Some("order_id"));
        assert_eq!(safe_name("productID").as_deref(), Some("product_id"));
        assert_eq!(safe_name("URL").as_deref(), Some("url"));
        assert_eq!(
            safe_name("  Video -- Played!  ").as_deref(),
            Some("video_played")
        );
        assert_eq!(safe_name("3D View").as_deref(), Some("d_view"));
        assert_eq!(safe_name("$$$"), None);
        assert_eq!(safe_name(&"a".repeat(50)).map(|s| s.len()), Some(40));
        assert_eq!(
            safe_name("an event name that is much too long for ga").as_deref(),
            Some("an_event_name_that_is_much_too_long_for")
        );
    }

    #[test]
    fn track_names_map_to_recommended_events() {
        assert_eq!(track_name("Order Completed").unwrap(), "purchase");
        assert_eq!(track_name("products searched").unwrap(), "search");
        assert_eq!(track_name("Signed Up").unwrap(), "sign_up");
        assert_eq!(track_name("Video Played").unwrap(), "video_played");
        assert!(track_name("Session Start").is_err());
        assert!(track_name("google_thing").is_err());
        assert!(track_name("!!!").is_err());
    }

    #[test]
    fn purchase_params_follow_ga4() {
        let m = json!({
            "properties": {
                "orderId": "o-42", "revenue": 19.99, "coupon": "SPRING",
                "products": [{"product_id": "p1", "name": "Tee", "price": 9.99, "quantity": 2, "size": "M"}],
                "gift": true, "notes": "x".repeat(150), "nested": {"a": 1}
            }
        });
        let p = params_of("purchase", EventType::Track, &m).into_object();
        assert_eq!(p["transaction_id"], "o-42");
        assert_eq!(p["value"], 19.99);
        assert_eq!(p["currency"], "USD");
        assert_eq!(p["engagement_time_msec"], 1);
        assert_eq!(p["items"][0]["item_id"], "p1");
        assert_eq!(p["items"][0]["item_name"], "Tee");
        assert_eq!(p["items"][0]["size"], "M");
        assert_eq!(p["gift"], "true");
        assert_eq!(p["notes"].as_str().unwrap().len(), 100);
        assert!(!p.contains_key("nested"));
    }

    #[test]
    fn at_most_25_params() {
        let props: Map<String, Value> = (0..40).map(|i| (format!("p{i:02}"), json!(i))).collect();
        let m = json!({ "properties": props });
        let params = params_of("custom", EventType::Track, &m);
        assert_eq!(params.dropped, 16);
        let p = params.into_object();
        assert_eq!(p.len(), 25);
        assert!(p.contains_key("engagement_time_msec"));
    }

    #[test]
    fn page_view_params() {
        let m = json!({
            "name": "Pricing",
            "properties": {"url": "https://example.com/pricing", "path": "/pricing"},
            "context": {"page": {"referrer": "https://google.com"}}
        });
        let p = params_of("page_view", EventType::Page, &m).into_object();
        assert_eq!(p["page_location"], "https://example.com/pricing");
        assert_eq!(p["page_title"], "Pricing");
        assert_eq!(p["page_referrer"], "https://google.com");
        assert_eq!(p["path"], "/pricing");
        assert!(!p.contains_key("url"));
    }

    #[test]
    fn single_product_events_carry_one_item() {
        let m = json!({"properties": {"product_id": "p1", "price": 5, "quantity": 3, "currency": "EUR"}});
        let p = params_of("add_to_cart", EventType::Track, &m).into_object();
        assert_eq!(p["value"], 15.0);
        assert_eq!(p["currency"], "EUR");
        assert_eq!(p["items"][0]["item_id"], "p1");
        assert_eq!(p["items"][0]["quantity"], 3);
    }
}
