//! The durable default backend: one SQLite file in WAL mode with
//! `synchronous=FULL`, so a write is on disk before it is acknowledged.
//!
//! One writer thread owns the write connection. Writes queue up for it and
//! are group-committed: whatever is queued when a transaction starts goes
//! into it (each write checks its own preconditions first and takes the next
//! revision), then one fsync'd commit acknowledges them all. Under light load
//! a batch is a single write. Reads use a small pool of reader connections,
//! which WAL lets run alongside the writer.

use crate::history::{DEFAULT_HISTORY, History};
use crate::{Event, EventKind, KeyValue, ListOptions, ListResult, Store, StoreError, WatchStream};
use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Reader connections kept open.
const MAX_IDLE_READERS: usize = 8;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS objects (
    key TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL,
    create_rev INTEGER NOT NULL,
    mod_rev INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY NOT NULL,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (name, value) VALUES ('revision', 1);
";

/// Writes taken into one transaction at most.
const MAX_BATCH: usize = 256;

type WriteFn = Box<dyn FnOnce(&rusqlite::Transaction<'_>, u64) -> Result<Event, StoreError> + Send>;

struct WriteRequest {
    apply: WriteFn,
    reply: tokio::sync::oneshot::Sender<Result<KeyValue, StoreError>>,
}

struct Inner {
    path: PathBuf,
    writes: std::sync::mpsc::Sender<WriteRequest>,
    readers: Mutex<Vec<Connection>>,
    history: Arc<History>,
}

/// The SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(backend)?;
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF; PRAGMA busy_timeout=10000;")
        .map_err(backend)?;
    Ok(conn)
}

/// The smallest string greater than every string starting with `prefix`.
pub fn prefix_end(prefix: &str) -> Option<String> {
    let mut bytes = prefix.as_bytes().to_vec();
    while let Some(last) = bytes.pop() {
        if last < 0xff {
            bytes.push(last + 1);
            return String::from_utf8(bytes).ok();
        }
    }
    None
}

fn read_kv(row: &rusqlite::Row<'_>) -> rusqlite::Result<KeyValue> {
    let value: Vec<u8> = row.get(1)?;
    Ok(KeyValue {
        key: row.get(0)?,
        value: Bytes::from(value),
        create_revision: row.get::<_, i64>(2)? as u64,
        mod_revision: row.get::<_, i64>(3)? as u64,
    })
}

fn current_revision(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row("SELECT value FROM meta WHERE name = 'revision'", [], |r| r.get::<_, i64>(0)).map(|v| v as u64)
}

impl SqliteStore {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with_history(path, DEFAULT_HISTORY)
    }

    /// Opens with a given watch history size.
    pub fn open_with_history(path: &Path, history: usize) -> Result<Self, StoreError> {
        let writer = open_connection(path)?;
        writer.execute_batch(SCHEMA).map_err(backend)?;
        let revision = current_revision(&writer).map_err(backend)?;
        let history = Arc::new(History::new(revision, history));
        let (writes, queue) = std::sync::mpsc::channel::<WriteRequest>();
        let hist = history.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(writer, queue, &hist))
            .map_err(backend)?;
        Ok(Self { inner: Arc::new(Inner { path: path.to_owned(), writes, readers: Mutex::new(Vec::new()), history }) })
    }

    async fn read<T: Send + 'static>(&self, f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let conn = inner.readers.lock().pop();
            let mut conn = match conn {
                Some(c) => c,
                None => open_connection(&inner.path)?,
            };
            let out = f(&mut conn);
            let mut pool = inner.readers.lock();
            if pool.len() < MAX_IDLE_READERS {
                pool.push(conn);
            }
            out
        })
        .await
        .map_err(backend)?
    }

    /// Queues one write for the writer thread; `f` checks preconditions
    /// before changing anything and returns the event to publish.
    async fn write(&self, f: impl FnOnce(&rusqlite::Transaction<'_>, u64) -> Result<Event, StoreError> + Send + 'static) -> Result<KeyValue, StoreError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.inner.writes.send(WriteRequest { apply: Box::new(f), reply }).map_err(|_| StoreError::Backend("the SQLite writer has stopped".into()))?;
        rx.await.map_err(|_| StoreError::Backend("the SQLite writer dropped a write".into()))?
    }
}

/// The writer thread: batches queued writes into one transaction each.
fn writer_loop(mut conn: Connection, queue: std::sync::mpsc::Receiver<WriteRequest>, history: &History) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let outcome = (|| -> Result<Vec<Result<Event, StoreError>>, StoreError> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
            let mut revision = current_revision(&tx).map_err(backend)?;
            let mut results = Vec::with_capacity(batch.len());
            for req in batch.iter_mut() {
                let apply = std::mem::replace(&mut req.apply, Box::new(|_, _| Err(StoreError::Backend("write already applied".into()))));
                let r = apply(&tx, revision + 1);
                if r.is_ok() {
                    revision += 1;
                }
                results.push(r);
            }
            tx.execute("UPDATE meta SET value = ?1 WHERE name = 'revision'", params![revision as i64]).map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(results)
        })();
        match outcome {
            Ok(results) => {
                for (req, r) in batch.into_iter().zip(results) {
                    let reply = r.map(|event| {
                        let kv = event.kv.clone();
                        // Published in commit order, before anyone is told.
                        history.publish(event);
                        kv
                    });
                    let _ = req.reply.send(reply);
                }
            }
            Err(e) => {
                for req in batch {
                    let _ = req.reply.send(Err(StoreError::Backend(e.to_string())));
                }
            }
        }
    }
}

