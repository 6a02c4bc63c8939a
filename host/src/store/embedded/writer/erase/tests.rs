//! A deletion in the embedded store: every copy of a user's events erased from
//! the file while the others are delivered exactly once.

use std::path::Path;

use crate::config::Config;
use crate::route::RouteKeys;
use crate::store::embedded::{EmbeddedOptions, EmbeddedStore};
use crate::store::{
    now_ms, Claim, DeadLetters, Matches, NewEvent, Queues, Reconfigure, Regulations, Settle,
};

/// The text only the erased user's events hold.
const SECRET: &str = "alice-secret@example.com";

fn event(id: &str, user: &str) -> NewEvent {
    let email = if user == "alice" {
        SECRET.to_string()
    } else {
        format!("{user}@example.com")
    };
    NewEvent {
        source: "web".into(),
        message_id: id.into(),
        event_type: crate::event_type::EventType::Track,
        user_key: Some(user.into()),
        json: format!(
            r#"{{"messageId":"{id}","type":"track","userId":"{user}","context":{{"traits":{{"email":"{email}"}}}}}}"#
        ),
        route: RouteKeys {
            event_type: "track".into(),
            ..RouteKeys::default()
        },
    }
}

fn open(dir: &Path) -> EmbeddedStore {
    EmbeddedStore::open(
        dir,
        &EmbeddedOptions {
            dedup_window: std::time::Duration::from_secs(3600),
            retention: std::time::Duration::from_secs(3600),
            dead_letter_retention: None,
        },
        &Config::plain_destinations(&[("x", false), ("y", true), ("z", false)]),
    )
    .unwrap()
}

/// Whether any file of `dir` holds `needle`.
fn files_hold(dir: &Path, needle: &str) -> bool {
    std::fs::read_dir(dir).unwrap().any(|f| {
        let bytes = std::fs::read(f.unwrap().path()).unwrap_or_default();
        bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
    })
}

async fn erase_all(store: &EmbeddedStore, matches: Matches) -> crate::store::Erased {
    let mut total = crate::store::Erased::default();
    let mut from = 0;
    loop {
        let step = store.erase_step(matches.clone(), from).await.unwrap();
        total.add(step.erased);
        match step.next {
            Some(next) => from = next,
            None => return total,
        }
    }
}

async fn claim_ids(store: &EmbeddedStore, dest: &str, now: i64) -> Vec<(i64, String)> {
    store
        .claim(dest, Claim::up_to(100, 1 << 20), now)
        .await
        .unwrap()
        .into_iter()
        .map(|j| (j.id, j.message_id))
        .collect()
}

