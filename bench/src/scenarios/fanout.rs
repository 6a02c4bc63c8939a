//! Scenario `fanout`: durable ingest with 1, 10, 40 and 140 paused destinations
//! under the same wrk load. Each event is written once, so the rate should not
//! fall as destinations are added (goal: 140 destinations >= 0.9 x 1).

use serde_json::{json, Value};

use crate::receiver::Receiver;
use crate::scenarios::ingest::CONNECTIONS;
use crate::{wrk, Scale};

pub async fn run(scale: Scale) -> anyhow::Result<Value> {
    let rx = Receiver::start().await;
    let mut rows = Vec::new();
    let mut first = None;
    for n in [1usize, 10, 40, 140] {
        let (_dir, host, port) = super::paused_host(n, &rx.origin()).await?;
        let url = format!("http://127.0.0.1:{port}/v1/batch");
        wrk::run(&url, CONNECTIONS, scale.phase / 5)?;
        let r = wrk::run(&url, CONNECTIONS, scale.phase)?;
        drop(host);
        let base = *first.get_or_insert(r.eps());
        println!(
            "fanout: {n:>3} destinations: {:.0} ev/s ({:.2}x the rate with 1)",
            r.eps(),
            r.eps() / base
        );
        rows.push(json!({
            "destinations": n,
            "ingest": r.json(),
            "ratio_to_one": ((r.eps() / base) * 1000.0).round() / 1000.0,
        }));
    }
    Ok(json!({
        "setup": format!("wrk, 2 threads, {CONNECTIONS} connections, /v1/batch of 100 events, {:?} per point; every destination paused, so only ingest counts", scale.phase),
        "goal_ratio_140_to_1": 0.9,
        "points": rows,
    }))
}
