//! Routing: which destinations an event goes to.
//!
//! Where it sits: between ingest and the store, decided once per event. The
//! embedded store asks the [`Router`] for a [`RouteSet`] (a bitmap over the
//! store's stable destination ids) when it appends, and keeps it beside the
//! event, so each destination's cursor skips what is not for it; the NATS
//! store stores the [`RouteKeys`] in the message's headers and asks
//! [`Router::accepts`] when a destination reads it. Either way an event is
//! written once, whatever the number of destinations.
//!
//! A destination receives an event when its filter keeps it (event types,
//! `track` event names) and the event's `integrations` object does not switch
//! it off (`"All": false` switches every destination off unless named; a
//! destination is named by its configured name or its plugin name,
//! case-insensitively; a named value of `false` switches it off, `true` or an
//! options object switches it on).

use serde_json::{Map, Value};

use crate::config::{DestinationConfig, Filter};

/// What routing looks at in an event: the few fields read once at ingest.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouteKeys {
    /// Segment `type`.
    pub event_type: String,
    /// `event` (the name of a `track`).
    pub event_name: Option<String>,
    /// The `integrations` object, when the event has one.
    pub integrations: Option<Map<String, Value>>,
}

impl RouteKeys {
    /// The keys of a normalised message.
    pub fn of(message: &Map<String, Value>) -> RouteKeys {
        RouteKeys {
            event_type: message
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            event_name: message
                .get("event")
                .and_then(Value::as_str)
                .map(str::to_string),
            integrations: message
                .get("integrations")
                .and_then(Value::as_object)
                .filter(|m| !m.is_empty())
                .cloned(),
        }
    }
}

/// A set of destination ids: bit `i` set means destination id `i` gets the event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RouteSet(Vec<u64>);

impl RouteSet {
    /// The empty set.
    pub fn empty() -> RouteSet {
        RouteSet(Vec::new())
    }

    /// Add id `i`.
    pub fn insert(&mut self, i: u32) {
        let (word, bit) = ((i / 64) as usize, i % 64);
        if self.0.len() <= word {
            self.0.resize(word + 1, 0);
        }
        self.0[word] |= 1 << bit;
    }

    /// Whether id `i` is in the set.
    pub fn contains(&self, i: u32) -> bool {
        let (word, bit) = ((i / 64) as usize, i % 64);
        self.0.get(word).is_some_and(|w| w & (1 << bit) != 0)
    }

    /// No destination at all.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    /// The ids in the set, ascending.
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().enumerate().flat_map(|(w, bits)| {
            (0..64u32)
                .filter(move |b| bits & (1 << b) != 0)
                .map(move |b| w as u32 * 64 + b)
        })
    }

    /// Little-endian bytes, trailing zero bytes dropped (what the store keeps).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out: Vec<u8> = self.0.iter().flat_map(|w| w.to_le_bytes()).collect();
        while out.last() == Some(&0) {
            out.pop();
        }
        out
    }

    /// The inverse of [`RouteSet::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> RouteSet {
        RouteSet(
            bytes
                .chunks(8)
                .map(|c| {
                    let mut w = [0u8; 8];
                    w[..c.len()].copy_from_slice(c);
                    u64::from_le_bytes(w)
                })
                .collect(),
        )
    }
}

/// One destination's routing rules.
#[derive(Debug, Clone)]
struct Route {
    /// The destination's stable id in the store (its bit in a [`RouteSet`]).
    id: u32,
    /// Destination name (the job's queue).
    name: String,
    /// Plugin name, also accepted as the `integrations` key.
    plugin: String,
    /// Type and event-name filter.
    filter: Filter,
    /// Events its filter or an `integrations` object kept from it
    /// (`switchyard_destination_filtered_total`), shared by the router's clones.
    filtered: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Route {
    fn unfiltered(&self) -> bool {
        self.filter.types.is_empty() && self.filter.events.is_empty()
    }

    fn accepts(&self, keys: &RouteKeys) -> bool {
        let kind = keys.event_type.as_str();
        if !self.filter.types.is_empty() && !self.filter.types.iter().any(|t| t == kind) {
            return false;
        }
        if kind == "track"
            && !self.filter.events.is_empty()
            && !keys
                .event_name
                .as_deref()
                .is_some_and(|n| self.filter.events.iter().any(|e| e == n))
        {
            return false;
        }
        match &keys.integrations {
            None => true,
            Some(map) => {
                let named = map.iter().find(|(k, _)| {
                    k.eq_ignore_ascii_case(&self.name) || k.eq_ignore_ascii_case(&self.plugin)
                });
                match named {
                    Some((_, v)) => enabled(v),
                    None => map.get("All").map(enabled).unwrap_or(true),
                }
            }
        }
    }
}

/// The routing table, built once from the config.
#[derive(Debug, Clone, Default)]
pub struct Router {
    /// Every destination's rules.
    routes: Vec<Route>,
    /// The destinations without a filter: an event without `integrations` goes
    /// to all of them, so their set is computed once, not per event.
    unfiltered: RouteSet,
}

impl Router {
    /// A router over these destinations; `ids[i]` is the stable id of `destinations[i]`.
    pub fn new(destinations: &[DestinationConfig], ids: &[u32]) -> Router {
        assert_eq!(destinations.len(), ids.len(), "one id per destination");
        let routes: Vec<Route> = destinations
            .iter()
            .zip(ids)
            .map(|(d, id)| Route {
                id: *id,
                name: d.name.clone(),
                plugin: d.plugin.clone(),
                filter: d.filter.clone(),
                filtered: Default::default(),
            })
            .collect();
        let mut unfiltered = RouteSet::empty();
        for r in routes.iter().filter(|r| r.unfiltered()) {
            unfiltered.insert(r.id);
        }
        Router { routes, unfiltered }
    }

