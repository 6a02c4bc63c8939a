//! `switchyard status [--config FILE] [--wide] [--format json]`: the overview
//! of a running host as two tables (sources, destinations), through its admin
//! API, for a terminal with no browser; or the same figures as JSON.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::Value;

use crate::observe::human::duration;

/// How `status` prints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Two tables.
    #[default]
    Text,
    /// `{"sources": [...], "destinations": [...]}`, as the admin API answers.
    Json,
}

/// Print the overview of the host that `config` (or the default config)
/// describes; `wide` prints reasons whole.
pub async fn status(
    config: Option<PathBuf>,
    wide: bool,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let config = super::admin_client::host_config(config.as_deref())?;
    let base = super::dlq::admin_base(&config)
        .context("the config's [server] listen names no fixed port to reach the host at")?;
    let token = config
        .admin_token
        .as_deref()
        .context("the config has no [server] admin_token: the admin API is disabled")?;
    let client = reqwest::Client::builder().no_proxy().build()?;
    let get = |path: &'static str| {
        let url = format!("{base}{path}");
        let request = client.get(&url).bearer_auth(token);
        let base = base.clone();
        async move {
            let resp = request
                .send()
                .await
                .with_context(|| format!("no host answers at {base}: is it running?"))?;
            let status = resp.status();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            if !status.is_success() {
                anyhow::bail!(
                    "{url}: {status}: {}",
                    body["message"].as_str().unwrap_or("")
                );
            }
            Ok::<Value, anyhow::Error>(body)
        }
    };
    let sources = get("/admin/sources").await?;
    let destinations = get("/admin/destinations").await?;
    match format {
        Format::Text => print!("{}", render(&sources, &destinations, wide)),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"sources": sources, "destinations": destinations})
            )?
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// `switchyard retry-now DEST`: `POST /admin/destinations/DEST/retry-now`.
pub async fn retry_now(destination: &str, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = super::admin_client::host_config(config)?;
    let path = format!("/admin/destinations/{destination}/retry-now");
    let (status, body) = super::admin_client::post(&config, &path, &[]).await?;
    if !status.is_success() {
        anyhow::bail!(
            "{destination}: {status}: {}",
            body["message"].as_str().unwrap_or("")
        );
    }
    println!(
        "{destination}: {} waiting retries made due now",
        body["moved"].as_u64().unwrap_or(0)
    );
    Ok(ExitCode::SUCCESS)
}

/// The two tables as text; reasons cut at 60 characters unless `wide`.
pub fn render(sources: &Value, destinations: &Value, wide: bool) -> String {
    let mut out = String::new();
    let rows: Vec<Vec<String>> = as_rows(sources)
        .map(|s| {
            vec![
                text(&s["name"]),
                rate(&s["accepted_per_second"]),
                text(&s["rejected"]),
            ]
        })
        .collect();
    out.push_str(&table(&["SOURCE", "ACCEPTED/S", "REJECTED"], &rows));
    out.push('\n');
    let rows: Vec<Vec<String>> = as_rows(destinations)
        .map(|d| {
            let v = &d["violations"];
            let violations: u64 = ["timeouts", "traps", "contract", "egress_denied"]
                .iter()
                .filter_map(|k| v[*k].as_u64())
                .sum();
            let health = match d["attention"].as_str() {
                Some(a) => format!("{} ({a})", text(&d["health"])),
                None => text(&d["health"]),
            };
            let error = d["last_error"].as_str().or(d["store_error"].as_str());
            let error = error.map_or_else(
                || "-".into(),
                |e| {
                    let e = if wide {
                        e.replace('\n', " ")
                    } else {
                        clip(e, 60)
                    };
                    match (
                        d["last_error_resolved"].as_bool(),
                        d["last_error_at"].as_str(),
                    ) {
                        (Some(true), Some(at)) => format!("{e} (at {at}; delivering since)"),
                        (_, Some(at)) => format!("{e} (at {at})"),
                        _ => e,
                    }
                },
            );
            vec![
                text(&d["name"]),
                health,
                text(&d["queued"]),
                text(&d["retrying"]),
                d["next_retry_in_ms"]
                    .as_u64()
                    .map_or_else(|| "-".into(), |ms| format!("in {}", duration(ms))),
                millis(&d["oldest_queued_age_ms"]),
                text(&d["in_flight"]),
                per_second(&d["delivered_per_second"], &d["delivered"]),
                millis(&d["latency_p50_ms"]),
                millis(&d["latency_p99_ms"]),
                text(&d["delivered"]),
                text(&d["retried"]),
                text(&d["dead_letters"]),
                violations.to_string(),
                error,
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "DESTINATION",
            "HEALTH",
            "QUEUED",
            "RETRYING",
            "NEXT ATTEMPT",
            "OLDEST",
            "IN FLIGHT",
            "DELIVERED/S",
            "P50",
            "P99",
            "DELIVERED",
            "RETRIED",
            "DEAD",
            "VIOLATIONS",
            "LAST ERROR",
        ],
        &rows,
    ));
    out
}

