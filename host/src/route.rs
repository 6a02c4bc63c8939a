//! Routing: which destinations an event goes to.
//!
//! Where it sits: between ingest and the store. Ingest asks the [`Router`] for
//! the destinations of each normalised event and the store creates one job per
//! destination. A destination receives an event when its filter keeps it
//! (event types, `track` event names) and the event's `integrations` object
//! does not switch it off (`"All": false` switches every destination off unless
//! named; a destination is named by its configured name or its plugin name,
//! case-insensitively; a named value of `false` switches it off, `true` or an
//! options object switches it on).

use serde_json::Value;

use crate::config::{DestinationConfig, Filter};

/// One destination's routing rules.
#[derive(Debug, Clone)]
struct Route {
    /// Destination name (the job's queue).
    name: String,
    /// Plugin name, also accepted as the `integrations` key.
    plugin: String,
    /// Type and event-name filter.
    filter: Filter,
}

/// The routing table, built once from the config.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    /// A router over these destinations.
    pub fn new(destinations: &[DestinationConfig]) -> Router {
        Router {
            routes: destinations
                .iter()
                .map(|d| Route {
                    name: d.name.clone(),
                    plugin: d.plugin.clone(),
                    filter: d.filter.clone(),
                })
                .collect(),
        }
    }

    /// Destinations of a normalised event (its `type`, `event` and `integrations`).
    pub fn destinations(&self, event: &Value) -> Vec<String> {
        let kind = event.get("type").and_then(Value::as_str).unwrap_or("");
        let name = event.get("event").and_then(Value::as_str);
        let integrations = event.get("integrations").and_then(Value::as_object);
        self.routes
            .iter()
            .filter(|r| r.filter.types.is_empty() || r.filter.types.iter().any(|t| t == kind))
            .filter(|r| {
                kind != "track"
                    || r.filter.events.is_empty()
                    || name.is_some_and(|n| r.filter.events.iter().any(|e| e == n))
            })
            .filter(|r| match integrations {
                None => true,
                Some(map) => {
                    let named = map.iter().find(|(k, _)| {
                        k.eq_ignore_ascii_case(&r.name) || k.eq_ignore_ascii_case(&r.plugin)
                    });
                    match named {
                        Some((_, v)) => enabled(v),
                        None => map.get("All").map(enabled).unwrap_or(true),
                    }
                }
            })
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
        let route = |name: &str, plugin: &str, types: &[&str], events: &[&str]| Route {
            name: name.into(),
            plugin: plugin.into(),
            filter: Filter {
                types: types.iter().map(|s| s.to_string()).collect(),
                events: events.iter().map(|s| s.to_string()).collect(),
            },
        };
        Router {
            routes: vec![
                route("hooks", "webhook", &[], &[]),
                route("orders", "webhook", &["track"], &["Order Completed"]),
                route("people", "amplitude", &["identify"], &[]),
            ],
        }
    }

    #[test]
    fn filters_by_type_and_event_name() {
        let r = router();
        assert_eq!(
            r.destinations(&json!({"type":"track","event":"Order Completed"})),
            ["hooks", "orders"]
        );
        assert_eq!(
            r.destinations(&json!({"type":"track","event":"Viewed"})),
            ["hooks"]
        );
        assert_eq!(
            r.destinations(&json!({"type":"identify"})),
            ["hooks", "people"]
        );
    }

    #[test]
    fn honours_integrations() {
        let r = router();
        let e = json!({"type":"identify","integrations":{"All":false,"Amplitude":true}});
        assert_eq!(r.destinations(&e), ["people"]);
        let e = json!({"type":"identify","integrations":{"hooks":false}});
        assert_eq!(r.destinations(&e), ["people"]);
        let e = json!({"type":"identify","integrations":{"All":false,"people":{"option":1}}});
        assert_eq!(r.destinations(&e), ["people"]);
    }
}
