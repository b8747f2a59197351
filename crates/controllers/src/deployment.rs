//! The Deployment controller: one ReplicaSet per pod template (named with the
//! template hash), rolled with RollingUpdate or Recreate.

use crate::{Error, events};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// The label carrying the template hash.
pub const HASH_LABEL: &str = "pod-template-hash";
/// The annotation carrying a ReplicaSet's revision.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// The hash of a pod template, encoded like upstream (`rand.SafeEncodeString`
/// of a 32-bit FNV-1a hash), e.g. `5f7668c4b`.
pub fn template_hash(template: &serde_json::Value) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in template.to_string().bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h.to_string().bytes().map(|b| ALPHANUMS[b as usize % ALPHANUMS.len()] as char).collect()
}

/// Resolves maxSurge/maxUnavailable against `replicas` (surge rounds up, unavailable down).
pub fn resolve_fenceposts(surge: Option<&IntOrString>, unavailable: Option<&IntOrString>, replicas: i32) -> (i32, i32) {
    let value = |v: Option<&IntOrString>, up: bool| -> i32 {
        match v {
            None => {
                let pct = 25.0 * f64::from(replicas) / 100.0;
                (if up { pct.ceil() } else { pct.floor() }) as i32
            }
            Some(IntOrString::Int(i)) => *i,
            Some(IntOrString::String(s)) => {
                let pct: f64 = s.trim_end_matches('%').parse().unwrap_or(0.0);
                let v = pct * f64::from(replicas) / 100.0;
                (if up { v.ceil() } else { v.floor() }) as i32
            }
        }
    };
    let (s, u) = (value(surge, true), value(unavailable, false));
    // Both zero would never make progress: upstream allows one unavailable.
    if s == 0 && u == 0 { (0, 1) } else { (s, u) }
}

/// One ReplicaSet as the rollout arithmetic sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RsCount {
    /// `spec.replicas`.
    pub spec: i32,
    /// `status.availableReplicas`.
    pub available: i32,
}

/// One rolling-update step: the new ReplicaSet's size and the old ones' sizes.
pub fn rolling_step(replicas: i32, surge: i32, unavailable: i32, new: RsCount, olds: &[RsCount]) -> (i32, Vec<i32>) {
    let total: i32 = new.spec + olds.iter().map(|o| o.spec).sum::<i32>();
    let mut new_spec = new.spec.min(replicas);
    if new.spec < replicas {
        let allowed = replicas + surge - total;
        if allowed > 0 {
            new_spec = replicas.min(new.spec + allowed);
        }
    }
    // Upstream's arithmetic: counts from specs (statuses lag), minus what the
    // new set has not made available yet.
    let min_available = replicas - unavailable;
    let new_unavailable = (new_spec - new.available).max(0);
    let mut old_specs: Vec<i32> = olds.iter().map(|o| o.spec).collect();
    let total_spec = |olds: &[i32]| new_spec + olds.iter().sum::<i32>();
    // Unavailable old pods go first...
    let mut budget = (total_spec(&old_specs) - min_available - new_unavailable).max(0);
    for (spec, o) in old_specs.iter_mut().zip(olds) {
        let unhealthy = (*spec - o.available).max(0).min(budget);
        *spec -= unhealthy;
        budget -= unhealthy;
    }
    // ...then healthy ones, as far as availability allows.
    let mut budget = (total_spec(&old_specs) - min_available - new_unavailable).max(0);
    for spec in old_specs.iter_mut() {
        let cut = (*spec).min(budget);
        *spec -= cut;
        budget -= cut;
    }
    (new_spec, old_specs)
}

fn revision(rs: &ReplicaSet) -> i64 {
    rs.annotations().get(REVISION).and_then(|r| r.parse().ok()).unwrap_or(0)
}

fn counts(rs: &ReplicaSet) -> RsCount {
    RsCount {
        spec: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0),
        available: rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0),
    }
}

struct Ctx {
    client: Client,
}

