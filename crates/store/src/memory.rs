//! An in-memory store for unit tests: a sorted map under one lock.

use crate::history::{DEFAULT_HISTORY, History};
use crate::{Event, EventKind, KeyValue, ListOptions, ListResult, Store, StoreError, WatchStream};
use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::ops::Bound;

struct State {
    objects: BTreeMap<String, KeyValue>,
    revision: u64,
}

/// A volatile store with the same semantics as the durable ones.
pub struct MemoryStore {
    state: Mutex<State>,
    history: History,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store at revision 1.
    pub fn new() -> Self {
        Self::with_history(DEFAULT_HISTORY)
    }

    /// An empty store keeping `capacity` events for resuming watches.
    pub fn with_history(capacity: usize) -> Self {
        Self { state: Mutex::new(State { objects: BTreeMap::new(), revision: 1 }), history: History::new(1, capacity) }
    }
}

fn check(key: &str, cur: &KeyValue, expected: Option<u64>) -> Result<(), StoreError> {
    match expected {
        Some(e) if e != cur.mod_revision => Err(StoreError::Conflict { key: key.to_owned(), expected: e, actual: cur.mod_revision }),
        _ => Ok(()),
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        Ok(self.state.lock().objects.get(key).cloned())
    }

    async fn list(&self, prefix: &str, opts: &ListOptions) -> Result<ListResult, StoreError> {
        let st = self.state.lock();
        let lower = match &opts.start_after {
            Some(k) if k.as_str() >= prefix => Bound::Excluded(k.clone()),
            _ => Bound::Included(prefix.to_owned()),
        };
        let mut matching = st.objects.range((lower, Bound::Unbounded)).take_while(|(k, _)| k.starts_with(prefix));
        let mut items = Vec::new();
        for (_, kv) in matching.by_ref() {
            if opts.limit > 0 && items.len() == opts.limit {
                let remaining = 1 + matching.count() as u64;
                return Ok(ListResult { items, revision: st.revision, more: true, remaining: Some(remaining) });
            }
            items.push(kv.clone());
        }
        Ok(ListResult { items, revision: st.revision, more: false, remaining: Some(0) })
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue, StoreError> {
        let mut st = self.state.lock();
        if st.objects.contains_key(key) {
            return Err(StoreError::AlreadyExists(key.to_owned()));
        }
        st.revision += 1;
        let kv = KeyValue { key: key.to_owned(), value, create_revision: st.revision, mod_revision: st.revision };
        st.objects.insert(key.to_owned(), kv.clone());
        self.history.publish(Event { kind: EventKind::Added, kv: kv.clone(), prev: None });
        Ok(kv)
    }

    async fn update(&self, key: &str, value: Bytes, expected_revision: Option<u64>) -> Result<KeyValue, StoreError> {
        let mut st = self.state.lock();
        let cur = st.objects.get(key).cloned().ok_or_else(|| StoreError::NotFound(key.to_owned()))?;
        check(key, &cur, expected_revision)?;
        st.revision += 1;
        let kv = KeyValue { key: key.to_owned(), value, create_revision: cur.create_revision, mod_revision: st.revision };
        st.objects.insert(key.to_owned(), kv.clone());
        self.history.publish(Event { kind: EventKind::Modified, kv: kv.clone(), prev: Some(cur.value) });
        Ok(kv)
    }

    async fn delete(&self, key: &str, expected_revision: Option<u64>) -> Result<KeyValue, StoreError> {
        let mut st = self.state.lock();
        let cur = st.objects.get(key).cloned().ok_or_else(|| StoreError::NotFound(key.to_owned()))?;
        check(key, &cur, expected_revision)?;
        st.revision += 1;
        st.objects.remove(key);
        let kv = KeyValue { mod_revision: st.revision, ..cur.clone() };
        self.history.publish(Event { kind: EventKind::Deleted, kv: kv.clone(), prev: Some(cur.value) });
        Ok(kv)
    }

    async fn watch(&self, prefix: &str, after_revision: u64) -> Result<WatchStream, StoreError> {
        self.history.watch(prefix, after_revision)
    }

    async fn revision(&self) -> Result<u64, StoreError> {
        Ok(self.state.lock().revision)
    }

    fn oldest_watchable(&self) -> u64 {
        self.history.oldest_watchable()
    }
}
