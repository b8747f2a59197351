//! The ReplicaSet controller: keeps `spec.replicas` Pods from the template.

use crate::{Error, events, pods};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use portico_api::selectors::LabelSelector;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// Whether a Pod counts toward a ReplicaSet (not finished, not being deleted).
pub fn is_active(p: &Pod) -> bool {
    !pods::is_finished(p) && !pods::is_terminating(p)
}

/// The Pods to delete when scaling down by `n`: unscheduled first, then
/// pending, then not ready, then the newest (upstream's `ActivePods` order).
pub fn pick_for_deletion(mut candidates: Vec<&Pod>, n: usize) -> Vec<&Pod> {
    let rank = |p: &Pod| {
        let scheduled = p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some_and(|n| !n.is_empty());
        let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        (scheduled, running, pods::is_ready(p), std::cmp::Reverse(p.metadata.creation_timestamp.clone().map(|t| t.0)))
    };
    candidates.sort_by_key(|p| rank(p));
    candidates.truncate(n);
    candidates
}

/// The `kubernetes.io` status of a ReplicaSet given its active Pods.
pub fn status_of(rs: &ReplicaSet, active: &[&Pod]) -> serde_json::Value {
    let template_labels = rs.spec.as_ref().and_then(|s| s.template.as_ref()).and_then(|t| t.metadata.as_ref()).and_then(|m| m.labels.clone()).unwrap_or_default();
    let fully = active.iter().filter(|p| template_labels.iter().all(|(k, v)| p.labels().get(k) == Some(v))).count();
    let ready = active.iter().filter(|p| pods::is_ready(p)).count();
    json!({
        "replicas": active.len(),
        "fullyLabeledReplicas": fully,
        "readyReplicas": ready,
        "availableReplicas": ready,
        "observedGeneration": rs.metadata.generation.unwrap_or(0),
    })
}

fn owned_by(p: &Pod, uid: &str) -> bool {
    p.owner_references().iter().any(|o| o.controller == Some(true) && o.uid == uid)
}

fn has_controller(p: &Pod) -> bool {
    p.owner_references().iter().any(|o| o.controller == Some(true))
}

struct Ctx {
    client: Client,
}

async fn reconcile(rs: Arc<ReplicaSet>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if rs.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = rs.namespace().unwrap_or_default();
    let uid = rs.uid().unwrap_or_default();
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let selector = rs.spec.as_ref().map(|s| serde_json::to_value(&s.selector).unwrap_or_default()).unwrap_or_default();
    let selector = LabelSelector::from_label_selector_json(&selector).unwrap_or_else(|_| LabelSelector::nothing());
    let all = pods_api.list(&Default::default()).await?.items;
    let mut mine: Vec<&Pod> = Vec::new();
    for p in &all {
        let labels = serde_json::to_value(p.labels()).ok().and_then(|v| v.as_object().cloned()).unwrap_or_default();
        if owned_by(p, &uid) {
            mine.push(p);
        } else if !has_controller(p) && is_active(p) && selector.matches(&labels) {
            // Adopt orphans that match, as upstream does.
            let owner = owner_ref(&rs);
            let patch = json!({"metadata": {"ownerReferences": [owner], "uid": p.uid()}});
            if pods_api.patch(&p.name_any(), &PatchParams::default(), &Patch::Merge(patch)).await.is_ok() {
                mine.push(p);
            }
        }
    }
    let active: Vec<&Pod> = mine.into_iter().filter(|p| is_active(p)).collect();
    let want = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1).max(0) as usize;
    let rs_name = rs.name_any();
    if active.len() < want {
        let template = rs.spec.as_ref().and_then(|s| s.template.clone()).unwrap_or_default();
        for _ in active.len()..want {
            let mut pod = Pod { metadata: template.metadata.clone().unwrap_or_default(), spec: template.spec.clone(), status: None };
            pod.metadata.name = None;
            pod.metadata.generate_name = Some(format!("{rs_name}-"));
            pod.metadata.namespace = Some(ns.clone());
            pod.metadata.owner_references = Some(vec![owner_ref(&rs)]);
            let created = pods_api.create(&PostParams::default(), &pod).await?;
            events::record(&ctx.client, rs.as_ref(), "Normal", "SuccessfulCreate", &format!("Created pod: {}", created.name_any())).await;
        }
    } else if active.len() > want {
        for p in pick_for_deletion(active.clone(), active.len() - want) {
            match pods_api.delete(&p.name_any(), &DeleteParams::default()).await {
                Ok(_) => events::record(&ctx.client, rs.as_ref(), "Normal", "SuccessfulDelete", &format!("Deleted pod: {}", p.name_any())).await,
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let status = status_of(&rs, &active);
    let cur = serde_json::to_value(&rs.status).unwrap_or_default();
    let changed = ["replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas", "observedGeneration"]
        .iter()
        .any(|k| cur.get(k).and_then(serde_json::Value::as_i64).unwrap_or(0) != status[k].as_i64().unwrap_or(0));
    if changed {
        let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
        rs_api.patch_status(&rs_name, &PatchParams::default(), &Patch::Merge(json!({"status": status}))).await?;
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

fn owner_ref(rs: &ReplicaSet) -> OwnerReference {
    OwnerReference {
        api_version: ReplicaSet::api_version(&()).into_owned(),
        kind: ReplicaSet::kind(&()).into_owned(),
        name: rs.name_any(),
        uid: rs.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn error_policy(rs: Arc<ReplicaSet>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(replicaset = %rs.name_any(), error = %err, "replicaset reconcile failed; retrying");
    Action::requeue(Duration::from_millis(500))
}

/// Runs the ReplicaSet controller.
pub async fn run(client: Client) {
    let ctx = Arc::new(Ctx { client: client.clone() });
    Controller::new(Api::<ReplicaSet>::all(client.clone()), watcher::Config::default())
        .owns(Api::<Pod>::all(client), watcher::Config::default())
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, node: Option<&str>, phase: &str, ready: bool, created: &str) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": name, "creationTimestamp": created},
            "spec": {"nodeName": node, "containers": []},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})).expect("pod")
    }

    #[test]
    fn scale_down_prefers_unscheduled_then_pending_then_unready_then_newest() {
        let a = pod("old-ready", Some("n"), "Running", true, "2026-01-01T00:00:00Z");
        let b = pod("new-ready", Some("n"), "Running", true, "2026-01-02T00:00:00Z");
        let c = pod("unready", Some("n"), "Running", false, "2026-01-01T00:00:00Z");
        let d = pod("pending", Some("n"), "Pending", false, "2026-01-01T00:00:00Z");
        let e = pod("unscheduled", None, "Pending", false, "2026-01-01T00:00:00Z");
        let names = |v: Vec<&Pod>| v.iter().map(|p| p.name_any()).collect::<Vec<_>>();
        assert_eq!(names(pick_for_deletion(vec![&a, &b, &c, &d, &e], 5)), ["unscheduled", "pending", "unready", "new-ready", "old-ready"]);
        assert_eq!(names(pick_for_deletion(vec![&a, &b], 1)), ["new-ready"]);
    }
}
