//! Scenario `deletion`: what a privacy `DELETE` costs on the embedded store.
//!
//! 1. Erasing one user from a retained log of 10 million events (1 million
//!    with `--quick`): the ingest scenario's wrk load fills the log of a host
//!    whose one destination is paused (so nothing is reclaimed), with 300
//!    events of the user to delete sent before, in the middle and after; then
//!    one `DELETE`, timed from the request until its progress says `done`.
//!    The floor beside it: the same host reading back every event of the log
//!    through the admin API would cost more, so the floor given is the
//!    in-process cost of matching one event (reading its three ids and
//!    hashing them), times the log's size.
//! 2. The deletions a destination gets per second: a host with the bundled
//!    `mixpanel` destination (which deletes through Mixpanel's GDPR API)
//!    pointed at a loopback receiver that answers at once; 200 regulations of
//!    one user each, sent together, and one regulation of 10,000 users,
//!    each timed until every one is `done`.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::procs::{config, switchyard};
use crate::receiver::Receiver;
use crate::{wrk, Scale};
use switchyard_e2e::{free_port, webhook_table};

/// The user deleted from the big log, and how many of their events it holds.
const FORGOTTEN: &str = "forget-me@example.com";
const FORGOTTEN_EVENTS: usize = 300;

/// Regulations of one user each, sent together, in part 2.
const SMALL_REGULATIONS: usize = 200;
/// Users of the one big regulation of part 2 (the API's most).
const BIG_REGULATION: usize = 10_000;

/// Send 100 events of the forgotten user to the host at `port`.
async fn forgotten_batch(port: u16, tag: &str) -> anyhow::Result<()> {
    let batch: Vec<Value> = (0..FORGOTTEN_EVENTS / 3)
        .map(|i| {
            json!({"type": "track", "event": "Viewed", "userId": FORGOTTEN,
                "messageId": format!("forget-{tag}-{i}"),
                "properties": {"email": FORGOTTEN}})
        })
        .collect();
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/v1/batch"))
        .basic_auth(switchyard_e2e::host::WRITE_KEY, Some(""))
        .json(&json!({ "batch": batch }))
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "batch: {}", r.status());
    Ok(())
}

