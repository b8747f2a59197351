//! Defaults of the core and discovery kinds other than Pods: Service
//! (`SetDefaults_Service`), Namespace, Endpoints and EndpointSlice.

use super::{default_ptr, default_str, each_mut, is_unset, obj_mut};
use serde_json::{Map, Value, json};

/// `v1.DefaultClientIPServiceAffinitySeconds`.
const DEFAULT_AFFINITY_SECONDS: i64 = 10800;

fn str_of<'a>(m: &'a Map<String, Value>, key: &str) -> &'a str {
    m.get(key).and_then(Value::as_str).unwrap_or("")
}

/// `SetDefaults_Service`. ClusterIPs, IP families and node ports are the
/// allocator's; `status.loadBalancer: {}` is what Go's encoder always emits.
pub(super) fn service(root: &mut Map<String, Value>) {
    let spec = obj_mut(root, "spec");
    default_str(spec, "sessionAffinity", "None");
    match str_of(spec, "sessionAffinity") {
        "None" => {
            spec.remove("sessionAffinityConfig");
        }
        "ClientIP" => {
            let has_timeout = spec.get("sessionAffinityConfig").and_then(|c| c.get("clientIP")).and_then(|c| c.get("timeoutSeconds")).is_some_and(|t| !t.is_null());
            if !has_timeout {
                // Upstream replaces the whole config when any level is missing.
                spec.insert("sessionAffinityConfig".into(), json!({"clientIP": {"timeoutSeconds": DEFAULT_AFFINITY_SECONDS}}));
            }
        }
        _ => {}
    }
    default_str(spec, "type", "ClusterIP");
    for p in each_mut(spec, "ports") {
        default_str(p, "protocol", "TCP");
        if p.get("targetPort").is_none_or(|t| t.is_null() || t == 0 || t == "") {
            let port = p.get("port").cloned().unwrap_or(json!(0));
            p.insert("targetPort".into(), port);
        }
    }
    let ty = str_of(spec, "type").to_owned();
    let external_ips = spec.get("externalIPs").and_then(Value::as_array).is_some_and(|a| !a.is_empty());
    if matches!(ty.as_str(), "LoadBalancer" | "NodePort") || (ty == "ClusterIP" && external_ips) {
        default_str(spec, "externalTrafficPolicy", "Cluster");
    }
    if matches!(ty.as_str(), "NodePort" | "LoadBalancer" | "ClusterIP") {
        default_ptr(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        default_ptr(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    let status = obj_mut(root, "status");
    let lb = obj_mut(status, "loadBalancer");
    if ty == "LoadBalancer" {
        for ing in each_mut(lb, "ingress") {
            if !str_of(ing, "ip").is_empty() && is_unset(ing, "ipMode") {
                ing.insert("ipMode".into(), json!("VIP"));
            }
        }
    }
}

/// `SetDefaults_Namespace` (the name label), `SetDefaults_NamespaceStatus`, and
/// the `kubernetes` finalizer the namespace strategy adds.
pub(super) fn namespace(root: &mut Map<String, Value>) {
    let meta = obj_mut(root, "metadata");
    let name = str_of(meta, "name").to_owned();
    if !name.is_empty() {
        obj_mut(meta, "labels").insert("kubernetes.io/metadata.name".into(), json!(name));
    }
    default_ptr(obj_mut(root, "spec"), "finalizers", json!(["kubernetes"]));
    default_str(obj_mut(root, "status"), "phase", "Active");
}

/// `SetDefaults_Endpoints`: port protocols.
pub(super) fn endpoints(root: &mut Map<String, Value>) {
    for subset in each_mut(root, "subsets") {
        for p in each_mut(subset, "ports") {
            default_str(p, "protocol", "TCP");
        }
    }
}

/// discovery/v1 `SetDefaults_EndpointPort`: name `""` and protocol TCP.
pub(super) fn endpoint_slice(root: &mut Map<String, Value>) {
    for p in each_mut(root, "ports") {
        default_ptr(p, "name", json!(""));
        default_ptr(p, "protocol", json!("TCP"));
    }
}
