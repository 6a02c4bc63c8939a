//! Scenario `candidates`: the storage engines considered for the embedded log,
//! measured with the same workload and the same group commit, in-process: 32
//! writers appending 100-event requests (~520 B per event), each answered only
//! after the fsync of the group that holds it. The engines:
//! - `sqlite-row-per-event`: one SQLite row per event (what per-event layouts pay);
//! - `sqlite-row-per-request`: one SQLite row per request (the layout chosen);
//! - `redb-row-per-request`: the same in redb, an embedded B-tree engine;
//! - `file-append`: plain appends to one file and one fdatasync per group (a floor).
//!
//! It measures the engines alone (no dedup, routing or cursors); the `log`
//! scenario measures the embedded store itself on the same workload.

use std::io::Write as _;
use std::path::Path;
use std::sync::{mpsc, Arc};
use std::time::Instant;

use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::Scale;

const WRITERS: usize = 32;
const PER_REQUEST: usize = 100;

/// One engine: durably write a group of requests (each a list of events).
trait Engine: Send + 'static {
    fn write_group(&mut self, group: &[Vec<String>]) -> anyhow::Result<()>;
}

struct SqlitePerEvent(rusqlite::Connection);
struct SqlitePerRequest(rusqlite::Connection);
/// The database, and the key of the next row.
struct Redb(redb::Database, u64);
struct FileAppend(std::fs::File);

const REDB_LOG: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("log");

fn sqlite(dir: &Path, schema: &str) -> anyhow::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(dir.join("c.sqlite3"))?;
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")?;
    conn.execute_batch(schema)?;
    Ok(conn)
}

impl Engine for SqlitePerEvent {
    fn write_group(&mut self, group: &[Vec<String>]) -> anyhow::Result<()> {
        let tx = self.0.transaction()?;
        {
            let mut insert = tx.prepare_cached("INSERT INTO events (body) VALUES (?1)")?;
            for e in group.iter().flatten() {
                insert.execute([e])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

impl Engine for SqlitePerRequest {
    fn write_group(&mut self, group: &[Vec<String>]) -> anyhow::Result<()> {
        let tx = self.0.transaction()?;
        {
            let mut insert = tx.prepare_cached("INSERT INTO chunks (body) VALUES (?1)")?;
            for r in group {
                insert.execute([encode(r)])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

impl Engine for Redb {
    fn write_group(&mut self, group: &[Vec<String>]) -> anyhow::Result<()> {
        let tx = self.0.begin_write()?;
        {
            let mut table = tx.open_table(REDB_LOG)?;
            for r in group {
                table.insert(self.1, encode(r).as_slice())?;
                self.1 += 1;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

impl Engine for FileAppend {
    fn write_group(&mut self, group: &[Vec<String>]) -> anyhow::Result<()> {
        for r in group {
            self.0.write_all(&encode(r))?;
        }
        self.0.sync_data()?;
        Ok(())
    }
}

fn encode(events: &[String]) -> Vec<u8> {
    let mut out = Vec::with_capacity(events.iter().map(|e| e.len() + 4).sum());
    for e in events {
        out.extend_from_slice(&(e.len() as u32).to_le_bytes());
        out.extend_from_slice(e.as_bytes());
    }
    out
}

type Pending = (Vec<String>, oneshot::Sender<()>);

/// Events/s of `engine` under the workload, and its bytes on disk per event.
async fn measure(engine: impl Engine, dir: &Path, total: usize) -> anyhow::Result<(f64, f64)> {
    let (tx, rx) = mpsc::channel::<Pending>();
    let writer = std::thread::spawn(move || {
        let mut engine = engine;
        while let Ok(first) = rx.recv() {
            let mut group = vec![first];
            while let Ok(more) = rx.try_recv() {
                group.push(more);
            }
            let (requests, replies): (Vec<_>, Vec<_>) = group.into_iter().unzip();
            engine.write_group(&requests).expect("write");
            for r in replies {
                let _ = r.send(());
            }
        }
    });
    let events = Arc::new(crate::events::normalised(PER_REQUEST));
    let per_writer = total / WRITERS / PER_REQUEST;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let (tx, events) = (tx.clone(), events.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_writer {
                let (done, wait) = oneshot::channel();
                tx.send((events.to_vec(), done)).expect("writer up");
                wait.await.expect("written");
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let secs = start.elapsed().as_secs_f64();
    drop(tx);
    writer.join().expect("writer");
    let n = (per_writer * WRITERS * PER_REQUEST) as f64;
    let bytes: u64 = std::fs::read_dir(dir)?
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    Ok((n / secs, bytes as f64 / n))
}

pub async fn run(scale: Scale) -> anyhow::Result<Value> {
    let total = if scale.quick { 200_000 } else { 1_000_000 };
    let mut rows = Vec::new();
    for name in [
        "sqlite-row-per-event",
        "sqlite-row-per-request",
        "redb-row-per-request",
        "file-append",
    ] {
        let dir = tempfile::tempdir()?;
        let p = dir.path();
        let (eps, bytes) = match name {
            "sqlite-row-per-event" => {
                let c = sqlite(
                    p,
                    "CREATE TABLE events (seq INTEGER PRIMARY KEY, body TEXT NOT NULL)",
                )?;
                measure(SqlitePerEvent(c), p, total).await?
            }
            "sqlite-row-per-request" => {
                let c = sqlite(
                    p,
                    "CREATE TABLE chunks (first INTEGER PRIMARY KEY, body BLOB NOT NULL)",
                )?;
                measure(SqlitePerRequest(c), p, total).await?
            }
            "redb-row-per-request" => {
                measure(Redb(redb::Database::create(p.join("c.redb"))?, 0), p, total).await?
            }
            _ => {
                let f = std::fs::File::create(p.join("log"))?;
                measure(FileAppend(f), p, total).await?
            }
        };
        println!("candidates: {name:<24} {eps:>9.0} events/s  {bytes:>5.0} B/event on disk");
        rows.push(json!({
            "engine": name,
            "events_per_s": eps.round(),
            "bytes_per_event_on_disk": bytes.round(),
        }));
    }
    Ok(json!({
        "setup": format!("in-process, {WRITERS} writers, {PER_REQUEST}-event requests (~520 B per event), one fsync per group commit, {total} events per engine"),
        "engines": rows,
    }))
}
