//! The embedded store's own cases. The store contract (cursors, settle, dead letters,
//! replay, dedup, ordering) is tested on both backends by tests/store.rs.

use super::*;
use crate::config::Config;
use crate::route::RouteKeys;

fn event(id: &str, user: &str) -> NewEvent {
    NewEvent {
        source: "web".into(),
        message_id: id.into(),
        event_type: crate::event_type::EventType::Track,
        user_key: Some(user.into()),
        json: format!(r#"{{"messageId":"{id}"}}"#),
        route: RouteKeys {
            event_type: "track".into(),
            ..RouteKeys::default()
        },
    }
}

fn open(dir: &Path, specs: &[(&str, bool)]) -> EmbeddedStore {
    EmbeddedStore::open(
        dir,
        &EmbeddedOptions {
            dedup_window: Duration::from_secs(3600),
            retention: Duration::ZERO,
            dead_letter_retention: None,
        },
        &Config::plain_destinations(specs),
    )
    .unwrap()
}

async fn ids(store: &EmbeddedStore, dest: &str, n: usize, now: Millis) -> Vec<String> {
    store
        .claim(dest, Claim::up_to(n, 1 << 20), now)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.message_id)
        .collect()
}

#[tokio::test]
async fn leases_are_released_on_reopen_and_cursors_survive_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path(), &[("x", false)]);
        store
            .append(vec![event("a", "u"), event("b", "u")])
            .await
            .unwrap();
        let jobs = store
            .claim("x", Claim::up_to(1, 1 << 20), now_ms())
            .await
            .unwrap();
        store
            .settle("x", vec![(jobs[0].id, Settle::Done)])
            .await
            .unwrap();
        assert_eq!(ids(&store, "x", 10, now_ms()).await, ["b"]);
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let store = open(dir.path(), &[("x", false), ("new", false)]);
    assert_eq!(
        ids(&store, "x", 10, now_ms()).await,
        ["b"],
        "b was leased, a settled"
    );
    assert!(
        ids(&store, "new", 10, now_ms()).await.is_empty(),
        "a destination added later starts at the end of the log"
    );
}

#[tokio::test]
async fn per_user_order_puts_one_event_per_user_in_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &[("x", true)]);
    store
        .append(vec![
            event("a1", "u1"),
            event("a2", "u1"),
            event("b1", "u2"),
        ])
        .await
        .unwrap();
    let now = now_ms();
    let first = store
        .claim("x", Claim::up_to(10, 1 << 20), now)
        .await
        .unwrap();
    let got: Vec<_> = first.iter().map(|j| j.message_id.as_str()).collect();
    assert_eq!(
        got,
        ["a1", "b1"],
        "a2 waits behind a1, even in the same batch"
    );
    let retry = Settle::RetryAt {
        at: now + 60_000,
        reason: "429".into(),
    };
    store
        .settle("x", vec![(first[0].id, retry), (first[1].id, Settle::Done)])
        .await
        .unwrap();
    assert!(
        ids(&store, "x", 10, now).await.is_empty(),
        "a2 waits behind a1's retry"
    );
    assert_eq!(store.stats("x").await.unwrap().queued, 2);
    let later = store
        .claim("x", Claim::up_to(10, 1 << 20), now + 60_000)
        .await
        .unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].message_id, "a1");
    store
        .settle("x", vec![(later[0].id, Settle::Done)])
        .await
        .unwrap();
    assert_eq!(ids(&store, "x", 10, now + 60_000).await, ["a2"]);
}

#[tokio::test]
async fn claim_respects_max_bytes_but_returns_at_least_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &[("x", false)]);
    store
        .append(vec![event("a", "u"), event("b", "u")])
        .await
        .unwrap();
    assert_eq!(
        store
            .claim("x", Claim::up_to(10, 1), now_ms())
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn delivered_chunks_are_reclaimed_and_dedup_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path(), &[("x", false), ("y", false)]);
        store.append(vec![event("a", "u")]).await.unwrap();
        for d in ["x", "y"] {
            let jobs = store
                .claim(d, Claim::up_to(10, 1 << 20), now_ms())
                .await
                .unwrap();
            store
                .settle(d, jobs.iter().map(|j| (j.id, Settle::Done)).collect())
                .await
                .unwrap();
        }
        // Housekeeping runs with a later commit.
        tokio::time::sleep(HOUSEKEEPING_EVERY + Duration::from_millis(50)).await;
        store.append(vec![event("b", "u")]).await.unwrap();
    }
    let conn = Connection::open(dir.path().join("switchyard.sqlite3")).unwrap();
    let chunks: i64 = conn
        .query_row("SELECT COUNT(*) FROM chunks", [], |r| r.get(0))
        .unwrap();
    assert_eq!(chunks, 1, "only b's chunk is left");
    drop(conn);
    let store = open(dir.path(), &[("x", false), ("y", false)]);
    let r = store
        .append(vec![event("a", "u"), event("c", "u")])
        .await
        .unwrap();
    assert_eq!(
        (r.stored, r.duplicates),
        (1, 1),
        "a is remembered after the restart"
    );
    assert_eq!(ids(&store, "x", 10, now_ms()).await, ["b", "c"]);
    assert_eq!(store.stats("y").await.unwrap().queued, 2);
}

