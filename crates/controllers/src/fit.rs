//! The scheduler's filters — which nodes a pod fits on — and upstream's
//! `FitError` text when none does ("0/3 nodes are available: ...").
//! Filters run in kube-scheduler's order: NodeUnschedulable, TaintToleration
//! (the not-ready taint), NodeAffinity (`nodeSelector`), NodePorts; the first
//! that rejects a node gives that node's reason.

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use std::collections::BTreeMap;

/// NodeUnschedulable's reason.
pub const REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";
/// TaintToleration's reason for a node that is not Ready (the lifecycle controller's taint).
pub const REASON_NOT_READY: &str = "node(s) had untolerated taint {node.kubernetes.io/not-ready: }";
/// NodeAffinity's reason.
pub const REASON_SELECTOR: &str = "node(s) didn't match Pod's node affinity/selector";
/// NodePorts' reason.
pub const REASON_PORTS: &str = "node(s) didn't have free ports for the requested pod ports";
/// What preemption says of a node where evicting pods cannot help.
pub const PREEMPTION_NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
/// What preemption says of a node where no lower-priority pod could make room.
pub const PREEMPTION_NO_VICTIMS: &str = "No preemption victims found for incoming pod";
/// The scheduler's message when the cluster has no nodes.
pub const NO_NODES: &str = "no nodes available to schedule pods";

/// The address kube-scheduler puts for "every address" (an empty or unspecified `hostIP`).
pub const BIND_ALL: &str = "0.0.0.0";

/// One host port a container asks for: (hostIP, protocol, hostPort), sanitized
/// as upstream's `HostPortInfo` does.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct HostPort {
    /// The host address (`0.0.0.0` for every address).
    pub ip: String,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    /// The port.
    pub port: i32,
}

/// The host ports a pod's containers ask for (`hostPort` > 0).
pub fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = pod.spec.as_ref() else { return vec![] };
    spec.containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let port = p.host_port.filter(|h| *h > 0)?;
            let ip = p.host_ip.as_deref().unwrap_or("");
            let unspecified = ip.is_empty() || ip.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_unspecified());
            let protocol = p.protocol.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| "TCP".into());
            Some(HostPort { ip: if unspecified { BIND_ALL.into() } else { ip.to_owned() }, protocol, port })
        })
        .collect()
}

/// Whether `want` collides with a port already `used` on a node: the same
/// protocol and port on the same address, where `0.0.0.0` is every address.
pub fn port_conflict(want: &HostPort, used: &[HostPort]) -> bool {
    used.iter().any(|u| u.protocol == want.protocol && u.port == want.port && (want.ip == BIND_ALL || u.ip == BIND_ALL || u.ip == want.ip))
}

/// Why a node does not fit, and whether preemption could ever help there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    /// The filter's reason.
    pub reason: &'static str,
    /// Evicting lower-priority pods could make the node fit.
    pub resolvable: bool,
}

/// What is on a node already, as far as the filters care.
#[derive(Debug, Clone, Default)]
pub struct NodeUsage {
    /// Pods bound to the node (or assumed to be).
    pub pods: usize,
    /// Host ports those pods hold.
    pub ports: Vec<HostPort>,
}

fn node_ready(n: &Node) -> bool {
    n.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Runs the filters for one node; `None` when the pod fits.
pub fn filter(pod: &Pod, node: &Node, usage: Option<&NodeUsage>) -> Option<Rejection> {
    let unresolvable = |reason| Some(Rejection { reason, resolvable: false });
    if node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false) {
        return unresolvable(REASON_UNSCHEDULABLE);
    }
    if !node_ready(node) {
        return unresolvable(REASON_NOT_READY);
    }
    let selector = pod.spec.as_ref().and_then(|s| s.node_selector.clone()).unwrap_or_default();
    if !selector.iter().all(|(k, v)| node.labels().get(k) == Some(v)) {
        return unresolvable(REASON_SELECTOR);
    }
    let used = usage.map(|u| u.ports.as_slice()).unwrap_or_default();
    if host_ports(pod).iter().any(|w| port_conflict(w, used)) {
        return Some(Rejection { reason: REASON_PORTS, resolvable: true });
    }
    None
}

/// "N reason" entries, sorted as upstream sorts them, joined by ", ".
fn histogram<'a>(reasons: impl Iterator<Item = &'a str>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in reasons {
        *counts.entry(r).or_default() += 1;
    }
    let mut lines: Vec<String> = counts.into_iter().map(|(r, n)| format!("{n} {r}")).collect();
    lines.sort();
    lines.join(", ")
}

