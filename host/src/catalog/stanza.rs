//! A `[[destinations]]` table for a catalog entry: from the entry's presets
//! (`switchyard catalog new`), or from a destination as Segment's Public API
//! exports it, settings and subscriptions (`switchyard catalog import`).
//!
//! Where it sits: below the CLI, above the index. Credentials never go into
//! the text: a setting Segment types as a password becomes a secret read from
//! an environment variable the stanza names.

use serde_json::{json, Map, Value};

use super::index::{Entry, Index};
use super::CatalogError;

/// What the stanza says, before it is written as TOML.
#[derive(Debug, Clone)]
pub struct Stanza {
    /// The destination's name.
    pub name: String,
    /// The catalog entry.
    pub entry: String,
    /// Segment's settings, password-typed ones as `${secret:KEY}`.
    pub settings: Map<String, Value>,
    /// Each secret: its key and the environment variable it comes from.
    pub secrets: Vec<(String, String)>,
    /// The vendor origins the entry was seen to call.
    pub allowed_hosts: Vec<String>,
    /// Subscriptions in Segment's shape, or `None` for the presets.
    pub subscriptions: Option<Vec<Value>>,
    /// Lines for the top comment.
    pub notes: Vec<String>,
}

/// A destination name from Segment's display name: lower case, `-` between words.
pub fn destination_name(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-').to_string();
    out.chars().take(64).collect()
}

