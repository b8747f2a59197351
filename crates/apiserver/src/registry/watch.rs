//! Watch: an initial snapshot (when asked) followed by store events,
//! filtered by selectors, with bookmarks.

use super::{ListParams, Registry, decode};
use crate::object;
use futures::StreamExt;
use futures::stream::BoxStream;
use portico_api::resources::ResourceDef;
use portico_api::status::ApiError;
use portico_store::{EventKind, StoreError};
use serde_json::{Value, json};
use std::time::Duration;

/// One event of a watch stream.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchEvent {
    /// `ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK` or `ERROR`.
    pub kind: &'static str,
    /// The object (a `Status` for `ERROR`).
    pub object: Value,
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchStart {
    /// Send the current state as `ADDED` events first (no or "0" resourceVersion).
    Snapshot,
    /// Only changes after this revision.
    After(u64),
}

/// Watch parameters.
#[derive(Debug, Clone)]
pub struct WatchParams {
    /// Selectors (pagination is ignored).
    pub list: ListParams,
    /// Where to start.
    pub start: WatchStart,
    /// Send `BOOKMARK` events.
    pub bookmarks: bool,
    /// Send the `initial-events-end` bookmark after the snapshot (`sendInitialEvents=true`).
    pub initial_events_end: bool,
    /// How often to send bookmarks.
    pub bookmark_every: Duration,
}

fn bookmark(def: &ResourceDef, rv: u64, initial_end: bool) -> WatchEvent {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    WatchEvent { kind: "BOOKMARK", object: json!({"kind": def.kind, "apiVersion": def.api_version(), "metadata": meta}) }
}

fn error_event(e: &ApiError) -> WatchEvent {
    WatchEvent { kind: "ERROR", object: e.to_status() }
}

impl Registry {
    /// Starts a watch; errors that happen later arrive as `ERROR` events.
    pub async fn watch(&self, def: &'static ResourceDef, namespace: Option<&str>, params: WatchParams) -> Result<BoxStream<'static, WatchEvent>, ApiError> {
        let mut initial = Vec::new();
        let after = match params.start {
            WatchStart::After(rv) => rv,
            WatchStart::Snapshot => {
                let mut all = params.list.clone();
                all.limit = 0;
                all.continue_key = None;
                let listed = self.list(def, namespace, &all).await?;
                initial.extend(listed.items.into_iter().map(|o| WatchEvent { kind: "ADDED", object: o }));
                if params.initial_events_end {
                    initial.push(bookmark(def, listed.revision, true));
                }
                listed.revision
            }
        };
        let prefix = Self::collection_prefix(def, namespace);
        let events = match self.store.watch(&prefix, after).await {
            Ok(s) => s,
            Err(StoreError::Expired { requested, oldest }) => {
                let e = ApiError::expired(format!("too old resource version: {requested} ({oldest})"));
                return Ok(futures::stream::iter(vec![error_event(&e)]).boxed());
            }
            Err(e) => return Err(super::store_error(e)),
        };
        let filter = params.list.clone();
        let changes = events.filter_map(move |ev| {
            let filter = filter.clone();
            async move {
                let ev = match ev {
                    Ok(ev) => ev,
                    Err(e) => return Some(error_event(&super::store_error(e))),
                };
                let obj = match decode(&ev.kv) {
                    Ok(o) => o,
                    Err(e) => return Some(error_event(&e)),
                };
                let now = filter.matches(def, &obj);
                let before = ev
                    .prev
                    .as_ref()
                    .and_then(|p| serde_json::from_slice::<Value>(p).ok())
                    .is_some_and(|mut p| {
                        object::set_meta(&mut p, "resourceVersion", json!(ev.kv.mod_revision.to_string()));
                        filter.matches(def, &p)
                    });
                // Objects entering or leaving the selection appear as ADDED or DELETED.
                let kind = match (ev.kind, before, now) {
                    (EventKind::Added, _, true) => "ADDED",
                    (EventKind::Modified, true, true) => "MODIFIED",
                    (EventKind::Modified, false, true) => "ADDED",
                    (EventKind::Modified, true, false) => "DELETED",
                    (EventKind::Deleted, _, true) => "DELETED",
                    _ => return None,
                };
                Some(WatchEvent { kind, object: obj })
            }
        });
        let head = futures::stream::iter(initial);
        if !params.bookmarks {
            return Ok(head.chain(changes).boxed());
        }
        // Bookmarks carry the revision of the last event this watcher has seen.
        let ticks = tokio_stream::wrappers::IntervalStream::new(tokio::time::interval_at(
            tokio::time::Instant::now() + params.bookmark_every,
            params.bookmark_every,
        ))
        .map(|_| None);
        let merged = futures::stream::select(changes.map(Some), ticks);
        let mut last = after;
        let with_bookmarks = merged.filter_map(move |item| {
            let out = match item {
                Some(ev) => {
                    if let Ok(Some(rv)) = object::resource_version(&ev.object) {
                        last = last.max(rv);
                    }
                    Some(ev)
                }
                None => Some(bookmark(def, last, false)),
            };
            futures::future::ready(out)
        });
        Ok(head.chain(with_bookmarks).boxed())
    }
}
