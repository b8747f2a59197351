//! Watch fan-out and the bounded history of recent changes shared by the backends.
//!
//! Backends call [`History::publish`] while still holding their write lock,
//! so events enter the history in revision order. A watch takes the retained
//! backlog and subscribes to live events under the same lock, so no event is
//! missed or delivered twice.

use crate::{Event, StoreError, WatchStream};
use futures::StreamExt;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

/// Events kept for watches that resume from an older revision.
pub const DEFAULT_HISTORY: usize = 10_000;
/// Events a watcher may fall behind the writers before it is cut off (and relists).
pub const LIVE_BUFFER: usize = 16_384;

struct Inner {
    events: VecDeque<Arc<Event>>,
    /// Watches must start after a revision >= this.
    oldest_watchable: u64,
    /// The newest revision published (or the store revision at start).
    current: u64,
}

/// Recent events plus a live broadcast.
pub struct History {
    inner: Mutex<Inner>,
    capacity: usize,
    tx: broadcast::Sender<Arc<Event>>,
}

impl History {
    /// A history starting at `current` (nothing older is watchable).
    pub fn new(current: u64, capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(LIVE_BUFFER);
        Self { inner: Mutex::new(Inner { events: VecDeque::new(), oldest_watchable: current, current }), capacity: capacity.max(1), tx }
    }

    /// Records a committed change; call in revision order.
    pub fn publish(&self, event: Event) {
        let event = Arc::new(event);
        let mut inner = self.inner.lock();
        inner.current = event.kv.mod_revision;
        inner.events.push_back(event.clone());
        while inner.events.len() > self.capacity {
            if let Some(dropped) = inner.events.pop_front() {
                inner.oldest_watchable = dropped.kv.mod_revision;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(event);
    }

    /// The oldest revision a watch may start after.
    pub fn oldest_watchable(&self) -> u64 {
        self.inner.lock().oldest_watchable
    }

    /// Events under `prefix` with revision > `after`: the retained backlog, then live ones.
    pub fn watch(&self, prefix: &str, after: u64) -> Result<WatchStream, StoreError> {
        let inner = self.inner.lock();
        if after < inner.oldest_watchable {
            return Err(StoreError::Expired { requested: after, oldest: inner.oldest_watchable });
        }
        let backlog: Vec<Result<Event, StoreError>> = inner
            .events
            .iter()
            .filter(|e| e.kv.mod_revision > after && e.kv.key.starts_with(prefix))
            .map(|e| Ok(Event::clone(e)))
            .collect();
        let rx = self.tx.subscribe();
        let last = inner.current.max(after);
        drop(inner);
        let prefix = prefix.to_owned();
        let live = BroadcastStream::new(rx)
            .scan(false, move |failed, item| {
                // After a lag the stream ends with one Expired error.
                if *failed {
                    return futures::future::ready(None);
                }
                let out = match item {
                    Ok(e) => Some(Ok(e)),
                    Err(BroadcastStreamRecvError::Lagged(n)) => {
                        *failed = true;
                        Some(Err(StoreError::Expired { requested: last, oldest: last + n }))
                    }
                };
                futures::future::ready(Some(out))
            })
            .filter_map(move |item| {
                let keep = match item {
                    Some(Ok(e)) if e.kv.mod_revision > last && e.kv.key.starts_with(&prefix) => Some(Ok(Event::clone(&e))),
                    Some(Ok(_)) | None => None,
                    Some(Err(err)) => Some(Err(err)),
                };
                futures::future::ready(keep)
            });
        Ok(futures::stream::iter(backlog).chain(live).boxed())
    }
}
