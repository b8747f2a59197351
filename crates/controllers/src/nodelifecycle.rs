//! Node lifecycle: a node whose agent stops renewing its Lease in
//! `kube-node-lease` for longer than the grace period gets its `Ready`
//! condition set to `Unknown`, as kube-controller-manager's node lifecycle
//! controller does (`node-monitor-grace-period`, 40 s by default).

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams, Patch, PatchParams};
use std::time::Duration;

/// Upstream's default node-monitor-grace-period.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(40);

/// The reason and message upstream writes on a silent node.
pub const REASON: &str = "NodeStatusUnknown";
/// See [`REASON`].
pub const MESSAGE: &str = "Kubelet stopped posting node status.";

/// Whether a node is overdue: its lease (or, without one, its Ready heartbeat)
/// is older than `grace` at `now`.
pub fn overdue(node: &Node, lease: Option<&Lease>, now: jiff::Timestamp, grace: Duration) -> bool {
    let last = lease.and_then(|l| l.spec.as_ref()).and_then(|s| s.renew_time.as_ref()).map(|t| t.0).or_else(|| {
        node.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .and_then(|c| c.last_heartbeat_time.as_ref().map(|t| t.0))
    });
    match last {
        Some(t) => now.duration_since(t).unsigned_abs() > grace && now > t,
        None => false,
    }
}

/// Checks every node every few seconds until the task is dropped.
pub async fn run(client: kube::Client, grace: Duration) {
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client, "kube-node-lease");
    let period = (grace / 8).clamp(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        tokio::time::sleep(period).await;
        let (Ok(ns), Ok(ls)) = (nodes.list(&ListParams::default()).await, leases.list(&ListParams::default()).await) else { continue };
        let now = jiff::Timestamp::now();
        for node in ns.items {
            let name = node.metadata.name.clone().unwrap_or_default();
            let ready = node.status.as_ref().and_then(|s| s.conditions.as_ref()).and_then(|c| c.iter().find(|c| c.type_ == "Ready")).cloned();
            let Some(ready) = ready else { continue };
            if ready.status == "Unknown" {
                continue;
            }
            let lease = ls.items.iter().find(|l| l.metadata.name.as_deref() == Some(name.as_str()));
            if !overdue(&node, lease, now, grace) {
                continue;
            }
            let stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
            let mut conds = node.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
            for c in &mut conds {
                c.status = "Unknown".into();
                c.reason = Some(REASON.into());
                c.message = Some(MESSAGE.into());
                c.last_transition_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now));
            }
            let patch = serde_json::json!({"status": {"conditions": conds}});
            match nodes.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => tracing::info!(node = %name, at = %stamp, "node stopped renewing its lease; marked NotReady (Unknown)"),
                Err(e) => tracing::warn!(node = %name, error = %e, "marking node NotReady failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(renew: &str) -> Lease {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "n1"}, "spec": {"renewTime": renew}})).expect("lease")
    }

    #[test]
    fn overdue_after_the_grace_period() {
        let node: Node = serde_json::from_value(serde_json::json!({"metadata": {"name": "n1"}})).expect("node");
        let now: jiff::Timestamp = "2026-01-01T00:01:00Z".parse().expect("ts");
        assert!(!overdue(&node, Some(&lease("2026-01-01T00:00:30.000000Z")), now, DEFAULT_GRACE));
        assert!(overdue(&node, Some(&lease("2026-01-01T00:00:10.000000Z")), now, DEFAULT_GRACE));
        assert!(!overdue(&node, None, now, DEFAULT_GRACE), "no heartbeat at all: nothing to judge");
    }
}
