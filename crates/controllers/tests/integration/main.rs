//! Controllers against a real, in-process API server. Pod status is set by
//! the tests (no node agent runs here).

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Env {
    client: kube::Client,
    _server: portico_apiserver::Running,
    _dir: tempfile::TempDir,
}

async fn env() -> Env {
    env_with(Default::default()).await
}

async fn env_with(controllers: portico_controllers::Config) -> Env {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = portico_apiserver::Config { data_dir: dir.path().to_owned(), bind: "127.0.0.1:0".parse().expect("addr"), ..Default::default() };
    let server = portico_apiserver::start(cfg, Arc::new(portico_store::memory::MemoryStore::new())).await.expect("server");
    let kc = kube::config::Kubeconfig::read_from(&server.kubeconfig).expect("kubeconfig");
    let client = kube::Client::try_from(kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.expect("config")).expect("client");
    tokio::spawn(portico_controllers::run(client.clone(), controllers));
    Env { client, _server: server, _dir: dir }
}

async fn pod(c: &kube::Client, name: &str, ip: &str, ready: bool, ports: serde_json::Value) {
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    let p: Pod = serde_json::from_value(json!({"metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x", "ports": ports}]}})).expect("pod");
    pods.create(&PostParams::default(), &p).await.expect("create pod");
    set_ready(c, name, ip, ready).await;
}

