//! Suppression: a suppressed user's events are answered as accepted and kept
//! nowhere, `UNSUPPRESS` lets them in again, a suppression outlives a restart
//! and reaches every NATS host, and the records (the audit log) hold no id in
//! the clear.

use std::process::Command;
use std::time::Duration;

use serde_json::json;

use super::*;
use switchyard_e2e::host::{config_for, config_text, config_text_nats};
use switchyard_e2e::nats::NatsServer;
use switchyard_e2e::{all_arrive, switchyard_bin, webhook_destination, Receiver, TestHost};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suppressed_user_is_answered_and_kept_nowhere_until_lifted_on_both_stores() {
    for nats in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let server = NatsServer::start_in(dir.path().join("nats")).await;
        let rx = Receiver::start().await;
        let destinations = webhook_destination("hook", &rx, "");
        let config = if nats {
            config_text_nats(dir.path(), &destinations, &server.url())
        } else {
            config_text(dir.path(), &destinations)
        };
        let host = TestHost::start_config(dir.path(), &config).await;
        let p = if nats { "n" } else { "e" };

        let (status, record) = regulate(
            &host,
            &json!({"type": "SUPPRESS",
                "subjects": {"userId": [ALICE], "anonymousId": [ANON_BOB]}}),
        )
        .await;
        assert_eq!(status, 201, "{record}");
        assert_eq!(record["state"], "done");
        assert_eq!(record["subjects"].as_array().unwrap().len(), 2);
        let text = record.to_string();
        assert!(!text.contains(ALICE) && !text.contains(ANON_BOB), "{text}");

        // Held: what is stored stays in the log (and the NATS stream) while
        // the files are scanned.
        assert!(host
            .admin()
            .post("/admin/destinations/hook/pause")
            .await
            .status()
            .is_success());
        // Alice by userId, Bob by anonymousId, Alice's alias: all answered,
        // none kept. Carol flows.
        send(
            &host,
            vec![
                track(&format!("{p}-a1"), ("userId", ALICE)),
                track(&format!("{p}-b1"), ("anonymousId", ANON_BOB)),
                json!({"type": "alias", "previousId": ALICE, "userId": "alice-2",
                    "messageId": format!("{p}-a2")}),
                track(&format!("{p}-c1"), ("userId", "carol")),
            ],
        )
        .await;
        // The scan reads what the store wrote: Carol's event is there (the
        // NATS server writes its blocks within moments), the others' ids not.
        let mut waited = 0;
        while files_holding(dir.path(), b"from carol").is_empty() {
            waited += 1;
            assert!(waited < 250, "carol's event is in no file (nats: {nats})");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for needle in [ALICE, ANON_BOB] {
            let found = files_holding(dir.path(), needle.as_bytes());
            assert!(found.is_empty(), "{needle} is in {found:?} (nats: {nats})");
        }
        assert!(host
            .admin()
            .post("/admin/destinations/hook/resume")
            .await
            .status()
            .is_success());
        all_arrive(&rx, &[format!("{p}-c1")]).await;
        assert_eq!(
            metric(
                &host,
                "switchyard_events_suppressed_total{source=\"test\"} "
            )
            .await,
            3.0
        );
        assert_eq!(metric(&host, "switchyard_suppressed_subjects ").await, 2.0);
        // The source's funnel still adds up to what was sent.
        let funnel = host.admin().get("/admin/sources/test/funnel").await;
        let count = |key: &str| {
            funnel["steps"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["key"] == key)
                .map(|s| s["count"].clone())
        };
        assert_eq!(
            [count("sent"), count("suppressed"), count("received")],
            [Some(json!(4)), Some(json!(3)), Some(json!(1))],
            "{funnel}"
        );
        let recent = host
            .admin()
            .get("/admin/sources/test/events")
            .await
            .to_string();
        assert!(
            recent.contains("carol") && !recent.contains(ALICE),
            "{recent}"
        );

        // Lifted for Alice: her events flow again; Bob stays suppressed, also
        // across a restart.
        let (status, lifted) = regulate(
            &host,
            &json!({"type": "UNSUPPRESS", "subjects": {"userId": [ALICE]}}),
        )
        .await;
        assert_eq!(status, 201, "{lifted}");
        send(&host, vec![track(&format!("{p}-a3"), ("userId", ALICE))]).await;
        all_arrive(&rx, &[format!("{p}-a3")]).await;
        host.stop().await;
        let host = TestHost::start_config(dir.path(), &config).await;
        send(
            &host,
            vec![
                track(&format!("{p}-b2"), ("anonymousId", ANON_BOB)),
                track(&format!("{p}-c2"), ("userId", "carol")),
            ],
        )
        .await;
        all_arrive(&rx, &[format!("{p}-c2")]).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut delivered = rx.delivered_ids();
        delivered.sort();
        delivered.dedup();
        assert_eq!(
            delivered,
            ["a3", "c1", "c2"].map(|s| format!("{p}-{s}")),
            "only what was not suppressed (nats: {nats})"
        );

        // The audit log: both records, oldest first, who asked, no ids.
        let list = host.admin().get("/admin/regulations").await;
        let rows = list.as_array().unwrap();
        assert_eq!(rows.len(), 2, "{list}");
        assert_eq!(rows[0]["type"], "SUPPRESS");
        assert_eq!(rows[0]["subjects"], 2);
        assert_eq!(rows[1]["type"], "UNSUPPRESS");
        assert_eq!(rows[1]["requested_by"], "the admin API (the admin token)");
        let one = host
            .admin()
            .get(&format!(
                "/admin/regulations/{}",
                record["id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(one["subjects"], record["subjects"]);
        host.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_regulation_is_refused_with_a_reason_and_nothing_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let host = TestHost::start(dir.path(), "").await;
    for (body, reason) in [
        (
            json!({"type": "SUPPRESS", "subjects": {"userId": ["a"]}, "source": ["test"]}),
            "unknown field `source`",
        ),
        (
            json!({"type": "FORGET", "subjects": {"userId": ["a"]}}),
            "unknown variant `FORGET`",
        ),
        (json!({"type": "SUPPRESS", "subjects": {}}), "names no one"),
        (
            json!({"type": "SUPPRESS", "subjects": {"userId": ["a"]}, "sources": ["ios"]}),
            "no source named `ios`",
        ),
        (
            json!({"type": "DELETE", "subjects": {"userId": [""]}}),
            "ids are 1 to 256 bytes",
        ),
    ] {
        let (status, answer) = regulate(&host, &body).await;
        assert_eq!(status, 400, "{body} -> {answer}");
        assert_eq!(answer["success"], false);
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains(reason), "{body} -> {message}");
    }
    assert_eq!(host.admin().get("/admin/regulations").await, json!([]));
    let resp = host
        .admin()
        .request(reqwest::Method::GET, "/admin/regulations/reg_nope")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("reg_nope"));
    // Without the token, nothing.
    let resp = host
        .http
        .post(host.url("/admin/regulations"))
        .json(&json!({"type": "SUPPRESS", "subjects": {"userId": ["a"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suppression_through_one_nats_host_is_in_force_on_the_other() {
    let server = NatsServer::start().await;
    let rx = Receiver::start().await;
    let destinations = webhook_destination("hook", &rx, "");
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = TestHost::start_config(
        dir_a.path(),
        &config_text_nats(dir_a.path(), &destinations, &server.url()),
    )
    .await;
    let b = TestHost::start_config(
        dir_b.path(),
        &config_text_nats(dir_b.path(), &destinations, &server.url()),
    )
    .await;
    let (status, _) = regulate(
        &a,
        &json!({"type": "SUPPRESS", "subjects": {"userId": [ALICE]}, "sources": ["test"]}),
    )
    .await;
    assert_eq!(status, 201);
    // The other host follows the store once a second.
    let mut waited = 0;
    while metric(&b, "switchyard_suppressed_subjects ").await < 1.0 {
        waited += 1;
        assert!(waited < 250, "host b never took the suppression");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    send(
        &b,
        vec![
            track("x-a1", ("userId", ALICE)),
            track("x-c1", ("userId", "carol")),
        ],
    )
    .await;
    all_arrive(&rx, &["x-c1".to_string()]).await;
    assert_eq!(
        metric(&b, "switchyard_events_suppressed_total{source=\"test\"} ").await,
        1.0
    );
    assert!(!rx.delivered_ids().contains(&"x-a1".to_string()));
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchyard_regulate_suppresses_from_the_command_line_and_lists_the_records() {
    let dir = tempfile::tempdir().unwrap();
    // Two sources: a suppression for one leaves the other's events alone.
    let ios = "[[sources]]\nname = \"ios\"\nwrite_key = \"wk_ios\"\n";
    let host = TestHost::start_config(dir.path(), &config_text(dir.path(), ios)).await;
    // A config file that points the command at the running host.
    let file = dir.path().join("cli.toml");
    std::fs::write(
        &file,
        config_for(
            &host.addr.to_string(),
            &dir.path().join("data"),
            &dir.path().join("plugins"),
            "",
        ),
    )
    .unwrap();
    let ids = dir.path().join("ids.txt");
    std::fs::write(&ids, "dave\n\nerin\n").unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(switchyard_bin())
            .arg("regulate")
            .args(args)
            .arg("--config")
            .arg(&file)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = run(&[
        "suppress",
        "--user-id",
        "frank",
        "--user-ids-from",
        ids.to_str().unwrap(),
        "--source",
        "test",
    ]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("SUPPRESS  3 subject(s)  done"), "{out}");
    let (ok, out, err) = run(&["list"]);
    assert!(ok, "{err}");
    assert!(out.contains("1 regulation(s)"), "{out}");
    assert!(out.contains("subjects=3  sources=test"), "{out}");
    assert!(
        out.contains("by switchyard regulate (the admin token)"),
        "{out}"
    );
    for key in ["wk_test", "wk_ios"] {
        let resp = host
            .http
            .post(host.url("/v1/track"))
            .basic_auth(key, Some(""))
            .json(&json!({"userId": "erin", "event": "Opened", "messageId": format!("erin-{key}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let admin = host.admin();
    let test_events = admin.get("/admin/sources/test/events").await.to_string();
    let ios_events = admin.get("/admin/sources/ios/events").await.to_string();
    assert!(!test_events.contains("erin-wk_test"), "{test_events}");
    assert!(ios_events.contains("erin-wk_ios"), "{ios_events}");
    assert_eq!(
        metric(
            &host,
            "switchyard_events_suppressed_total{source=\"test\"} "
        )
        .await,
        1.0
    );
    let (ok, _, err) = run(&["suppress", "--source", "test"]);
    assert!(!ok && err.contains("name someone"), "{err}");
    let (ok, _, err) = run(&["unsuppress", "--user-id", "x", "--source", "android"]);
    assert!(!ok && err.contains("no source named `android`"), "{err}");
    host.stop().await;
}
