//! [`Privacy`] over a store in memory: regulations fold in the store's order,
//! whatever their ids say, and a record that does not read is skipped while
//! the others apply.

use std::collections::HashMap;
use std::sync::Mutex as StdMutex;

use serde_json::{json, Map, Value};

use super::*;
use crate::store::StoredRegulation;

/// Regulations in memory, in the order they were added, with their progress
/// and a log of events a deletion erases from.
#[derive(Default)]
struct Memory(
    StdMutex<HashMap<String, StoredRegulation>>,
    StdMutex<HashMap<String, String>>,
    StdMutex<Vec<(String, String)>>,
);

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
    async fn status(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(self.1.lock().unwrap().get(id).cloned())
    }
    async fn set_status(&self, id: &str, document: &str) -> Result<(), StoreError> {
        self.1
            .lock()
            .unwrap()
            .insert(id.to_string(), document.to_string());
        Ok(())
    }
    async fn erase_status(&self, id: &str) -> Result<(), StoreError> {
        self.1.lock().unwrap().remove(id);
        Ok(())
    }
    /// One event per step: the position is the index of the next.
    async fn erase_step(
        &self,
        matches: crate::store::Matches,
        from: u64,
    ) -> Result<crate::store::EraseStep, StoreError> {
        let mut log = self.2.lock().unwrap();
        let mut step = crate::store::EraseStep::default();
        if let Some((source, json)) = log.get_mut(from as usize) {
            if !json.is_empty() && matches(source, json) {
                json.clear();
                step.erased.log = 1;
            }
            step.next = Some(from + 1);
        }
        Ok(step)
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
    let privacy = Privacy::open(store.clone(), vec!["web".into()], Arc::new(Nothing))
        .await
        .unwrap();
    privacy
        .submit(&request(Kind::Suppress, "alice"), "test")
        .await
        .unwrap();
    let suppressed = |p: &Privacy| p.suppressions().load().suppresses("web", &event("alice"));
    assert!(suppressed(&privacy));
    let fresh = Privacy::open(store.clone(), vec!["web".into()], Arc::new(Nothing))
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
    let privacy = Privacy::open(store.clone(), vec![], Arc::new(Nothing))
        .await
        .unwrap();
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
    let privacy = Arc::new(
        Privacy::open(store, vec![], Arc::new(Nothing))
            .await
            .unwrap(),
    );
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

/// A host's reach that counts what it was asked to forget.
#[derive(Default)]
struct Counting(StdMutex<Vec<String>>);

#[async_trait::async_trait]
impl Reach for Counting {
    fn destinations(&self) -> Vec<(String, bool)> {
        vec![("webhook".into(), false), ("mixpanel".into(), true)]
    }
    async fn forward(&self, name: &str, subjects: &Subjects) -> Option<DestinationStatus> {
        self.0
            .lock()
            .unwrap()
            .push(format!("{name} {}", subjects.user_id.join(",")));
        Some(DestinationStatus {
            state: Forward::Done,
            reason: None,
        })
    }
    fn forget(&self, who: &dyn Fn(Option<&str>, &str) -> bool) -> Forgotten {
        let kept = [r#"{"userId":"alice"}"#, r#"{"userId":"bob"}"#];
        let n = kept.iter().filter(|json| who(None, json)).count() as u64;
        self.0.lock().unwrap().push(format!("forgot {n}"));
        Forgotten::from([("source_debugger".to_string(), n)])
    }
}

async fn until_done(privacy: &Privacy, id: &str) -> Shown {
    for _ in 0..200 {
        let shown = privacy.get(id).await.unwrap();
        if shown.regulation.state == State::Done {
            return shown;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("deletion {id} not done");
}

#[tokio::test]
async fn a_deletion_erases_its_subjects_events_in_its_sources_and_says_so() {
    let store = Arc::new(Memory::default());
    *store.2.lock().unwrap() = vec![
        (
            "web".into(),
            r#"{"userId":"alice","traits":{"a":1}}"#.into(),
        ),
        ("web".into(), r#"{"userId":"bob"}"#.into()),
        ("ios".into(), r#"{"userId":"alice"}"#.into()),
        (
            "web".into(),
            r#"{"type":"alias","previousId":"alice","userId":"a2"}"#.into(),
        ),
        ("web".into(), r#"{"anonymousId":"alice"}"#.into()),
    ];
    let reach = Arc::new(Counting::default());
    let privacy = Privacy::open(
        store.clone(),
        vec!["web".into(), "ios".into()],
        reach.clone(),
    )
    .await
    .unwrap();
    let mut asked = request(Kind::Delete, "alice");
    asked.sources = Some(vec!["web".into()]);
    let r = privacy.submit(&asked, "test").await.unwrap();
    assert_eq!(r.state, State::Pending);
    let shown = until_done(&privacy, &r.id).await;
    let log: Vec<String> = store
        .2
        .lock()
        .unwrap()
        .iter()
        .map(|(_, j)| j.clone())
        .collect();
    assert_eq!(log[0], "", "alice's event in web");
    assert_eq!(log[3], "", "an alias naming her as previousId");
    assert_eq!(log[1], r#"{"userId":"bob"}"#);
    assert_eq!(
        log[2], r#"{"userId":"alice"}"#,
        "ios is outside the deletion"
    );
    assert_eq!(
        log[4], r#"{"anonymousId":"alice"}"#,
        "an anonymousId is another subject"
    );
    let p = shown.progress.expect("a deletion shows its progress");
    assert_eq!(p.erased.log, 2);
    assert_eq!(p.memory["source_debugger"], 1);
    assert_eq!(p.destinations["webhook"].state, Forward::NotSupported);
    assert_eq!(p.destinations["mixpanel"].state, Forward::Done);
    assert!(
        reach
            .0
            .lock()
            .unwrap()
            .contains(&"mixpanel alice".to_string()),
        "the destination was asked with the id in the clear"
    );
    assert_eq!(
        store
            .status(&super::erase::subjects_key(&r.id))
            .await
            .unwrap(),
        None,
        "and the id in the clear is gone once it answered"
    );
    assert!(p.done_at.is_some());
    assert_eq!(privacy.list().await[0].state, State::Done);
    assert!(
        !privacy
            .suppressions()
            .load()
            .suppresses("web", &event("alice")),
        "DELETE alone does not suppress"
    );
    let text = serde_json::to_string(&privacy.get(&r.id).await.unwrap()).unwrap();
    assert!(!text.contains("alice"), "{text}");
}

#[tokio::test]
async fn a_deletion_a_stopped_host_left_goes_on_from_its_last_step_at_start() {
    let store = Arc::new(Memory::default());
    *store.2.lock().unwrap() = vec![
        ("web".into(), r#"{"userId":"carol","n":0}"#.into()),
        ("web".into(), r#"{"userId":"carol","n":1}"#.into()),
        ("web".into(), r#"{"userId":"carol","n":2}"#.into()),
    ];
    // The host that recorded it erased up to position 1, then stopped.
    add_from_another_host(&store, Kind::SuppressWithDelete, "carol", now_ms()).await;
    let id = store.0.lock().unwrap().keys().next().unwrap().clone();
    let mut p = super::erase::Progress {
        state: State::Pending,
        reason: None,
        position: 1,
        erased: crate::store::Erased {
            log: 1,
            ..Default::default()
        },
        memory: Forgotten::new(),
        destinations: Default::default(),
        updated_at: String::new(),
        done_at: None,
    };
    store
        .set_status(&id, &serde_json::to_string(&p).unwrap())
        .await
        .unwrap();
    let privacy = Privacy::open(store.clone(), vec!["web".into()], Arc::new(Nothing))
        .await
        .unwrap();
    assert!(
        privacy
            .suppressions()
            .load()
            .suppresses("web", &event("carol")),
        "SUPPRESS_WITH_DELETE suppresses too"
    );
    p = until_done(&privacy, &id).await.progress.unwrap();
    assert_eq!(p.erased.log, 3, "1 before the stop, 2 after");
    let log = store.2.lock().unwrap().clone();
    assert_eq!(
        log[0].1, r#"{"userId":"carol","n":0}"#,
        "before its position: not read again"
    );
    assert!(log[1].1.is_empty() && log[2].1.is_empty());
}

#[test]
fn a_destinations_state_shown_is_the_name_serialized() {
    for f in [
        Forward::Pending,
        Forward::Done,
        Forward::Failed,
        Forward::NotSupported,
    ] {
        assert_eq!(serde_json::to_value(f).unwrap(), f.as_str());
    }
}
