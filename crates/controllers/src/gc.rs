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
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
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

async fn owners<K>(client: &Client) -> Result<Vec<(String, String, Option<String>, Owner)>, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let list = Api::<K>::all(client.clone()).list(&ListParams::default()).await?;
    Ok(list
        .items
        .into_iter()
        .map(|o| {
            let owner = Owner { deleting: o.meta().deletion_timestamp.is_some(), finalizers: o.finalizers().to_vec() };
            (o.uid().unwrap_or_default(), o.name_any(), o.namespace(), owner)
        })
        .collect())
}

async fn dependents<K>(client: &Client) -> Result<Vec<K>, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    Ok(Api::<K>::all(client.clone()).list(&ListParams::default()).await?.items)
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

async fn sweep<K>(client: &Client, known: &HashMap<String, (bool, Vec<String>)>, still_owned: &mut HashSet<String>) -> Result<(), Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
{
    for d in dependents::<K>(client).await? {
        let uids: Vec<String> = d.owner_references().iter().map(|o| o.uid.clone()).collect();
        let api: Api<K> = Api::namespaced(client.clone(), &d.namespace().unwrap_or_default());
        match verdict(&uids, known) {
            Verdict::Keep => still_owned.extend(uids),
            Verdict::Delete => {
                if d.meta().deletion_timestamp.is_none() {
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

async fn pass(client: &Client) -> Result<(), Error> {
    let deployments = owners::<Deployment>(client).await?;
    let replicasets = owners::<ReplicaSet>(client).await?;
    let services = owners::<Service>(client).await?;
    let endpoints = owners::<Endpoints>(client).await?;
    let mut known: HashMap<String, (bool, Vec<String>)> = HashMap::new();
    for (uid, _, _, o) in deployments.iter().chain(&replicasets).chain(&services).chain(&endpoints) {
        known.insert(uid.clone(), (o.deleting, o.finalizers.clone()));
    }
    let mut still_owned = HashSet::new();
    sweep::<ReplicaSet>(client, &known, &mut still_owned).await?;
    sweep::<Pod>(client, &known, &mut still_owned).await?;
    sweep::<EndpointSlice>(client, &known, &mut still_owned).await?;
    release::<Deployment>(client, &deployments, &still_owned).await?;
    release::<ReplicaSet>(client, &replicasets, &still_owned).await?;
    release::<Service>(client, &services, &still_owned).await?;
    Ok(())
}

/// Runs the collector forever.
pub async fn run(client: Client) {
    loop {
        if let Err(e) = pass(&client).await {
            tracing::debug!(error = %e, "garbage collection pass failed");
        }
        tokio::time::sleep(PERIOD).await;
    }
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