async fn set_ready(c: &kube::Client, name: &str, ip: &str, ready: bool) {
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    let status = json!({"status": {"phase": "Running", "podIP": ip, "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(status)).await.expect("status");
}

async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what} did not happen within {limit:?}");
}

fn addresses(ep: &Endpoints) -> (Vec<String>, Vec<String>, Vec<i32>) {
    let subsets = ep.subsets.clone().unwrap_or_default();
    let ready = subsets.iter().flat_map(|s| s.addresses.iter().flatten()).map(|a| a.ip.clone()).collect();
    let not_ready = subsets.iter().flat_map(|s| s.not_ready_addresses.iter().flatten()).map(|a| a.ip.clone()).collect();
    let ports = subsets.iter().flat_map(|s| s.ports.iter().flatten()).map(|p| p.port).collect();
    (ready, not_ready, ports)
}

#[tokio::test]
async fn endpoints_and_slices_follow_pod_readiness() {
    let e = env().await;
    let svcs: Api<Service> = Api::namespaced(e.client.clone(), "default");
    let svc: Service = serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"},
        "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})).expect("svc");
    svcs.create(&PostParams::default(), &svc).await.expect("svc");
    pod(&e.client, "a", "10.244.0.2", true, json!([{"name": "http", "containerPort": 8080}])).await;
    pod(&e.client, "b", "10.244.0.3", true, json!([{"name": "http", "containerPort": 8080}])).await;
    pod(&e.client, "no-port", "10.244.0.4", true, json!([])).await;
    let eps: Api<Endpoints> = Api::namespaced(e.client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(e.client.clone(), "default");
    eventually("both ready pods in Endpoints", Duration::from_secs(10), || async {
        eps.get_opt("web").await.ok().flatten().is_some_and(|ep| addresses(&ep) == (vec!["10.244.0.2".into(), "10.244.0.3".into()], vec![], vec![8080]))
    })
    .await;
    // A pod turning unready moves within a second.
    set_ready(&e.client, "b", "10.244.0.3", false).await;
    let took = eventually("unready pod moves to notReadyAddresses", Duration::from_secs(1), || async {
        eps.get_opt("web").await.ok().flatten().is_some_and(|ep| addresses(&ep).1 == vec!["10.244.0.3".to_owned()])
    })
    .await;
    eprintln!("readiness change reflected in {took:?}");
    eventually("slice condition ready=false", Duration::from_secs(1), || async {
        slices.list(&ListParams::default().labels("kubernetes.io/service-name=web")).await.is_ok_and(|l| {
            l.items.len() == 1
                && l.items[0].endpoints.iter().any(|ep| ep.addresses == ["10.244.0.3"] && ep.conditions.as_ref().and_then(|c| c.ready) == Some(false))
        })
    })
    .await;
    // Deleting a pod removes it; deleting the Service removes its Endpoints and slices.
    Api::<Pod>::namespaced(e.client.clone(), "default").delete("a", &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await.expect("delete pod");
    eventually("deleted pod leaves Endpoints", Duration::from_secs(2), || async {
        eps.get_opt("web").await.ok().flatten().is_some_and(|ep| addresses(&ep).0.is_empty())
    })
    .await;
    svcs.delete("web", &DeleteParams::default()).await.expect("delete svc");
    eventually("Endpoints and slices removed with the Service", Duration::from_secs(5), || async {
        eps.get_opt("web").await.ok().flatten().is_none()
            && slices.list(&ListParams::default().labels("kubernetes.io/service-name=web")).await.is_ok_and(|l| l.items.is_empty())
    })
    .await;
}

#[tokio::test]
async fn multi_port_and_publish_not_ready_services() {
    let e = env().await;
    let svcs: Api<Service> = Api::namespaced(e.client.clone(), "default");
    let multi: Service = serde_json::from_value(json!({"metadata": {"name": "multi"}, "spec": {"selector": {"app": "web"},
        "ports": [{"name": "http", "port": 80, "targetPort": "http"}, {"name": "metrics", "port": 9090, "targetPort": 9100}]}})).expect("svc");
    svcs.create(&PostParams::default(), &multi).await.expect("svc");
    let pnr: Service = serde_json::from_value(json!({"metadata": {"name": "pnr"}, "spec": {"selector": {"app": "web"}, "publishNotReadyAddresses": true,
        "clusterIP": "None", "ports": [{"port": 80, "targetPort": 8080}]}})).expect("svc");
    svcs.create(&PostParams::default(), &pnr).await.expect("svc");
    pod(&e.client, "a", "10.244.0.2", true, json!([{"name": "http", "containerPort": 8080}])).await;
    pod(&e.client, "b", "10.244.0.3", false, json!([{"name": "http", "containerPort": 8080}])).await;
    let eps: Api<Endpoints> = Api::namespaced(e.client.clone(), "default");
    eventually("both ports on the ready pod", Duration::from_secs(5), || async {
        eps.get_opt("multi").await.ok().flatten().is_some_and(|ep| {
            let (ready, not_ready, mut ports) = addresses(&ep);
            ports.sort();
            ready == ["10.244.0.2"] && not_ready == ["10.244.0.3"] && ports == [8080, 9100]
        })
    })
    .await;
    eventually("publishNotReadyAddresses lists the unready pod as ready", Duration::from_secs(5), || async {
        eps.get_opt("pnr").await.ok().flatten().is_some_and(|ep| addresses(&ep).0 == ["10.244.0.2", "10.244.0.3"])
    })
    .await;
}

#[tokio::test]
async fn selectorless_endpoints_are_left_alone() {
    let e = env().await;
    let svcs: Api<Service> = Api::namespaced(e.client.clone(), "default");
    let svc: Service = serde_json::from_value(json!({"metadata": {"name": "mysql"}, "spec": {"ports": [{"port": 3306}]}})).expect("svc");
    svcs.create(&PostParams::default(), &svc).await.expect("svc");
    let eps: Api<Endpoints> = Api::namespaced(e.client.clone(), "default");
    let manual: Endpoints = serde_json::from_value(json!({"metadata": {"name": "mysql"}, "subsets": [{"addresses": [{"ip": "192.0.2.10"}], "ports": [{"port": 3306}]}]})).expect("ep");
    eps.create(&PostParams::default(), &manual).await.expect("manual endpoints");
    pod(&e.client, "x", "10.244.0.9", true, json!([])).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ep = eps.get("mysql").await.expect("still there");
    assert_eq!(addresses(&ep).0, ["192.0.2.10"]);
    // ... and mirrored into a slice for the data planes.
    let slices: Api<EndpointSlice> = Api::namespaced(e.client.clone(), "default");
    eventually("mirrored slice", Duration::from_secs(5), || async {
        slices
            .list(&ListParams::default().labels("kubernetes.io/service-name=mysql,endpointslice.kubernetes.io/managed-by=endpointslicemirroring-controller.k8s.io"))
            .await
            .is_ok_and(|l| l.items.len() == 1 && l.items[0].endpoints.iter().map(|e| e.addresses[0].clone()).collect::<Vec<_>>() == ["192.0.2.10"])
    })
    .await;
}

mod workloads {
    use super::*;
    use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

    fn deployment(image: &str, replicas: i32) -> Deployment {
        serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {"replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": image}]}}}}))
        .expect("deployment")
    }

    async fn pod_names(c: &kube::Client) -> Vec<String> {
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        let mut names: Vec<String> = pods
            .list(&ListParams::default())
            .await
            .map(|l| l.items.into_iter().filter(|p| p.metadata.deletion_timestamp.is_none()).filter_map(|p| p.metadata.name).collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Plays the node agent: every pod gets an IP and turns ready.
    async fn make_all_ready(c: &kube::Client) {
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        for (i, p) in pods.list(&ListParams::default()).await.expect("pods").items.iter().enumerate() {
            let ready = p.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| cs.iter().any(|c| c.status == "True"));
            if !ready {
                set_ready(c, p.metadata.name.as_deref().unwrap_or_default(), &format!("10.244.1.{}", i + 2), true).await;
            }
        }
    }

    #[tokio::test]
    async fn deployments_keep_replicas_roll_out_and_cascade() {
        let e = env().await;
        let deploys: Api<Deployment> = Api::namespaced(e.client.clone(), "default");
        deploys.create(&PostParams::default(), &deployment("nginx:1.25", 2)).await.expect("create");
        eventually("two pods", Duration::from_secs(10), || async { pod_names(&e.client).await.len() == 2 }).await;
        let first = pod_names(&e.client).await;
        assert!(first.iter().all(|n| n.starts_with("web-")), "{first:?}");
        // A deleted pod is replaced under a new name.
        let pods: Api<Pod> = Api::namespaced(e.client.clone(), "default");
        pods.delete(&first[0], &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await.expect("delete pod");
        eventually("replacement pod", Duration::from_secs(10), || async {
            let now = pod_names(&e.client).await;
            now.len() == 2 && !now.contains(&first[0])
        })
        .await;
        // Scale to 3.
        deploys.patch_scale("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 3}}))).await.expect("scale");
        eventually("three pods", Duration::from_secs(10), || async { pod_names(&e.client).await.len() == 3 }).await;
        make_all_ready(&e.client).await;
        eventually("deployment available", Duration::from_secs(10), || async {
            deploys.get("web").await.ok().and_then(|d| d.status).is_some_and(|s| s.available_replicas == Some(3) && s.updated_replicas == Some(3))
        })
        .await;
        // An image change rolls out through a second ReplicaSet.
        deploys.patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:1.26"}]}}}}))).await.expect("image");
        let rss: Api<ReplicaSet> = Api::namespaced(e.client.clone(), "default");
        let mut steps = 0;
        eventually("rollout completes", Duration::from_secs(30), || {
            steps += 1;
            let (client, rss, deploys) = (e.client.clone(), rss.clone(), deploys.clone());
            async move {
                make_all_ready(&client).await;
                let list = rss.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default();
                let new_full = list.iter().any(|rs| {
                    rs.spec.as_ref().and_then(|s| s.template.as_ref()).and_then(|t| t.spec.as_ref()).is_some_and(|s| s.containers[0].image.as_deref() == Some("nginx:1.26"))
                        && rs.status.as_ref().and_then(|s| s.available_replicas) == Some(3)
                });
                let d = deploys.get("web").await.ok();
                // maxUnavailable is floor(25% of 3) = 0: availability never drops below 3.
                let available: i32 = list.iter().map(|rs| rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0)).sum();
                assert!(available >= 3, "rollout went below replicas - maxUnavailable: {available} available");
                new_full && d.and_then(|d| d.status).is_some_and(|s| s.updated_replicas == Some(3) && s.replicas == Some(3))
            }
        })
        .await;
        assert_eq!(rss.list(&ListParams::default()).await.expect("rs").items.len(), 2, "old ReplicaSet kept as history");
        // Deleting the Deployment removes its ReplicaSets and Pods.
        deploys.delete("web", &DeleteParams::default()).await.expect("delete deployment");
        eventually("cascade", Duration::from_secs(15), || async {
            rss.list(&ListParams::default()).await.is_ok_and(|l| l.items.is_empty()) && pod_names(&e.client).await.is_empty()
        })
        .await;
    }

    #[tokio::test]
    async fn foreground_and_orphan_deletion() {
        let e = env().await;
        let deploys: Api<Deployment> = Api::namespaced(e.client.clone(), "default");
        let rss: Api<ReplicaSet> = Api::namespaced(e.client.clone(), "default");
        deploys.create(&PostParams::default(), &deployment("nginx", 1)).await.expect("create");
        eventually("pod", Duration::from_secs(10), || async { pod_names(&e.client).await.len() == 1 }).await;
        deploys.delete("web", &DeleteParams::orphan()).await.expect("orphan delete");
        eventually("deployment gone, replicaset orphaned", Duration::from_secs(10), || async {
            deploys.get_opt("web").await.ok().flatten().is_none()
                && rss.list(&ListParams::default()).await.is_ok_and(|l| l.items.len() == 1 && l.items[0].metadata.owner_references.as_ref().is_none_or(Vec::is_empty))
        })
        .await;
        let rs_name = rss.list(&ListParams::default()).await.expect("rs").items[0].metadata.name.clone().unwrap_or_default();
        rss.delete(&rs_name, &DeleteParams::foreground()).await.expect("foreground delete");
        eventually("pods first, then the replicaset", Duration::from_secs(15), || async {
            rss.get_opt(&rs_name).await.ok().flatten().is_none() && pod_names(&e.client).await.is_empty()
        })
        .await;
    }
}

mod nodes_and_lb {
    use super::*;
    use k8s_openapi::api::core::v1::Node;

    async fn node(c: &kube::Client, name: &str, ip: &str) {
        let nodes: Api<Node> = Api::all(c.clone());
        let n: Node = serde_json::from_value(json!({"metadata": {"name": name}})).expect("node");
        nodes.create(&PostParams::default(), &n).await.expect("node");
        let status = json!({"status": {"addresses": [{"type": "InternalIP", "address": ip}], "conditions": [{"type": "Ready", "status": "True"}]}});
        nodes.patch_status(name, &PatchParams::default(), &Patch::Merge(status)).await.expect("node status");
    }

    #[tokio::test]
    async fn nodes_get_pod_cidrs_pods_get_nodes_and_load_balancers_get_node_ips() {
        let e = env().await;
        node(&e.client, "n1", "192.168.50.10").await;
        node(&e.client, "n2", "192.168.50.11").await;
        let nodes: Api<Node> = Api::all(e.client.clone());
        eventually("pod CIDRs", Duration::from_secs(5), || async {
            let list = nodes.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default();
            let mut cidrs: Vec<String> = list.iter().filter_map(|n| n.spec.as_ref().and_then(|s| s.pod_cidr.clone())).collect();
            cidrs.sort();
            cidrs == ["10.244.0.0/24", "10.244.1.0/24"]
        })
        .await;
        let pods: Api<Pod> = Api::namespaced(e.client.clone(), "default");
        for i in 0..2 {
            let p: Pod = serde_json::from_value(json!({"metadata": {"name": format!("p{i}")}, "spec": {"containers": [{"name": "c", "image": "x"}]}})).expect("pod");
            pods.create(&PostParams::default(), &p).await.expect("pod");
        }
        eventually("pods spread over both nodes", Duration::from_secs(5), || async {
            let list = pods.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default();
            let mut on: Vec<String> = list.iter().filter_map(|p| p.spec.as_ref().and_then(|s| s.node_name.clone())).collect();
            on.sort();
            on == ["n1", "n2"]
        })
        .await;
        let svcs: Api<Service> = Api::namespaced(e.client.clone(), "default");
        let lb: Service = serde_json::from_value(json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}})).expect("svc");
        svcs.create(&PostParams::default(), &lb).await.expect("lb");
        let ingress = |s: &Service| -> Vec<String> {
            s.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|l| l.ingress.clone()).unwrap_or_default().into_iter().filter_map(|i| i.ip).collect()
        };
        eventually("LB ingress = node IPs", Duration::from_secs(5), || async {
            svcs.get("lb").await.is_ok_and(|s| ingress(&s) == ["192.168.50.10", "192.168.50.11"])
        })
        .await;
        svcs.patch("lb", &PatchParams::default(), &Patch::Merge(json!({"spec": {"type": "ClusterIP"}}))).await.expect("to clusterip");
        eventually("LB address released", Duration::from_secs(5), || async { svcs.get("lb").await.is_ok_and(|s| ingress(&s).is_empty()) }).await;
        // A node going away releases its pod CIDR; a new node can get it.
        nodes.delete("n1", &DeleteParams::default()).await.expect("delete node");
        node(&e.client, "n3", "192.168.50.12").await;
        eventually("CIDR reused", Duration::from_secs(5), || async {
            nodes.get("n3").await.ok().and_then(|n| n.spec.and_then(|s| s.pod_cidr)).as_deref() == Some("10.244.0.0/24")
        })
        .await;
    }
}

