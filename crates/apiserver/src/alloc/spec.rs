//! Reading and writing the Service fields allocation cares about, on the
//! JSON object (absent fields read as Go's zero values).

use serde_json::{Map, Value};

/// `spec.type`, defaulting to `ClusterIP`.
pub fn svc_type(svc: &Value) -> &str {
    svc.pointer("/spec/type").and_then(Value::as_str).filter(|s| !s.is_empty()).unwrap_or("ClusterIP")
}

/// A string under `spec`, `""` when absent.
pub fn spec_str<'a>(svc: &'a Value, field: &str) -> &'a str {
    svc.get("spec").and_then(|s| s.get(field)).and_then(Value::as_str).unwrap_or("")
}

/// A string list under `spec`, empty when absent.
pub fn spec_strings(svc: &Value, field: &str) -> Vec<String> {
    svc.get("spec")
        .and_then(|s| s.get(field))
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|v| v.as_str().unwrap_or("").to_owned()).collect())
        .unwrap_or_default()
}

/// `spec.ipFamilyPolicy`, `None` when unset.
pub fn policy(svc: &Value) -> Option<&str> {
    Some(spec_str(svc, "ipFamilyPolicy")).filter(|s| !s.is_empty())
}

/// The `spec` object, created when absent; `None` when the object is not a map.
pub fn spec_mut(svc: &mut Value) -> Option<&mut Map<String, Value>> {
    let obj = svc.as_object_mut()?;
    let spec = obj.entry("spec").or_insert_with(|| Value::Object(Map::new()));
    if spec.is_null() {
        *spec = Value::Object(Map::new());
    }
    spec.as_object_mut()
}

/// Sets `spec.<field>`.
pub fn set_spec(svc: &mut Value, field: &str, value: Value) {
    if let Some(spec) = spec_mut(svc) {
        spec.insert(field.to_owned(), value);
    }
}

/// Removes `spec.<field>`.
pub fn remove_spec(svc: &mut Value, field: &str) {
    if let Some(spec) = spec_mut(svc) {
        spec.remove(field);
    }
}

/// Upstream `needsClusterIP`: every type but ExternalName.
pub fn needs_cluster_ip(svc: &Value) -> bool {
    svc_type(svc) != "ExternalName"
}

/// Upstream `needsNodePort`: NodePort and LoadBalancer.
pub fn needs_node_port(svc: &Value) -> bool {
    matches!(svc_type(svc), "NodePort" | "LoadBalancer")
}

/// Upstream `shouldAllocateNodePorts`: NodePort, and LoadBalancer unless
/// `allocateLoadBalancerNodePorts` is false.
pub fn should_allocate_node_ports(svc: &Value) -> bool {
    match svc_type(svc) {
        "NodePort" => true,
        "LoadBalancer" => svc.pointer("/spec/allocateLoadBalancerNodePorts").and_then(Value::as_bool) != Some(false),
        _ => false,
    }
}

/// Upstream `NeedsHealthCheck`: LoadBalancer with `externalTrafficPolicy: Local`.
pub fn needs_health_check(svc: &Value) -> bool {
    svc_type(svc) == "LoadBalancer" && spec_str(svc, "externalTrafficPolicy") == "Local"
}

/// Whether the Service is headless (`clusterIPs[0]` or `clusterIP` is `None`).
pub fn is_headless(svc: &Value) -> bool {
    spec_strings(svc, "clusterIPs").first().map_or(spec_str(svc, "clusterIP"), String::as_str) == "None"
}

/// Whether `spec.selector` is empty.
pub fn selectorless(svc: &Value) -> bool {
    svc.pointer("/spec/selector").and_then(Value::as_object).is_none_or(Map::is_empty)
}

/// One entry of `spec.ports`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    /// `name`.
    pub name: String,
    /// `port`.
    pub port: i64,
    /// `protocol` (default TCP).
    pub protocol: String,
    /// `nodePort`, 0 when unset.
    pub node_port: i64,
}

/// `spec.ports`.
pub fn ports(svc: &Value) -> Vec<PortSpec> {
    svc.pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|ports| {
            ports
                .iter()
                .map(|p| PortSpec {
                    name: p.get("name").and_then(Value::as_str).unwrap_or("").to_owned(),
                    port: p.get("port").and_then(Value::as_i64).unwrap_or(0),
                    protocol: p.get("protocol").and_then(Value::as_str).filter(|s| !s.is_empty()).unwrap_or("TCP").to_owned(),
                    node_port: p.get("nodePort").and_then(Value::as_i64).unwrap_or(0),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Sets `spec.ports[i].nodePort`.
pub fn set_node_port(svc: &mut Value, i: usize, node_port: i64) {
    if let Some(p) = svc.pointer_mut(&format!("/spec/ports/{i}")).and_then(Value::as_object_mut) {
        p.insert("nodePort".to_owned(), Value::from(node_port));
    }
}

/// Upstream `collectServiceNodePorts`: the non-zero node ports of `spec.ports`.
pub fn node_port_numbers(svc: &Value) -> Vec<i64> {
    ports(svc).into_iter().map(|p| p.node_port).filter(|np| *np != 0).collect()
}

/// `spec.healthCheckNodePort`, 0 when unset.
pub fn health_port(svc: &Value) -> i64 {
    svc.pointer("/spec/healthCheckNodePort").and_then(Value::as_i64).unwrap_or(0)
}
