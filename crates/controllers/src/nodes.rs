//! Node IPAM (a pod CIDR per Node from the cluster range) and a small
//! scheduler that binds pending Pods to Ready Nodes.

use crate::{Error, pods};
use futures::StreamExt;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// The default cluster pod range.
pub const DEFAULT_POD_CIDR: &str = "10.244.0.0/16";
/// The prefix length of each node's range.
pub const NODE_MASK: u8 = 24;

/// The first `/mask` subnet of `cluster` not in `used`.
pub fn next_pod_cidr(cluster: Ipv4Net, mask: u8, used: &[String]) -> Option<Ipv4Net> {
    cluster.subnets(mask).ok()?.find(|s| !used.iter().any(|u| u.parse::<Ipv4Net>().is_ok_and(|n| n == *s)))
}

fn node_ready(n: &Node) -> bool {
    n.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Picks the node for a pod: Ready, schedulable, matching `nodeSelector`, fewest pods (then by name).
pub fn pick_node<'a>(pod: &Pod, nodes: &'a [&'a Node], pods_per_node: &BTreeMap<String, usize>) -> Option<&'a Node> {
    let selector = pod.spec.as_ref().and_then(|s| s.node_selector.clone()).unwrap_or_default();
    nodes
        .iter()
        .copied()
        .filter(|n| node_ready(n) && !n.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false))
        .filter(|n| selector.iter().all(|(k, v)| n.labels().get(k) == Some(v)))
        .min_by_key(|n| (pods_per_node.get(&n.name_any()).copied().unwrap_or(0), n.name_any()))
}

struct IpamCtx {
    client: Client,
    cluster: Ipv4Net,
    nodes: Store<Node>,
    lock: Mutex<BTreeMap<String, String>>,
}

async fn reconcile_node(node: Arc<Node>, ctx: Arc<IpamCtx>) -> Result<Action, Error> {
    if node.spec.as_ref().and_then(|s| s.pod_cidr.as_ref()).is_some_and(|c| !c.is_empty()) {
        return Ok(Action::await_change());
    }
    // One assignment at a time; recent ones count until the cache shows them.
    let mut recent = ctx.lock.lock().await;
    let mut used: Vec<String> = ctx.nodes.state().iter().filter_map(|n| n.spec.as_ref().and_then(|s| s.pod_cidr.clone())).collect();
    let live: Vec<String> = ctx.nodes.state().iter().map(|n| n.name_any()).collect();
    recent.retain(|name, _| live.contains(name));
    used.extend(recent.values().cloned());
    let cidr = next_pod_cidr(ctx.cluster, NODE_MASK, &used).ok_or_else(|| Error::Invalid(format!("pod range {} is exhausted", ctx.cluster)))?;
    let patch = json!({"spec": {"podCIDR": cidr.to_string(), "podCIDRs": [cidr.to_string()]}});
    Api::<Node>::all(ctx.client.clone()).patch(&node.name_any(), &PatchParams::default(), &Patch::Merge(patch)).await?;
    recent.insert(node.name_any(), cidr.to_string());
    tracing::info!(node = %node.name_any(), %cidr, "assigned pod CIDR");
    Ok(Action::await_change())
}

struct SchedCtx {
    client: Client,
    nodes: Store<Node>,
    pods: Store<Pod>,
    /// Bindings made but maybe not yet in the cache (pod uid → node), under
    /// one lock so pods are placed one at a time, as upstream's scheduler does.
    assumed: Mutex<BTreeMap<String, String>>,
    /// Node and pod caches filled (see `caches_ready`).
    ready: tokio::sync::watch::Receiver<bool>,
}

async fn schedule(pod: Arc<Pod>, ctx: Arc<SchedCtx>) -> Result<Action, Error> {
    let bound = pod.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some_and(|n| !n.is_empty());
    if bound || pods::is_terminating(&pod) || pods::is_finished(&pod) {
        return Ok(Action::await_change());
    }
    ctx.ready.clone().wait_for(|r| *r).await.map_err(|_| Error::CacheClosed)?;
    let mut assumed = ctx.assumed.lock().await;
    let nodes = ctx.nodes.state();
    let node_refs: Vec<&Node> = nodes.iter().map(|n| n.as_ref()).collect();
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    if !nodes.is_empty() {
        let cached = ctx.pods.state();
        for p in cached.iter() {
            if let Some(n) = p.spec.as_ref().and_then(|s| s.node_name.clone()) {
                *per_node.entry(n).or_default() += 1;
            }
        }
        // Assumed bindings count until the cache shows them (or the pod is gone).
        assumed.retain(|uid, _| cached.iter().any(|p| p.uid().as_deref() == Some(uid.as_str()) && p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_none()));
        for n in assumed.values() {
            *per_node.entry(n.clone()).or_default() += 1;
        }
    }
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &pod.namespace().unwrap_or_default());
    match pick_node(&pod, &node_refs, &per_node) {
        Some(node) => {
            api.patch(&pod.name_any(), &PatchParams::default(), &Patch::Merge(json!({"spec": {"nodeName": node.name_any()}}))).await?;
            assumed.insert(pod.uid().unwrap_or_default(), node.name_any());
            drop(assumed);
            let cond = json!({"status": {"conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": now()}]}});
            api.patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Strategic(cond)).await?;
            crate::events::record(&ctx.client, pod.as_ref(), "Normal", "Scheduled", &format!("Successfully assigned {}/{} to {}", pod.namespace().unwrap_or_default(), pod.name_any(), node.name_any())).await;
            Ok(Action::await_change())
        }
        None => {
            let msg = format!("0/{} nodes are available.", nodes.len());
            let unsched = pod.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| cs.iter().any(|c| c.type_ == "PodScheduled" && c.status == "False"));
            if !unsched {
                let cond = json!({"status": {"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": msg, "lastTransitionTime": now()}]}});
                api.patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Strategic(cond)).await?;
            }
            // Node changes retry every pending pod; no timer needed.
            Ok(Action::await_change())
        }
    }
}

fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Runs node IPAM and the scheduler.
pub async fn run(client: Client, cluster_cidr: Ipv4Net) {
    let (nodes, node_writer) = reflector::store::<Node>();
    let (pods, pod_writer) = reflector::store::<Pod>();
    let node_cache = reflector::reflector(node_writer, watcher(Api::<Node>::all(client.clone()), watcher::Config::default())).default_backoff().touched_objects();
    let pod_cache = reflector::reflector(pod_writer, watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())).default_backoff().touched_objects();
    let ipam_ctx = Arc::new(IpamCtx { client: client.clone(), cluster: cluster_cidr, nodes: nodes.clone(), lock: Mutex::new(BTreeMap::new()) });
    let ipam = Controller::new(Api::<Node>::all(client.clone()), watcher::Config::default())
        .run(reconcile_node, |_, _, _| Action::requeue(Duration::from_secs(1)), ipam_ctx)
        .for_each(|_| async {});
    let ready = crate::caches_ready(vec![crate::ready_of(nodes.clone()), crate::ready_of(pods.clone())]);
    let sched_ctx = Arc::new(SchedCtx { client: client.clone(), nodes: nodes.clone(), pods, assumed: Mutex::new(BTreeMap::new()), ready });
    let all_pods = sched_ctx.pods.clone();
    let scheduler = Controller::new(Api::<Pod>::all(client.clone()), watcher::Config::default())
        // A node becoming Ready retries every pending pod.
        .watches_stream(node_cache, move |_node| {
            all_pods
                .state()
                .iter()
                .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_none())
                .map(|p| kube::runtime::reflector::ObjectRef::from_obj(p.as_ref()))
                .collect::<Vec<_>>()
        })
        .run(schedule, |_, _, _| Action::requeue(Duration::from_secs(1)), sched_ctx)
        .for_each(|_| async {});
    let caches = pod_cache.for_each(|_| async {});
    tokio::join!(ipam, scheduler, caches);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_cidrs_are_handed_out_in_order_and_reused() {
        let cluster: Ipv4Net = DEFAULT_POD_CIDR.parse().expect("cidr");
        assert_eq!(next_pod_cidr(cluster, 24, &[]).map(|c| c.to_string()).as_deref(), Some("10.244.0.0/24"));
        let used = vec!["10.244.0.0/24".to_owned(), "10.244.2.0/24".to_owned()];
        assert_eq!(next_pod_cidr(cluster, 24, &used).map(|c| c.to_string()).as_deref(), Some("10.244.1.0/24"));
        let small: Ipv4Net = "10.0.0.0/23".parse().expect("cidr");
        assert_eq!(next_pod_cidr(small, 24, &["10.0.0.0/24".into(), "10.0.1.0/24".into()]), None);
    }

    #[test]
    fn scheduling_honours_readiness_selectors_and_load() {
        let node = |name: &str, ready: bool, unsched: bool, zone: &str| -> Node {
            serde_json::from_value(json!({"metadata": {"name": name, "labels": {"zone": zone}}, "spec": {"unschedulable": unsched},
                "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})).expect("node")
        };
        let (a, b, c, d) = (node("a", true, false, "x"), node("b", true, false, "y"), node("c", false, false, "x"), node("d", true, true, "x"));
        let nodes = [&a, &b, &c, &d];
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": []}})).expect("pod");
        let mut load = BTreeMap::new();
        load.insert("a".to_owned(), 3);
        assert_eq!(pick_node(&pod, &nodes, &load).map(|n| n.name_any()).as_deref(), Some("b"));
        let zoned: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"nodeSelector": {"zone": "x"}, "containers": []}})).expect("pod");
        assert_eq!(pick_node(&zoned, &nodes, &load).map(|n| n.name_any()).as_deref(), Some("a"));
        let nowhere: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"nodeSelector": {"zone": "z"}, "containers": []}})).expect("pod");
        assert!(pick_node(&nowhere, &nodes, &load).is_none());
    }
}
