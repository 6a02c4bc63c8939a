//! The embedded store's own cases. The store contract (cursors, settle, dead letters,
//! replay, dedup) is tested on both backends by tests/store.rs.

use super::*;

fn event(id: &str, dests: &[&str]) -> NewEvent {
    NewEvent {
        source: "web".into(),
        message_id: id.into(),
        event_type: "track".into(),
        user_key: Some("u1".into()),
        json: format!(r#"{{"messageId":"{id}"}}"#),
        destinations: dests.iter().map(|d| d.to_string()).collect(),
    }
}

#[tokio::test]
async fn leases_are_released_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EmbeddedStore::open(dir.path(), Duration::from_secs(3600)).unwrap();
        store.append(vec![event("a", &["x"])]).await.unwrap();
        assert_eq!(
            store
                .claim("x", 10, 1 << 20, false, now_ms())
                .await
                .unwrap()
                .len(),
            1
        );
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let store = EmbeddedStore::open(dir.path(), Duration::from_secs(3600)).unwrap();
    assert_eq!(
        store
            .claim("x", 10, 1 << 20, false, now_ms())
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn per_user_order_holds_a_user_behind_its_unsettled_event() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), Duration::from_secs(3600)).unwrap();
    let mut b = event("b1", &["x"]);
    b.user_key = Some("u2".into());
    store
        .append(vec![event("a1", &["x"]), event("a2", &["x"]), b])
        .await
        .unwrap();
    let now = now_ms();
    let first = store.claim("x", 1, 1 << 20, true, now).await.unwrap();
    assert_eq!(first[0].message_id, "a1");
    // a1 is in flight: a2 waits, b1 (another user) flows.
    let next = store.claim("x", 10, 1 << 20, true, now).await.unwrap();
    assert_eq!(
        next.iter()
            .map(|j| j.message_id.as_str())
            .collect::<Vec<_>>(),
        ["b1"]
    );
    let retry = Settle::RetryAt {
        at: now + 60_000,
        reason: "429".into(),
    };
    store.settle("x", vec![(first[0].id, retry)]).await.unwrap();
    assert!(
        store
            .claim("x", 10, 1 << 20, true, now)
            .await
            .unwrap()
            .is_empty(),
        "a2 waits behind a1's retry"
    );
    let later = store
        .claim("x", 10, 1 << 20, true, now + 60_000)
        .await
        .unwrap();
    assert_eq!(
        later
            .iter()
            .map(|j| j.message_id.as_str())
            .collect::<Vec<_>>(),
        ["a1", "a2"]
    );
}

#[tokio::test]
async fn claim_respects_max_bytes_but_returns_at_least_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), Duration::from_secs(3600)).unwrap();
    store
        .append(vec![event("a", &["x"]), event("b", &["x"])])
        .await
        .unwrap();
    assert_eq!(
        store
            .claim("x", 10, 1, false, now_ms())
            .await
            .unwrap()
            .len(),
        1
    );
}
