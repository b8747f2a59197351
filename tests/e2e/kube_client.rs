//! kube-rs, a client nobody here wrote, lists, watches and patches every
//! resource Portico serves, and its watcher survives a server restart.

use crate::harness::Cluster;
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use std::time::Duration;

/// A minimal valid object of each kind.
fn sample(kind: &str) -> Value {
    let pod_spec = json!({"containers": [{"name": "c", "image": "busybox"}]});
    let template = json!({"metadata": {"labels": {"app": "k"}}, "spec": pod_spec});
    match kind {
        "Service" => json!({"spec": {"ports": [{"port": 80}]}}),
        "Pod" => json!({"spec": pod_spec}),
        "Deployment" | "ReplicaSet" => json!({"spec": {"replicas": 1, "selector": {"matchLabels": {"app": "k"}}, "template": template}}),
        "Endpoints" => json!({"subsets": [{"addresses": [{"ip": "10.244.0.5"}], "ports": [{"port": 80}]}]}),
        "EndpointSlice" => json!({"addressType": "IPv4", "endpoints": [{"addresses": ["10.244.0.5"]}], "ports": [{"port": 80}]}),
        "Event" => json!({"involvedObject": {"kind": "Service", "name": "k", "namespace": "default"}, "reason": "Test", "message": "hello", "type": "Normal"}),
        "ConfigMap" => json!({"data": {"a": "b"}}),
        "Secret" => json!({"stringData": {"a": "b"}}),
        "Lease" => json!({"spec": {"holderIdentity": "me"}}),
        "Ingress" => json!({"spec": {"defaultBackend": {"service": {"name": "k", "port": {"number": 80}}}}}),
        "IngressClass" => json!({"spec": {"controller": "portico.dev/ingress"}}),
        _ => json!({}),
    }
}

async fn client(c: &Cluster) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(c.kubeconfig()).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.expect("config");
    kube::Client::try_from(config).expect("client")
}

#[test]
fn list_watch_patch_every_resource() {
    let c = Cluster::start_on_host();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let client = client(&c).await;
        for def in portico_api::resources::CATALOGUE {
            let ar = ApiResource {
                group: def.group.into(),
                version: def.version.into(),
                api_version: def.api_version(),
                kind: def.kind.into(),
                plural: def.plural.into(),
            };
            let api: Api<DynamicObject> =
                if def.namespaced { Api::namespaced_with(client.clone(), "default", &ar) } else { Api::all_with(client.clone(), &ar) };
            let name = "kube-rs-check";
            let mut body = sample(def.kind);
            body["apiVersion"] = json!(def.api_version());
            body["kind"] = json!(def.kind);
            body["metadata"] = json!({"name": name});
            let obj: DynamicObject = serde_json::from_value(body).expect("object");
            let list = api.list(&ListParams::default()).await.unwrap_or_else(|e| panic!("list {}: {e}", def.plural));
            let rv = list.metadata.resource_version.clone().unwrap_or_default();
            let mut events = api.watch(&WatchParams::default().timeout(10), &rv).await.expect("watch").boxed();
            api.create(&PostParams::default(), &obj).await.unwrap_or_else(|e| panic!("create {}: {e}", def.plural));
            // Controllers may add objects of the same kind meanwhile (a Deployment's
            // ReplicaSet): wait for ours.
            loop {
                match tokio::time::timeout(Duration::from_secs(5), events.try_next()).await {
                    Ok(Ok(Some(WatchEvent::Added(o)))) if o.metadata.name.as_deref() == Some(name) => break,
                    Ok(Ok(Some(WatchEvent::Added(_) | WatchEvent::Modified(_) | WatchEvent::Bookmark(_)))) => {}
                    other => panic!("watch {}: {other:?}", def.plural),
                }
            }
            let patched = api
                .patch(name, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"checked": "yes"}}})))
                .await
                .unwrap_or_else(|e| panic!("patch {}: {e}", def.plural));
            assert_eq!(patched.metadata.labels.and_then(|l| l.get("checked").cloned()).as_deref(), Some("yes"), "{}", def.plural);
            let listed = api.list(&ListParams::default().labels("checked=yes")).await.expect("list by label");
            // Controllers may copy the label (slices carry their Service's labels).
            assert!(listed.items.iter().any(|o| o.metadata.name.as_deref() == Some(name)), "{}", def.plural);
        }
    });
}

#[test]
fn watcher_recovers_after_server_restart() {
    let mut c = Cluster::start_on_host();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let client = rt.block_on(client(&c));
    let api: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client, "default");
    let cm = |name: &str| serde_json::from_value::<k8s_openapi::api::core::v1::ConfigMap>(json!({"metadata": {"name": name}})).expect("cm");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let api2 = api.clone();
    rt.spawn(async move {
        let mut stream = watcher(api2, watcher::Config::default()).default_backoff().applied_objects().boxed();
        while let Some(item) = stream.next().await {
            if let Ok(o) = item {
                let _ = tx.send(o.metadata.name.unwrap_or_default());
            }
        }
    });
    rt.block_on(api.create(&PostParams::default(), &cm("before"))).expect("create before");
    let wait_for = |want: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if let Ok(n) = rx.recv_timeout(Duration::from_millis(200))
                && n == want {
                    return true;
                }
        }
        false
    };
    assert!(wait_for("before"));
    c.restart();
    rt.block_on(api.create(&PostParams::default(), &cm("after"))).expect("create after restart");
    assert!(wait_for("after"), "the watcher did not see an object created after the restart");
}