#[tokio::test]
async fn an_old_layout_with_work_in_it_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let conn = Connection::open(dir.path().join("switchyard.sqlite3")).unwrap();
    conn.execute_batch(
        "CREATE TABLE jobs (id INTEGER PRIMARY KEY); INSERT INTO jobs VALUES (1);
         CREATE TABLE dead_letters (id INTEGER PRIMARY KEY);",
    )
    .unwrap();
    drop(conn);
    let err = EmbeddedStore::open(
        dir.path(),
        &EmbeddedOptions {
            dedup_window: Duration::from_secs(60),
            retention: Duration::ZERO,
            dead_letter_retention: None,
        },
        &Config::plain_destinations(&[("x", false)]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("older Switchyard") && err.contains("1 queued jobs"),
        "{err}"
    );
}

#[tokio::test]
async fn a_retry_row_above_the_cursor_is_not_read_again_after_a_restart() {
    for ordered in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let now = now_ms();
        {
            let store = open(dir.path(), &[("x", ordered)]);
            store
                .append(vec![event("a", "u1"), event("b", "u2"), event("c", "u3")])
                .await
                .unwrap();
            let jobs = store
                .claim("x", Claim::up_to(10, 1 << 20), now)
                .await
                .unwrap();
            assert_eq!(jobs.len(), 3);
            // a stays in flight (the cursor stays below it); b waits for a retry; c is dead.
            let retry = Settle::RetryAt {
                at: now + 60_000,
                reason: "503".into(),
            };
            let dead = Settle::Dead {
                reason: "400".into(),
            };
            store
                .settle("x", vec![(jobs[1].id, retry), (jobs[2].id, dead)])
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let store = open(dir.path(), &[("x", ordered)]);
        assert_eq!(
            ids(&store, "x", 10, now).await,
            ["a"],
            "ordered = {ordered}"
        );
        assert!(ids(&store, "x", 10, now).await.is_empty());
        assert_eq!(store.next_due("x").await.unwrap(), Some(now + 60_000));
        let later = store
            .claim("x", Claim::up_to(10, 1 << 20), now + 60_000)
            .await
            .unwrap();
        assert_eq!(later.len(), 1);
        assert_eq!((later[0].message_id.as_str(), later[0].attempts), ("b", 2));
        assert_eq!(store.dead_letters("x", None, None).await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn a_failed_commit_keeps_the_leases_in_flight_and_what_settled_ahead() {
    for ordered in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(open(dir.path(), &[("x", ordered)]));
        let events: Vec<NewEvent> = (0..40)
            .map(|i| event(&format!("e{i}"), &format!("u{i}")))
            .collect();
        store.append(events).await.unwrap();
        let now = now_ms();
        let a = store
            .claim("x", Claim::up_to(10, 1 << 20), now)
            .await
            .unwrap();
        let b = store
            .claim("x", Claim::up_to(10, 1 << 20), now)
            .await
            .unwrap();
        // `b` settles before `a`: the cursor stays below `a`, `b` is done ahead of it.
        let done = |jobs: &[Job]| {
            jobs.iter()
                .map(|j| (j.id, Settle::Done))
                .collect::<Vec<_>>()
        };
        store.settle("x", done(&b)).await.unwrap();

        store.fail_a_commit().await;
        // A batch carried across the reload settles before the cursor passes it.
        let d = store
            .claim("x", Claim::up_to(5, 1 << 20), now)
            .await
            .unwrap();
        assert_eq!(d.len(), 5, "ordered: {ordered}");
        store.fail_a_commit().await;
        store.settle("x", done(&d)).await.unwrap();
        // A transaction that moves the cursor and fails: `a`'s settle with a failure.
        let s = store.clone();
        let settles = done(&a);
        let (_, settled) = tokio::join!(store.fail_a_commit(), async move {
            s.settle("x", settles).await
        });
        let a_settled = settled.is_ok();
        // Two failures in a row keep all of it.
        store.fail_a_commit().await;
        store.fail_a_commit().await;

        // Neither `a` (in flight) nor `b` nor `d` (settled) is handed out again.
        let c = store
            .claim("x", Claim::up_to(40, 1 << 20), now)
            .await
            .unwrap();
        let got: Vec<&str> = c.iter().map(|j| j.message_id.as_str()).collect();
        let want: Vec<String> = (25..40).map(|i| format!("e{i}")).collect();
        assert_eq!(got, want, "ordered: {ordered}");
        let stats = store.stats("x").await.unwrap();
        let in_flight = if a_settled { 15 } else { 25 };
        assert_eq!(
            (stats.queued, stats.in_flight),
            (0, in_flight),
            "ordered: {ordered}"
        );

        // `a`'s settle, sent again after the failure, applies.
        if !a_settled {
            store.settle("x", done(&a)).await.unwrap();
        }
        store.settle("x", done(&c)).await.unwrap();
        let stats = store.stats("x").await.unwrap();
        assert_eq!(
            (stats.queued, stats.in_flight),
            (0, 0),
            "ordered: {ordered}"
        );
        drop(store);
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Everything is settled on disk too: nothing comes back after a restart.
        let store = open(dir.path(), &[("x", ordered)]);
        assert!(
            ids(&store, "x", 100, now).await.is_empty(),
            "ordered: {ordered}"
        );
    }
}

#[tokio::test]
async fn a_settle_in_a_failed_commit_is_undone_and_can_be_sent_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path(), &[("x", false)]));
    store
        .append((0..10).map(|i| event(&format!("e{i}"), "u")).collect())
        .await
        .unwrap();
    let now = now_ms();
    let a = store
        .claim("x", Claim::up_to(10, 1 << 20), now)
        .await
        .unwrap();
    let settles: Vec<_> = a.iter().map(|j| (j.id, Settle::Done)).collect();
    // The settle and the failure land in the same transaction, or the failure first.
    let (failing, settling) = (store.clone(), store.clone());
    let s = settles.clone();
    let (_, first) = tokio::join!(failing.fail_a_commit(), async move {
        settling.settle("x", s).await
    });
    if first.is_err() {
        assert!(ids(&store, "x", 10, now).await.is_empty(), "leased again");
        store.settle("x", settles).await.unwrap();
    }
    let stats = store.stats("x").await.unwrap();
    assert_eq!((stats.queued, stats.in_flight), (0, 0));
}

