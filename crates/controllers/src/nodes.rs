//! Node IPAM (a pod CIDR per Node and family from the cluster ranges) and a small
//! scheduler that binds pending Pods to Ready Nodes.

use crate::fit::{self, NodeUsage};
use crate::{Error, pods};
use futures::StreamExt;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
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
/// The prefix length of each node's IPv4 range.
pub const NODE_MASK: u8 = 24;
/// The prefix length of each node's IPv6 range (kube-controller-manager's `--node-cidr-mask-size-ipv6`).
pub const NODE_MASK_V6: u8 = 64;

/// The first `/mask` subnet of `cluster` not in `used`.
pub fn next_pod_cidr(cluster: IpNet, mask: u8, used: &[String]) -> Option<IpNet> {
    cluster.subnets(mask).ok()?.find(|s| !used.iter().any(|u| u.parse::<IpNet>().is_ok_and(|n| n == *s)))
}

/// Picks the node for a pod: among the nodes every filter accepts (Ready,
/// schedulable, matching `nodeSelector`, free host ports), the one with the
/// fewest pods (then by name). When none fits, upstream's FitError message.
pub fn pick_node<'a>(pod: &Pod, nodes: &'a [&'a Node], usage: &BTreeMap<String, NodeUsage>) -> Result<&'a Node, String> {
    let mut rejections = Vec::new();
    let mut fits = Vec::new();
    for n in nodes.iter().copied() {
        match fit::filter(pod, n, usage.get(&n.name_any())) {
            Some(r) => rejections.push(r),
            None => fits.push(n),
        }
    }
    fits.into_iter()
        .min_by_key(|n| (usage.get(&n.name_any()).map(|u| u.pods).unwrap_or(0), n.name_any()))
        .ok_or_else(|| fit::fit_error(nodes.len(), &rejections))
}

/// What each node holds: the pods bound to it that have not finished, plus
/// the bindings `assumed` (pod uid → node) that the cache does not show yet.
pub fn usage_by_node(pods: &[Arc<Pod>], assumed: &BTreeMap<String, String>) -> BTreeMap<String, NodeUsage> {
    let mut usage: BTreeMap<String, NodeUsage> = BTreeMap::new();
    for p in pods {
        let bound = p.spec.as_ref().and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty());
        let node = bound.or_else(|| p.uid().and_then(|uid| assumed.get(&uid).cloned()));
        let Some(node) = node else { continue };
        if pods::is_finished(p) {
            continue;
        }
        let u = usage.entry(node).or_default();
        u.pods += 1;
        u.ports.extend(fit::host_ports(p));
    }
    usage
}

struct IpamCtx {
    client: Client,
    cluster: Ipv4Net,
    cluster_v6: Option<Ipv6Net>,
    nodes: Store<Node>,
    lock: Mutex<BTreeMap<String, Vec<String>>>,
}

