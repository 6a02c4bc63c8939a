//! Scenario `housekeeping`: the embedded store in-process. What ingest waits
//! for while the store prunes 10 million expired dedup keys (1 million in quick
//! mode) and reclaims the chunks of a delivered backlog of the same size, against
//! the same load on a store with nothing to prune. The keys are written under a
//! long window and the store reopened under a short one, so that they all
//! expire at once rather than trickle out while the store fills. Housekeeping runs inside the
//! writer's commits, in steps of at most 256 rows every 200 ms
//! (`host/src/store/embedded/mod.rs`), so an append waits for at most one step.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard::config::Config;
use switchyard::store::embedded::{EmbeddedOptions, EmbeddedStore};
use switchyard::store::{Claim, Queues, Settle};

use super::log::{request, PER_REQUEST};
use crate::Scale;

const WRITERS: usize = 32;
/// The dedup window: short, so the filled keys expire before the measurement.
const WINDOW: Duration = Duration::from_secs(2);

/// Append `total` events from [`WRITERS`] writers.
async fn fill(
    store: &Arc<EmbeddedStore>,
    total: usize,
    json: &Arc<Vec<String>>,
) -> anyhow::Result<()> {
    let per_writer = total / WRITERS / PER_REQUEST;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (store, json) = (store.clone(), json.clone());
        tasks.push(tokio::spawn(async move {
            for r in 0..per_writer {
                store.append(request("fill", w, r, &json)).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// Deliver (settle as done) everything queued for `sink`.
async fn drain(store: &EmbeddedStore) -> anyhow::Result<()> {
    loop {
        let jobs = store
            .claim(
                "sink",
                Claim::up_to(10_000, 64 << 20),
                switchyard::store::now_ms(),
            )
            .await?;
        if jobs.is_empty() {
            return Ok(());
        }
        let done = jobs.iter().map(|j| (j.id, Settle::Done)).collect();
        store.settle("sink", done).await?;
    }
}

/// Four writers appending 100-event requests for `phase`: each append's latency (ms).
async fn measure(
    store: &Arc<EmbeddedStore>,
    phase: Duration,
    json: &Arc<Vec<String>>,
    tag: &str,
) -> anyhow::Result<Vec<f64>> {
    let mut tasks = Vec::new();
    for w in 0..4 {
        let (store, json, tag) = (store.clone(), json.clone(), tag.to_string());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let start = Instant::now();
            let mut r = 0;
            while start.elapsed() < phase {
                let t = Instant::now();
                store.append(request(&tag, w, r, &json)).await?;
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                r += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    Ok(all)
}

fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(((v.len().max(1) - 1) as f64 * q).round() as usize)
        .copied()
        .unwrap_or(0.0)
}

fn rows(dir: &std::path::Path, table: &str) -> anyhow::Result<i64> {
    let conn = rusqlite::Connection::open(dir.join("switchyard.sqlite3"))?;
    Ok(conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?)
}

pub async fn run(scale: Scale) -> anyhow::Result<Value> {
    let total: usize = if scale.quick { 1_000_000 } else { 10_000_000 };
    let json = Arc::new(crate::events::normalised(PER_REQUEST));
    let destinations = Config::plain_destinations(&[("sink", false)]);
    let options = EmbeddedOptions {
        dedup_window: WINDOW,
        retention: Duration::ZERO,
        dead_letter_retention: None,
    };
    let phase = scale.phase.max(Duration::from_secs(5));

    // The floor: the same load on a store with nothing to prune.
    let quiet_dir = tempfile::tempdir()?;
    let quiet = Arc::new(EmbeddedStore::open(
        quiet_dir.path(),
        &options,
        &destinations,
    )?);
    let floor = measure(&quiet, phase, &json, "q").await?;
    drop(quiet);

    // A store holding `total` expired keys and a delivered backlog of `total`
    // events: filled under a long window (so nothing expires while it fills),
    // then reopened under the short one, so every key has expired at once.
    let dir = tempfile::tempdir()?;
    let filling = EmbeddedOptions {
        dedup_window: Duration::from_secs(3600),
        retention: Duration::ZERO,
        dead_letter_retention: None,
    };
    let store = Arc::new(EmbeddedStore::open(dir.path(), &filling, &destinations)?);
    let started = Instant::now();
    fill(&store, total, &json).await?;
    drain(&store).await?;
    let filled_secs = started.elapsed().as_secs_f64();
    drop(store);
    tokio::time::sleep(WINDOW + Duration::from_millis(500)).await;
    let reopening = Instant::now();
    let store = Arc::new(EmbeddedStore::open(dir.path(), &options, &destinations)?);
    let reopen_secs = reopening.elapsed().as_secs_f64();
    let (keys_before, chunks_before) =
        (rows(dir.path(), "dedup_keys")?, rows(dir.path(), "chunks")?);
    let start = Instant::now();
    let during = measure(&store, phase, &json, "m").await?;
    let (keys_after, chunks_after) = (rows(dir.path(), "dedup_keys")?, rows(dir.path(), "chunks")?);
    let pruned_in = start.elapsed().as_secs_f64();

    let (p50, p99, max) = (
        quantile(&during, 0.5),
        quantile(&during, 0.99),
        quantile(&during, 1.0),
    );
    let (f50, f99, fmax) = (
        quantile(&floor, 0.5),
        quantile(&floor, 0.99),
        quantile(&floor, 1.0),
    );
    println!(
        "housekeeping: {total} expired keys and delivered events (filled in {filled_secs:.0} s, \
         reopened in {reopen_secs:.1} s): \
         append p50/p99/max {p50:.1}/{p99:.1}/{max:.1} ms while pruning, against \
         {f50:.1}/{f99:.1}/{fmax:.1} ms with nothing to prune; dedup rows {keys_before} -> {keys_after}, \
         chunks {chunks_before} -> {chunks_after} in {pruned_in:.1} s"
    );
    Ok(json!({
        "setup": format!("in-process embedded store; {total} events appended ({WRITERS} writers, {PER_REQUEST}-event requests) under a 1 h dedup window and delivered; the store reopened under a 2 s window, so every key has expired; then 4 writers append 100-event requests for {} s", phase.as_secs()),
        "expired_keys": total,
        "reopen_s": reopen_secs,
        "append_ms_while_pruning": {"p50": p50, "p99": p99, "max": max, "requests": during.len()},
        "append_ms_nothing_to_prune": {"p50": f50, "p99": f99, "max": fmax, "requests": floor.len()},
        "dedup_rows": {"before": keys_before, "after": keys_after},
        "chunk_rows": {"before": chunks_before, "after": chunks_after},
    }))
}
