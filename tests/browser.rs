//! Segment's browser SDK, `@segment/analytics-next` (tests/sdks/browser), in
//! headless Chromium: a page on one loopback origin loads its settings from
//! Switchyard (`cdnURL`) and sends to it across origins (CORS, with the
//! preflight its `Authorization` header needs), one call at a time and in
//! batching mode (`/v1/b`).

use std::path::PathBuf;
use std::time::Duration;

use axum::extract::Path;
use axum::response::{Html, IntoResponse};
use serde_json::Value;
use switchyard_e2e::browser::{chromium, driver};
use switchyard_e2e::host::{config_text, WRITE_KEY};
use switchyard_e2e::{
    eventually, webhook_destination as webhook, workspace_root, Receiver, TestHost,
};

/// The npm package's browser build.
fn bundles() -> PathBuf {
    workspace_root().join("tests/sdks/browser/node_modules/@segment/analytics-next/dist/umd")
}

/// A page of origin `page` that loads analytics.js from itself and sends to `host`.
fn page(page: &str, host: &str, batching: bool) -> String {
    let options = if batching {
        r#"{integrations: {"Segment.io": {deliveryStrategy: {strategy: "batching", config: {size: 3, timeout: 300}}}}}"#
    } else {
        "{}"
    };
    format!(
        r#"<!doctype html><html><head><title>loading</title>
<script>window.analytics = {{ _cdn: "{page}" }};</script>
<script src="/analytics-next/bundles/index.js"></script>
</head><body><script>
(async () => {{
  try {{
    const [analytics] = await AnalyticsNext.AnalyticsBrowser.load(
      {{ writeKey: "{WRITE_KEY}", cdnURL: "{host}" }}, {options});
    await Promise.all([
      analytics.track("Browser Event", {{ n: 1 }}),
      analytics.identify("browser-user", {{ plan: "pro" }}),
      analytics.page("Home"),
    ]);
    document.title = "sent";
  }} catch (e) {{
    document.title = "error: " + e;
  }}
}})();
</script></body></html>"#
    )
}

async fn bundle(Path(file): Path<String>) -> impl IntoResponse {
    match std::fs::read(bundles().join(&file)) {
        Ok(bytes) => ([("content-type", "application/javascript")], bytes).into_response(),
        Err(_) => axum::http::StatusCode::NOT_FOUND.into_response(),
    }
}

#[tokio::test]
async fn analytics_next_in_chromium_sends_across_origins_one_call_at_a_time_and_batched() {
    assert!(
        bundles().join("index.js").exists(),
        "{} is missing: run `make sdks`",
        bundles().display()
    );
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    // The page's server (the page and the SDK's own files), on an origin of its own.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let page_origin = format!("http://{}", listener.local_addr().unwrap());
    let config = config_text(dir.path(), &webhook("hooks", &rx, "")).replacen(
        &format!("write_key = \"{WRITE_KEY}\"\n"),
        &format!("write_key = \"{WRITE_KEY}\"\nallowed_origins = [\"{page_origin}\"]\n"),
        1,
    );
    let host = TestHost::start_config(dir.path(), &config).await;
    let host_url = host.url("");
    let (p1, p2) = (
        page(&page_origin, &host_url, false),
        page(&page_origin, &host_url, true),
    );
    let app = axum::Router::new()
        .route("/", axum::routing::get(move || async move { Html(p1) }))
        .route(
            "/batched",
            axum::routing::get(move || async move { Html(p2) }),
        )
        .route("/analytics-next/bundles/{file}", axum::routing::get(bundle));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let driver = driver().await;
    let browser = chromium(&driver, dir.path()).await;
    for (path, mode) in [("/", "one call at a time"), ("/batched", "batching")] {
        browser.goto(&format!("{page_origin}{path}")).await.unwrap();
        let mut title = String::new();
        for _ in 0..150 {
            title = browser.title().await.unwrap();
            if title != "loading" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(title, "sent", "{mode}");
    }
    browser.close().await.unwrap();

    // Six calls (three per page), each stored and delivered once.
    let events: Vec<Value> = eventually(Duration::from_secs(20), "six browser events", || {
        let got = rx.events();
        (got.len() >= 6).then_some(got)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(events.len(), 6, "{events:?}");
    let track = events.iter().find(|e| e["type"] == "track").unwrap();
    assert_eq!(track["event"], "Browser Event");
    assert_eq!(track["properties"]["n"], 1);
    assert!(
        track["context"]["library"]["name"]
            .as_str()
            .unwrap()
            .contains("analytics.js"),
        "{track}"
    );
    assert_eq!(track["context"]["ip"], "127.0.0.1");
    assert!(track.get("writeKey").is_none());
    let identify = events.iter().find(|e| e["type"] == "identify").unwrap();
    assert_eq!(identify["userId"], "browser-user");
    assert_eq!(events.iter().filter(|e| e["type"] == "page").count(), 2);
    host.stop().await;
}