#[tokio::test]
async fn jobs_name_their_source_and_a_store_without_source_columns_gains_them() {
    let dir = tempfile::tempdir().unwrap();
    // The retry and dead-letter tables as the previous version created them.
    let conn = Connection::open(dir.path().join("switchyard.sqlite3")).unwrap();
    let old = sql::SCHEMA
        .replace("    source           TEXT    NOT NULL DEFAULT '',\n", "")
        .replace(
            ",\n    source           TEXT    NOT NULL DEFAULT ''\n",
            "\n",
        );
    assert!(!old.contains("NOT NULL DEFAULT ''"), "{old}");
    conn.execute_batch(&old).unwrap();
    drop(conn);
    let now = now_ms();
    let store = open(dir.path(), &[("x", false)]);
    store
        .append(vec![event("a", "u1"), event("b", "u2")])
        .await
        .unwrap();
    let jobs = store
        .claim("x", Claim::up_to(10, 1 << 20), now)
        .await
        .unwrap();
    assert!(jobs.iter().all(|j| &*j.source == "web"), "{jobs:?}");
    // Through a retry row and a dead letter and its replay, the source stays.
    let retry = Settle::RetryAt {
        at: now,
        reason: "503".into(),
    };
    let dead = Settle::Dead {
        reason: "400".into(),
    };
    store
        .settle("x", vec![(jobs[0].id, retry), (jobs[1].id, dead)])
        .await
        .unwrap();
    let later = now_ms() + 60_000;
    let again = store
        .claim("x", Claim::up_to(10, 1 << 20), later)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(&*again[0].source, "web");
    assert_eq!(store.replay("x", None, None).await.unwrap(), 1);
    let replayed = store
        .claim("x", Claim::up_to(10, 1 << 20), later + 60_000)
        .await
        .unwrap();
    assert_eq!(replayed.len(), 1);
    assert_eq!(
        (replayed[0].message_id.as_str(), &*replayed[0].source),
        ("b", "web")
    );
}

