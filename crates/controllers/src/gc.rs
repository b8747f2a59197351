//! The garbage collector: cascading deletion by ownerReferences.
//!
//! Background (the default): dependents whose owners are gone are deleted.
//! Foreground: an owner carrying the `foregroundDeletion` finalizer loses it
//! once its dependents are gone, which completes its deletion. Orphan: an
//! owner carrying the `orphan` finalizer has its dependents' ownerReferences
//! to it removed, then loses the finalizer. This pass runs on a short period
//! over the resources that have owners in Portico.

use crate::Error;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use futures::StreamExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use k8s_openapi::NamespaceResourceScope;
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::time::Duration;

/// How often the collector looks.
const PERIOD: Duration = Duration::from_millis(500);

/// An owner as the collector sees it.
struct Owner {
    deleting: bool,
    finalizers: Vec<String>,
}

fn owners<K>(store: &Store<K>) -> Vec<(String, String, Option<String>, Owner)>
where
    K: Resource<DynamicType = ()> + Clone,
{
    store
        .state()
        .into_iter()
        .map(|o| {
            let owner = Owner { deleting: o.meta().deletion_timestamp.is_some(), finalizers: o.finalizers().to_vec() };
            (o.uid().unwrap_or_default(), o.name_any(), o.namespace(), owner)
        })
        .collect()
}

/// What to do with one dependent, given the owners that exist.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Leave it.
    Keep,
    /// Every owner is gone (or deleting in the foreground): delete it.
    Delete,
    /// Remove the references to these owner uids (orphaning).
    Orphan(Vec<String>),
}

/// Decides a dependent's fate from its owner uids and the known owners.
pub fn verdict(owner_uids: &[String], known: &HashMap<String, (bool, Vec<String>)>) -> Verdict {
    if owner_uids.is_empty() {
        return Verdict::Keep;
    }
    let orphaning: Vec<String> =
        owner_uids.iter().filter(|u| known.get(*u).is_some_and(|(del, f)| *del && f.iter().any(|x| x == "orphan"))).cloned().collect();
    if !orphaning.is_empty() {
        return Verdict::Orphan(orphaning);
    }
    let gone = |u: &String| match known.get(u) {
        None => true,
        Some((deleting, fin)) => *deleting && fin.iter().any(|f| f == "foregroundDeletion"),
    };
    if owner_uids.iter().all(gone) { Verdict::Delete } else { Verdict::Keep }
}

async fn sweep<K>(client: &Client, store: &Store<K>, known: &HashMap<String, (bool, Vec<String>)>, still_owned: &mut HashSet<String>) -> Result<(), Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
{
    for d in store.state() {
        let uids: Vec<String> = d.owner_references().iter().map(|o| o.uid.clone()).collect();
        let api: Api<K> = Api::namespaced(client.clone(), &d.namespace().unwrap_or_default());
        match verdict(&uids, known) {
            Verdict::Keep => still_owned.extend(uids),
            Verdict::Delete => {
                // The caches may lag: confirm with the API server before deleting.
                let ns = d.namespace().unwrap_or_default();
                let mut confirmed = true;
                for o in d.owner_references() {
                    if owner_alive(client, &ns, o).await {
                        confirmed = false;
                    }
                }
                if confirmed && d.meta().deletion_timestamp.is_none() {
                    let _ = api.delete(&d.name_any(), &DeleteParams::background()).await;
                }
                still_owned.extend(uids);
            }
            Verdict::Orphan(gone) => {
                let keep: Vec<_> = d.owner_references().iter().filter(|o| !gone.contains(&o.uid)).cloned().collect();
                let patch = json!({"metadata": {"ownerReferences": keep}});
                let _ = api.patch(&d.name_any(), &PatchParams::default(), &Patch::Merge(patch)).await;
            }
        }
    }
    Ok(())
}

