//! `ValidateServiceUpdate` and the registry's `dropTypeDependentFields`
//! (`pkg/registry/core/service/strategy.go`), run before validating an update.

use super::ips::{validate_upgrade_downgrade_cluster_ips, validate_upgrade_downgrade_ip_families};
use super::{externally_accessible, needs_health_check, validate_load_balancer_class, validate_typed};
use crate::status::FieldError;
use crate::validation::fields::decode;
use crate::validation::meta::validate_object_meta_update;
use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// `ValidateServiceUpdate`: immutable metadata, cluster IP and family changes,
/// the LoadBalancer class, the health-check port, then the whole `ValidateService`.
pub fn validate_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let (new, old) = match (decode::<Service>(new), decode::<Service>(old)) {
        (Ok(n), Ok(o)) => (n, o),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let empty = ServiceSpec::default();
    let (ns, os) = (new.spec.as_ref().unwrap_or(&empty), old.spec.as_ref().unwrap_or(&empty));
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata);
    errs.extend(validate_upgrade_downgrade_cluster_ips(os, ns));
    errs.extend(validate_upgrade_downgrade_ip_families(os, ns));
    errs.extend(validate_load_balancer_class(Some(os), ns));
    if needs_health_check(os) && needs_health_check(ns) && os.health_check_node_port != ns.health_check_node_port {
        errs.push(FieldError::forbidden("spec.healthCheckNodePort", "field is immutable"));
    }
    errs.extend(validate_typed(&new));
    errs
}

fn spec_str<'a>(svc: &'a Value, field: &str) -> &'a str {
    svc.pointer(&format!("/spec/{field}")).and_then(Value::as_str).unwrap_or("")
}

fn spec_field<'a>(svc: &'a Value, field: &str) -> Option<&'a Value> {
    svc.get("spec").and_then(|s| s.get(field)).filter(|v| !v.is_null())
}

/// Compares a field as Go compares the typed values: absent, null and the
/// zero value (empty string, empty list) are the same.
fn same(old: &Value, new: &Value, field: &str) -> bool {
    let norm = |v: Option<&Value>| -> Option<Value> {
        v.filter(|v| !(v.as_str() == Some("") || v.as_array().is_some_and(Vec::is_empty) || v.as_i64() == Some(0))).cloned()
    };
    norm(spec_field(old, field)) == norm(spec_field(new, field))
}

fn node_ports(svc: &Value) -> BTreeSet<i64> {
    svc.pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("nodePort").and_then(Value::as_i64))
        .filter(|np| *np != 0)
        .collect()
}

fn spec_mut(svc: &mut Value) -> Option<&mut Map<String, Value>> {
    svc.get_mut("spec").and_then(Value::as_object_mut)
}

fn needs_node_port(svc: &Value) -> bool {
    matches!(spec_str(svc, "type"), "NodePort" | "LoadBalancer")
}

fn needs_hc_node_port(svc: &Value) -> bool {
    spec_str(svc, "type") == "LoadBalancer" && spec_str(svc, "externalTrafficPolicy") == "Local"
}

/// Before validating an update, clears what the new `type` no longer uses when
/// the user left it as it was (upstream `dropTypeDependentFields`), so that
/// e.g. NodePort → ClusterIP does not fail on the old node ports.
pub fn prepare_service_update(new: &mut Value, old: &Value) {
    let needs_cluster_ip = |svc: &Value| spec_str(svc, "type") != "ExternalName";
    let mut drop: Vec<&str> = Vec::new();
    if needs_cluster_ip(old) && !needs_cluster_ip(new) {
        if same(old, new, "clusterIP") && same(old, new, "clusterIPs") {
            drop.extend(["clusterIP", "clusterIPs"]);
        }
        if same(old, new, "ipFamilies") {
            drop.push("ipFamilies");
        }
        if same(old, new, "ipFamilyPolicy") {
            drop.push("ipFamilyPolicy");
        }
    }
    // Users may add, remove or change ports as long as they add no new node port.
    let drop_node_ports = needs_node_port(old) && !needs_node_port(new) && node_ports(old).is_superset(&node_ports(new));
    if needs_hc_node_port(old) && !needs_hc_node_port(new) && same(old, new, "healthCheckNodePort") {
        drop.push("healthCheckNodePort");
    }
    if spec_str(old, "type") == "LoadBalancer" && spec_str(new, "type") != "LoadBalancer" {
        let (o, n) = (spec_field(old, "allocateLoadBalancerNodePorts"), spec_field(new, "allocateLoadBalancerNodePorts"));
        if o.is_some() && o == n {
            drop.push("allocateLoadBalancerNodePorts");
        }
        if same(old, new, "loadBalancerClass") {
            drop.push("loadBalancerClass");
        }
    }
    let accessible = |svc: &Value| decode::<Service>(svc).ok().and_then(|s| s.spec).is_some_and(|s| externally_accessible(&s));
    if accessible(old) && !accessible(new) && same(old, new, "externalTrafficPolicy") {
        drop.push("externalTrafficPolicy");
    }
    let is_lb = spec_str(new, "type") == "LoadBalancer";
    if let Some(spec) = spec_mut(new) {
        for f in drop {
            spec.remove(f);
        }
        if drop_node_ports {
            for p in spec.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten().filter_map(Value::as_object_mut) {
                p.remove("nodePort");
            }
        }
    }
    // The load-balancer status goes with the type.
    if !is_lb && let Some(status) = new.get_mut("status").and_then(Value::as_object_mut) {
        status.insert("loadBalancer".into(), Value::Object(Map::new()));
    }
}
