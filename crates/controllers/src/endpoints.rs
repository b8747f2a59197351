//! The Endpoints and EndpointSlice controllers: level-triggered reconciles
//! of each Service against the Pods it selects.

use crate::desired::{self, MANAGED_BY, MANAGED_BY_LABEL, SERVICE_NAME_LABEL};
use crate::Error;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use std::sync::Arc;
use std::time::Duration;

/// What the reconciler reads.
struct Ctx {
    client: Client,
    pods: Store<Pod>,
    slices: Store<EndpointSlice>,
    /// Turns true once both caches are filled. kube-runtime's `wait_until_ready`
    /// wakes only one of several concurrent waiters, so one task waits and
    /// broadcasts here.
    ready: tokio::sync::watch::Receiver<bool>,
}

fn in_namespace<'a, K: ResourceExt>(items: &'a [Arc<K>], ns: &str) -> impl Iterator<Item = &'a Arc<K>> {
    items.iter().filter(move |o| o.namespace().as_deref() == Some(ns))
}

fn slices_managed_by(store: &Store<EndpointSlice>, ns: &str, svc: &str, manager: &str) -> Vec<EndpointSlice> {
    in_namespace(&store.state(), ns)
        .filter(|s| {
            let l = s.labels();
            l.get(SERVICE_NAME_LABEL).map(String::as_str) == Some(svc) && l.get(MANAGED_BY_LABEL).map(String::as_str) == Some(manager)
        })
        .map(|s| EndpointSlice::clone(s))
        .collect()
}

async fn reconcile(svc: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    // Decide only once the pod and slice caches hold the world.
    ctx.ready.clone().wait_for(|r| *r).await.map_err(|_| Error::CacheClosed)?;
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let has_selector = svc.spec.as_ref().and_then(|s| s.selector.as_ref()).is_some_and(|s| !s.is_empty());
    if svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
        return Ok(Action::await_change());
    }
    if !has_selector {
        // Selector-less Services keep the Endpoints their users write; those
        // are mirrored into slices so data planes only ever read slices.
        let ep = Api::<Endpoints>::namespaced(ctx.client.clone(), &ns).get_opt(&name).await?;
        let existing = slices_managed_by(&ctx.slices, &ns, &name, desired::MIRROR_MANAGED_BY);
        let plan = desired::plan_mirrored_slices(&svc, ep.as_ref(), &existing);
        apply_plan(&Api::namespaced(ctx.client.clone(), &ns), &plan).await?;
        return Ok(Action::requeue(Duration::from_secs(300)));
    }
    let all_pods = ctx.pods.state();
    // Select once: the desired-state functions then work on the Service's own pods.
    let pods: Vec<&Pod> = in_namespace(&all_pods, &ns).map(|p| p.as_ref()).filter(|p| desired::selects(&svc, p)).collect();

    // core/v1 Endpoints.
    let ep_api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &ns);
    let mut want = desired::desired_endpoints(&svc, &pods);
    match ep_api.get_opt(&name).await? {
        None => {
            ep_api.create(&PostParams::default(), &want).await?;
        }
        Some(cur) if cur.subsets != want.subsets || cur.metadata.labels != want.metadata.labels => {
            want.metadata.resource_version = cur.metadata.resource_version.clone();
            ep_api.replace(&name, &PostParams::default(), &want).await?;
        }
        Some(_) => {}
    }

    // discovery/v1 EndpointSlices.
    let slice_api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &ns);
    let existing = slices_managed_by(&ctx.slices, &ns, &name, MANAGED_BY);
    let plan = desired::plan_slices(&svc, &pods, &existing);
    apply_plan(&slice_api, &plan).await?;
    // Level-triggered: a periodic resync repairs anything a missed event left behind.
    Ok(Action::requeue(Duration::from_secs(300)))
}

