use super::*;
use serde_json::json;
use crate::defaults::apply_defaults;
use crate::resources::find;

fn errors(spec: Value) -> Vec<String> {
    let mut svc = json!({"metadata": {"name": "x", "namespace": "default"}, "spec": spec});
    apply_defaults(find("", "v1", "services").expect("svc"), &mut svc);
    validate(&svc).iter().map(ToString::to_string).collect()
}

#[test]
fn a_plain_service_is_valid() {
    assert!(errors(json!({"ports": [{"port": 80}], "selector": {"app": "web"}})).is_empty());
}

#[test]
fn several_ports_need_names() {
    assert_eq!(
        errors(json!({"ports": [{"port": 80}, {"port": 443}]})),
        ["spec.ports[0].name: Required value", "spec.ports[1].name: Required value"]
    );
}

#[test]
fn duplicate_names_ports_and_node_ports() {
    let e = errors(json!({"type": "NodePort", "ports": [
        {"name": "a", "port": 80, "nodePort": 30080}, {"name": "a", "port": 80, "nodePort": 30080}]}));
    assert!(e.contains(&"spec.ports[1].name: Duplicate value: \"a\"".to_owned()), "{e:?}");
    assert!(e.contains(&"spec.ports[1].nodePort: Duplicate value: 30080".to_owned()), "{e:?}");
    assert!(e.iter().any(|m| m.starts_with("spec.ports[1]: Duplicate value: core.ServicePort{")), "{e:?}");
}

#[test]
fn protocol_port_and_target_port_rules() {
    assert_eq!(
        errors(json!({"ports": [{"port": 0, "protocol": "FOO", "targetPort": "x--y"}]})),
        [
            "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
            "spec.ports[0].protocol: Unsupported value: \"FOO\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            "spec.ports[0].targetPort: Invalid value: \"x--y\": must not contain consecutive hyphens",
        ]
    );
}

#[test]
fn session_affinity_rules() {
    assert_eq!(
        errors(json!({"ports": [{"port": 80}], "sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}}})),
        ["spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 0: must be greater than 0 and less than 86400"]
    );
    assert_eq!(
        errors(json!({"ports": [{"port": 80}], "sessionAffinity": "Sticky"})),
        ["spec.sessionAffinity: Unsupported value: \"Sticky\": supported values: \"ClientIP\", \"None\""]
    );
}

#[test]
fn headless_node_port_and_cluster_ip_with_node_port() {
    let e = errors(json!({"type": "NodePort", "clusterIP": "None", "clusterIPs": ["None"], "ports": [{"port": 80}]}));
    assert!(e.contains(&"spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for NodePort services".to_owned()), "{e:?}");
    assert_eq!(
        errors(json!({"ports": [{"port": 80, "nodePort": 30001}]})),
        ["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]
    );
}

#[test]
fn external_name_rules() {
    assert!(errors(json!({"type": "ExternalName", "externalName": "www.baidu.com."})).is_empty());
    assert_eq!(errors(json!({"type": "ExternalName"})), ["spec.externalName: Required value"]);
    let e = errors(json!({"type": "ExternalName", "externalName": "Bad_Name"}));
    assert!(e[0].starts_with("spec.externalName: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of"), "{e:?}");
}

#[test]
fn cluster_ips_rules() {
    assert_eq!(
        errors(json!({"clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.6"], "ports": [{"port": 80}]})),
        ["spec.clusterIPs: Invalid value: []string{\"10.96.0.6\"}: first value must match `clusterIP`"]
    );
    assert_eq!(
        errors(json!({"clusterIP": "nope", "clusterIPs": ["nope"], "ports": [{"port": 80}]})),
        ["spec.clusterIPs[0]: Invalid value: \"nope\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]
    );
}

#[test]
fn external_traffic_policy_rules() {
    assert_eq!(
        errors(json!({"ports": [{"port": 80}], "externalTrafficPolicy": "Local"})),
        ["spec.externalTrafficPolicy: Invalid value: \"Local\": may only be set for externally-accessible services"]
    );
    assert_eq!(
        errors(json!({"type": "NodePort", "ports": [{"port": 80}], "externalTrafficPolicy": "Everywhere"})),
        ["spec.externalTrafficPolicy: Unsupported value: \"Everywhere\": supported values: \"Cluster\", \"Local\""]
    );
}

#[test]
fn cluster_ip_may_not_change() {
    let old = json!({"spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"]}});
    let new = json!({"spec": {"type": "ClusterIP", "clusterIP": "10.96.0.11", "clusterIPs": ["10.96.0.11"]}});
    assert_eq!(
        validate_update(&new, &old).iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["spec.clusterIPs[0]: Invalid value: []string{\"10.96.0.11\"}: may not change once set"]
    );
}

#[test]
fn type_change_drops_node_ports_the_user_kept() {
    let old = json!({"spec": {"type": "NodePort", "externalTrafficPolicy": "Cluster", "ports": [{"port": 80, "nodePort": 30080}]}});
    let mut new = json!({"spec": {"type": "ClusterIP", "externalTrafficPolicy": "Cluster", "ports": [{"port": 80, "nodePort": 30080}]}});
    prepare_service_update(&mut new, &old);
    assert!(new["spec"]["ports"][0].get("nodePort").is_none());
    assert!(new["spec"].get("externalTrafficPolicy").is_none());
}
