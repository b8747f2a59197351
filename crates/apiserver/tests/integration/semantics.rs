//! Registry semantics seen through the API: concurrency, watch, deletion.

use crate::harness::{TestServer, raw};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}})).expect("configmap")
}

#[tokio::test]
async fn stale_resource_version_is_409_with_upstream_message() {
    let s = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let created = api.create(&PostParams::default(), &cm("c1")).await.expect("create");
    let mut newer = created.clone();
    newer.data = Some([("k".to_owned(), "v2".to_owned())].into());
    api.replace("c1", &PostParams::default(), &newer).await.expect("first update");
    let err = api.replace("c1", &PostParams::default(), &newer).await.expect_err("stale update");
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 409);
            assert_eq!(
                s.message,
                "Operation cannot be fulfilled on configmaps \"c1\": the object has been modified; please apply your changes to the latest version and try again"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn resource_versions_increase_and_list_pages() {
    let s = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let mut last = 0u64;
    for i in 0..7 {
        let c = api.create(&PostParams::default(), &cm(&format!("p{i}"))).await.expect("create");
        let rv: u64 = c.metadata.resource_version.as_deref().unwrap_or("0").parse().expect("numeric rv");
        assert!(rv > last);
        last = rv;
    }
    let mut names = Vec::new();
    let mut lp = ListParams::default().limit(3);
    loop {
        let page = api.list(&lp).await.expect("list");
        assert!(page.items.len() <= 3);
        names.extend(page.items.into_iter().filter_map(|c| c.metadata.name));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => lp = lp.continue_token(&c),
            None => break,
        }
    }
    assert_eq!(names, (0..7).map(|i| format!("p{i}")).collect::<Vec<_>>());
}

#[tokio::test]
async fn watch_resumes_from_resource_version_and_filters_by_label() {
    let s = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let first = api.create(&PostParams::default(), &cm("w0")).await.expect("create");
    let rv = first.metadata.resource_version.clone().expect("rv");
    let mut labelled = cm("w1");
    labelled.metadata.labels = Some([("pick".to_owned(), "me".to_owned())].into());
    api.create(&PostParams::default(), &labelled).await.expect("create labelled");
    api.create(&PostParams::default(), &cm("w2")).await.expect("create");
    // From rv: w1 and w2 are after it; the selector keeps w1 only.
    let mut stream = api.watch(&WatchParams::default().labels("pick=me").timeout(5), &rv).await.expect("watch").boxed();
    match tokio::time::timeout(std::time::Duration::from_secs(5), stream.try_next()).await {
        Ok(Ok(Some(WatchEvent::Added(c)))) => assert_eq!(c.metadata.name.as_deref(), Some("w1")),
        other => panic!("unexpected {other:?}"),
    }
    // A live change arrives too.
    api.patch("w1", &PatchParams::default(), &Patch::Merge(json!({"data": {"k": "x"}}))).await.expect("patch");
    match tokio::time::timeout(std::time::Duration::from_secs(5), stream.try_next()).await {
        Ok(Ok(Some(WatchEvent::Modified(c)))) => assert_eq!(c.data.and_then(|d| d.get("k").cloned()).as_deref(), Some("x")),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let s = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let mut c = cm("fin");
    c.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    api.create(&PostParams::default(), &c).await.expect("create");
    api.delete("fin", &DeleteParams::default()).await.expect("delete accepted");
    let held = api.get("fin").await.expect("still there");
    assert!(held.metadata.deletion_timestamp.is_some());
    api.patch("fin", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}}))).await.expect("remove finalizer");
    let gone = api.get_opt("fin").await.expect("get");
    assert!(gone.is_none(), "object should be deleted once its finalizers are gone");
}

#[tokio::test]
async fn dry_run_stores_nothing() {
    let s = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let out = api.create(&PostParams { dry_run: true, ..Default::default() }, &cm("dry")).await.expect("dry run create");
    assert_eq!(out.metadata.name.as_deref(), Some("dry"));
    assert!(api.get_opt("dry").await.expect("get").is_none());
}

#[tokio::test]
async fn namespace_lifecycle() {
    let s = TestServer::start().await;
    let cms: Api<ConfigMap> = Api::namespaced(s.client.clone(), "nope");
    match cms.create(&PostParams::default(), &cm("x")).await {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 404);
            assert_eq!(e.message, "namespaces \"nope\" not found");
        }
        other => panic!("unexpected {other:?}"),
    }
    let ns: Api<Namespace> = Api::all(s.client.clone());
    ns.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "team"}})).expect("ns")).await.expect("create ns");
    let cms: Api<ConfigMap> = Api::namespaced(s.client.clone(), "team");
    cms.create(&PostParams::default(), &cm("inside")).await.expect("create inside");
    ns.delete("team", &DeleteParams::default()).await.expect("delete ns");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while ns.get_opt("team").await.expect("get ns").is_some() {
        assert!(std::time::Instant::now() < deadline, "namespace was not finalized");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (code, _) = raw(&s.client, "GET", "/api/v1/namespaces/team/configmaps/inside", None, Vec::new()).await;
    assert_eq!(code, 404);
    match ns.delete("default", &DeleteParams::default()).await {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 403),
        other => panic!("deleting default must be forbidden: {other:?}"),
    }
}
