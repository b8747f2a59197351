//! What the endpoint controllers need to know about a Pod.

use k8s_openapi::api::core::v1::{Pod, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The Pod's `Ready` condition is `True`.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The Pod is being deleted.
pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// The Pod's primary IP, if it has one.
pub fn ip(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.pod_ip.as_deref()).filter(|ip| !ip.is_empty())
}

/// The Pod's addresses, one per family (`status.podIPs`, or `podIP` when only that is set).
pub fn ips(pod: &Pod) -> Vec<&str> {
    let listed: Vec<&str> = pod.status.as_ref().and_then(|s| s.pod_ips.as_ref()).into_iter().flatten().map(|p| p.ip.as_str()).filter(|ip| !ip.is_empty()).collect();
    if listed.is_empty() { ip(pod).into_iter().collect() } else { listed }
}

/// Whether the Pod has finished for good (phase Succeeded or Failed).
pub fn is_finished(pod: &Pod) -> bool {
    matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

/// The container port a Service port reaches on this Pod: a number as is, a
/// name looked up among the Pod's container ports with the same protocol.
pub fn resolve_port(svc_port: &ServicePort, pod: &Pod) -> Option<i32> {
    let protocol = svc_port.protocol.as_deref().unwrap_or("TCP");
    match &svc_port.target_port {
        None => Some(svc_port.port),
        Some(IntOrString::Int(0)) => Some(svc_port.port),
        Some(IntOrString::Int(p)) => Some(*p),
        Some(IntOrString::String(name)) => pod.spec.as_ref()?.containers.iter().flat_map(|c| c.ports.iter().flatten()).find_map(|p| {
            (p.name.as_deref() == Some(name.as_str()) && p.protocol.as_deref().unwrap_or("TCP") == protocol).then_some(p.container_port)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).expect("pod")
    }

    #[test]
    fn named_ports_resolve_by_name_and_protocol() {
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "ports": [
            {"name": "http", "containerPort": 8080}, {"name": "dns", "containerPort": 53, "protocol": "UDP"}]}]}}));
        let sp = |tp: serde_json::Value, proto: &str| serde_json::from_value::<ServicePort>(json!({"port": 80, "targetPort": tp, "protocol": proto})).expect("port");
        assert_eq!(resolve_port(&sp(json!("http"), "TCP"), &p), Some(8080));
        assert_eq!(resolve_port(&sp(json!("dns"), "UDP"), &p), Some(53));
        assert_eq!(resolve_port(&sp(json!("dns"), "TCP"), &p), None);
        assert_eq!(resolve_port(&sp(json!("missing"), "TCP"), &p), None);
        assert_eq!(resolve_port(&sp(json!(9090), "TCP"), &p), Some(9090));
    }

    #[test]
    fn readiness_and_termination() {
        let ready = pod(json!({"metadata": {"name": "p"}, "status": {"podIP": "10.244.0.5", "conditions": [{"type": "Ready", "status": "True"}]}}));
        assert!(is_ready(&ready));
        assert_eq!(ip(&ready), Some("10.244.0.5"));
        let not_ready = pod(json!({"metadata": {"name": "p", "deletionTimestamp": "2026-01-01T00:00:00Z"}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}}));
        assert!(!is_ready(&not_ready));
        assert!(is_terminating(&not_ready));
        assert_eq!(ip(&not_ready), None);
    }
}