#[tokio::test]
async fn a_reconfigure_and_a_forget_keep_the_leases_of_batches_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &[("x", false), ("old", false)]);
    store
        .append(vec![event("a", "u"), event("b", "v"), event("c", "w")])
        .await
        .unwrap();
    // x has a batch out when the queues change.
    let out = store
        .claim("x", Claim::up_to(2, 1 << 20), now_ms())
        .await
        .unwrap();
    assert_eq!(out.len(), 2);
    let dests = Config::plain_destinations(&[("x", false), ("new", false)]);
    store
        .reconfigure(&dests, &["old".to_string()])
        .await
        .unwrap();
    // Nothing out twice: only c is claimable, and a new destination starts at the end.
    assert_eq!(ids(&store, "x", 10, now_ms()).await, ["c"]);
    assert!(ids(&store, "new", 10, now_ms()).await.is_empty());
    // The retired queue still answers claims, so it drains.
    let old_out = store
        .claim("old", Claim::up_to(10, 1 << 20), now_ms())
        .await
        .unwrap();
    let names: Vec<&str> = old_out.iter().map(|j| j.message_id.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    // New events go to x and new, not to the retired queue.
    store.append(vec![event("d", "u")]).await.unwrap();
    assert_eq!(ids(&store, "new", 10, now_ms()).await, ["d"]);
    assert!(ids(&store, "old", 10, now_ms()).await.is_empty());
    // Deleting a queue with a batch out is refused; once it settles the queue goes,
    // and x's batches out (c) keep their leases across it.
    assert!(store.forget("old").await.is_err());
    store
        .settle(
            "old",
            old_out.iter().map(|j| (j.id, Settle::Done)).collect(),
        )
        .await
        .unwrap();
    store
        .settle("x", out.iter().map(|j| (j.id, Settle::Done)).collect())
        .await
        .unwrap();
    assert_eq!(
        store.stats("x").await.unwrap().in_flight,
        1,
        "c is out on x"
    );
    assert_eq!(store.forget("old").await.unwrap(), 0);
    assert_eq!(
        store.stats("x").await.unwrap().in_flight,
        1,
        "c still out on x"
    );
    assert_eq!(
        ids(&store, "x", 10, now_ms()).await,
        ["d"],
        "c is not handed out again"
    );
}

async fn deliver_all(store: &EmbeddedStore, dest: &str) {
    let jobs = store
        .claim(dest, Claim::up_to(100, 1 << 20), now_ms())
        .await
        .unwrap();
    store
        .settle(dest, jobs.iter().map(|j| (j.id, Settle::Done)).collect())
        .await
        .unwrap();
}

/// Let housekeeping run: it takes a step with the next commit after its interval.
async fn housekeeping(store: &EmbeddedStore, id: &str) {
    tokio::time::sleep(HOUSEKEEPING_EVERY + Duration::from_millis(50)).await;
    store.append(vec![event(id, "u")]).await.unwrap();
}

#[tokio::test]
async fn the_bytes_retention_keeps_are_counted_and_leave_the_count_when_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let open_with = |retention| {
        EmbeddedStore::open(
            dir.path(),
            &EmbeddedOptions {
                dedup_window: Duration::from_secs(3600),
                retention,
                dead_letter_retention: None,
            },
            &Config::plain_destinations(&[("x", false)]),
        )
        .unwrap()
    };
    {
        let store = open_with(Duration::from_secs(3600));
        for i in 0..5 {
            store
                .append(vec![event(&format!("e{i}"), "u")])
                .await
                .unwrap();
        }
        housekeeping(&store, "h0").await;
        assert_eq!(
            store.disk_usage().unwrap().retained_bytes,
            0,
            "nothing delivered yet"
        );
        deliver_all(&store, "x").await;
        housekeeping(&store, "h1").await;
        let usage = store.disk_usage().unwrap();
        assert!(usage.retained_bytes > 0, "{usage:?}");
        assert!(usage.file_bytes > usage.retained_bytes, "{usage:?}");
    }
    // Without retention, the passed chunks are pruned and leave the count.
    let store = open_with(Duration::ZERO);
    deliver_all(&store, "x").await;
    housekeeping(&store, "h2").await;
    deliver_all(&store, "x").await;
    housekeeping(&store, "h3").await;
    housekeeping(&store, "h4").await;
    assert_eq!(store.disk_usage().unwrap().retained_bytes, 0);
}
