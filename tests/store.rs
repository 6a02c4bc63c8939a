//! One conformance suite for the `Store` contract, run against the embedded
//! store and against a real `nats-server` with JetStream.

use std::sync::Arc;
use std::time::Duration;

use switchyard::config::{Config, DestinationConfig};
use switchyard::route::RouteKeys;
use switchyard::store::embedded::{EmbeddedOptions, EmbeddedStore};
use switchyard::store::nats::{NatsOptions, NatsStore};
use switchyard::store::{now_ms, AppendReport, Claim, NewEvent, Queues, Settle, Store};
use switchyard_e2e::nats::NatsServer;

/// An event for these destinations only (through its `integrations` object).
fn event(id: &str, dests: &[&str]) -> NewEvent {
    user_event(id, "u1", dests)
}

fn user_event(id: &str, user: &str, dests: &[&str]) -> NewEvent {
    let mut integrations = serde_json::Map::new();
    integrations.insert("All".into(), false.into());
    for d in dests {
        integrations.insert(d.to_string(), true.into());
    }
    NewEvent {
        source: "web".into(),
        message_id: id.into(),
        event_type: switchyard::event_type::EventType::Track,
        user_key: Some(user.into()),
        json: format!(r#"{{"messageId":"{id}","type":"track"}}"#),
        route: RouteKeys {
            event_type: "track".into(),
            event_name: None,
            integrations: Some(integrations),
        },
    }
}

/// Destinations `x` and `y`, and `ordered` with per-user ordering.
fn destinations() -> Vec<DestinationConfig> {
    Config::plain_destinations(&[("x", false), ("y", false), ("ordered", true)])
}

fn embedded(dir: &std::path::Path) -> EmbeddedStore {
    EmbeddedStore::open(
        dir,
        &EmbeddedOptions {
            dedup_window: Duration::from_secs(3600),
            retention: Duration::ZERO,
            dead_letter_retention: None,
        },
        &destinations(),
    )
    .unwrap()
}

async fn claim_all(store: &dyn Store, dest: &str, now: i64) -> Vec<switchyard::store::Job> {
    store
        .claim(dest, Claim::up_to(100, 1 << 20), now)
        .await
        .unwrap()
}

/// The contract, whatever the backend.
async fn conformance(store: Arc<dyn Store>) {
    // One job per routed destination; independent cursors.
    let r = store
        .append(vec![event("a", &["x", "y"]), event("b", &["x"])])
        .await
        .unwrap();
    assert_eq!(
        r,
        AppendReport {
            stored: 2,
            duplicates: 0
        }
    );
    let xs = claim_all(&*store, "x", now_ms()).await;
    let mut ids: Vec<_> = xs.iter().map(|j| j.message_id.clone()).collect();
    ids.sort();
    assert_eq!(ids, ["a", "b"]);
    assert!(xs
        .iter()
        .all(|j| j.attempts == 1 && j.json.contains(&j.message_id)));
    assert!(
        claim_all(&*store, "x", now_ms()).await.is_empty(),
        "leased jobs are not handed out twice"
    );
    assert_eq!(claim_all(&*store, "y", now_ms()).await.len(), 1);
    let stats = store.stats("x").await.unwrap();
    assert_eq!((stats.queued, stats.in_flight), (0, 2));

    // Duplicates within the window are acknowledged, not stored again.
    let r = store.append(vec![event("a", &["x", "y"])]).await.unwrap();
    assert_eq!(
        r,
        AppendReport {
            stored: 0,
            duplicates: 1
        }
    );

    // Settle: done, retry later, dead.
    let a = xs.iter().find(|j| j.message_id == "a").unwrap();
    let b = xs.iter().find(|j| j.message_id == "b").unwrap();
    let soon = now_ms() + 300;
    store
        .settle(
            "x",
            vec![
                (a.id, Settle::Done),
                (
                    b.id,
                    Settle::RetryAt {
                        at: soon,
                        reason: "503".into(),
                    },
                ),
            ],
        )
        .await
        .unwrap();
    let start = std::time::Instant::now();
    let again = loop {
        let got = claim_all(&*store, "x", now_ms()).await;
        if !got.is_empty() {
            break got;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the retry never came due"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(again.len(), 1, "the delivered job is gone");
    assert_eq!(again[0].message_id, "b");
    assert_eq!(again[0].attempts, 2);
    assert!(now_ms() >= soon, "not before its due time");
    store
        .settle(
            "x",
            vec![(
                again[0].id,
                Settle::Dead {
                    reason: "400 bad payload".into(),
                },
            )],
        )
        .await
        .unwrap();

    // Dead letters: listed with reason and attempts, filtered by time, replayed.
    let dead = store.dead_letters("x", None, None).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (
            dead[0].message_id.as_str(),
            dead[0].reason.as_str(),
            dead[0].attempts
        ),
        ("b", "400 bad payload", 2)
    );
    assert!(dead[0].event_json.contains("\"b\""));
    assert_eq!(store.stats("x").await.unwrap().dead_letters, 1);
    assert!(store
        .dead_letters("x", None, Some(dead[0].dead_at))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.replay("x", None, None).await.unwrap(), 1);
    assert!(store
        .dead_letters("x", None, None)
        .await
        .unwrap()
        .is_empty());
    let replayed = claim_all(&*store, "x", now_ms()).await;
    assert_eq!(replayed.len(), 1);
    assert_eq!(replayed[0].message_id, "b");
    store
        .settle("x", vec![(replayed[0].id, Settle::Done)])
        .await
        .unwrap();
    let stats = store.stats("x").await.unwrap();
    assert_eq!(
        (stats.queued, stats.in_flight, stats.dead_letters),
        (0, 0, 0)
    );
}

/// Dead letters at volume: listed page by page, purged by time range.
async fn dead_letter_conformance(store: Arc<dyn Store>) {
    let names: Vec<String> = (0..5).map(|i| format!("d{i}")).collect();
    let events = names.iter().map(|n| event(n, &["y"])).collect();
    store.append(events).await.unwrap();
    let jobs = claim_all(&*store, "y", now_ms()).await;
    assert_eq!(jobs.len(), 5);
    let dead = |j: &switchyard::store::Job| {
        (
            j.id,
            Settle::Dead {
                reason: format!("400 {}", j.message_id),
            },
        )
    };
    store
        .settle("y", jobs.iter().map(dead).collect())
        .await
        .unwrap();
    // Pages of two: every dead letter once, in id order, then an empty page.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .dead_letter_page("y", None, None, after, 2)
            .await
            .unwrap();
        assert!(page.len() <= 2);
        assert!(page.windows(2).all(|w| w[0].id < w[1].id), "{page:?}");
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        seen.extend(page.iter().map(|d| d.message_id.clone()));
    }
    seen.sort();
    assert_eq!(seen, names);
    // A range with nothing in it purges nothing; the whole range purges all.
    let future = now_ms() + 3_600_000;
    assert_eq!(store.purge("y", Some(future), None).await.unwrap(), 0);
    assert_eq!(store.purge("x", None, None).await.unwrap(), 0);
    assert_eq!(store.purge("y", None, Some(future)).await.unwrap(), 5);
    assert!(store
        .dead_letters("y", None, None)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.stats("y").await.unwrap().dead_letters, 0);
}

/// Per-user ordering when the destination delivers part of a batch and retries the
/// rest (as ga4's 25-event chunks or mixpanel's two endpoints do): a user's later
/// event is never delivered before an earlier one, and other users flow.
async fn ordering_conformance(store: Arc<dyn Store>) {
    let users = ["u1", "u2", "u3"];
    let per_user = 5;
    let mut events = Vec::new();
    for i in 0..per_user {
        for u in users {
            events.push(user_event(&format!("{u}-{i}"), u, &["ordered"]));
        }
    }
    store.append(events).await.unwrap();
    let mut delivered: Vec<String> = Vec::new();
    let mut failed_once = std::collections::HashSet::new();
    let start = std::time::Instant::now();
    while delivered.len() < users.len() * per_user {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "stuck after {delivered:?}"
        );
        let batch = store
            .claim("ordered", Claim::up_to(10, 1 << 20), now_ms())
            .await
            .unwrap();
        if batch.is_empty() {
            tokio::time::sleep(Duration::from_millis(25)).await;
            continue;
        }
        let mut in_batch = std::collections::HashSet::new();
        for j in &batch {
            let user = j.message_id.split('-').next().unwrap().to_string();
            assert!(
                in_batch.insert(user),
                "two events of one user in a batch: {batch:?}"
            );
        }
        // The destination delivers all but the first event of each batch the first
        // time it sees it, and retries that one shortly.
        let settles = batch
            .iter()
            .enumerate()
            .map(|(i, j)| {
                if i == 0 && failed_once.insert(j.message_id.clone()) {
                    let at = now_ms() + 150;
                    (
                        j.id,
                        Settle::RetryAt {
                            at,
                            reason: "partial".into(),
                        },
                    )
                } else {
                    delivered.push(j.message_id.clone());
                    (j.id, Settle::Done)
                }
            })
            .collect();
        store.settle("ordered", settles).await.unwrap();
    }
    for u in users {
        let order: Vec<&String> = delivered.iter().filter(|d| d.starts_with(u)).collect();
        let expected: Vec<String> = (0..per_user).map(|i| format!("{u}-{i}")).collect();
        assert_eq!(order, expected.iter().collect::<Vec<_>>(), "{delivered:?}");
    }
    assert!(!failed_once.is_empty());
}

