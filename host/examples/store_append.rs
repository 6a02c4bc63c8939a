//! Measures the embedded store's fsync'd append rate (the number behind the
//! choice of SQLite + group commit). Run: `cargo run --release -p switchyard --example store_append`.
//!
//! Three shapes: one event per commit from one writer (the raw fsync rate);
//! 100-event batches from one writer; 100-event batches from 32 concurrent writers
//! (group commit: requests that arrive during a commit share the next one).
//! Each runs with 1 and with 140 destinations: an event is written once either way.

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard::config::Config;
use switchyard::route::RouteKeys;
use switchyard::store::embedded::{EmbeddedOptions, EmbeddedStore};
use switchyard::store::{NewEvent, Queues};

fn events(prefix: &str, n: usize) -> Vec<NewEvent> {
    (0..n)
        .map(|i| NewEvent {
            source: "bench".into(),
            message_id: format!("{prefix}-{i}"),
            event_type: switchyard::event_type::EventType::Track,
            user_key: Some(format!("user-{}", i % 50)),
            json: format!(
                r#"{{"type":"track","event":"Order Completed","messageId":"{prefix}-{i}","userId":"user-{}","properties":{{"revenue":12.5,"orderId":"o-{i}"}},"context":{{"library":{{"name":"analytics-node"}}}},"timestamp":"2026-11-26T12:00:00.000Z"}}"#,
                i % 50
            ),
            route: RouteKeys {
                event_type: "track".into(),
                event_name: Some("Order Completed".into()),
                integrations: None,
            },
        })
        .collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    for destinations in [1, 140] {
        println!("== {destinations} destinations");
        run(destinations).await?;
    }
    Ok(())
}

async fn run(destinations: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let names: Vec<String> = (0..destinations).map(|i| format!("d{i}")).collect();
    let specs: Vec<(&str, bool)> = names.iter().map(|n| (n.as_str(), false)).collect();
    let store = Arc::new(EmbeddedStore::open(
        dir.path(),
        &EmbeddedOptions {
            dedup_window: Duration::from_secs(86_400),
            retention: Duration::ZERO,
            dead_letter_retention: None,
        },
        &Config::plain_destinations(&specs),
    )?);

    let n = 200;
    let t = Instant::now();
    for i in 0..n {
        store.append(events(&format!("single{i}"), 1)).await?;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "1 writer, 1 event/commit:     {:>8.0} commits/s  {:>9.0} events/s",
        n as f64 / secs,
        n as f64 / secs
    );

    let n = 100;
    let t = Instant::now();
    for i in 0..n {
        store.append(events(&format!("batch{i}"), 100)).await?;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "1 writer, 100 events/request: {:>8.0} requests/s {:>9.0} events/s",
        n as f64 / secs,
        n as f64 * 100.0 / secs
    );

    let writers = 32;
    let per_writer = 20;
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                store
                    .append(events(&format!("c{w}-{i}"), 100))
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let secs = t.elapsed().as_secs_f64();
    let requests = (writers * per_writer) as f64;
    println!(
        "32 writers, 100 events/request: {:>6.0} requests/s {:>9.0} events/s",
        requests / secs,
        requests * 100.0 / secs
    );
    Ok(())
}
