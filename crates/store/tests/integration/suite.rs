//! Behaviour every backend must share.

use bytes::Bytes;
use futures::StreamExt;
use portico_store::memory::MemoryStore;
use portico_store::sqlite::SqliteStore;
use portico_store::{EventKind, ListOptions, Store, StoreError};
use std::sync::Arc;
use std::time::Duration;

fn b(s: &str) -> Bytes {
    Bytes::from(s.to_owned())
}

/// Runs `check` against a memory store and a fresh SQLite store.
async fn each_backend<F, Fut>(check: F)
where
    F: Fn(Arc<dyn Store>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    check(Arc::new(MemoryStore::new())).await;
    let dir = tempfile::tempdir().expect("tempdir");
    check(Arc::new(SqliteStore::open(&dir.path().join("s.db")).expect("open"))).await;
}

#[tokio::test]
async fn crud_and_preconditions() {
    each_backend(|s| async move {
        let a = s.create("/r/a", b("1")).await.expect("create");
        assert_eq!(a.create_revision, a.mod_revision);
        assert!(matches!(s.create("/r/a", b("x")).await, Err(StoreError::AlreadyExists(_))));
        let a2 = s.update("/r/a", b("2"), Some(a.mod_revision)).await.expect("update");
        assert!(a2.mod_revision > a.mod_revision);
        assert_eq!(a2.create_revision, a.create_revision);
        assert!(matches!(s.update("/r/a", b("3"), Some(a.mod_revision)).await, Err(StoreError::Conflict { .. })));
        assert!(matches!(s.update("/r/missing", b("3"), None).await, Err(StoreError::NotFound(_))));
        assert_eq!(s.get("/r/a").await.expect("get").map(|kv| kv.value), Some(b("2")));
        assert!(matches!(s.delete("/r/a", Some(a.mod_revision)).await, Err(StoreError::Conflict { .. })));
        let d = s.delete("/r/a", Some(a2.mod_revision)).await.expect("delete");
        assert_eq!(d.value, b("2"));
        assert!(d.mod_revision > a2.mod_revision);
        assert!(s.get("/r/a").await.expect("get").is_none());
        assert_eq!(s.revision().await.expect("rev"), d.mod_revision);
    })
    .await;
}

#[tokio::test]
async fn prefixes_are_isolated_and_lists_paginate() {
    each_backend(|s| async move {
        for k in ["/r/svc/a", "/r/svc/b", "/r/svc/c", "/r/svcx/a", "/r/sv"] {
            s.create(k, b(k)).await.expect("create");
        }
        let all = s.list("/r/svc/", &ListOptions::default()).await.expect("list");
        let keys: Vec<&str> = all.items.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, ["/r/svc/a", "/r/svc/b", "/r/svc/c"]);
        assert!(!all.more);
        let p1 = s.list("/r/svc/", &ListOptions { limit: 2, start_after: None }).await.expect("page 1");
        assert_eq!(p1.items.len(), 2);
        assert!(p1.more);
        assert_eq!(p1.remaining, Some(1));
        let p2 = s.list("/r/svc/", &ListOptions { limit: 2, start_after: Some(p1.items[1].key.clone()) }).await.expect("page 2");
        assert_eq!(p2.items.iter().map(|kv| kv.key.as_str()).collect::<Vec<_>>(), ["/r/svc/c"]);
        assert!(!p2.more);
        assert_eq!(p1.revision, s.revision().await.expect("rev"));
    })
    .await;
}

#[tokio::test]
async fn watch_replays_history_then_goes_live() {
    each_backend(|s| async move {
        let first = s.create("/w/a", b("1")).await.expect("create");
        s.update("/w/a", b("2"), None).await.expect("update");
        s.create("/other/x", b("x")).await.expect("create other");
        let mut w = s.watch("/w/", first.mod_revision).await.expect("watch");
        let ev = w.next().await.expect("event").expect("ok");
        assert_eq!((ev.kind, ev.kv.value.clone(), ev.prev.clone()), (EventKind::Modified, b("2"), Some(b("1"))));
        let live = s.delete("/w/a", None).await.expect("delete");
        let ev = tokio::time::timeout(Duration::from_secs(2), w.next()).await.expect("in time").expect("event").expect("ok");
        assert_eq!((ev.kind, ev.kv.mod_revision, ev.kv.value), (EventKind::Deleted, live.mod_revision, b("2")));
        // From the current revision: only live events.
        let now = s.revision().await.expect("rev");
        let mut w2 = s.watch("/w/", now).await.expect("watch now");
        s.create("/w/b", b("b")).await.expect("create");
        let ev = tokio::time::timeout(Duration::from_secs(2), w2.next()).await.expect("in time").expect("event").expect("ok");
        assert_eq!((ev.kind, ev.kv.key.as_str()), (EventKind::Added, "/w/b"));
    })
    .await;
}

#[tokio::test]
async fn old_revisions_expire() {
    let s = MemoryStore::with_history(3);
    for i in 0..10 {
        s.create(&format!("/e/{i}"), b("v")).await.expect("create");
    }
    let oldest = s.oldest_watchable();
    assert!(oldest > 1);
    assert!(matches!(s.watch("/e/", 1).await.err(), Some(StoreError::Expired { requested: 1, .. })));
    assert!(s.watch("/e/", oldest).await.is_ok());
}

#[tokio::test]
async fn concurrent_writers_get_unique_increasing_revisions() {
    each_backend(|s| async move {
        let mut tasks = Vec::new();
        for t in 0..8 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let mut revs = Vec::new();
                for i in 0..20 {
                    revs.push(s.create(&format!("/c/{t}/{i}"), b("v")).await.expect("create").mod_revision);
                }
                revs
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            let revs = t.await.expect("join");
            assert!(revs.windows(2).all(|w| w[0] < w[1]));
            all.extend(revs);
        }
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "revisions must be unique");
    })
    .await;
}

#[tokio::test]
async fn sqlite_reopen_keeps_data_and_revision() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.db");
    let last = {
        let s = SqliteStore::open(&path).expect("open");
        s.create("/p/a", b("1")).await.expect("create");
        s.create("/p/b", b("2")).await.expect("create").mod_revision
    };
    let s = SqliteStore::open(&path).expect("reopen");
    assert_eq!(s.revision().await.expect("rev"), last);
    assert_eq!(s.list("/p/", &ListOptions::default()).await.expect("list").items.len(), 2);
    assert!(s.create("/p/c", b("3")).await.expect("create").mod_revision > last);
    // History restarts at the current revision.
    assert!(matches!(s.watch("/p/", 1).await.err(), Some(StoreError::Expired { .. })));
}