    /// This router, counting on from `old`'s counters for the destinations both
    /// have (a reload keeps `switchyard_destination_filtered_total` growing).
    pub fn carrying(mut self, old: &Router) -> Router {
        for route in &mut self.routes {
            if let Some(before) = old.routes.iter().find(|r| r.name == route.name) {
                route.filtered = before.filtered.clone();
            }
        }
        self
    }

    /// The destinations of an event. Without an `integrations` object this costs
    /// one copy of a precomputed set plus the filtered destinations only.
    pub fn routes(&self, keys: &RouteKeys) -> RouteSet {
        let skipped = |r: &Route| {
            r.filtered
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        };
        if keys.integrations.is_none() {
            let mut set = self.unfiltered.clone();
            for r in self.routes.iter().filter(|r| !r.unfiltered()) {
                if r.accepts(keys) {
                    set.insert(r.id);
                } else {
                    skipped(r);
                }
            }
            return set;
        }
        let mut set = RouteSet::empty();
        for r in &self.routes {
            if r.accepts(keys) {
                set.insert(r.id);
            } else {
                skipped(r);
            }
        }
        set
    }

    /// Events kept from the destination named `name` by its filter or an
    /// `integrations` object, counted as they were received (a duplicate counts
    /// again); 0 for a name this router does not know.
    pub fn filtered(&self, name: &str) -> u64 {
        self.routes
            .iter()
            .find(|r| r.name == name)
            .map_or(0, |r| r.filtered.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Whether the destination named `name` takes an event with these keys
    /// (false for a destination this router does not know).
    pub fn accepts(&self, name: &str, keys: &RouteKeys) -> bool {
        self.routes
            .iter()
            .find(|r| r.name == name)
            .is_some_and(|r| r.accepts(keys))
    }

    /// Names of the destinations in a set.
    pub fn names(&self, set: &RouteSet) -> Vec<String> {
        self.routes
            .iter()
            .filter(|r| set.contains(r.id))
            .map(|r| r.name.clone())
            .collect()
    }
}

fn enabled(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Null => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn router() -> Router {
        let route = |id: u32, name: &str, plugin: &str, types: &[&str], events: &[&str]| Route {
            id,
            name: name.into(),
            plugin: plugin.into(),
            filter: Filter {
                types: types.iter().map(|s| s.to_string()).collect(),
                events: events.iter().map(|s| s.to_string()).collect(),
            },
            filtered: Default::default(),
        };
        let routes = vec![
            route(0, "hooks", "webhook", &[], &[]),
            route(1, "orders", "webhook", &["track"], &["Order Completed"]),
            route(70, "people", "amplitude", &["identify"], &[]),
        ];
        let mut unfiltered = RouteSet::empty();
        unfiltered.insert(0);
        Router { routes, unfiltered }
    }

    fn names(r: &Router, v: Value) -> Vec<String> {
        let keys = RouteKeys::of(v.as_object().unwrap());
        let set = r.routes(&keys);
        for name in r.names(&set) {
            assert!(r.accepts(&name, &keys), "routes and accepts agree");
        }
        r.names(&set)
    }

    #[test]
    fn filters_by_type_and_event_name() {
        let r = router();
        assert_eq!(
            names(&r, json!({"type":"track","event":"Order Completed"})),
            ["hooks", "orders"]
        );
        assert_eq!(
            names(&r, json!({"type":"track","event":"Viewed"})),
            ["hooks"]
        );
        assert_eq!(names(&r, json!({"type":"identify"})), ["hooks", "people"]);
    }

    #[test]
    fn honours_integrations() {
        let r = router();
        let e = json!({"type":"identify","integrations":{"All":false,"Amplitude":true}});
        assert_eq!(names(&r, e), ["people"]);
        let e = json!({"type":"identify","integrations":{"hooks":false}});
        assert_eq!(names(&r, e), ["people"]);
        let e = json!({"type":"identify","integrations":{"All":false,"people":{"option":1}}});
        assert_eq!(names(&r, e), ["people"]);
    }

    #[test]
    fn what_a_destination_is_kept_from_is_counted_as_filtered() {
        let r = router();
        names(&r, json!({"type":"track","event":"Viewed"}));
        names(
            &r,
            json!({"type":"identify","integrations":{"hooks":false}}),
        );
        // `orders` takes only Order Completed, `people` only identify: both
        // were kept from the first; `hooks` from the second, `orders` too.
        assert_eq!(r.filtered("hooks"), 1);
        assert_eq!(r.filtered("orders"), 2);
        assert_eq!(r.filtered("people"), 1);
        assert_eq!(r.filtered("nobody"), 0);
        // A reload's router counts on for the destinations it keeps.
        let again = router().carrying(&r);
        names(&again, json!({"type":"identify"}));
        assert_eq!(again.filtered("orders"), 3);
        assert_eq!(again.filtered("hooks"), 1);
    }

    #[test]
    fn route_sets_round_trip_through_bytes() {
        let mut s = RouteSet::empty();
        for i in [0, 5, 63, 64, 139] {
            s.insert(i);
        }
        let back = RouteSet::from_bytes(&s.to_bytes());
        assert_eq!(back.ids().collect::<Vec<_>>(), [0, 5, 63, 64, 139]);
        assert!(back.contains(139) && !back.contains(138) && !back.contains(4000));
        assert!(RouteSet::from_bytes(&[]).is_empty());
    }
}