#[tokio::test]
async fn a_users_events_are_erased_from_every_table_and_the_file_and_others_flow() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let now = now_ms();
    store
        .append(vec![event("a1", "alice"), event("b1", "bob")])
        .await
        .unwrap();
    store
        .append(vec![
            event("a2", "alice"),
            event("a3", "alice"),
            event("b2", "bob"),
        ])
        .await
        .unwrap();
    store.append(vec![event("a4", "alice")]).await.unwrap();

    // x: a1 waits for a retry, a2 is a dead letter, the rest delivered.
    let x = claim_ids(&store, "x", now).await;
    assert_eq!(x.len(), 6);
    let settle: Vec<_> = x
        .iter()
        .map(|(id, m)| {
            let s = match m.as_str() {
                "a1" => Settle::RetryAt {
                    at: now + 60_000,
                    reason: "503".into(),
                },
                "a2" => Settle::Dead {
                    reason: "400".into(),
                },
                _ => Settle::Done,
            };
            (*id, s)
        })
        .collect();
    store.settle("x", settle).await.unwrap();
    // z: a batch in flight holds a3 and b2 during the deletion.
    let z: Vec<_> = claim_ids(&store, "z", now).await;
    let in_flight: Vec<_> = z
        .iter()
        .filter(|(_, m)| m == "a3" || m == "b2")
        .cloned()
        .collect();
    let done: Vec<_> = z
        .iter()
        .filter(|(_, m)| m != "a3" && m != "b2")
        .map(|(id, _)| (*id, Settle::Done))
        .collect();
    store.settle("z", done).await.unwrap();
    // y (ordered) has read nothing yet.
    assert!(files_hold(dir.path(), SECRET), "the positive control");

    let matches: Matches =
        std::sync::Arc::new(|_: &str, json: &str| json.contains(r#""userId":"alice""#));
    let erased = erase_all(&store, matches.clone()).await;
    assert_eq!(
        (erased.log, erased.retries, erased.dead_letters),
        (4, 1, 1),
        "{erased:?}"
    );
    assert!(
        erase_all(&store, matches).await.is_empty(),
        "a deletion run again erases nothing more"
    );

    // The batch in flight settles: the erased event is not kept for a retry.
    let retry_all: Vec<_> = in_flight
        .iter()
        .map(|(id, _)| {
            (
                *id,
                Settle::RetryAt {
                    at: now,
                    reason: "503".into(),
                },
            )
        })
        .collect();
    store.settle("z", retry_all).await.unwrap();
    let again: Vec<String> = claim_ids(&store, "z", now)
        .await
        .into_iter()
        .map(|(_, m)| m)
        .collect();
    assert_eq!(again, ["b2"], "only bob's event waits for its retry");
    // y reads bob's events only; x has no retry and no dead letter left.
    let y: Vec<String> = claim_ids(&store, "y", now)
        .await
        .into_iter()
        .map(|(_, m)| m)
        .collect();
    assert_eq!(y, ["b1"], "ordered: one event per user per batch");
    assert!(claim_ids(&store, "x", now + 120_000).await.is_empty());
    assert!(store
        .dead_letters("x", None, None)
        .await
        .unwrap()
        .is_empty());
    let stats = store.stats("x").await.unwrap();
    assert_eq!(
        (stats.queued, stats.retrying, stats.dead_letters),
        (0, 0, 0)
    );

    // A backfill of x from the retained log brings none of alice's back.
    store.backfill("x", 0, now + 60_000).await.unwrap();
    let backfilled: Vec<String> = claim_ids(&store, "x", now + 60_000)
        .await
        .into_iter()
        .map(|(_, m)| m)
        .collect();
    assert!(
        backfilled.iter().all(|m| m.starts_with('b')) && !backfilled.is_empty(),
        "{backfilled:?}"
    );

    drop(store);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(
        !files_hold(dir.path(), SECRET),
        "no byte of the erased events is left in the store's files"
    );
    assert!(files_hold(dir.path(), "bob@example.com"));
}

#[tokio::test]
async fn events_reclaimed_before_the_deletion_leave_no_byte_in_the_free_pages() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(
        dir.path(),
        &EmbeddedOptions {
            dedup_window: std::time::Duration::from_secs(3600),
            retention: std::time::Duration::ZERO,
            dead_letter_retention: None,
        },
        &Config::plain_destinations(&[("x", false)]),
    )
    .unwrap();
    // Big enough that the chunk's body goes to overflow pages, which a
    // reclaim frees as they are (`secure_delete = FAST`).
    let padding = "p".repeat(20_000);
    for i in 0..20 {
        let mut e = event(&format!("a{i}"), "alice");
        e.json = e
            .json
            .replace("}}}", &format!("}}}},\"pad\":\"{padding}\"}}"));
        store
            .append(vec![e, event(&format!("b{i}"), "bob")])
            .await
            .unwrap();
    }
    let now = now_ms();
    let jobs = claim_ids(&store, "x", now).await;
    let done: Vec<_> = jobs.iter().map(|(id, _)| (*id, Settle::Done)).collect();
    store.settle("x", done).await.unwrap();
    // Housekeeping reclaims the delivered chunks (retention 0) in later commits.
    for _ in 0..10 {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        store
            .append(vec![event(&format!("c{}", now_ms()), "carol")])
            .await
            .unwrap();
    }
    assert!(
        files_hold(dir.path(), SECRET),
        "the positive control: a reclaimed chunk's pages still hold it"
    );
    let matches: Matches =
        std::sync::Arc::new(|_: &str, json: &str| json.contains(r#""userId":"alice""#));
    let erased = erase_all(&store, matches).await;
    assert_eq!(erased.log, 0, "nothing of hers is left in the log itself");
    drop(store);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(
        !files_hold(dir.path(), SECRET),
        "the free pages were scrubbed and the WAL truncated"
    );
}
