//! A privacy deletion reaches a catalog entry through Segment's own
//! `onDelete`: an entry that defines one is built for the
//! `deleting-destination` world, and one without answers `not_supported`.

use serde_json::{json, Value};
use switchyard_e2e::{Receiver, TestHost};

use super::{braze, entry_table, install_entry};

#[tokio::test]
async fn a_deletion_runs_an_entrys_own_on_delete_and_one_without_is_not_supported() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    install_entry(dir.path(), "iterable");
    let tables = format!(
        "{}{}",
        braze(dir.path(), &rx, ""),
        entry_table(
            "iterable",
            "https://api.iterable.com",
            r#"{ apiKey = "it-key" }"#,
            &rx,
            ""
        )
    );
    let host = TestHost::start(dir.path(), &tables).await;
    let admin = host.admin();
    let resp = admin
        .request(reqwest::Method::POST, "/admin/regulations")
        .json(&json!({"type": "DELETE", "subjects": {"userId": ["user-to-forget"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let done = admin
        .regulation_ended(&id, std::time::Duration::from_secs(60))
        .await;
    assert_eq!(done["state"], "done", "{done}");
    let destinations = &done["progress"]["destinations"];
    assert_eq!(destinations["braze"]["state"], "done", "{done}");
    assert_eq!(destinations["iterable"]["state"], "not_supported", "{done}");
    // Braze's onDelete: POST /users/delete with the user's external id.
    let asked = rx.received();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0].uri, "/users/delete");
    assert_eq!(asked[0].headers["authorization"], "Bearer braze-key");
    let body: Value = serde_json::from_slice(&asked[0].body).unwrap();
    assert_eq!(body, json!({"external_ids": ["user-to-forget"]}));
    host.stop().await;
}
