//! Objects every cluster has from its first start, and the namespace
//! finalizer that empties a deleted namespace before removing it.

use crate::handler::Api;
use crate::object;
use crate::params::{FieldValidation, WriteOptions};
use crate::registry::{DeleteOptions, ListParams, ObjectRef, Registry};
use crate::server::Config;
use portico_api::resources::{self, CATALOGUE};
use portico_api::status::ApiError;
use serde_json::{Value, json};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Namespaces created at first start.
pub const DEFAULT_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// The first usable address of the primary service range (the `kubernetes`
/// Service's ClusterIP; upstream gives it the primary family only).
pub fn first_service_ip(cidrs: &[ipnet::IpNet]) -> IpAddr {
    match cidrs.first() {
        Some(ipnet::IpNet::V4(n)) => IpAddr::V4(std::net::Ipv4Addr::from(u32::from(n.network()).wrapping_add(1))),
        Some(ipnet::IpNet::V6(n)) => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(n.network()).wrapping_add(1))),
        None => IpAddr::V4(std::net::Ipv4Addr::new(10, 96, 0, 1)),
    }
}

fn system_opts() -> WriteOptions {
    WriteOptions { dry_run: false, field_manager: "portico-apiserver".into(), field_validation: FieldValidation::Ignore, force: false, apply: false }
}

fn def(group: &str, plural: &str) -> Result<&'static resources::ResourceDef, ApiError> {
    resources::find(group, "v1", plural).ok_or_else(|| ApiError::internal(format!("resource {plural} missing from the catalogue")))
}

async fn create_if_absent(registry: &Registry, group: &str, plural: &str, ns: Option<&str>, obj: Value) -> Result<(), ApiError> {
    let d = def(group, plural)?;
    let name = object::name(&obj).to_owned();
    if registry.try_get(&ObjectRef { def: d, namespace: ns, name: &name }).await?.is_some() {
        return Ok(());
    }
    match registry.create(d, ns, obj, &system_opts()).await {
        Ok(_) => Ok(()),
        Err(e) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates the default namespaces and the `kubernetes` Service with its endpoints.
pub async fn ensure_defaults(registry: &Registry, cfg: &Config, advertise: SocketAddr) -> Result<(), ApiError> {
    for ns in DEFAULT_NAMESPACES {
        create_if_absent(registry, "", "namespaces", None, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})).await?;
    }
    let ip = first_service_ip(&cfg.service_cidrs).to_string();
    let svc = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip], "sessionAffinity": "None",
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": advertise.port()}]},
    });
    create_if_absent(registry, "", "services", Some("default"), svc).await?;
    let addr = advertise.ip().to_string();
    let family = if advertise.is_ipv4() { "IPv4" } else { "IPv6" };
    let ep = json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": addr}], "ports": [{"name": "https", "port": advertise.port(), "protocol": "TCP"}]}],
    });
    upsert(registry, "", "endpoints", "kubernetes", ep).await?;
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"kubernetes.io/service-name": "kubernetes", "endpointslice.kubernetes.io/managed-by": "portico-apiserver"}},
        "addressType": family,
        "endpoints": [{"addresses": [addr], "conditions": {"ready": true}}],
        "ports": [{"name": "https", "port": advertise.port(), "protocol": "TCP"}],
    });
    upsert(registry, "discovery.k8s.io", "endpointslices", "kubernetes", slice).await
}

/// Creates or replaces an object in `default` so it follows the current listen address.
async fn upsert(registry: &Registry, group: &str, plural: &str, name: &str, obj: Value) -> Result<(), ApiError> {
    let d = def(group, plural)?;
    let r = ObjectRef { def: d, namespace: Some("default"), name };
    match registry.try_get(&r).await? {
        None => create_if_absent(registry, group, plural, Some("default"), obj).await,
        Some((mut cur, _)) => {
            let mut wanted = cur.clone();
            for (k, v) in obj.as_object().into_iter().flatten() {
                if k != "metadata" {
                    wanted[k] = v.clone();
                }
            }
            if wanted == cur {
                return Ok(());
            }
            object::remove_meta(&mut cur, "resourceVersion");
            registry.update(&r, None, wanted, &system_opts()).await.map(|_| ())
        }
    }
}

/// Empties namespaces marked for deletion, then removes them (upstream's namespace controller).
pub async fn namespace_finalizer(api: Arc<Api>) {
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Err(e) = finalize_namespaces(&api.registry).await {
            tracing::warn!(error = %e, "namespace finalizer pass failed");
        }
    }
}

async fn finalize_namespaces(registry: &Registry) -> Result<(), ApiError> {
    let nsdef = def("", "namespaces")?;
    let all = registry.list(nsdef, None, &ListParams::default()).await?;
    for ns in all.items.iter().filter(|n| object::is_deleting(n)) {
        let name = object::name(ns).to_owned();
        let mut remaining = 0usize;
        for d in CATALOGUE.iter().filter(|d| d.namespaced) {
            let items = registry.list(d, Some(&name), &ListParams::default()).await?.items;
            for item in &items {
                remaining += 1;
                if object::is_deleting(item) && d.plural != "pods" {
                    continue;
                }
                let opts = DeleteOptions { grace_period_seconds: Some(0), ..Default::default() };
                match registry.delete(&ObjectRef { def: d, namespace: Some(&name), name: object::name(item) }, &opts).await {
                    Ok(_) => {}
                    Err(e) if e.code == 404 => {}
                    Err(e) => tracing::warn!(namespace = %name, error = %e, "deleting namespace content"),
                }
            }
        }
        if remaining == 0 {
            let key = Registry::key(&ObjectRef { def: nsdef, namespace: None, name: &name });
            match registry.store().delete(&key, None).await {
                Ok(_) | Err(portico_store::StoreError::NotFound(_)) => tracing::info!(namespace = %name, "namespace deleted"),
                Err(e) => tracing::warn!(namespace = %name, error = %e, "removing namespace"),
            }
        }
    }
    Ok(())
}
