//! The admin API of a host under test (in-process or a separate process), with
//! its bearer token: the requests the tests and the benchmarks make of it.

use std::time::{Duration, Instant};

use serde_json::Value;

/// A row of the admin API, by name.
#[derive(Debug, Clone, Copy)]
pub enum Row<'a> {
    /// Of `GET /admin/destinations`.
    Destination(&'a str),
    /// Of `GET /admin/plugins`.
    Plugin(&'a str),
}

/// A client of one host's `/admin/*`.
#[derive(Debug, Clone)]
pub struct Admin {
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT`.
    base: String,
    /// The bearer token.
    token: String,
}

impl Admin {
    /// The admin API at `base` (`http://host:port`) with `token`, through a client of
    /// its own (build it once: a new client costs more than a request).
    pub fn new(base: impl Into<String>, token: &str) -> Admin {
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("the HTTP client builds");
        Admin::with_client(http, base, token)
    }

    /// The same, through `http` (a clone shares its connection pool).
    pub fn with_client(http: reqwest::Client, base: impl Into<String>, token: &str) -> Admin {
        Admin {
            http,
            base: base.into(),
            token: token.to_string(),
        }
    }

    /// A request to `path` (`/admin/...`) with the bearer token, to add to and send.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    /// `GET path` as JSON.
    pub async fn get(&self, path: &str) -> Value {
        let resp = self.request(reqwest::Method::GET, path).send().await;
        let resp = resp.unwrap_or_else(|e| panic!("GET {path}: {e}"));
        resp.json()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: not JSON: {e}"))
    }

    /// Poll regulation `id` until it is no longer `pending` (a deletion runs
    /// in the background), at most `within`: its record, with its progress.
    pub async fn regulation_ended(&self, id: &str, within: std::time::Duration) -> Value {
        let started = std::time::Instant::now();
        loop {
            let r = self.get(&format!("/admin/regulations/{id}")).await;
            if r["state"] != "pending" {
                return r;
            }
            assert!(
                started.elapsed() < within,
                "regulation {id} still pending after {within:?}: {r}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// `GET /readyz` with the token (which shows what each failed check
    /// says): its status and JSON answer.
    pub async fn readyz(&self) -> (u16, Value) {
        let resp = self.request(reqwest::Method::GET, "/readyz").send().await;
        let resp = resp.unwrap_or_else(|e| panic!("GET /readyz: {e}"));
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("/readyz answers JSON"))
    }

    /// `GET /metrics` with the token: the Prometheus text.
    pub async fn metrics(&self) -> String {
        let resp = self.request(reqwest::Method::GET, "/metrics").send().await;
        let resp = resp.unwrap_or_else(|e| panic!("GET /metrics: {e}"));
        assert_eq!(resp.status(), 200, "GET /metrics");
        resp.text().await.expect("/metrics answers text")
    }

    /// `POST path` without a body.
    pub async fn post(&self, path: &str) -> reqwest::Response {
        let resp = self.request(reqwest::Method::POST, path).send().await;
        resp.unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    /// `DELETE /admin/destinations/{name}`: the queue of a retired destination.
    pub async fn delete_destination(&self, name: &str) -> reqwest::Response {
        let path = format!("/admin/destinations/{name}");
        let resp = self.request(reqwest::Method::DELETE, &path).send().await;
        resp.unwrap_or_else(|e| panic!("DELETE {path}: {e}"))
    }

    /// `GET /admin/destinations`.
    pub async fn destinations(&self) -> Value {
        self.get("/admin/destinations").await
    }

    /// The row of destination `name` in `GET /admin/destinations`.
    pub async fn destination(&self, name: &str) -> Value {
        let rows = self.destinations().await;
        let row = rows
            .as_array()
            .and_then(|r| r.iter().find(|r| r["name"] == name));
        row.unwrap_or_else(|| panic!("no destination {name} in {rows}"))
            .clone()
    }

    /// `GET /admin/destinations/{name}/dead-letters`.
    pub async fn dead_letters(&self, name: &str) -> Vec<Value> {
        let list = self
            .get(&format!("/admin/destinations/{name}/dead-letters"))
            .await;
        serde_json::from_value(list).expect("a JSON array")
    }

    /// `POST /admin/destinations/{name}/dead-letters/replay`: how many were replayed.
    pub async fn replay(&self, name: &str) -> Value {
        let path = format!("/admin/destinations/{name}/dead-letters/replay");
        self.post(&path).await.json::<Value>().await.unwrap()["replayed"].clone()
    }

    /// `GET /admin/plugins`.
    pub async fn plugins(&self) -> Vec<Value> {
        serde_json::from_value(self.get("/admin/plugins").await).expect("a JSON array")
    }

    /// The row of plugin `name` in `GET /admin/plugins`.
    pub async fn plugin(&self, name: &str) -> Value {
        let rows = self.plugins().await;
        let row = rows.iter().find(|r| r["name"] == name);
        row.unwrap_or_else(|| panic!("no plugin {name} in {rows:?}"))
            .clone()
    }

    /// Poll a row every 50 ms until `check` holds of it (at most `timeout`, then
    /// panic naming `what`); that row.
    pub async fn wait(
        &self,
        which: Row<'_>,
        what: &str,
        timeout: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let start = Instant::now();
        loop {
            let (name, row) = match which {
                Row::Destination(name) => (name, self.destination(name).await),
                Row::Plugin(name) => (name, self.plugin(name).await),
            };
            if check(&row) {
                return row;
            }
            assert!(
                start.elapsed() < timeout,
                "{name}: timed out after {timeout:?} waiting for {what}: {row}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
