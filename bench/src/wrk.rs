//! wrk (Debian's package, installed by `make bench`) as the load generator of the
//! ingest scenarios: a C client on its own threads, so the side under test, not
//! the generator, is what saturates. Each request is a `/v1/batch` of 100 track
//! events with unique `messageId`s, built by a Lua script, with Basic auth of the
//! bench hosts' write key.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

/// The request script: unique ids per run, thread and request; `{AUTH}` is the
/// Basic credentials of the write key, `{RUN}` a random number per run (wrk's
/// Lua is not seeded, so `math.random` alone gives every run the same ids, and
/// a second run against one host would be deduplicated, not stored).
const SCRIPT: &str = r#"
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
function init(args)
  prefix = "w{RUN}-" .. tid
  counter = 0
end
request = function()
  counter = counter + 1
  local parts = {}
  for i = 1, 100 do
    parts[i] = string.format('{"type":"track","event":"Order Completed","userId":"user-%d","messageId":"%s-%d-%d","timestamp":"2026-11-26T12:00:00.000Z","properties":{"orderId":"50314b8e9bcf000000000000","total":27.5,"revenue":25.0,"shipping":3,"tax":2,"currency":"USD","products":[{"product_id":"507f1f77bcf86cd799439011","sku":"45790-32","name":"Monopoly","price":19,"quantity":1}]},"context":{"page":{"path":"/checkout","url":"https://shop.example.com/checkout"},"ip":"203.0.113.7"}}', i % 97, prefix, counter, i)
  end
  local body = '{"batch":[' .. table.concat(parts, ",") .. '],"context":{"library":{"name":"analytics-node","version":"2.1.0"}}}'
  return wrk.format("POST", nil, {["Content-Type"] = "application/json", ["Authorization"] = "Basic {AUTH}"}, body)
end
"#;

/// Events per request.
pub const EVENTS_PER_REQUEST: u64 = 100;

/// What wrk measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct WrkResult {
    /// 2xx requests per second.
    pub ok_rps: f64,
    /// Requests that were not 2xx (or failed).
    pub errors: u64,
    /// Latency percentiles, ms.
    pub p50_ms: f64,
    /// Latency percentiles, ms.
    pub p99_ms: f64,
}

impl WrkResult {
    /// Events acknowledged per second.
    pub fn eps(&self) -> f64 {
        self.ok_rps * EVENTS_PER_REQUEST as f64
    }

    /// As JSON for the results file.
    pub fn json(&self) -> Value {
        json!({
            "events_per_s": self.eps().round(),
            "requests_per_s": self.ok_rps.round(),
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "errors": self.errors,
        })
    }
}

/// Run wrk against `url` with `connections` for `duration`.
pub fn run(url: &str, connections: usize, duration: Duration) -> anyhow::Result<WrkResult> {
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("batch.lua");
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:", switchyard_e2e::host::WRITE_KEY));
    let run: u64 = rand::random();
    std::fs::write(
        &script,
        SCRIPT
            .replace("{AUTH}", &auth)
            .replace("{RUN}", &run.to_string()),
    )?;
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{}s", duration.as_secs().max(1)),
            "--latency",
            "-s",
        ])
        .arg(&script)
        .arg(url)
        .output()
        .map_err(|e| anyhow::anyhow!("wrk: {e} (make bench installs it)"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    anyhow::ensure!(
        out.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = parse(&text)?;
    anyhow::ensure!(r.ok_rps > 0.0, "no request to {url} got a 2xx: {text}");
    Ok(r)
}

fn parse(text: &str) -> anyhow::Result<WrkResult> {
    let mut r = WrkResult::default();
    let mut total = 0f64;
    let mut secs = 0f64;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            r.errors += rest.trim().parse::<u64>().unwrap_or(0);
        } else if line.starts_with("Socket errors:") {
            for part in line.split(',') {
                if let Some(n) = part
                    .split_whitespace()
                    .last()
                    .and_then(|n| n.parse::<u64>().ok())
                {
                    r.errors += n;
                }
            }
        } else if line.contains("requests in") {
            // "12345 requests in 10.00s, 1.23MB read"
            let mut words = line.split_whitespace();
            total = words.next().and_then(|n| n.parse().ok()).unwrap_or(0.0);
            secs = line
                .split("requests in ")
                .nth(1)
                .and_then(|t| t.split(',').next())
                .map(|t| duration_secs(t.trim()))
                .unwrap_or(0.0);
        } else if let Some(rest) = line.strip_prefix("50%") {
            r.p50_ms = duration_secs(rest.trim()) * 1000.0;
        } else if let Some(rest) = line.strip_prefix("99%") {
            r.p99_ms = duration_secs(rest.trim()) * 1000.0;
        }
    }
    anyhow::ensure!(secs > 0.0, "wrk printed no summary: {text}");
    r.ok_rps = (total - r.errors as f64).max(0.0) / secs;
    Ok(r)
}

/// "1.23ms", "850.00us", "2.00s", "1.50m" in seconds.
fn duration_secs(t: &str) -> f64 {
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: f64 = n.parse().unwrap_or(0.0);
    match unit {
        "us" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_wrk_output() {
        let text = "Running 3s test @ http://127.0.0.1:1/v1/batch
  2 threads and 32 connections
  Latency Distribution
     50%    4.12ms
     75%    5.00ms
     90%    6.00ms
     99%   12.50ms
  3000 requests in 3.00s, 1.00MB read
  Non-2xx or 3xx responses: 30
Requests/sec:   1000.00
";
        let r = super::parse(text).unwrap();
        assert!((r.ok_rps - 990.0).abs() < 0.01);
        assert!((r.p99_ms - 12.5).abs() < 1e-9 && (r.p50_ms - 4.12).abs() < 1e-9);
        assert_eq!(r.errors, 30);
    }
}
