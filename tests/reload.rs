//! Changing a running host (the book, `operating/reload.md`): a reload
//! of the config file adds, changes and retires destinations under load, with
//! nothing lost or delivered twice; a bad reload changes nothing; a plugin
//! dropped under a new name is ready for the destination a reload adds; the
//! binary reloads on SIGHUP and on `switchyard reload`.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::Value;
use switchyard_e2e::receiver::{Receiver, Reply};
use switchyard_e2e::{host::TestHost, sdk_batch, webhook_destination, webhook_table};

/// Each id and how many times it reached `rx` with a 2xx answer.
fn counts(rx: &Receiver) -> HashMap<String, usize> {
    let mut n = HashMap::new();
    for id in rx.delivered_ids() {
        *n.entry(id).or_default() += 1;
    }
    n
}

fn retry() -> &'static str {
    "retry = { initial_ms = 20, max_ms = 200, window = \"1m\" }"
}

#[tokio::test]
async fn a_reload_adds_changes_and_retires_destinations_under_load_losing_and_repeating_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (ra, rb, rc) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    // Vendors that take a while, so batches are in flight when the reload comes.
    for rx in [&ra, &rb, &rc] {
        rx.default_reply(Reply::status(200).delayed(Duration::from_millis(15)));
    }
    let before = format!(
        "{}{}",
        webhook_destination("a", &ra, ""),
        webhook_destination("b", &rb, "")
    );
    let host = TestHost::start(dir.path(), &before).await;

    // Load: 40 batches of 10, 15 ms apart, while the reload happens in the middle.
    let sender = {
        let http = host.http.clone();
        let url = host.url("/v1/batch");
        tokio::spawn(async move {
            // Each batch: when its request was sent, when it was acknowledged, its ids.
            let mut acked: Vec<(std::time::Instant, std::time::Instant, Vec<String>)> = Vec::new();
            for i in 0..40 {
                let prefix = format!("load{i}");
                let sent = std::time::Instant::now();
                let resp = http
                    .post(&url)
                    .basic_auth(switchyard_e2e::host::WRITE_KEY, Some(""))
                    .json(&sdk_batch(&prefix, 10))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200);
                acked.push((
                    sent,
                    std::time::Instant::now(),
                    switchyard_e2e::ids(&prefix, 10),
                ));
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            acked
        })
    };
    tokio::time::sleep(Duration::from_millis(250)).await;

    // a changes (another path), b is removed, c is added.
    let after = format!(
        "{}{}",
        webhook_table("a", &ra.url("/a-v2"), &ra.origin(), retry()),
        webhook_destination("c", &rc, "")
    );
    let reload_started = std::time::Instant::now();
    let (status, body) = host.reload(&after).await;
    let reload_done = std::time::Instant::now();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["added"], serde_json::json!(["c"]), "{body}");
    assert_eq!(body["changed"], serde_json::json!(["a"]), "{body}");
    assert_eq!(body["removed"], serde_json::json!(["b"]), "{body}");

    let acked = sender.await.unwrap();
    let all: Vec<String> = acked.iter().flat_map(|(_, _, ids)| ids.clone()).collect();
    // a, in the config all along: every event exactly once, across its old and new settings.
    switchyard_e2e::all_arrive(&ra, &all).await;
    let a = counts(&ra);
    assert!(a.values().all(|n| *n == 1), "a got an event twice");
    assert_eq!(a.len(), all.len());
    let paths: HashSet<String> = ra.received().iter().map(|r| r.uri.clone()).collect();
    assert!(
        paths.contains("/a") && paths.contains("/a-v2"),
        "a delivered with both settings: {paths:?}"
    );

    // b, retired: what was acknowledged before the reload began, exactly once; nothing sent
    // after it answered (a batch that arrived while it ran may go either way).
    let before_reload: Vec<String> = acked
        .iter()
        .filter(|(_, at, _)| *at < reload_started)
        .flat_map(|(_, _, ids)| ids.clone())
        .collect();
    let after_reload: Vec<String> = acked
        .iter()
        .filter(|(sent, _, _)| *sent > reload_done)
        .flat_map(|(_, _, ids)| ids.clone())
        .collect();
    assert!(!before_reload.is_empty() && !after_reload.is_empty());
    switchyard_e2e::all_arrive(&rb, &before_reload).await;
    let b = counts(&rb);
    assert!(b.values().all(|n| *n == 1), "b got an event twice");
    assert!(
        after_reload.iter().all(|id| !b.contains_key(id)),
        "b received events acknowledged after it was removed"
    );

    // c, added: everything acknowledged after the reload, exactly once; nothing from before.
    switchyard_e2e::all_arrive(&rc, &after_reload).await;
    let c = counts(&rc);
    assert!(c.values().all(|n| *n == 1), "c got an event twice");
    assert!(before_reload.iter().all(|id| !c.contains_key(id)));

    // The admin API lists b as retired until its queue is deleted.
    let admin = host.admin();
    let listed = admin.destinations().await;
    let row = |name: &str, listed: &Value| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == name)
            .cloned()
    };
    assert_eq!(row("b", &listed).unwrap()["retired"], true, "{listed}");
    assert!(row("a", &listed).unwrap().get("retired").is_none());
    assert!(row("c", &listed).is_some());
    let deleted = admin.delete_destination("a").await;
    assert_eq!(
        deleted.status(),
        422,
        "a destination in the config keeps its queue"
    );
    let deleted = admin.delete_destination("b").await;
    assert_eq!(deleted.status(), 200);
    let deleted: Value = deleted.json().await.unwrap();
    assert_eq!(deleted["dropped"], 0, "b had drained: {deleted}");
    assert!(row("b", &admin.destinations().await).is_none());
    host.stop().await;
}