#[tokio::test]
async fn nodes_that_stop_renewing_their_lease_become_not_ready() {
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::Node;
    let e = env_with(portico_controllers::Config { node_monitor_grace: Duration::from_secs(8), ..Default::default() }).await;
    let nodes: Api<Node> = Api::all(e.client.clone());
    let leases: Api<Lease> = Api::namespaced(e.client.clone(), "kube-node-lease");
    let now = jiff::Timestamp::now();
    for (name, renewed) in [("silent", now - jiff::SignedDuration::from_secs(3600)), ("alive", now)] {
        let n: Node = serde_json::from_value(json!({"metadata": {"name": name}})).expect("node");
        nodes.create(&PostParams::default(), &n).await.expect("node");
        let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status",
            "lastHeartbeatTime": renewed.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(), "lastTransitionTime": renewed.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()}]}});
        nodes.patch_status(name, &PatchParams::default(), &Patch::Merge(status)).await.expect("status");
        let l: Lease = serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"holderIdentity": name, "leaseDurationSeconds": 40,
            "renewTime": renewed.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()}})).expect("lease");
        leases.create(&PostParams::default(), &l).await.expect("lease");
    }
    let ready = |n: Node| n.status.and_then(|s| s.conditions).unwrap_or_default().into_iter().find(|c| c.type_ == "Ready").expect("Ready condition");
    eventually("silent node marked Unknown", Duration::from_secs(10), || async {
        let c = ready(nodes.get("silent").await.expect("get"));
        c.status == "Unknown" && c.reason.as_deref() == Some("NodeStatusUnknown") && c.message.as_deref() == Some("Kubelet stopped posting node status.")
    })
    .await;
    assert_eq!(ready(nodes.get("alive").await.expect("get")).status, "True", "a node that renews its lease stays Ready");
}
