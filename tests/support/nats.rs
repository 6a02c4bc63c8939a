//! A real `nats-server` with JetStream on a free loopback port, for the tests.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running server; killed when dropped.
pub struct NatsServer {
    child: Option<Child>,
    /// Its port.
    pub port: u16,
    /// Its JetStream storage directory.
    store: PathBuf,
    /// The temporary folder of `store`, when the server owns it.
    _dir: Option<tempfile::TempDir>,
}

impl NatsServer {
    /// Start one with its own data (`nats-server` must be installed: `make test` installs it).
    pub async fn start() -> NatsServer {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("js");
        Self::start_with(store, Some(dir)).await
    }

    /// Start one that keeps its JetStream data in `store` (which outlives it).
    pub async fn start_in(store: PathBuf) -> NatsServer {
        Self::start_with(store, None).await
    }

    async fn start_with(store: PathBuf, dir: Option<tempfile::TempDir>) -> NatsServer {
        let port = crate::free_port();
        let mut server = NatsServer {
            child: None,
            port,
            store,
            _dir: dir,
        };
        server.restart().await;
        server
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stop it (its data stays).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // TERM reaches the watchdog shell, whose trap stops the server.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
            for _ in 0..250 {
                if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Start it again on the same port and data.
    pub async fn restart(&mut self) {
        self.stop();
        // A watchdog shell: the server also goes when this test process ends, even
        // if it ends without dropping the server (a server kept in a static).
        let script = format!(
            "nats-server -js -a 127.0.0.1 -p {port} -sd '{store}' >/dev/null 2>&1 & s=$!; \
             trap 'kill $s 2>/dev/null; wait $s; exit 0' TERM; \
             while kill -0 {parent} 2>/dev/null && kill -0 $s 2>/dev/null; do sleep 0.3; done; \
             kill $s 2>/dev/null; wait $s",
            port = self.port,
            store = self.store.display(),
            parent = std::process::id(),
        );
        let child = Command::new("sh")
            .args(["-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sh runs");
        self.child = Some(child);
        for _ in 0..250 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                // JetStream needs a moment after the port opens.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "nats-server did not start on port {} (is it installed? `make test` installs it)",
            self.port
        );
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A JetStream cluster of three `nats-server`s on loopback (for streams with three
/// replicas); each killed when dropped.
pub struct NatsCluster {
    /// Its servers; `kill_9(i)` takes one down hard.
    children: Vec<Option<Child>>,
    /// Client ports.
    pub ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

impl NatsCluster {
    /// Start three servers that route to each other, and wait until JetStream
    /// has a meta leader (a stream can be created).
    pub async fn start() -> NatsCluster {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<u16> = (0..3).map(|_| crate::free_port()).collect();
        let routes: Vec<u16> = (0..3).map(|_| crate::free_port()).collect();
        let all_routes = routes
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut children = Vec::new();
        for i in 0..3 {
            let script = format!(
                "exec nats-server -js -a 127.0.0.1 -p {port} -sd '{store}' -n sy{i} \
                 --cluster_name sy --cluster nats://127.0.0.1:{route} --routes {all_routes} \
                 >/dev/null 2>&1",
                port = ports[i],
                store = dir.path().join(format!("js{i}")).display(),
                route = routes[i],
            );
            let child = Command::new("sh")
                .args(["-c", &script])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("sh runs");
            children.push(Some(child));
        }
        let cluster = NatsCluster {
            children,
            ports,
            _dir: dir,
        };
        for port in &cluster.ports {
            for _ in 0..250 {
                if std::net::TcpStream::connect(("127.0.0.1", *port)).is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        // JetStream answers once the servers elected a meta leader.
        let client = async_nats::connect(cluster.url())
            .await
            .expect("cluster up");
        let js = async_nats::jetstream::new(client);
        for _ in 0..150 {
            let probe = async_nats::jetstream::stream::Config {
                name: "READY".into(),
                subjects: vec!["ready".into()],
                num_replicas: 3,
                ..Default::default()
            };
            if js.get_or_create_stream(probe).await.is_ok() {
                let _ = js.delete_stream("READY").await;
                return cluster;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the NATS cluster elected no JetStream leader");
    }

    /// The first server's URL: a client learns the others from it and fails over.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.ports[0])
    }

    /// Kill server `i` with SIGKILL (its data stays on disk).
    pub fn kill_9(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            let _ = Command::new("kill")
                .args(["-9", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill_9(i);
        }
    }
}