async fn reconcile_node(node: Arc<Node>, ctx: Arc<IpamCtx>) -> Result<Action, Error> {
    if node.spec.as_ref().and_then(|s| s.pod_cidr.as_ref()).is_some_and(|c| !c.is_empty()) {
        return Ok(Action::await_change());
    }
    // One assignment at a time; recent ones count until the cache shows them.
    let mut recent = ctx.lock.lock().await;
    // The cache may not show this node's own assignment yet: ask the API, so a
    // second reconcile does not hand the node another range.
    let api = Api::<Node>::all(ctx.client.clone());
    match api.get_opt(&node.name_any()).await? {
        Some(n) if n.spec.as_ref().and_then(|s| s.pod_cidr.as_ref()).is_some_and(|c| !c.is_empty()) => return Ok(Action::await_change()),
        None => return Ok(Action::await_change()),
        Some(_) => {}
    }
    let mut used: Vec<String> = ctx
        .nodes
        .state()
        .iter()
        .flat_map(|n| n.spec.as_ref().map(|s| s.pod_cidrs.clone().unwrap_or_default().into_iter().chain(s.pod_cidr.clone())).into_iter().flatten())
        .collect();
    let live: Vec<String> = ctx.nodes.state().iter().map(|n| n.name_any()).collect();
    recent.retain(|name, _| live.contains(name));
    used.extend(recent.values().flatten().cloned());
    let cidr = next_pod_cidr(ctx.cluster.into(), NODE_MASK, &used).ok_or_else(|| Error::Invalid(format!("pod range {} is exhausted", ctx.cluster)))?;
    let mut cidrs = vec![cidr.to_string()];
    // Dual-stack: an IPv6 range too, after the IPv4 one (podCIDR is the first).
    if let Some(v6) = ctx.cluster_v6 {
        cidrs.push(next_pod_cidr(v6.into(), NODE_MASK_V6, &used).ok_or_else(|| Error::Invalid(format!("pod range {v6} is exhausted")))?.to_string());
    }
    let patch = json!({"spec": {"podCIDR": cidr.to_string(), "podCIDRs": cidrs}});
    api.patch(&node.name_any(), &PatchParams::default(), &Patch::Merge(patch)).await?;
    tracing::info!(node = %node.name_any(), cidrs = ?cidrs, "assigned pod CIDRs");
    recent.insert(node.name_any(), cidrs);
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
    let cached = ctx.pods.state();
    // Assumed bindings count until the cache shows them (or the pod is gone).
    assumed.retain(|uid, _| cached.iter().any(|p| p.uid().as_deref() == Some(uid.as_str()) && p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_none()));
    let usage = usage_by_node(&cached, &assumed);
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &pod.namespace().unwrap_or_default());
    match pick_node(&pod, &node_refs, &usage) {
        Ok(node) => {
            api.patch(&pod.name_any(), &PatchParams::default(), &Patch::Merge(json!({"spec": {"nodeName": node.name_any()}}))).await?;
            assumed.insert(pod.uid().unwrap_or_default(), node.name_any());
            drop(assumed);
            let cond = json!({"status": {"conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": now()}]}});
            api.patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Strategic(cond)).await?;
            crate::events::record(&ctx.client, pod.as_ref(), "Normal", "Scheduled", &format!("Successfully assigned {}/{} to {}", pod.namespace().unwrap_or_default(), pod.name_any(), node.name_any())).await;
            Ok(Action::await_change())
        }
        Err(msg) => {
            drop(assumed);
            let shown = pod.status.as_ref().and_then(|s| s.conditions.as_ref()).and_then(|cs| {
                cs.iter().find(|c| c.type_ == "PodScheduled" && c.status == "False").map(|c| c.message.clone().unwrap_or_default())
            });
            // A new reason is reported once; retries with the same outcome stay quiet.
            if shown.as_deref() != Some(msg.as_str()) {
                let cond = json!({"status": {"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": msg, "lastTransitionTime": now()}]}});
                api.patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Strategic(cond)).await?;
                crate::events::record(&ctx.client, pod.as_ref(), "Warning", "FailedScheduling", &msg).await;
            }
            // Node changes retry every pending pod; a pod freeing its host
            // ports does not, so retry on a timer as well.
            Ok(Action::requeue(UNSCHEDULABLE_RETRY))
        }
    }
}

/// How often a pod that fits nowhere is tried again.
pub const UNSCHEDULABLE_RETRY: Duration = Duration::from_secs(2);

fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Runs node IPAM (from the IPv4 range and, on dual-stack clusters, the IPv6 one) and the scheduler.
pub async fn run(client: Client, cluster_cidr: Ipv4Net, cluster_cidr_v6: Option<Ipv6Net>) {
    let (nodes, node_writer) = reflector::store::<Node>();
    let (pods, pod_writer) = reflector::store::<Pod>();
    let node_cache = reflector::reflector(node_writer, watcher(Api::<Node>::all(client.clone()), watcher::Config::default())).default_backoff().touched_objects();
    let pod_cache = reflector::reflector(pod_writer, watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())).default_backoff().touched_objects();
    let ipam_ctx = Arc::new(IpamCtx { client: client.clone(), cluster: cluster_cidr, cluster_v6: cluster_cidr_v6, nodes: nodes.clone(), lock: Mutex::new(BTreeMap::new()) });
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
        let cluster: IpNet = DEFAULT_POD_CIDR.parse().expect("cidr");
        assert_eq!(next_pod_cidr(cluster, 24, &[]).map(|c| c.to_string()).as_deref(), Some("10.244.0.0/24"));
        let used = vec!["10.244.0.0/24".to_owned(), "10.244.2.0/24".to_owned()];
        assert_eq!(next_pod_cidr(cluster, 24, &used).map(|c| c.to_string()).as_deref(), Some("10.244.1.0/24"));
        let small: IpNet = "10.0.0.0/23".parse().expect("cidr");
        let v6: IpNet = "fd00:10:244::/56".parse().expect("cidr");
        assert_eq!(next_pod_cidr(v6, NODE_MASK_V6, &["fd00:10:244::/64".into()]).map(|c| c.to_string()).as_deref(), Some("fd00:10:244:1::/64"));
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
        let mut load: BTreeMap<String, NodeUsage> = BTreeMap::new();
        load.insert("a".to_owned(), NodeUsage { pods: 3, ports: vec![] });
        assert_eq!(pick_node(&pod, &nodes, &load).map(|n| n.name_any()).as_deref(), Ok("b"));
        let zoned: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"nodeSelector": {"zone": "x"}, "containers": []}})).expect("pod");
        assert_eq!(pick_node(&zoned, &nodes, &load).map(|n| n.name_any()).as_deref(), Ok("a"));
        let nowhere: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"nodeSelector": {"zone": "z"}, "containers": []}})).expect("pod");
        assert_eq!(
            pick_node(&nowhere, &nodes, &load).map(|n| n.name_any()),
            Err("0/4 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, 1 node(s) were unschedulable, \
                 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/4 nodes are available: 4 Preemption is not helpful for scheduling."
                .to_owned())
        );
    }

    #[test]
    fn a_held_host_port_keeps_a_pod_off_the_node_until_it_is_released() {
        let node: Node = serde_json::from_value(json!({"metadata": {"name": "n"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}})).expect("node");
        let nodes = [&node];
        let pod = |name: &str, uid: &str, bound: Option<&str>, ip: &str, phase: &str| -> Arc<Pod> {
            Arc::new(serde_json::from_value(json!({"metadata": {"name": name, "uid": uid}, "spec": {"nodeName": bound, "containers": [{"name": "c",
                "ports": [{"containerPort": 8080, "hostPort": 54323, "hostIP": ip}]}]}, "status": {"phase": phase}})).expect("pod"))
        };
        let holder = pod("holder", "u1", Some("n"), "192.168.200.2", "Running");
        let same = pod("same", "u2", None, "192.168.200.2", "Pending");
        let other_ip = pod("other", "u3", None, "127.0.0.1", "Pending");
        let usage = usage_by_node(std::slice::from_ref(&holder), &BTreeMap::new());
        assert_eq!(
            pick_node(&same, &nodes, &usage).map(|n| n.name_any()),
            Err("0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.".to_owned())
        );
        assert_eq!(pick_node(&other_ip, &nodes, &usage).map(|n| n.name_any()).as_deref(), Ok("n"));
        // An assumed binding holds its ports before the cache shows it.
        let mut assumed = BTreeMap::new();
        assumed.insert("u3".to_owned(), "n".to_owned());
        let wildcard = pod("any", "u4", None, "", "Pending");
        assert!(pick_node(&wildcard, &nodes, &usage_by_node(std::slice::from_ref(&other_ip), &assumed)).is_err());
        // A finished pod holds nothing.
        let done = pod("holder", "u1", Some("n"), "192.168.200.2", "Succeeded");
        assert_eq!(pick_node(&same, &nodes, &usage_by_node(&[done], &BTreeMap::new())).map(|n| n.name_any()).as_deref(), Ok("n"));
    }
}