fn as_rows(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn rate(v: &Value) -> String {
    v.as_f64().map_or_else(|| "-".into(), |r| format!("{r:.1}"))
}

fn millis(v: &Value) -> String {
    v.as_u64().map_or_else(|| "-".into(), duration)
}

/// A rate over the last minute or two: `<0.1` rather than `0.0` when a few
/// events did go out (a rate of 0.0 beside a count of 1 reads as a
/// contradiction).
fn per_second(rate: &Value, count: &Value) -> String {
    match (rate.as_f64(), count.as_u64()) {
        (Some(r), Some(1..)) if r < 0.05 && r > 0.0 => "<0.1".into(),
        (Some(r), _) => format!("{r:.1}"),
        _ => "-".into(),
    }
}

fn clip(s: &str, chars: usize) -> String {
    let one_line = s.replace('\n', " ");
    if one_line.chars().count() <= chars {
        return one_line;
    }
    let mut cut: String = one_line.chars().take(chars - 1).collect();
    cut.push('…');
    cut
}

/// Columns padded to their widest cell, two spaces apart.
fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                l.push_str(&format!("{cell:<w$}  "));
            }
        }
        l.trim_end().to_string() + "\n"
    };
    let mut out = line(head.iter().map(|h| h.to_string()).collect());
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_overview_is_two_aligned_tables() {
        let sources = json!([{"name": "web", "accepted_per_second": 12.34, "rejected": 2}]);
        let destinations = json!([{
            "name": "hooks", "health": "degraded", "queued": 7, "in_flight": 3,
            "delivered_per_second": 1.0, "latency_p50_ms": 12, "latency_p99_ms": null,
            "delivered": 40, "retried": 5, "dead_letters": 1, "attention": "dead-lettering",
            "retrying": 4, "next_retry_in_ms": 224_037, "oldest_queued_age_ms": 3_200,
            "violations": {"timeouts": 1, "traps": 2, "contract": 0, "egress_denied": 0},
            "last_error": "status 503 from the vendor", "last_error_at": "2026-12-07T04:30:42.000Z"
        }]);
        let out = render(&sources, &destinations, false);
        let lines: Vec<&str> = out.lines().collect();
        assert!(
            lines[0].starts_with("SOURCE  ACCEPTED/S  REJECTED"),
            "{out}"
        );
        assert!(lines[1].starts_with("web     12.3        2"), "{out}");
        let row = lines[4];
        for cell in [
            "hooks",
            "degraded (dead-lettering)",
            "12 ms",
            "in 3m 44s",
            "3.2 s",
            "40",
            "status 503 from the vendor (at 2026-12-07T04:30:42.000Z)",
        ] {
            assert!(row.contains(cell), "{cell} in {row}");
        }
        // Columns line up with the header.
        assert_eq!(lines[3].find("HEALTH"), row.find("degraded"));
        assert!(
            row.split_whitespace().any(|c| c == "3"),
            "violations: {row}"
        );

        // A long reason is cut unless --wide.
        let mut long = destinations.clone();
        long[0]["last_error"] = json!("x".repeat(100));
        assert!(render(&sources, &long, false).contains(&format!("{}…", "x".repeat(59))));
        assert!(render(&sources, &long, true).contains(&"x".repeat(100)));
    }
}
