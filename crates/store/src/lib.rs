//! Portico's storage layer: a key-value store of API objects with one global
//! revision, optimistic concurrency and watch.
//!
//! Objects are opaque JSON bytes under keys such as
//! `/registry/core/services/default/web`; the store never interprets them.
//! Every write bumps one global revision, which the API server exposes as
//! `resourceVersion`. Watchers resume from a revision as long as it is still
//! in the bounded in-memory history; older revisions are `Expired` and the
//! client relists. Backends: [`sqlite::SqliteStore`] (durable, the default)
//! and [`memory::MemoryStore`] (tests). The [`Store`] trait is async so that
//! an etcd backend fits behind it without touching callers.

pub mod history;
pub mod memory;
pub mod sqlite;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use std::sync::Arc;

/// A stored object: its key, value and revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// Full key, e.g. `/registry/core/services/default/web`.
    pub key: String,
    /// The object's JSON bytes.
    pub value: Bytes,
    /// Revision at which the object was created.
    pub create_revision: u64,
    /// Revision of the last write to the object (its `resourceVersion`).
    pub mod_revision: u64,
}

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created.
    Added,
    /// The key was updated.
    Modified,
    /// The key was deleted; the event carries the last value, `mod_revision` = the delete's revision.
    Deleted,
}

/// One change, as delivered to watchers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// The object after the change (for deletes: the last value, with the delete's revision).
    pub kv: KeyValue,
    /// The value before the change, for updates and deletes.
    pub prev: Option<Bytes>,
}

/// Options for a list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Return at most this many items (0 = all).
    pub limit: usize,
    /// Return keys strictly greater than this one (pagination).
    pub start_after: Option<String>,
}

/// The result of a list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListResult {
    /// Items in key order.
    pub items: Vec<KeyValue>,
    /// The store revision the list was read at.
    pub revision: u64,
    /// Whether more items follow the last one returned.
    pub more: bool,
    /// How many items follow, when known.
    pub remaining: Option<u64>,
}

/// A stream of watch events in revision order. It ends with an error when
/// the watcher falls too far behind.
pub type WatchStream = BoxStream<'static, Result<Event, StoreError>>;

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The key does not exist.
    #[error("key not found: {0}")]
    NotFound(String),
    /// Create of an existing key.
    #[error("key already exists: {0}")]
    AlreadyExists(String),
    /// The object changed since the expected revision.
    #[error("revision conflict on {key}: expected {expected}, found {actual}")]
    Conflict {
        /// The key.
        key: String,
        /// The revision the caller expected.
        expected: u64,
        /// The revision in the store.
        actual: u64,
    },
    /// The requested revision is older than the history kept.
    #[error("too old resource version: {requested} ({oldest})")]
    Expired {
        /// Revision asked for.
        requested: u64,
        /// Oldest revision still available.
        oldest: u64,
    },
    /// The backend failed (IO, corruption, ...).
    #[error("storage backend error: {0}")]
    Backend(String),
}

/// A store of API objects. All writes are durable when they return.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Reads one key.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError>;

    /// Lists keys with the given prefix, in key order.
    async fn list(&self, prefix: &str, opts: &ListOptions) -> Result<ListResult, StoreError>;

    /// Creates a key; fails with `AlreadyExists` when present. Returns the new revision.
    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue, StoreError>;

    /// Replaces a key's value. With `expected_revision`, fails with `Conflict`
    /// unless the stored `mod_revision` equals it. Fails with `NotFound` when absent.
    async fn update(&self, key: &str, value: Bytes, expected_revision: Option<u64>) -> Result<KeyValue, StoreError>;

    /// Deletes a key, with the same precondition rule as `update`. Returns the
    /// last value with the delete's revision as `mod_revision`.
    async fn delete(&self, key: &str, expected_revision: Option<u64>) -> Result<KeyValue, StoreError>;

    /// Watches keys under `prefix` for changes with revision > `after_revision`.
    /// Fails with `Expired` when that part of the history is gone.
    async fn watch(&self, prefix: &str, after_revision: u64) -> Result<WatchStream, StoreError>;

    /// The current global revision.
    async fn revision(&self) -> Result<u64, StoreError>;

    /// The oldest revision a watch can still start after.
    fn oldest_watchable(&self) -> u64;
}

/// A shared store handle.
pub type SharedStore = Arc<dyn Store>;