/// Post a regulation; its id.
async fn regulate(port: u16, body: Value) -> anyhow::Result<String> {
    let r = super::admin(port)
        .request(reqwest::Method::POST, "/admin/regulations")
        .json(&body)
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "regulation: {}", r.status());
    Ok(r.json::<Value>().await?["id"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

/// Wait until regulation `id` is no longer pending; its record.
async fn until_done(port: u16, id: &str, within: Duration) -> anyhow::Result<Value> {
    let started = Instant::now();
    loop {
        let r = super::admin(port)
            .get(&format!("/admin/regulations/{id}"))
            .await;
        if r["state"] != "pending" {
            return Ok(r);
        }
        anyhow::ensure!(started.elapsed() < within, "{id} not done in {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// ns to match one event of the load's shape against a deletion's subjects.
fn match_ns_per_event() -> f64 {
    use switchyard::privacy::{Request, SubjectKey, Subjects};
    let key = SubjectKey::new(rand::random());
    let request = Request {
        kind: switchyard::privacy::Kind::Delete,
        subjects: Subjects {
            user_id: vec![FORGOTTEN.into()],
            anonymous_id: vec![],
        },
        sources: None,
    };
    let r = switchyard::privacy::Regulation::new(&request, &key, &[], "bench", 0)
        .expect("a regulation");
    let who = switchyard::privacy::Who::of(&r, key).expect("subjects");
    let events: Vec<String> = (0..1000)
        .map(|i| format!(r#"{{"type":"track","event":"Order Completed","userId":"user-{i}","messageId":"w-{i}","timestamp":"2026-11-26T12:00:00.000Z","properties":{{"orderId":"50314b8e9bcf000000000000","total":27.5,"revenue":25.0,"products":[{{"product_id":"507f1f77bcf86cd799439011","sku":"45790-32","name":"Monopoly","price":19,"quantity":1}}]}},"context":{{"page":{{"path":"/checkout"}},"ip":"203.0.113.7"}}}}"#))
        .collect();
    let rounds = 100;
    let started = Instant::now();
    let mut hits = 0;
    for _ in 0..rounds {
        for e in &events {
            hits += usize::from(std::hint::black_box(&who).takes(Some("web"), e));
        }
    }
    assert_eq!(hits, 0);
    started.elapsed().as_nanos() as f64 / (rounds * events.len()) as f64
}

/// Part 1: one user out of a big retained log.
async fn big_log(scale: Scale, rx: &Receiver) -> anyhow::Result<Value> {
    let target: u64 = if scale.quick { 1_000_000 } else { 10_000_000 };
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let dest = webhook_table("sink", &format!("{}/sink", rx.origin()), &rx.origin(), "");
    let text =
        config(dir.path(), port, &dest).replacen("[store]\n", "[store]\nretention = \"24h\"\n", 1);
    let (proc, _) = switchyard(dir.path(), &text, port).await?;
    super::admin_post(port, "/admin/destinations/sink/pause").await?;
    let url = format!("http://127.0.0.1:{port}/v1/batch");
    forgotten_batch(port, "first").await?;
    let mut stored = 0u64;
    let mut middle = false;
    while stored < target {
        let r = wrk::run(&url, super::ingest::CONNECTIONS, Duration::from_secs(10))?;
        stored += (r.ok_rps * 10.0) as u64 * wrk::EVENTS_PER_REQUEST;
        if !middle && stored >= target / 2 {
            forgotten_batch(port, "middle").await?;
            middle = true;
        }
    }
    forgotten_batch(port, "last").await?;
    let file = dir.path().join("data/switchyard.sqlite3");
    let bytes = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    // The writer's WAL settles before the deletion.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss = proc.rss_kib();
    let started = Instant::now();
    let id = regulate(
        port,
        json!({"type": "DELETE", "subjects": {"userId": [FORGOTTEN]}}),
    )
    .await?;
    let done = until_done(port, &id, Duration::from_secs(1800)).await?;
    let seconds = started.elapsed().as_secs_f64();
    let erased = done["progress"]["erased"]["log"].as_u64().unwrap_or(0);
    let peak = proc.rss_kib();
    drop(proc);
    let per_event_ns = match_ns_per_event();
    println!(
        "deletion: one user ({erased} events) erased from a retained log of {stored} events ({} MiB) in {seconds:.1} s ({:.0} events/s scanned; matching alone {per_event_ns:.0} ns/event = {:.1} s)",
        bytes >> 20,
        stored as f64 / seconds,
        per_event_ns * stored as f64 / 1e9
    );
    Ok(json!({
        "retained_events": stored,
        "database_mib": bytes >> 20,
        "user_events_erased": erased,
        "seconds": (seconds * 10.0).round() / 10.0,
        "events_scanned_per_s": (stored as f64 / seconds).round(),
        "floor_match_ns_per_event": (per_event_ns * 10.0).round() / 10.0,
        "floor_match_seconds": (per_event_ns * stored as f64 / 1e8).round() / 10.0,
        "rss_kib_before": rss,
        "rss_kib_after": peak,
        "state": done["state"],
    }))
}

/// Part 2: deletions forwarded to a destination.
async fn forwarded(rx: &Receiver) -> anyhow::Result<Value> {
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let origin = rx.origin();
    let dest = format!(
        "[[destinations]]\nname = \"mixpanel\"\nplugin = \"mixpanel\"\nallowed_hosts = [\"{origin}\"]\n\
         settings = {{ endpoint = \"{origin}\", gdpr_endpoint = \"{origin}\", api_secret = \"s\", token = \"t\", gdpr_api_token = \"g\" }}\n"
    );
    let (proc, _) = switchyard(dir.path(), &config(dir.path(), port, &dest), port).await?;
    let started = Instant::now();
    let mut posts = tokio::task::JoinSet::new();
    for i in 0..SMALL_REGULATIONS {
        let body = json!({"type": "DELETE", "subjects": {"userId": [format!("user-{i}")]}});
        posts.spawn(regulate(port, body));
    }
    let mut ids: Vec<String> = Vec::new();
    while let Some(id) = posts.join_next().await {
        ids.push(id??);
    }
    for id in &ids {
        let r = until_done(port, id, Duration::from_secs(300)).await?;
        anyhow::ensure!(
            r["progress"]["destinations"]["mixpanel"]["state"] == "done",
            "{r}"
        );
    }
    let small_s = started.elapsed().as_secs_f64();
    let users: Vec<String> = (0..BIG_REGULATION).map(|i| format!("big-{i}")).collect();
    let started = Instant::now();
    let id = regulate(
        port,
        json!({"type": "DELETE", "subjects": {"userId": users}}),
    )
    .await?;
    let r = until_done(port, &id, Duration::from_secs(300)).await?;
    anyhow::ensure!(
        r["progress"]["destinations"]["mixpanel"]["state"] == "done",
        "{r}"
    );
    let big_s = started.elapsed().as_secs_f64();
    drop(proc);
    println!(
        "deletion: {SMALL_REGULATIONS} regulations of one user each, forwarded to mixpanel in {small_s:.2} s ({:.0}/s); one of {BIG_REGULATION} users in {big_s:.2} s ({:.0} users/s)",
        SMALL_REGULATIONS as f64 / small_s,
        BIG_REGULATION as f64 / big_s
    );
    Ok(json!({
        "regulations_of_one_user": SMALL_REGULATIONS,
        "seconds_for_them": (small_s * 100.0).round() / 100.0,
        "regulations_per_s": (SMALL_REGULATIONS as f64 / small_s).round(),
        "users_in_one_regulation": BIG_REGULATION,
        "seconds_for_it": (big_s * 100.0).round() / 100.0,
        "users_per_s": (BIG_REGULATION as f64 / big_s).round(),
    }))
}

pub async fn run(scale: Scale) -> anyhow::Result<Value> {
    let rx = Receiver::start().await;
    let forwarded = forwarded(&rx).await?;
    let big = big_log(scale, &rx).await?;
    Ok(json!({
        "setup": "embedded store, release build, 2 cores; part 1: the ingest scenario's wrk load (batches of 100) into a host with one paused destination and retention 24h, 300 events of the deleted user among them, one DELETE timed until done; part 2: the bundled mixpanel destination against a loopback receiver that answers at once (empty log)",
        "one_user_from_the_retained_log": big,
        "forwarded_to_a_destination": forwarded,
    }))
}