#[tokio::test]
async fn the_embedded_store_keeps_per_user_order_through_partial_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    ordering_conformance(Arc::new(embedded(dir.path()))).await;
}

#[tokio::test]
async fn the_nats_store_keeps_per_user_order_through_partial_deliveries() {
    let server = NatsServer::start().await;
    ordering_conformance(Arc::new(
        NatsStore::open(&options(&server, Duration::from_secs(30)), &destinations())
            .await
            .unwrap(),
    ))
    .await;
}

#[tokio::test]
async fn the_embedded_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    conformance(Arc::new(embedded(dir.path()))).await;
}

#[tokio::test]
async fn the_embedded_store_pages_and_purges_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    dead_letter_conformance(Arc::new(embedded(dir.path()))).await;
}

#[tokio::test]
async fn the_nats_store_pages_and_purges_dead_letters() {
    let server = NatsServer::start().await;
    dead_letter_conformance(Arc::new(
        NatsStore::open(&options(&server, Duration::from_secs(30)), &destinations())
            .await
            .unwrap(),
    ))
    .await;
}

#[tokio::test]
async fn the_embedded_store_deletes_dead_letters_past_their_retention() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(
        dir.path(),
        &EmbeddedOptions {
            dedup_window: Duration::from_secs(3600),
            retention: Duration::ZERO,
            dead_letter_retention: Some(Duration::from_millis(300)),
        },
        &destinations(),
    )
    .unwrap();
    store.append(vec![event("old", &["x"])]).await.unwrap();
    let jobs = claim_all(&store, "x", now_ms()).await;
    let dead = Settle::Dead {
        reason: "400".into(),
    };
    store.settle("x", vec![(jobs[0].id, dead)]).await.unwrap();
    assert_eq!(store.stats("x").await.unwrap().dead_letters, 1);
    // Housekeeping runs with the writer's commits: keep it busy until the
    // dead letter is past its retention and gone.
    let start = std::time::Instant::now();
    let mut n = 0;
    while store.stats("x").await.unwrap().dead_letters > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the dead letter outlived its retention"
        );
        n += 1;
        store
            .append(vec![event(&format!("tick-{n}"), &["y"])])
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(start.elapsed() >= Duration::from_millis(250));
}

