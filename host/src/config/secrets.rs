//! `[[destinations]] secrets`: validated once into [`Secrets`].
//!
//! Each secret's value is read here, once, from the environment or a file;
//! its `hosts` are parsed like `allowed_hosts`; and every `${secret:NAME}` in
//! the destination's settings must name one of them. What the host then does
//! with them (the guest sees a token, requests get the value only on the way to
//! the secret's hosts) is in `imports/secrets.rs`.

use std::collections::BTreeMap;
use std::path::Path;

use super::raw::RawSecret;
use super::table::At;
use super::Invalid;
use crate::allowlist::Allowlist;
use crate::imports::secrets::{placeholders, Secret, Secrets, MIN_VALUE_CHARS};

/// The secrets of the destination at `at`, checked against its `settings`.
pub(super) fn secrets(
    at: &At,
    raw: BTreeMap<String, RawSecret>,
    settings: &serde_json::Value,
    base: &Path,
) -> Result<Secrets, Invalid> {
    let mut list = Vec::with_capacity(raw.len());
    let declared: Vec<String> = raw.keys().cloned().collect();
    for (name, secret) in raw {
        let here = format!("secrets.{name}");
        if name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(at.err(
                &here,
                "a secret's name is 1 to 64 lower-case letters, digits and `_`",
            ));
        }
        let value = match (&secret.from, &secret.refreshed_by) {
            (Some(from), _) => read(from, base).map_err(|m| at.err(&format!("{here}.from"), m))?,
            (None, Some(_)) => String::new(),
            (None, None) => {
                return Err(at.err(
                    &format!("{here}.from"),
                    "missing: `env:NAME` or `file:PATH` (only a secret `refreshed_by` another may leave it out)",
                ))
            }
        };
        if secret.from.is_some() && value.chars().count() < MIN_VALUE_CHARS {
            return Err(at.err(
                &format!("{here}.from"),
                format!("the value is shorter than {MIN_VALUE_CHARS} characters: too short to be told apart from other text"),
            ));
        }
        if secret.hosts.is_empty() {
            return Err(at.err(
                &format!("{here}.hosts"),
                "name the hosts it may be sent to (`[\"https://api.vendor.com\"]`)",
            ));
        }
        if let Some(j) = secret.hosts.iter().position(|h| h.contains("*.")) {
            return Err(at.err(
                &format!("{here}.hosts[{j}]"),
                "name each host a secret goes to exactly: `*.` entries are not accepted here",
            ));
        }
        let hosts = Allowlist::parse(&secret.hosts)
            .map_err(|(j, m)| at.err(&format!("{here}.hosts[{j}]"), m))?;
        match secret.refreshed_by {
            Some(by) => {
                if by == name || !declared.contains(&by) {
                    return Err(at.err(
                        &format!("{here}.refreshed_by"),
                        format!(
                            "`{by}` is not another secret of this destination (its refresh token)"
                        ),
                    ));
                }
                list.push(Secret::refreshed(name, value, hosts, by));
            }
            None => list.push(Secret::new(name, value, hosts)),
        }
    }
    let secrets = Secrets::new(list);
    check_placeholders(at, settings, "settings", &secrets)?;
    Ok(secrets)
}

/// The value a `from` names.
fn read(from: &str, base: &Path) -> Result<String, String> {
    if let Some(var) = from.strip_prefix("env:") {
        return std::env::var(var).map_err(|_| format!("environment variable `{var}` is not set"));
    }
    if let Some(file) = from.strip_prefix("file:") {
        let path = base.join(file);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let text = text
            .strip_suffix('\n')
            .map(|t| t.strip_suffix('\r').unwrap_or(t))
            .unwrap_or(&text);
        return Ok(text.to_string());
    }
    Err(format!("`{from}` is not `env:NAME` or `file:PATH`"))
}

/// Every `${secret:NAME}` under `value` names a declared secret.
fn check_placeholders(
    at: &At,
    value: &serde_json::Value,
    path: &str,
    secrets: &Secrets,
) -> Result<(), Invalid> {
    match value {
        serde_json::Value::String(text) => {
            for name in placeholders(text) {
                if !secrets.names().any(|n| n == name) {
                    let declared: Vec<String> = secrets.names().map(|n| format!("`{n}`")).collect();
                    return Err(at.err(
                        path,
                        match declared.is_empty() {
                            true => format!(
                                "`${{secret:{name}}}` names no secret: declare it in `secrets`"
                            ),
                            false => format!(
                                "`${{secret:{name}}}` names no secret (declared: {})",
                                declared.join(", ")
                            ),
                        },
                    ));
                }
            }
            Ok(())
        }
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check_placeholders(at, v, &format!("{path}[{i}]"), secrets)),
        serde_json::Value::Object(map) => map
            .iter()
            .try_for_each(|(k, v)| check_placeholders(at, v, &format!("{path}.{k}"), secrets)),
        _ => Ok(()),
    }
}
