//! Scenario `privacy`: durable ingest (the `ingest` scenario's load) on a host
//! with no suppressed user and on one with 1,000,000 suppressed userIds (none
//! of them in the load), alternating, so the cost of checking every event
//! against the suppression set shows against the run-to-run noise. Also: how
//! long the million takes to record (100 regulations of 10,000), and the
//! memory they hold.

use serde_json::{json, Value};

use crate::procs::{config, switchyard, Proc};
use crate::receiver::Receiver;
use crate::{wrk, Scale};
use switchyard_e2e::{free_port, webhook_table};

/// Suppressed userIds (the figure).
const SUPPRESSED: usize = 1_000_000;
/// Alternating measured phases, each side.
const PAIRS: usize = 3;
/// Subjects per regulation (the API's most).
const PER_REGULATION: usize = 10_000;

/// A host with its one destination paused.
async fn host(origin: &str) -> anyhow::Result<(tempfile::TempDir, Proc, u16)> {
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let dest = webhook_table("sink", &format!("{origin}/sink"), origin, "");
    let (proc, _) = switchyard(dir.path(), &config(dir.path(), port, &dest), port).await?;
    super::admin_post(port, "/admin/destinations/sink/pause").await?;
    Ok((dir, proc, port))
}

/// The check alone, in this process: ns per event of `Suppressions::suppresses`
/// with `n` suppressed userIds, over events that carry a userId and an
/// anonymousId that are not suppressed (the ingest load's shape).
fn check_ns_per_event(n: usize) -> f64 {
    use switchyard::privacy::suppress::{short, SubjectKind};
    use switchyard::privacy::{SubjectKey, Suppressions};
    let key = SubjectKey::new(rand::random());
    let mut s = Suppressions::new(key);
    let hashes: Vec<u64> = (0..n)
        .map(|i| short(key.hash(SubjectKind::UserId, &format!("suppressed-{i}"))))
        .collect();
    s.suppress(&hashes, None);
    let events: Vec<serde_json::Map<String, Value>> = (0..1000)
        .map(|i| {
            json!({"userId": format!("user-{i}"), "anonymousId": format!("5f2b1c3e-{i:04}-4c1a-9d7e-0a1b2c3d4e5f")})
                .as_object()
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    let rounds = 200;
    let started = std::time::Instant::now();
    let mut hits = 0;
    for _ in 0..rounds {
        for e in &events {
            hits += usize::from(std::hint::black_box(&s).suppresses("web", e));
        }
    }
    assert_eq!(hits, 0);
    started.elapsed().as_nanos() as f64 / (rounds * events.len()) as f64
}

pub async fn run(scale: Scale) -> anyhow::Result<Value> {
    let check_none = check_ns_per_event(0);
    let check_many = check_ns_per_event(SUPPRESSED);
    let rx = Receiver::start().await;
    let (_dir_none, none, port_none) = host(&rx.origin()).await?;
    let (_dir_many, many, port_many) = host(&rx.origin()).await?;

    let rss_before = many.rss_kib();
    let started = std::time::Instant::now();
    for part in 0..SUPPRESSED / PER_REGULATION {
        let ids: Vec<String> = (0..PER_REGULATION)
            .map(|i| format!("suppressed-{}", part * PER_REGULATION + i))
            .collect();
        let r = super::admin(port_many)
            .request(reqwest::Method::POST, "/admin/regulations")
            .json(&json!({"type": "SUPPRESS", "subjects": {"userId": ids}}))
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "regulation: {}", r.status());
    }
    let record_s = started.elapsed().as_secs_f64();
    // The store's write-ahead log of the records settles before the load.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let rss_after = many.rss_kib();

    let url = |port: u16| format!("http://127.0.0.1:{port}/v1/batch");
    wrk::run(&url(port_none), super::ingest::CONNECTIONS, scale.phase / 5)?;
    wrk::run(&url(port_many), super::ingest::CONNECTIONS, scale.phase / 5)?;
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for pair in 0..PAIRS {
        // Each side goes first in turn: a drift of the disk favours neither.
        let run = |port| wrk::run(&url(port), super::ingest::CONNECTIONS, scale.phase);
        if pair % 2 == 0 {
            without.push(run(port_none)?);
            with.push(run(port_many)?);
        } else {
            with.push(run(port_many)?);
            without.push(run(port_none)?);
        }
    }
    drop((none, many));
    let eps = |v: &[wrk::WrkResult]| v.iter().map(|r| r.eps().round()).collect::<Vec<_>>();
    let median = |v: &[wrk::WrkResult]| {
        let mut e: Vec<f64> = v.iter().map(|r| r.eps()).collect();
        e.sort_by(f64::total_cmp);
        e[e.len() / 2]
    };
    let ratio = median(&with) / median(&without);
    println!(
        "privacy: the check costs {check_many:.0} ns per event with {SUPPRESSED} suppressed ids ({check_none:.1} ns with none)"
    );
    println!(
        "privacy: ingest {:?} ev/s with {SUPPRESSED} suppressed ids vs {:?} with none ({ratio:.3}x); recording them took {record_s:.1} s and {} MiB",
        eps(&with),
        eps(&without),
        rss_after.saturating_sub(rss_before) / 1024
    );
    Ok(json!({
        "setup": format!("two hosts, each with one paused destination; one holds {SUPPRESSED} suppressed userIds ({} SUPPRESS regulations of {PER_REGULATION}), none of them in the load; the ingest scenario's wrk load ({} connections, batches of 100), {:?} per phase, {PAIRS} pairs, each side first in turn", SUPPRESSED / PER_REGULATION, super::ingest::CONNECTIONS, scale.phase),
        "events_per_s_without": eps(&without),
        "events_per_s_with_1m_suppressed": eps(&with),
        "ratio_of_medians_with_to_without": (ratio * 1000.0).round() / 1000.0,
        "check_ns_per_event_with_1m_suppressed": (check_many * 10.0).round() / 10.0,
        "check_ns_per_event_with_none": (check_none * 100.0).round() / 100.0,
        "record_1m_seconds": (record_s * 10.0).round() / 10.0,
        "rss_growth_kib": rss_after.saturating_sub(rss_before),
    }))
}