fn options(server: &NatsServer, ack_wait: Duration) -> NatsOptions {
    NatsOptions {
        url: server.url(),
        credentials_file: None,
        dedup_window: Duration::from_secs(3600),
        ack_wait,
        replicas: 1,
        dead_letter_retention: None,
        retention: Duration::ZERO,
    }
}

#[tokio::test]
async fn the_nats_store_keeps_the_contract() {
    let server = NatsServer::start().await;
    conformance(Arc::new(
        NatsStore::open(&options(&server, Duration::from_secs(30)), &destinations())
            .await
            .unwrap(),
    ))
    .await;
}

#[tokio::test]
async fn a_nats_job_held_by_a_vanished_host_is_redelivered_to_another() {
    let server = NatsServer::start().await;
    let first = NatsStore::open(&options(&server, Duration::from_secs(1)), &destinations())
        .await
        .unwrap();
    first.append(vec![event("lost", &["x"])]).await.unwrap();
    assert_eq!(claim_all(&first, "x", now_ms()).await.len(), 1);
    drop(first); // the host dies without settling
    let second = NatsStore::open(&options(&server, Duration::from_secs(1)), &destinations())
        .await
        .unwrap();
    let start = std::time::Instant::now();
    loop {
        let got = claim_all(&second, "x", now_ms()).await;
        if let Some(job) = got.first() {
            assert_eq!(job.message_id, "lost");
            assert_eq!(job.attempts, 2);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never redelivered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_nats_store_that_lost_its_server_answers_unavailable_and_recovers() {
    let mut server = NatsServer::start().await;
    let store = NatsStore::open(&options(&server, Duration::from_secs(30)), &destinations())
        .await
        .unwrap();
    store.append(vec![event("before", &["x"])]).await.unwrap();
    server.stop();
    let err = store.append(vec![event("during", &["x"])]).await;
    assert!(err.is_err(), "no ack, no acknowledgement");
    server.restart().await;
    let start = std::time::Instant::now();
    loop {
        if store.append(vec![event("after", &["x"])]).await.is_ok() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "never recovered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ids: Vec<String> = claim_all(&store, "x", now_ms())
        .await
        .into_iter()
        .map(|j| j.message_id)
        .collect();
    assert!(
        ids.contains(&"before".to_string()) && ids.contains(&"after".to_string()),
        "{ids:?}"
    );
}