#[tokio::test]
async fn a_bad_reload_is_refused_with_the_reason_and_the_old_config_serves_on() {
    let dir = tempfile::tempdir().unwrap();
    let ra = Receiver::start().await;
    let good = webhook_destination("a", &ra, "");
    let host = TestHost::start(dir.path(), &good).await;
    let text = switchyard_e2e::host::config_text(dir.path(), &good);

    for (bad, says) in [
        (
            format!("{text}\n[[destinations]]\nname = \"x\"\nplugin = "),
            "line",
        ),
        (
            // The webhook refuses settings without a URL: its own check, as at start.
            format!(
                "{text}\n[[destinations]]\nname = \"x\"\nplugin = \"webhook\"\nsettings = {{ secret = \"s\" }}\n"
            ),
            "settings refused by plugin `webhook`",
        ),
        (
            format!("{text}\n[[destinations]]\nname = \"x\"\nplugin = \"no-such-plugin\"\n"),
            "no-such-plugin.wasm",
        ),
        (
            text.replace("name = \"test\"", "name = \"renamed\""),
            "only a restart applies: [sources]",
        ),
    ] {
        let (status, body) = host.reload_config(&bad).await;
        assert_eq!(status, 422, "{bad}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{says}: {message}");
    }
    // Still the old config: `a` delivers, and no `x` appeared.
    assert_eq!(
        host.send("batch", &sdk_batch("still", 3)).await.status(),
        200
    );
    switchyard_e2e::all_arrive(&ra, &switchyard_e2e::ids("still", 3)).await;
    let listed = host.destinations().await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    host.stop().await;
}

#[tokio::test]
async fn a_plugin_dropped_under_a_new_name_is_compiled_by_the_reload_that_adds_its_destination() {
    let dir = tempfile::tempdir().unwrap();
    let ra = Receiver::start().await;
    let host = TestHost::start(dir.path(), &webhook_destination("a", &ra, "")).await;
    let webhook = dir.path().join("plugins/webhook.wasm");
    std::fs::copy(&webhook, dir.path().join("plugins/hook2.wasm")).unwrap();
    // Nothing uses it: the watcher leaves it alone (compiling every file of the
    // folder cost 10–30 s of CPU per JavaScript or Python plugin, #35).
    tokio::time::sleep(plugins_settle() * 4).await;
    let admin = host.admin();
    assert!(
        !admin.plugins().await.iter().any(|p| p["name"] == "hook2"),
        "an unused plugin is not compiled"
    );

    let rd = Receiver::start().await;
    let with_d = format!(
        "{}{}",
        webhook_destination("a", &ra, ""),
        webhook_destination("d", &rd, "").replace("plugin = \"webhook\"", "plugin = \"hook2\"")
    );
    let (status, body) = host.reload(&with_d).await;
    assert_eq!(status, 200, "{body}");
    let listed = admin.plugin("hook2").await;
    assert_eq!(listed["kind"], "destination", "{listed}");
    assert_eq!(host.send("batch", &sdk_batch("new", 4)).await.status(), 200);
    switchyard_e2e::all_arrive(&rd, &switchyard_e2e::ids("new", 4)).await;
    switchyard_e2e::all_arrive(&ra, &switchyard_e2e::ids("new", 4)).await;
    host.stop().await;
}