fn env_name(destination: &str, key: &str) -> String {
    format!("{destination}_{key}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

impl Stanza {
    /// A stanza for `entry` with placeholders for its required settings and
    /// its presets written out as subscriptions (to edit).
    pub fn from_entry(entry: &Entry, name: &str) -> Stanza {
        let mut stanza = Stanza {
            name: name.to_string(),
            entry: entry.name.clone(),
            settings: Map::new(),
            secrets: Vec::new(),
            allowed_hosts: Vec::new(),
            subscriptions: None,
            notes: vec![format!(
                "{} (catalog:{}), with its presets.",
                entry.title, entry.name
            )],
        };
        for f in &entry.settings {
            let value = match (&f.default, f.required) {
                (Some(d), _) => d.clone(),
                (None, true) => Value::String(String::new()),
                (None, false) => continue,
            };
            stanza.set(f.name.clone(), value, f.kind == "password");
        }
        let presets: Vec<Value> = entry
            .automatic_presets()
            .map(|p| {
                json!({ "name": p.name, "subscribe": p.subscribe, "partnerAction": p.partner_action, "mapping": p.mapping })
            })
            .collect();
        if !presets.is_empty() {
            stanza.subscriptions = Some(presets);
        }
        stanza
    }

    /// A stanza from Segment's Public API: `destination` (the `data.destination`
    /// of "Get Destination", or the object itself) and its subscriptions (the
    /// `data.subscriptions` of "List Subscriptions from Destination"), in one
    /// value or two.
    pub fn from_export(
        index: &Index,
        export: &Value,
        subscriptions: Option<&Value>,
    ) -> Result<Stanza, CatalogError> {
        let bad = |message: String| CatalogError::Import(message);
        let data = export.get("data").unwrap_or(export);
        let destination = data.get("destination").unwrap_or(data);
        let meta = destination.get("metadata").cloned().unwrap_or(Value::Null);
        let slug = meta["slug"].as_str().unwrap_or_default();
        let title = meta["name"].as_str().unwrap_or_default();
        let entry = index
            .entries
            .iter()
            .find(|e| !slug.is_empty() && e.slug.as_deref() == Some(slug))
            .or_else(|| index.entries.iter().find(|e| !title.is_empty() && e.title == title))
            .or_else(|| index.entries.iter().find(|e| e.name == slug))
            .ok_or_else(|| {
                bad(format!(
                    "destination.metadata: no catalog entry with slug `{slug}` or name `{title}` \
                     (Switchyard runs Segment's action destinations; classic ones are not in the package)"
                ))
            })?;
        let display = destination["name"].as_str().unwrap_or(&entry.name);
        let mut stanza = Stanza {
            name: destination_name(display),
            entry: entry.name.clone(),
            settings: Map::new(),
            secrets: Vec::new(),
            allowed_hosts: Vec::new(),
            subscriptions: Some(Vec::new()),
            notes: vec![format!(
                "Imported from Segment: destination \"{display}\" ({} , catalog:{}).",
                if slug.is_empty() { title } else { slug },
                entry.name
            )],
        };
        if destination["enabled"] == Value::Bool(false) {
            stanza.notes.push("It is disabled in Segment.".into());
        }
        let given = destination["settings"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for (key, value) in given {
            let Some(field) = entry.settings.iter().find(|f| f.name == key) else {
                stanza.notes.push(format!(
                    "Setting `{key}` is not one of the entry's: left out."
                ));
                continue;
            };
            stanza.set(key, value, field.kind == "password");
        }
        let subs = subscriptions
            .map(|s| s.get("data").unwrap_or(s))
            .map(|s| s.get("subscriptions").unwrap_or(s))
            .or_else(|| data.get("subscriptions"))
            .or_else(|| export.get("subscriptions"));
        let Some(subs) = subs else {
            stanza.subscriptions = None;
            stanza
                .notes
                .push("No subscriptions given: the entry's presets run.".into());
            return Ok(stanza);
        };
        let subs = subs
            .as_array()
            .ok_or_else(|| bad("subscriptions: expected an array".into()))?;
        let mut disabled = 0;
        for (i, s) in subs.iter().enumerate() {
            if s["enabled"] == Value::Bool(false) {
                disabled += 1;
                continue;
            }
            let action = s["actionSlug"]
                .as_str()
                .or(s["partnerAction"].as_str())
                .unwrap_or_default();
            if !entry.actions.iter().any(|a| a.name == action) {
                return Err(bad(format!(
                    "subscriptions[{i}].actionSlug: entry `{}` has no action `{action}`",
                    entry.name
                )));
            }
            let trigger = s["trigger"]
                .as_str()
                .or(s["subscribe"].as_str())
                .unwrap_or_default();
            let mapping = s
                .get("settings")
                .or(s.get("mapping"))
                .cloned()
                .unwrap_or(json!({}));
            stanza.subscriptions.get_or_insert_with(Vec::new).push(json!({
                "name": s["name"], "subscribe": trigger, "partnerAction": action, "mapping": mapping,
            }));
        }
        if disabled > 0 {
            stanza
                .notes
                .push(format!("{disabled} disabled subscription(s) left out."));
        }
        Ok(stanza)
    }

    fn set(&mut self, key: String, value: Value, secret: bool) {
        if secret {
            let env = env_name(&self.name, &key);
            self.settings
                .insert(key.clone(), Value::String(format!("${{secret:{key}}}")));
            self.secrets.push((key, env));
        } else {
            self.settings.insert(key, value);
        }
    }

    /// The stanza as TOML (a comment, then one `[[destinations]]` table).
    pub fn to_toml(&self) -> String {
        let mut settings = self.settings.clone();
        if let Some(subs) = &self.subscriptions {
            settings.insert(
                "subscriptions".into(),
                Value::Array(subs.iter().map(without_nulls).collect()),
            );
        }
        let hosts = if self.allowed_hosts.is_empty() {
            vec![Value::String("https://VENDOR".into())]
        } else {
            self.allowed_hosts
                .iter()
                .cloned()
                .map(Value::String)
                .collect()
        };
        let secrets: Map<String, Value> = self
            .secrets
            .iter()
            .map(|(key, env)| {
                (
                    key.clone(),
                    json!({ "from": format!("env:{env}"), "hosts": hosts }),
                )
            })
            .collect();
        let mut table = Map::new();
        table.insert("name".into(), json!(self.name));
        table.insert(
            "plugin".into(),
            json!(format!("{}{}", super::PREFIX, self.entry)),
        );
        table.insert("allowed_hosts".into(), Value::Array(hosts.clone()));
        if !secrets.is_empty() {
            table.insert("secrets".into(), Value::Object(secrets));
        }
        table.insert("settings".into(), Value::Object(settings));
        let doc = json!({ "destinations": [Value::Object(table)] });
        let mut out = String::new();
        for note in &self.notes {
            out.push_str(&format!("# {note}\n"));
        }
        if self.allowed_hosts.is_empty() {
            out.push_str(
                "# allowed_hosts: put the vendor API's origin in place of https://VENDOR.\n",
            );
        }
        for (key, env) in &self.secrets {
            out.push_str(&format!(
                "# Set {env} to the value of `{key}` (credentials are not copied here).\n"
            ));
        }
        out.push_str(
            &toml::to_string(&doc).unwrap_or_else(|e| format!("# cannot write TOML: {e}\n")),
        );
        out
    }
}

/// JSON nulls dropped (TOML has none).
fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(
            a.iter()
                .filter(|v| !v.is_null())
                .map(without_nulls)
                .collect(),
        ),
        other => other.clone(),
    }
}