async fn release<K>(client: &Client, owners: &[(String, String, Option<String>, Owner)], still_owned: &HashSet<String>) -> Result<(), Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
{
    for (uid, name, ns, o) in owners {
        if !o.deleting {
            continue;
        }
        let pending: Vec<&String> = o.finalizers.iter().filter(|f| *f == "foregroundDeletion" || *f == "orphan").collect();
        if pending.is_empty() || (still_owned.contains(uid) && pending.iter().any(|f| *f == "foregroundDeletion")) {
            continue;
        }
        let remaining: Vec<&String> = o.finalizers.iter().filter(|f| *f != "foregroundDeletion" && *f != "orphan").collect();
        let api: Api<K> = Api::namespaced(client.clone(), ns.as_deref().unwrap_or_default());
        let _ = api.patch(name, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": remaining}}))).await;
    }
    Ok(())
}

/// Whether an owner exists (and is not being deleted in the foreground), asked live.
async fn owner_alive(client: &Client, ns: &str, o: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference) -> bool {
    async fn check<K>(client: &Client, ns: &str, o: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference) -> bool
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
    {
        match Api::<K>::namespaced(client.clone(), ns).get_opt(&o.name).await {
            Ok(Some(obj)) => {
                obj.uid().as_deref() == Some(o.uid.as_str())
                    && !(obj.meta().deletion_timestamp.is_some() && obj.finalizers().iter().any(|f| f == "foregroundDeletion"))
            }
            Ok(None) => false,
            // When in doubt, keep the dependent.
            Err(_) => true,
        }
    }
    match o.kind.as_str() {
        "Deployment" => check::<Deployment>(client, ns, o).await,
        "ReplicaSet" => check::<ReplicaSet>(client, ns, o).await,
        "Service" => check::<Service>(client, ns, o).await,
        "Endpoints" => check::<Endpoints>(client, ns, o).await,
        "Pod" => check::<Pod>(client, ns, o).await,
        // Owners of kinds the collector does not know are never collected.
        _ => true,
    }
}

/// The watch caches the collector reads.
struct Caches {
    deployments: Store<Deployment>,
    replicasets: Store<ReplicaSet>,
    services: Store<Service>,
    endpoints: Store<Endpoints>,
    pods: Store<Pod>,
    slices: Store<EndpointSlice>,
}

async fn pass(client: &Client, c: &Caches) -> Result<(), Error> {
    let deployments = owners(&c.deployments);
    let replicasets = owners(&c.replicasets);
    let services = owners(&c.services);
    let endpoints = owners(&c.endpoints);
    let mut known: HashMap<String, (bool, Vec<String>)> = HashMap::new();
    for (uid, _, _, o) in deployments.iter().chain(&replicasets).chain(&services).chain(&endpoints) {
        known.insert(uid.clone(), (o.deleting, o.finalizers.clone()));
    }
    let mut still_owned = HashSet::new();
    sweep(client, &c.replicasets, &known, &mut still_owned).await?;
    sweep(client, &c.pods, &known, &mut still_owned).await?;
    sweep(client, &c.slices, &known, &mut still_owned).await?;
    release::<Deployment>(client, &deployments, &still_owned).await?;
    release::<ReplicaSet>(client, &replicasets, &still_owned).await?;
    release::<Service>(client, &services, &still_owned).await?;
    Ok(())
}

fn cache<K>(client: &Client) -> (Store<K>, impl std::future::Future<Output = ()> + use<K>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store::<K>();
    let stream = reflector::reflector(writer, watcher(Api::<K>::all(client.clone()), watcher::Config::default())).default_backoff();
    (store, stream.for_each(|_| async {}))
}

/// Runs the collector forever.
pub async fn run(client: Client) {
    let (deployments, a) = cache::<Deployment>(&client);
    let (replicasets, b) = cache::<ReplicaSet>(&client);
    let (services, c) = cache::<Service>(&client);
    let (endpoints, d) = cache::<Endpoints>(&client);
    let (pods, e) = cache::<Pod>(&client);
    let (slices, f) = cache::<EndpointSlice>(&client);
    let caches = Caches { deployments, replicasets, services, endpoints, pods, slices };
    let collector = async {
        for s in [caches.deployments.wait_until_ready().await, caches.replicasets.wait_until_ready().await, caches.services.wait_until_ready().await] {
            if s.is_err() {
                return;
            }
        }
        let _ = caches.endpoints.wait_until_ready().await;
        let _ = caches.pods.wait_until_ready().await;
        let _ = caches.slices.wait_until_ready().await;
        loop {
            if let Err(e) = pass(&client, &caches).await {
                tracing::debug!(error = %e, "garbage collection pass failed");
            }
            tokio::time::sleep(PERIOD).await;
        }
    };
    tokio::join!(a, b, c, d, e, f, collector);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        let mut known = HashMap::new();
        known.insert("live".to_owned(), (false, vec![]));
        known.insert("fg".to_owned(), (true, vec!["foregroundDeletion".to_owned()]));
        known.insert("orphaning".to_owned(), (true, vec!["orphan".to_owned()]));
        assert_eq!(verdict(&[], &known), Verdict::Keep);
        assert_eq!(verdict(&["live".into()], &known), Verdict::Keep);
        assert_eq!(verdict(&["gone".into()], &known), Verdict::Delete);
        assert_eq!(verdict(&["fg".into()], &known), Verdict::Delete);
        assert_eq!(verdict(&["gone".into(), "live".into()], &known), Verdict::Keep);
        assert_eq!(verdict(&["orphaning".into()], &known), Verdict::Orphan(vec!["orphaning".into()]));
    }
}