/// The watcher's quiet time before it reads a file.
fn plugins_settle() -> Duration {
    Duration::from_millis(300)
}

#[tokio::test]
async fn the_binary_reloads_on_sighup_and_on_switchyard_reload() {
    let dir = tempfile::tempdir().unwrap();
    let (ra, rb) = (Receiver::start().await, Receiver::start().await);
    let config = |destinations: &str| switchyard_e2e::host::config_text(dir.path(), destinations);
    let (file, base) = switchyard_e2e::binary::write_config(
        dir.path(),
        &config(&webhook_destination("a", &ra, "")),
    );
    let port_line = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("listen"))
        .unwrap()
        .to_string();
    let rewrite = |destinations: &str| {
        let text = config(destinations).replace("listen = \"127.0.0.1:0\"", &port_line);
        std::fs::write(&file, text).unwrap();
    };
    let mut child = switchyard_e2e::binary::spawn(&file);
    switchyard_e2e::binary::wait_healthy(&base).await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let send = |prefix: &'static str| {
        let http = http.clone();
        let url = format!("{base}/v1/batch");
        async move {
            let r = http
                .post(url)
                .basic_auth(switchyard_e2e::host::WRITE_KEY, Some(""))
                .json(&sdk_batch(prefix, 3))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    };

    // `switchyard reload` adds b.
    rewrite(&format!(
        "{}{}",
        webhook_destination("a", &ra, ""),
        webhook_destination("b", &rb, "")
    ));
    let out = std::process::Command::new(switchyard_e2e::switchyard_bin())
        .args(["reload", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("added:     b"), "{stdout}");
    send("cli").await;
    switchyard_e2e::all_arrive(&rb, &switchyard_e2e::ids("cli", 3)).await;

    // A file that does not validate: `switchyard reload` says why and exits non-zero.
    std::fs::write(&file, "[server\n").unwrap();
    let out = std::process::Command::new(switchyard_e2e::switchyard_bin())
        .args(["reload", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("switchyard.toml"));

    // SIGHUP retires b again.
    rewrite(&webhook_destination("a", &ra, ""));
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    let admin = switchyard_e2e::Admin::with_client(
        http.clone(),
        base.clone(),
        switchyard_e2e::host::ADMIN_TOKEN,
    );
    let started = std::time::Instant::now();
    loop {
        let listed = admin.destinations().await;
        let retired = listed.as_array().unwrap().iter();
        if retired
            .into_iter()
            .any(|d| d["name"] == "b" && d["retired"] == true)
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "b never retired: {listed}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    send("hup").await;
    switchyard_e2e::all_arrive(&ra, &switchyard_e2e::ids("hup", 3)).await;
    assert!(rb.delivered_ids().iter().all(|id| !id.starts_with("hup")));
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    let _ = child.wait();
}

#[tokio::test]
async fn on_nats_one_reload_adds_changes_and_retires_destinations_on_every_host() {
    let root = tempfile::tempdir().unwrap();
    let nats = switchyard_e2e::nats::NatsServer::start_in(root.path().join("nats")).await;
    let (d1, d2) = (root.path().join("h1"), root.path().join("h2"));
    let (ra, rb) = (Receiver::start().await, Receiver::start().await);
    let text = |dir: &std::path::Path, destinations: &str| {
        switchyard_e2e::host::config_text_nats(dir, destinations, &nats.url())
    };
    let a = webhook_destination("a", &ra, "");
    let h1 = TestHost::start_config(&d1, &text(&d1, &a)).await;
    let h2 = TestHost::start_config(&d2, &text(&d2, &a)).await;
    assert_eq!(h2.send("batch", &sdk_batch("one", 2)).await.status(), 200);
    switchyard_e2e::all_arrive(&ra, &switchyard_e2e::ids("one", 2)).await;

    // The same file on both hosts, one reload on the first: b is added on both.
    let moved = webhook_table("a", &ra.url("/moved"), &ra.origin(), retry());
    let with_b = format!("{moved}{}", webhook_destination("b", &rb, ""));
    std::fs::write(switchyard_e2e::host::config_file(&d2), text(&d2, &with_b)).unwrap();
    let (status, body) = h1.reload_config(&text(&d1, &with_b)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["added"], serde_json::json!(["b"]), "{body}");
    assert_eq!(body["changed"], serde_json::json!(["a"]), "{body}");
    let listed = |host: &TestHost, name: &'static str, retired: bool| {
        let admin = host.admin();
        async move {
            let start = std::time::Instant::now();
            loop {
                let rows = admin.destinations().await;
                let row = rows
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|d| d["name"] == name)
                    .cloned();
                if row.is_some_and(|r| r["retired"].as_bool().unwrap_or(false) == retired) {
                    return;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "{name} (retired: {retired}) not listed: {rows}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    listed(&h2, "b", false).await;
    // Events sent to either host reach b, and a at its new path.
    assert_eq!(h2.send("batch", &sdk_batch("two", 3)).await.status(), 200);
    assert_eq!(h1.send("batch", &sdk_batch("three", 3)).await.status(), 200);
    let sent: Vec<String> = [
        switchyard_e2e::ids("two", 3),
        switchyard_e2e::ids("three", 3),
    ]
    .concat();
    switchyard_e2e::all_arrive(&rb, &sent).await;
    switchyard_e2e::all_arrive(&ra, &sent).await;
    let moved_ids: Vec<String> = ra
        .received()
        .iter()
        .filter(|r| r.uri == "/moved")
        .flat_map(|r| switchyard_e2e::receiver::ids_in(&r.body))
        .collect();
    assert_eq!(moved_ids.len(), 6, "{moved_ids:?}");

    // b removed from both files, one reload: retired on both; what is sent later never reaches it.
    std::fs::write(switchyard_e2e::host::config_file(&d2), text(&d2, &moved)).unwrap();
    let (status, body) = h1.reload_config(&text(&d1, &moved)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["removed"], serde_json::json!(["b"]), "{body}");
    listed(&h2, "b", true).await;
    let before = rb.received().len();
    assert_eq!(h2.send("batch", &sdk_batch("four", 3)).await.status(), 200);
    assert_eq!(h1.send("batch", &sdk_batch("five", 3)).await.status(), 200);
    let later: Vec<String> = [
        switchyard_e2e::ids("four", 3),
        switchyard_e2e::ids("five", 3),
    ]
    .concat();
    switchyard_e2e::all_arrive(&ra, &later).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        rb.received().len(),
        before,
        "a retired destination got new events"
    );
    // Deleted through one host: its consumer is gone, and the other lets it go.
    let resp = h1.admin().delete_destination("b").await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    // The other host lets it go: looking at it (its row, /metrics) makes no consumer again,
    // and deleting it there too answers as done.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _ = h2.destinations().await;
    let metrics = h2
        .admin()
        .request(reqwest::Method::GET, "/metrics")
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let stream = js.get_stream("SWITCHYARD_EVENTS").await.unwrap();
    assert!(
        stream
            .get_consumer::<async_nats::jetstream::consumer::pull::Config>("dest-b")
            .await
            .is_err(),
        "dest-b was made again"
    );
    let resp = h2.admin().delete_destination("b").await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    h2.stop().await;
    h1.stop().await;
}

#[tokio::test]
async fn a_backfill_delivers_exactly_the_retained_events_of_its_range_to_a_new_destination() {
    backfill_to_a_new_destination(false).await;
}

#[tokio::test]
async fn on_nats_a_backfill_delivers_exactly_the_retained_events_of_its_range() {
    backfill_to_a_new_destination(true).await;
}

async fn backfill_to_a_new_destination(on_nats: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (ra, rb) = (Receiver::start().await, Receiver::start().await);
    let nats = match on_nats {
        true => Some(switchyard_e2e::nats::NatsServer::start_in(dir.path().join("nats")).await),
        false => None,
    };
    let retained = |destinations: &str| {
        let text = match &nats {
            Some(n) => switchyard_e2e::host::config_text_nats(dir.path(), destinations, &n.url()),
            None => switchyard_e2e::host::config_text(dir.path(), destinations),
        };
        text.replacen("[store]\n", "[store]\nretention = \"1h\"\n", 1)
    };
    let host =
        TestHost::start_config(dir.path(), &retained(&webhook_destination("a", &ra, ""))).await;
    let now_ms = || chrono::Utc::now().timestamp_millis();
    let start = now_ms();
    assert_eq!(host.send("batch", &sdk_batch("old", 5)).await.status(), 200);
    switchyard_e2e::all_arrive(&ra, &switchyard_e2e::ids("old", 5)).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let middle = now_ms();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(host.send("batch", &sdk_batch("mid", 3)).await.status(), 200);
    switchyard_e2e::all_arrive(&ra, &switchyard_e2e::ids("mid", 3)).await;

    // b, added now, starts at the end of the log; a backfill brings it the first range only.
    let both = format!(
        "{}{}",
        webhook_destination("a", &ra, ""),
        webhook_destination("b", &rb, "")
    );
    let (status, body) = host.reload_config(&retained(&both)).await;
    assert_eq!(status, 200, "{body}");
    let admin = host.admin();
    let no_since = admin.post("/admin/destinations/b/backfill").await;
    assert_eq!(no_since.status(), 400);
    let resp = admin
        .post(&format!(
            "/admin/destinations/b/backfill?since={}&until={middle}",
            start - 1000
        ))
        .await;
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["enqueued"], 5, "{answer}");
    switchyard_e2e::all_arrive(&rb, &switchyard_e2e::ids("old", 5)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = counts(&rb);
    assert_eq!(got.len(), 5, "only the range: {got:?}");
    assert!(got.values().all(|n| *n == 1));
    for r in rb.received() {
        let events: Vec<Value> = serde_json::from_slice(&r.body).unwrap();
        for e in events {
            assert_eq!(e["context"]["is_backfill"], true, "{e}");
        }
    }
    // a got nothing twice.
    assert!(counts(&ra).values().all(|n| *n == 1));
    host.stop().await;
}

#[tokio::test]
async fn with_watch_config_a_saved_file_is_applied_and_a_bad_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (ra, rb) = (Receiver::start().await, Receiver::start().await);
    let watched = |destinations: &str| {
        switchyard_e2e::host::config_text(dir.path(), destinations).replacen(
            "[server]\n",
            "[server]\nwatch_config = true\n",
            1,
        )
    };
    let one = webhook_destination("a", &ra, "");
    let host = TestHost::start_config(dir.path(), &watched(&one)).await;
    let file = switchyard_e2e::host::config_file(dir.path());

    // Saved as editors save: a new file renamed over the old one.
    let two = format!("{one}{}", webhook_destination("b", &rb, ""));
    let tmp = dir.path().join(".test-host.toml.swp");
    std::fs::write(&tmp, watched(&two)).unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    let start = std::time::Instant::now();
    loop {
        let listed = host.destinations().await;
        if listed.as_array().unwrap().iter().any(|d| d["name"] == "b") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "b not added: {listed}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(host.send("batch", &sdk_batch("w", 3)).await.status(), 200);
    switchyard_e2e::all_arrive(&rb, &switchyard_e2e::ids("w", 3)).await;

    // A broken file: refused, logged, and both destinations deliver on.
    std::fs::write(
        &file,
        format!("{}\n[[destinations]]\nname = ", watched(&two)),
    )
    .unwrap();
    switchyard_e2e::eventually(Duration::from_secs(10), "the refusal in the log", || {
        let lines = switchyard_e2e::logs::lines_with(&["config file changed", "refused"]);
        (!lines.is_empty()).then_some(())
    })
    .await;
    assert_eq!(
        host.send("batch", &sdk_batch("still", 3)).await.status(),
        200
    );
    switchyard_e2e::all_arrive(&ra, &switchyard_e2e::ids("still", 3)).await;
    switchyard_e2e::all_arrive(&rb, &switchyard_e2e::ids("still", 3)).await;
    host.stop().await;
}

#[tokio::test]
async fn a_queue_retired_before_a_restart_can_still_be_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (ra, rb) = (Receiver::start().await, Receiver::start().await);
    let a = webhook_destination("a", &ra, "");
    let both = format!("{a}{}", webhook_destination("b", &rb, ""));
    let host = TestHost::start(dir.path(), &both).await;
    let (status, body) = host.reload(&a).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["removed"], serde_json::json!(["b"]));
    host.stop().await;

    // After the restart b is no longer served, but its queue is on disk: it can be deleted.
    let host = TestHost::start(dir.path(), &a).await;
    let resp = host.admin().delete_destination("b").await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let again = host.admin().delete_destination("b").await;
    assert_eq!(again.status(), 404);
    assert_eq!(host.send("batch", &sdk_batch("on", 2)).await.status(), 200);
    switchyard_e2e::all_arrive(&ra, &switchyard_e2e::ids("on", 2)).await;
    host.stop().await;
}
