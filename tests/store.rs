//! One conformance suite for the `Store` contract, run against the embedded
//! store and against a real `nats-server` with JetStream.

use std::sync::Arc;
use std::time::Duration;

use switchyard::store::embedded::EmbeddedStore;
use switchyard::store::nats::{NatsOptions, NatsStore};
use switchyard::store::{now_ms, AppendReport, NewEvent, Settle, Store};
use switchyard_e2e::nats::NatsServer;

fn event(id: &str, dests: &[&str]) -> NewEvent {
    NewEvent {
        source: "web".into(),
        message_id: id.into(),
        event_type: "track".into(),
        user_key: Some("u1".into()),
        json: format!(r#"{{"messageId":"{id}","type":"track"}}"#),
        destinations: dests.iter().map(|d| d.to_string()).collect(),
    }
}

async fn claim_all(store: &dyn Store, dest: &str, now: i64) -> Vec<switchyard::store::Job> {
    store.claim(dest, 100, 1 << 20, false, now).await.unwrap()
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

#[tokio::test]
async fn the_embedded_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    conformance(Arc::new(
        EmbeddedStore::open(dir.path(), Duration::from_secs(3600)).unwrap(),
    ))
    .await;
}

fn options(server: &NatsServer, ack_wait: Duration) -> NatsOptions {
    NatsOptions {
        url: server.url(),
        credentials_file: None,
        dedup_window: Duration::from_secs(3600),
        ack_wait,
        ordered: vec![],
    }
}

#[tokio::test]
async fn the_nats_store_keeps_the_contract() {
    let server = NatsServer::start().await;
    conformance(Arc::new(
        NatsStore::open(&options(&server, Duration::from_secs(30)))
            .await
            .unwrap(),
    ))
    .await;
}

#[tokio::test]
async fn a_nats_job_held_by_a_vanished_host_is_redelivered_to_another() {
    let server = NatsServer::start().await;
    let first = NatsStore::open(&options(&server, Duration::from_secs(1)))
        .await
        .unwrap();
    first.append(vec![event("lost", &["x"])]).await.unwrap();
    assert_eq!(claim_all(&first, "x", now_ms()).await.len(), 1);
    drop(first); // the host dies without settling
    let second = NatsStore::open(&options(&server, Duration::from_secs(1)))
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
    let store = NatsStore::open(&options(&server, Duration::from_secs(30)))
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