async fn apply_plan(slice_api: &Api<EndpointSlice>, plan: &desired::SlicePlan) -> Result<(), Error> {
    for s in &plan.update {
        let n = s.metadata.name.clone().unwrap_or_default();
        slice_api.replace(&n, &PostParams::default(), s).await?;
    }
    for s in &plan.create {
        slice_api.create(&PostParams::default(), s).await?;
    }
    for n in &plan.delete {
        match slice_api.delete(n, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn error_policy(svc: Arc<Service>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(service = %svc.name_any(), namespace = ?svc.namespace(), error = %err, "endpoints reconcile failed; retrying");
    Action::requeue(Duration::from_millis(500))
}

/// Services that select the Pod now, or whose slices still list it.
fn services_for_pod(services: &Store<Service>, slices: &Store<EndpointSlice>, pod: &Pod) -> Vec<ObjectRef<Service>> {
    let ns = pod.namespace().unwrap_or_default();
    let uid = pod.metadata.uid.clone();
    let mut out: Vec<ObjectRef<Service>> = in_namespace(&services.state(), &ns)
        .filter(|s| desired::selects(s, pod))
        .map(|s| ObjectRef::from_obj(s.as_ref()))
        .collect();
    for slice in in_namespace(&slices.state(), &ns) {
        let lists_pod = slice.endpoints.iter().any(|e| e.target_ref.as_ref().and_then(|t| t.uid.clone()) == uid);
        if let (true, Some(svc)) = (lists_pod, slice.labels().get(SERVICE_NAME_LABEL)) {
            let r = ObjectRef::new(svc).within(&ns);
            if !out.contains(&r) {
                out.push(r);
            }
        }
    }
    out
}

/// Removes what a deleted Service's endpoints controllers created.
async fn clean_up_deleted_services(client: Client) {
    let services: Api<Service> = Api::all(client.clone());
    let mut events = watcher(services, watcher::Config::default()).default_backoff().boxed();
    while let Some(ev) = events.next().await {
        let Ok(watcher::Event::Delete(svc)) = ev else { continue };
        let (ns, name) = (svc.namespace().unwrap_or_default(), svc.name_any());
        let eps: Api<Endpoints> = Api::namespaced(client.clone(), &ns);
        let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), &ns);
        if svc.spec.as_ref().and_then(|s| s.selector.as_ref()).is_some_and(|s| !s.is_empty()) {
            let _ = eps.delete(&name, &DeleteParams::default()).await;
        }
        for manager in [MANAGED_BY, desired::MIRROR_MANAGED_BY] {
            let lp = ListParams::default().labels(&format!("{SERVICE_NAME_LABEL}={name},{MANAGED_BY_LABEL}={manager}"));
            if let Ok(list) = slices.list(&lp).await {
                for s in list {
                    let _ = slices.delete(&s.name_any(), &DeleteParams::default()).await;
                }
            }
        }
    }
}

/// Runs the Endpoints and EndpointSlice controllers until the stream ends.
pub async fn run(client: Client) {
    let (pods, pod_writer) = reflector::store::<Pod>();
    let (slices, slice_writer) = reflector::store::<EndpointSlice>();
    let pod_stream = reflector::reflector(pod_writer, watcher(Api::<Pod>::all(client.clone()), watcher::Config::default()))
        .default_backoff()
        .touched_objects();
    let slice_stream = reflector::reflector(slice_writer, watcher(Api::<EndpointSlice>::all(client.clone()), watcher::Config::default()))
        .default_backoff()
        .touched_objects();
    let controller = Controller::new(Api::<Service>::all(client.clone()), watcher::Config::default());
    let services = controller.store();
    let (svc_for_pods, slices_for_pods) = (services.clone(), slices.clone());
    let ready = crate::caches_ready(vec![crate::ready_of(pods.clone()), crate::ready_of(slices.clone())]);
    let ctx = Arc::new(Ctx { client: client.clone(), pods, slices: slices.clone(), ready });
    tokio::spawn(clean_up_deleted_services(client.clone()));
    let run = controller
        .watches_stream(pod_stream, move |pod| services_for_pod(&svc_for_pods, &slices_for_pods, &pod))
        .watches_stream(watcher(Api::<Endpoints>::all(client.clone()), watcher::Config::default()).default_backoff().touched_objects(), |ep| {
            let ns = ep.namespace().unwrap_or_default();
            Some(ObjectRef::new(&ep.name_any()).within(&ns))
        })
        .watches_stream(slice_stream, |slice| {
            let ns = slice.namespace().unwrap_or_default();
            slice.labels().get(SERVICE_NAME_LABEL).map(|s| ObjectRef::new(s).within(&ns))
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "endpoints controller event");
            }
        });
    run.await;
}
