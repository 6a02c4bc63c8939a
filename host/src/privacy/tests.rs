//! [`Privacy`] over a store in memory: regulations fold in the store's order,
//! whatever their ids say, and a record that does not read is skipped while
//! the others apply.

use std::collections::HashMap;
use std::sync::Mutex as StdMutex;

use serde_json::{json, Map, Value};

use super::*;
use crate::store::StoredRegulation;

/// Regulations in memory, in the order they were added.
#[derive(Default)]
struct Memory(StdMutex<HashMap<String, StoredRegulation>>);

#[async_trait::async_trait]
impl Regulations for Memory {
    async fn subject_key(&self) -> Result<[u8; 16], StoreError> {
        Ok([9; 16])
    }
    async fn add_regulation(&self, id: &str, document: &str) -> Result<u64, StoreError> {
        let mut m = self.0.lock().unwrap();
        let order = m.len() as u64 + 1;
        let stored = StoredRegulation {
            document: document.to_string(),
            order,
        };
        m.insert(id.to_string(), stored);
        Ok(order)
    }
    async fn regulation_ids(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.0.lock().unwrap().keys().cloned().collect())
    }
    async fn regulation(&self, id: &str) -> Result<Option<StoredRegulation>, StoreError> {
        Ok(self.0.lock().unwrap().get(id).cloned())
    }
}

fn event(user: &str) -> Map<String, Value> {
    json!({"userId": user}).as_object().cloned().unwrap()
}

fn request(kind: Kind, user: &str) -> Request {
    Request {
        kind,
        subjects: Subjects {
            user_id: vec![user.to_string()],
            anonymous_id: vec![],
        },
        sources: None,
    }
}

/// A record as another host would write it, asked at `at` (its id says so).
async fn add_from_another_host(store: &Memory, kind: Kind, user: &str, at: i64) {
    let key = SubjectKey::new([9; 16]);
    let r = Regulation::new(&request(kind, user), &key, &[], "elsewhere", at).unwrap();
    store
        .add_regulation(&r.id, &serde_json::to_string(&r).unwrap())
        .await
        .unwrap();
}

#[tokio::test]
async fn regulations_fold_in_the_stores_order_not_their_clocks() {
    let store = Arc::new(Memory::default());
    // Another host, its clock an hour fast, lifted alice first; this host
    // suppresses her after. The suppression stands, here and after a refresh.
    add_from_another_host(&store, Kind::Unsuppress, "alice", now_ms() + 3_600_000).await;
    let privacy = Privacy::open(store.clone(), vec!["web".into()])
        .await
        .unwrap();
    privacy
        .submit(&request(Kind::Suppress, "alice"), "test")
        .await
        .unwrap();
    let suppressed = |p: &Privacy| p.suppressions().load().suppresses("web", &event("alice"));
    assert!(suppressed(&privacy));
    let fresh = Privacy::open(store.clone(), vec!["web".into()])
        .await
        .unwrap();
    assert!(suppressed(&fresh), "a start folds in the same order");

    // A lift recorded later by another host, its clock an hour slow, lifts.
    add_from_another_host(&store, Kind::Unsuppress, "alice", now_ms() - 3_600_000).await;
    assert_eq!(privacy.refresh().await.unwrap(), 1);
    assert!(!suppressed(&privacy));
    let rows = privacy.list().await;
    assert_eq!(
        rows.iter().map(|r| r.kind).collect::<Vec<_>>(),
        [Kind::Unsuppress, Kind::Suppress, Kind::Unsuppress]
    );
}

#[tokio::test]
async fn a_record_that_does_not_read_is_skipped_and_the_others_apply() {
    let store = Arc::new(Memory::default());
    store
        .add_regulation("reg_0000000000001_00000000", "{\"not\": \"a regulation\"}")
        .await
        .unwrap();
    add_from_another_host(&store, Kind::Suppress, "bob", now_ms()).await;
    let privacy = Privacy::open(store.clone(), vec![]).await.unwrap();
    assert!(privacy
        .suppressions()
        .load()
        .suppresses("web", &event("bob")));
    assert_eq!(privacy.list().await.len(), 1);
    // Skipped for good: a refresh neither fails nor counts it again.
    assert_eq!(privacy.refresh().await.unwrap(), 0);
    assert!(matches!(
        privacy.get("reg_0000000000001_00000000").await,
        Err(PrivacyError::Unreadable(_))
    ));
    assert!(matches!(
        privacy.get("reg_>").await,
        Err(PrivacyError::NotFound(_))
    ));
}

#[tokio::test]
async fn a_following_host_that_stops_reading_the_store_goes_stale() {
    let store = Arc::new(Memory::default());
    let privacy = Arc::new(Privacy::open(store, vec![]).await.unwrap());
    let now = now_ms();
    assert_eq!(
        privacy.stale(now + 60_000),
        None,
        "a host that follows no other"
    );
    let (stop, stopped) = watch::channel(false);
    let following = tokio::spawn(privacy.clone().follow(stopped));
    tokio::task::yield_now().await;
    privacy.refresh().await.unwrap();
    let now = now_ms();
    assert_eq!(privacy.stale(now), None);
    let age = privacy.stale(now + 11_000).expect("stale after 10 s");
    assert!(age >= Duration::from_secs(11), "{age:?}");
    stop.send(true).unwrap();
    following.await.unwrap();
}