/// Upstream's `FitError` message for `total` nodes that all rejected the pod,
/// with the preemption (PostFilter) part the default scheduler appends.
pub fn fit_error(total: usize, rejections: &[Rejection]) -> String {
    if total == 0 {
        return NO_NODES.to_owned();
    }
    let filters = histogram(rejections.iter().map(|r| r.reason));
    let preemption = histogram(rejections.iter().map(|r| if r.resolvable { PREEMPTION_NO_VICTIMS } else { PREEMPTION_NOT_HELPFUL }));
    format!("0/{total} nodes are available: {filters}. preemption: 0/{total} nodes are available: {preemption}.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hp(ip: &str, protocol: &str, port: i32) -> HostPort {
        HostPort { ip: ip.into(), protocol: protocol.into(), port }
    }

    fn pod_with(ports: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "ports": ports}]}})).expect("pod")
    }

    #[test]
    fn host_ports_are_sanitized_like_upstream() {
        let pod = pod_with(json!([
            {"containerPort": 8080, "hostPort": 54323},
            {"containerPort": 8080, "hostPort": 54323, "protocol": "UDP", "hostIP": "192.168.200.2"},
            {"containerPort": 80, "hostPort": 80, "hostIP": "::"},
            {"containerPort": 9090}
        ]));
        assert_eq!(host_ports(&pod), vec![hp("0.0.0.0", "TCP", 54323), hp("192.168.200.2", "UDP", 54323), hp("0.0.0.0", "TCP", 80)]);
    }

    #[test]
    fn ports_conflict_on_the_same_ip_protocol_and_port_where_0_0_0_0_is_every_ip() {
        let used = [hp("127.0.0.1", "TCP", 54323), hp("192.168.200.2", "UDP", 54323)];
        // The conformance case: same port, another IP or protocol, fits.
        assert!(!port_conflict(&hp("192.168.200.2", "TCP", 54323), &used));
        assert!(!port_conflict(&hp("127.0.0.1", "UDP", 54323), &used));
        assert!(!port_conflict(&hp("127.0.0.1", "TCP", 54324), &used));
        // The same triple, or every address, does not.
        assert!(port_conflict(&hp("127.0.0.1", "TCP", 54323), &used));
        assert!(port_conflict(&hp("0.0.0.0", "UDP", 54323), &used));
        assert!(port_conflict(&hp("10.0.0.1", "TCP", 80), &[hp("0.0.0.0", "TCP", 80)]));
        assert!(!port_conflict(&hp("10.0.0.1", "SCTP", 80), &[hp("0.0.0.0", "TCP", 80)]));
    }

    fn node(name: &str, ready: bool, unschedulable: bool) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name, "labels": {"zone": "x"}}, "spec": {"unschedulable": unschedulable},
            "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}}))
        .expect("node")
    }

    #[test]
    fn filters_run_in_upstream_order() {
        let pod = pod_with(json!([{"containerPort": 8080, "hostPort": 54321}]));
        let taken = NodeUsage { pods: 1, ports: vec![hp("0.0.0.0", "TCP", 54321)] };
        assert_eq!(filter(&pod, &node("a", true, false), Some(&taken)).map(|r| r.reason), Some(REASON_PORTS));
        assert_eq!(filter(&pod, &node("a", true, false), None), None);
        assert_eq!(filter(&pod, &node("a", false, true), Some(&taken)).map(|r| r.reason), Some(REASON_UNSCHEDULABLE));
        assert_eq!(filter(&pod, &node("a", false, false), Some(&taken)).map(|r| r.reason), Some(REASON_NOT_READY));
        let zoned: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"nodeSelector": {"zone": "y"}, "containers": []}})).expect("pod");
        assert_eq!(filter(&zoned, &node("a", true, false), None).map(|r| r.reason), Some(REASON_SELECTOR));
    }

    #[test]
    fn fit_errors_read_like_kube_scheduler() {
        let ports = Rejection { reason: REASON_PORTS, resolvable: true };
        assert_eq!(
            fit_error(1, &[ports]),
            "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
        );
        let not_ready = Rejection { reason: REASON_NOT_READY, resolvable: false };
        assert_eq!(
            fit_error(3, &[not_ready, ports, ports]),
            "0/3 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, 2 node(s) didn't have free ports for the requested pod ports. \
             preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod."
        );
        assert_eq!(fit_error(0, &[]), "no nodes available to schedule pods");
    }
}
