//! Scenario `log`: the embedded store in-process. Store size per million events,
//! and how long opening the store takes with a large backlog (1 million events
//! in quick mode, 10 million otherwise), which is what a restart waits for.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard::config::Config;
use switchyard::route::RouteKeys;
use switchyard::store::embedded::{EmbeddedOptions, EmbeddedStore};
use switchyard::store::{NewEvent, Queues};

use crate::Scale;

const WRITERS: usize = 32;
pub(super) const PER_REQUEST: usize = 100;

fn options() -> EmbeddedOptions {
    EmbeddedOptions {
        dedup_window: Duration::from_secs(86_400),
        retention: Duration::ZERO,
        dead_letter_retention: None,
    }
}

/// One request of `PER_REQUEST` events with ids `<tag><writer>-<r>-<i>` (also
/// used by the `housekeeping` scenario).
pub(super) fn request(tag: &str, writer: usize, r: usize, json: &[String]) -> Vec<NewEvent> {
    (0..PER_REQUEST)
        .map(|i| NewEvent {
            source: "bench".into(),
            message_id: format!("{tag}{writer}-{r}-{i}"),
            event_type: switchyard::event_type::EventType::Track,
            user_key: Some(format!("user-{}", i % 97)),
            json: json[i].clone(),
            route: RouteKeys {
                event_type: "track".into(),
                event_name: Some("Order Completed".into()),
                integrations: None,
            },
        })
        .collect()
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

pub async fn run(scale: Scale) -> anyhow::Result<Value> {
    let total: usize = if scale.quick { 1_000_000 } else { 10_000_000 };
    let dir = tempfile::tempdir()?;
    let destinations = Config::plain_destinations(&[("sink", false)]);
    let json = Arc::new(crate::events::normalised(PER_REQUEST));
    let store = Arc::new(EmbeddedStore::open(dir.path(), &options(), &destinations)?);
    let per_writer = total / WRITERS / PER_REQUEST;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (store, json) = (store.clone(), json.clone());
        tasks.push(tokio::spawn(async move {
            for r in 0..per_writer {
                store.append(request("w", w, r, &json)).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let append_secs = start.elapsed().as_secs_f64();
    let stored = (per_writer * WRITERS * PER_REQUEST) as u64;
    let queued = store.stats("sink").await?.queued;
    drop(store);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let bytes = dir_bytes(dir.path());
    let start = Instant::now();
    let reopened = EmbeddedStore::open(dir.path(), &options(), &destinations)?;
    let queued_after = reopened.stats("sink").await?.queued;
    let open_secs = start.elapsed().as_secs_f64();
    anyhow::ensure!(
        queued == stored && queued_after == stored,
        "backlog {queued}/{queued_after} of {stored}"
    );
    let mb_per_million = bytes as f64 / 1e6 / (stored as f64 / 1e6);
    println!(
        "log: {stored} events appended in-process at {:.0} events/s; {:.0} MB per million events; open with that backlog: {:.2} s",
        stored as f64 / append_secs,
        mb_per_million,
        open_secs
    );
    Ok(json!({
        "setup": format!("in-process, {WRITERS} writers appending {PER_REQUEST}-event requests (~520 B each) to one destination that never claims"),
        "events": stored,
        "append_events_per_s": (stored as f64 / append_secs).round(),
        "store_bytes": bytes,
        "mb_per_million_events": (mb_per_million * 10.0).round() / 10.0,
        "open_seconds_with_backlog": (open_secs * 1000.0).round() / 1000.0,
    }))
}