async fn scale(ctx: &Ctx, d: &Deployment, api: &Api<ReplicaSet>, rs: &ReplicaSet, to: i32) -> Result<(), Error> {
    let from = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    if from == to {
        return Ok(());
    }
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let patch = json!({"metadata": {"annotations": {"deployment.kubernetes.io/desired-replicas": replicas.to_string()}}, "spec": {"replicas": to}});
    api.patch(&rs.name_any(), &PatchParams::default(), &Patch::Merge(patch)).await?;
    let verb = if to > from { "up" } else { "down" };
    let msg = format!("Scaled {verb} replica set {} from {from} to {to}", rs.name_any());
    events::record(&ctx.client, d, "Normal", "ScalingReplicaSet", &msg).await;
    Ok(())
}

async fn reconcile(d: Arc<Deployment>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if d.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = d.namespace().unwrap_or_default();
    let uid = d.uid().unwrap_or_default();
    let spec = d.spec.clone().unwrap_or_default();
    let replicas = spec.replicas.unwrap_or(1);
    let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    let mut rss: Vec<ReplicaSet> = api
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter(|rs| rs.owner_references().iter().any(|o| o.controller == Some(true) && o.uid == uid))
        .collect();
    rss.sort_by_key(revision);
    let template = serde_json::to_value(&spec.template).unwrap_or_default();
    let hash = template_hash(&template);
    let max_rev = rss.iter().map(revision).max().unwrap_or(0);
    let pos = rss.iter().position(|rs| rs.labels().get(HASH_LABEL) == Some(&hash));
    let new = match pos {
        Some(i) => {
            let rs = rss.remove(i);
            if revision(&rs) < max_rev {
                // A rollback to an older template makes it the newest revision again.
                let patch = json!({"metadata": {"annotations": {REVISION: (max_rev + 1).to_string()}}});
                api.patch(&rs.name_any(), &PatchParams::default(), &Patch::Merge(patch)).await?
            } else {
                rs
            }
        }
        None => {
            let olds_active = rss.iter().any(|rs| counts(rs).spec > 0);
            // With old pods around, the new set grows step by step (or after them, for Recreate).
            let initial = if olds_active { 0 } else { replicas };
            let mut tpl = template.clone();
            tpl["metadata"]["labels"][HASH_LABEL] = json!(hash);
            let mut selector = serde_json::to_value(&spec.selector).unwrap_or_default();
            selector["matchLabels"][HASH_LABEL] = json!(hash);
            let mut labels = serde_json::to_value(spec.template.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default()).unwrap_or_default();
            labels[HASH_LABEL] = json!(hash);
            let owner = OwnerReference {
                api_version: Deployment::api_version(&()).into_owned(),
                kind: "Deployment".into(),
                name: d.name_any(),
                uid: uid.clone(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            };
            let rs: ReplicaSet = serde_json::from_value(json!({
                "metadata": {"name": format!("{}-{hash}", d.name_any()), "namespace": ns, "labels": labels,
                             "ownerReferences": [owner],
                             "annotations": {REVISION: (max_rev + 1).to_string(),
                                             "deployment.kubernetes.io/desired-replicas": replicas.to_string(),
                                             "deployment.kubernetes.io/max-replicas": replicas.to_string()}},
                "spec": {"replicas": initial, "selector": selector, "template": tpl,
                         "minReadySeconds": spec.min_ready_seconds.unwrap_or(0)},
            }))
            .map_err(|e| Error::Invalid(e.to_string()))?;
            let created = api.create(&PostParams::default(), &rs).await?;
            if initial > 0 {
                let msg = format!("Scaled up replica set {} from 0 to {initial}", created.name_any());
                events::record(&ctx.client, d.as_ref(), "Normal", "ScalingReplicaSet", &msg).await;
            }
            created
        }
    };
    let olds = rss;
    // The Deployment carries its current revision, as upstream (kubectl rollout undo relies on it).
    let rev = revision(&new).to_string();
    if d.annotations().get(REVISION) != Some(&rev) {
        let dapi: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
        dapi.patch(&d.name_any(), &PatchParams::default(), &Patch::Merge(json!({"metadata": {"annotations": {REVISION: rev}}}))).await?;
    }
    let recreate = spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate");
    if recreate {
        for o in &olds {
            scale(&ctx, &d, &api, o, 0).await?;
        }
        let olds_gone = olds.iter().all(|o| o.status.as_ref().map_or(0, |s| s.replicas) == 0);
        if olds_gone {
            scale(&ctx, &d, &api, &new, replicas).await?;
        }
    } else {
        let ru = spec.strategy.as_ref().and_then(|s| s.rolling_update.as_ref());
        let (surge, unavailable) = resolve_fenceposts(ru.and_then(|r| r.max_surge.as_ref()), ru.and_then(|r| r.max_unavailable.as_ref()), replicas);
        let old_counts: Vec<RsCount> = olds.iter().map(counts).collect();
        let (new_spec, old_specs) = rolling_step(replicas, surge, unavailable, counts(&new), &old_counts);
        scale(&ctx, &d, &api, &new, new_spec).await?;
        for (o, s) in olds.iter().zip(old_specs) {
            scale(&ctx, &d, &api, o, s).await?;
        }
    }
    // Revision history: keep the newest `revisionHistoryLimit` empty old ReplicaSets.
    let limit = spec.revision_history_limit.unwrap_or(10).max(0) as usize;
    let empty: Vec<&ReplicaSet> = olds.iter().filter(|o| counts(o).spec == 0 && o.status.as_ref().map_or(0, |s| s.replicas) == 0).collect();
    if empty.len() > limit {
        for o in &empty[..empty.len() - limit] {
            let _ = api.delete(&o.name_any(), &DeleteParams::background()).await;
        }
    }
    // Status, from the ReplicaSets' statuses.
    let all: Vec<&ReplicaSet> = std::iter::once(&new).chain(olds.iter()).collect();
    let sum = |f: fn(&k8s_openapi::api::apps::v1::ReplicaSetStatus) -> i32| all.iter().map(|r| r.status.as_ref().map_or(0, f)).sum::<i32>();
    let total = sum(|s| s.replicas);
    let ready = sum(|s| s.ready_replicas.unwrap_or(0));
    let available = sum(|s| s.available_replicas.unwrap_or(0));
    let updated = new.status.as_ref().map_or(0, |s| s.replicas);
    let ru = spec.strategy.as_ref().and_then(|s| s.rolling_update.as_ref());
    let (_, max_unavailable) = resolve_fenceposts(ru.and_then(|r| r.max_surge.as_ref()), ru.and_then(|r| r.max_unavailable.as_ref()), replicas);
    let is_available = available >= replicas - max_unavailable;
    let complete = updated == replicas && total == replicas && available == replicas;
    let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let cur = d.status.clone().unwrap_or_default();
    let cond = |type_: &str, ok: bool, reason: &str, message: String| {
        let prev = cur.conditions.iter().flatten().find(|c| c.type_ == type_);
        let status = if ok { "True" } else { "False" };
        let transition = match prev {
            Some(p) if p.status == status => serde_json::to_value(&p.last_transition_time).unwrap_or(json!(now)),
            _ => json!(now),
        };
        json!({"type": type_, "status": status, "reason": reason, "message": message, "lastUpdateTime": now, "lastTransitionTime": transition})
    };
    let progressing_reason = if complete { "NewReplicaSetAvailable" } else { "ReplicaSetUpdated" };
    let progressing_msg = if complete {
        format!("ReplicaSet \"{}\" has successfully progressed.", new.name_any())
    } else {
        format!("ReplicaSet \"{}\" is progressing.", new.name_any())
    };
    let status = json!({
        "observedGeneration": d.metadata.generation.unwrap_or(0),
        "replicas": total,
        "updatedReplicas": updated,
        "readyReplicas": ready,
        "availableReplicas": available,
        "unavailableReplicas": (replicas - available).max(0),
        "conditions": [
            cond("Available", is_available, if is_available { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
                 if is_available { "Deployment has minimum availability.".into() } else { "Deployment does not have minimum availability.".into() }),
            cond("Progressing", true, progressing_reason, progressing_msg),
        ],
    });
    let same = cur.observed_generation == d.metadata.generation
        && cur.replicas.unwrap_or(0) == total
        && cur.updated_replicas.unwrap_or(0) == updated
        && cur.ready_replicas.unwrap_or(0) == ready
        && cur.available_replicas.unwrap_or(0) == available
        && cur.conditions.iter().flatten().map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone())).collect::<Vec<_>>()
            == status["conditions"].as_array().into_iter().flatten().map(|c| (c["type"].as_str().unwrap_or("").to_owned(), c["status"].as_str().unwrap_or("").to_owned(), c["reason"].as_str().map(str::to_owned))).collect::<Vec<_>>();
    if !same {
        let dapi: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
        dapi.patch_status(&d.name_any(), &PatchParams::default(), &Patch::Merge(json!({"status": status}))).await?;
    }
    Ok(Action::requeue(if complete { Duration::from_secs(300) } else { Duration::from_secs(2) }))
}