fn get_in(conn: &Connection, key: &str) -> Result<Option<KeyValue>, StoreError> {
    conn.prepare_cached("SELECT key, value, create_rev, mod_rev FROM objects WHERE key = ?1")
        .map_err(backend)?
        .query_row(params![key], read_kv)
        .optional()
        .map_err(backend)
}

fn precondition(key: &str, cur: &KeyValue, expected: Option<u64>) -> Result<(), StoreError> {
    match expected {
        Some(e) if e != cur.mod_revision => Err(StoreError::Conflict { key: key.to_owned(), expected: e, actual: cur.mod_revision }),
        _ => Ok(()),
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let key = key.to_owned();
        self.read(move |c| get_in(c, &key)).await
    }

    async fn list(&self, prefix: &str, opts: &ListOptions) -> Result<ListResult, StoreError> {
        let prefix = prefix.to_owned();
        let opts = opts.clone();
        self.read(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            let revision = current_revision(&tx).map_err(backend)?;
            let lower = match &opts.start_after {
                Some(k) if *k >= prefix => k.clone(),
                _ => String::new(),
            };
            let upper = prefix_end(&prefix).unwrap_or_else(|| "\u{10ffff}".repeat(2));
            let limit: i64 = if opts.limit == 0 { -1 } else { opts.limit as i64 + 1 };
            let mut items = {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT key, value, create_rev, mod_rev FROM objects
                         WHERE key >= ?1 AND key < ?2 AND key > ?3 ORDER BY key LIMIT ?4",
                    )
                    .map_err(backend)?;
                let rows = stmt.query_map(params![prefix, upper, lower, limit], read_kv).map_err(backend)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(backend)?
            };
            let more = opts.limit > 0 && items.len() > opts.limit;
            let remaining = if more {
                items.truncate(opts.limit);
                let last = items.last().map(|kv| kv.key.clone()).unwrap_or_default();
                let n: i64 = tx
                    .prepare_cached("SELECT COUNT(*) FROM objects WHERE key > ?1 AND key < ?2")
                    .map_err(backend)?
                    .query_row(params![last, upper], |r| r.get(0))
                    .map_err(backend)?;
                Some(n as u64)
            } else {
                Some(0)
            };
            tx.commit().map_err(backend)?;
            Ok(ListResult { items, revision, more, remaining })
        })
        .await
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue, StoreError> {
        let key = key.to_owned();
        self.write(move |tx, rev| {
            if get_in(tx, &key)?.is_some() {
                return Err(StoreError::AlreadyExists(key));
            }
            tx.prepare_cached("INSERT INTO objects (key, value, create_rev, mod_rev) VALUES (?1, ?2, ?3, ?3)")
                .map_err(backend)?
                .execute(params![key, value.as_ref(), rev as i64])
                .map_err(backend)?;
            Ok(Event { kind: EventKind::Added, kv: KeyValue { key, value, create_revision: rev, mod_revision: rev }, prev: None })
        })
        .await
    }

    async fn update(&self, key: &str, value: Bytes, expected_revision: Option<u64>) -> Result<KeyValue, StoreError> {
        let key = key.to_owned();
        self.write(move |tx, rev| {
            let cur = get_in(tx, &key)?.ok_or_else(|| StoreError::NotFound(key.clone()))?;
            precondition(&key, &cur, expected_revision)?;
            tx.prepare_cached("UPDATE objects SET value = ?2, mod_rev = ?3 WHERE key = ?1")
                .map_err(backend)?
                .execute(params![key, value.as_ref(), rev as i64])
                .map_err(backend)?;
            Ok(Event {
                kind: EventKind::Modified,
                kv: KeyValue { key, value, create_revision: cur.create_revision, mod_revision: rev },
                prev: Some(cur.value),
            })
        })
        .await
    }

    async fn delete(&self, key: &str, expected_revision: Option<u64>) -> Result<KeyValue, StoreError> {
        let key = key.to_owned();
        self.write(move |tx, rev| {
            let cur = get_in(tx, &key)?.ok_or_else(|| StoreError::NotFound(key.clone()))?;
            precondition(&key, &cur, expected_revision)?;
            tx.prepare_cached("DELETE FROM objects WHERE key = ?1").map_err(backend)?.execute(params![key]).map_err(backend)?;
            let prev = cur.value.clone();
            Ok(Event { kind: EventKind::Deleted, kv: KeyValue { mod_revision: rev, ..cur }, prev: Some(prev) })
        })
        .await
    }

    async fn watch(&self, prefix: &str, after_revision: u64) -> Result<WatchStream, StoreError> {
        self.inner.history.watch(prefix, after_revision)
    }

    async fn revision(&self) -> Result<u64, StoreError> {
        self.read(|c| current_revision(c).map_err(backend)).await
    }

    fn oldest_watchable(&self) -> u64 {
        self.inner.history.oldest_watchable()
    }
}