fn error_policy(d: Arc<Deployment>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(deployment = %d.name_any(), error = %err, "deployment reconcile failed; retrying");
    Action::requeue(Duration::from_millis(500))
}

/// Runs the Deployment controller.
pub async fn run(client: Client) {
    let ctx = Arc::new(Ctx { client: client.clone() });
    Controller::new(Api::<Deployment>::all(client.clone()), watcher::Config::default())
        .owns(Api::<ReplicaSet>::all(client), watcher::Config::default())
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_look_like_upstream_and_follow_the_template() {
        let a = template_hash(&json!({"spec": {"containers": [{"image": "nginx:1.25"}]}}));
        let b = template_hash(&json!({"spec": {"containers": [{"image": "nginx:1.26"}]}}));
        assert_ne!(a, b);
        assert!(a.len() >= 6 && a.bytes().all(|c| ALPHANUMS.contains(&c)), "{a}");
    }

    #[test]
    fn fenceposts_default_to_25_percent() {
        assert_eq!(resolve_fenceposts(None, None, 4), (1, 1));
        assert_eq!(resolve_fenceposts(None, None, 10), (3, 2));
        assert_eq!(resolve_fenceposts(Some(&IntOrString::Int(0)), Some(&IntOrString::Int(0)), 3), (0, 1));
        assert_eq!(resolve_fenceposts(Some(&IntOrString::String("50%".into())), Some(&IntOrString::Int(0)), 3), (2, 0));
    }

    #[test]
    fn rolling_update_respects_surge_and_unavailability() {
        let rc = |spec, available| RsCount { spec, available };
        // 4 replicas, surge 1, unavailable 1: new scales to 1, old drops one.
        assert_eq!(rolling_step(4, 1, 1, rc(0, 0), &[rc(4, 4)]), (1, vec![3]));
        // New pods not yet available: no further old pods go below 3 available.
        assert_eq!(rolling_step(4, 1, 1, rc(1, 0), &[rc(3, 3)]), (2, vec![3]));
        // Unavailable old pods are removed first.
        assert_eq!(rolling_step(4, 1, 1, rc(2, 2), &[rc(3, 1)]), (2, vec![1]));
        // Done: old at zero, new at replicas.
        assert_eq!(rolling_step(4, 1, 1, rc(4, 4), &[rc(0, 0)]), (4, vec![0]));
        // Scaling a finished rollout up and down.
        assert_eq!(rolling_step(5, 2, 1, rc(3, 3), &[]), (5, vec![]));
        assert_eq!(rolling_step(2, 1, 0, rc(3, 3), &[]), (2, vec![]));
    }
}
