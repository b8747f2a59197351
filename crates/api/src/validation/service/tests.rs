use super::*;
use crate::defaults::apply_defaults;
use crate::resources::find;
use serde_json::json;

fn svc_def() -> &'static crate::resources::ResourceDef {
    find("", "v1", "services").expect("services")
}

/// A defaulted Service named `x`, with the allocator's view of clusterIPs
/// (`clusterIP` copied into `clusterIPs`, as the registry normalizes it).
fn service(name: &str, mut spec: Value) -> Value {
    if let Some(ip) = spec.get("clusterIP").cloned()
        && spec.get("clusterIPs").is_none()
    {
        spec["clusterIPs"] = json!([ip]);
    }
    let mut svc = json!({"metadata": {"name": name, "namespace": "default"}, "spec": spec});
    apply_defaults(svc_def(), &mut svc);
    svc
}

fn texts(errs: Vec<FieldError>) -> Vec<String> {
    errs.iter().map(ToString::to_string).collect()
}

fn errors(spec: Value) -> Vec<String> {
    texts(validate(&service("x", spec)))
}

#[test]
fn a_plain_service_is_valid() {
    assert!(errors(json!({"ports": [{"port": 80}], "selector": {"app": "web"}})).is_empty());
    assert!(errors(json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]})).is_empty());
    assert!(errors(json!({"type": "LoadBalancer", "ports": [{"port": 80}], "loadBalancerSourceRanges": [" 10.0.0.0/8 "]})).is_empty());
    assert!(errors(json!({"clusterIP": "None", "selector": {"app": "db"}})).is_empty(), "headless needs no ports");
}

#[test]
fn dns1035_service_names() {
    let e = texts(validate(&service("1abc", json!({"ports": [{"port": 80}]}))));
    assert_eq!(e, ["metadata.name: Invalid value: \"1abc\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"]);
    let e = texts(validate(&service("my.svc", json!({"ports": [{"port": 80}]}))));
    assert!(e[0].starts_with("metadata.name: Invalid value: \"my.svc\": a DNS-1035 label must consist"), "{e:?}");
    let long = "a".repeat(64);
    assert_eq!(texts(validate(&service(&long, json!({"ports": [{"port": 80}]})))), [format!("metadata.name: Invalid value: \"{long}\": must be no more than 63 characters")]);
}

#[test]
fn ports_are_required_unless_headless_or_external_name() {
    assert_eq!(errors(json!({})), ["spec.ports: Required value"]);
}

#[test]
fn two_unnamed_ports_both_need_names() {
    // requireName is `len(ports) > 1`, checked for every port, so both indices report.
    assert_eq!(errors(json!({"ports": [{"port": 80}, {"port": 443}]})), ["spec.ports[0].name: Required value", "spec.ports[1].name: Required value"]);
    assert_eq!(errors(json!({"ports": [{"name": "http", "port": 80}, {"port": 443}]})), ["spec.ports[1].name: Required value"]);
}

#[test]
fn port_name_rules() {
    assert_eq!(
        errors(json!({"ports": [{"name": "Http", "port": 80}]})),
        ["spec.ports[0].name: Invalid value: \"Http\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"]
    );
    assert_eq!(errors(json!({"ports": [{"name": "a.b", "port": 80}]})), ["spec.ports[0].name: Invalid value: \"a.b\": must not contain dots"]);
}

#[test]
fn duplicate_names_ports_and_node_ports() {
    let e = errors(json!({"type": "NodePort", "ports": [
        {"name": "a", "port": 80, "nodePort": 30080}, {"name": "a", "port": 80, "nodePort": 30080}]}));
    assert_eq!(e, [
        "spec.ports[1].name: Duplicate value: \"a\"",
        "spec.ports[1].nodePort: Duplicate value: 30080",
        "spec.ports[1]: Duplicate value: core.ServicePort{Name:\"\", Protocol:\"TCP\", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}",
    ]);
    // Same nodePort with different protocols is allowed.
    assert!(errors(json!({"type": "NodePort", "ports": [
        {"name": "t", "port": 53, "nodePort": 30053}, {"name": "u", "port": 53, "protocol": "UDP", "nodePort": 30053}]})).is_empty());
}

#[test]
fn duplicate_node_port_alone() {
    assert_eq!(
        errors(json!({"type": "NodePort", "ports": [{"name": "a", "port": 80, "nodePort": 30080}, {"name": "b", "port": 81, "nodePort": 30080}]})),
        ["spec.ports[1].nodePort: Duplicate value: 30080"]
    );
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
    assert_eq!(errors(json!({"ports": [{"port": 80, "targetPort": 70000}]})), ["spec.ports[0].targetPort: Invalid value: 70000: must be between 1 and 65535, inclusive"]);
    assert_eq!(
        errors(json!({"ports": [{"port": 80, "targetPort": "-Http-port-too-long"}]})),
        [
            "spec.ports[0].targetPort: Invalid value: \"-Http-port-too-long\": must be no more than 15 characters",
            "spec.ports[0].targetPort: Invalid value: \"-Http-port-too-long\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
            "spec.ports[0].targetPort: Invalid value: \"-Http-port-too-long\": must not begin or end with a hyphen",
        ]
    );
    assert_eq!(
        errors(json!({"ports": [{"port": 80, "appProtocol": "a/b/c"}]})),
        ["spec.ports[0].appProtocol: Invalid value: \"a/b/c\": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    );
}

#[test]
fn protocol_required_without_defaults() {
    let svc = json!({"metadata": {"name": "x", "namespace": "d"}, "spec": {"type": "ClusterIP", "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
        "ports": [{"port": 80, "targetPort": 80}]}});
    assert_eq!(texts(validate(&svc)), ["spec.ports[0].protocol: Required value"]);
    let bare = json!({"metadata": {"name": "x", "namespace": "d"}, "spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}]}});
    assert_eq!(texts(validate(&bare)), ["spec.sessionAffinity: Required value", "spec.type: Required value"]);
}

#[test]
fn session_affinity_rules() {
    assert_eq!(
        errors(json!({"ports": [{"port": 80}], "sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}}})),
        ["spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 0: must be greater than 0 and less than 86400"]
    );
    assert_eq!(
        errors(json!({"ports": [{"port": 80}], "sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 86401}}})),
        ["spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 86401: must be greater than 0 and less than 86400"]
    );
    assert!(errors(json!({"ports": [{"port": 80}], "sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 86400}}})).is_empty());
    assert_eq!(
        errors(json!({"ports": [{"port": 80}], "sessionAffinity": "Sticky"})),
        ["spec.sessionAffinity: Unsupported value: \"Sticky\": supported values: \"ClientIP\", \"None\""]
    );
    let mut svc = service("x", json!({"ports": [{"port": 80}]}));
    svc["spec"]["sessionAffinityConfig"] = json!({"clientIP": {"timeoutSeconds": 5}});
    assert_eq!(texts(validate(&svc)), ["spec.sessionAffinityConfig: Forbidden: must not be set when session affinity is None"]);
    svc["spec"]["sessionAffinity"] = json!("ClientIP");
    svc["spec"]["sessionAffinityConfig"] = json!({});
    assert_eq!(texts(validate(&svc)), ["spec.sessionAffinityConfig.clientIP: Required value: when session affinity type is ClientIP"]);
}

#[test]
fn headless_node_port_and_load_balancer() {
    let e = errors(json!({"type": "NodePort", "clusterIP": "None", "ports": [{"port": 80}]}));
    assert_eq!(e, ["spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for NodePort services"]);
    let e = errors(json!({"type": "LoadBalancer", "clusterIP": "None", "ports": [{"port": 80}]}));
    assert_eq!(e, ["spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for LoadBalancer services"]);
    assert_eq!(errors(json!({"ports": [{"port": 80, "nodePort": 30001}]})), ["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]);
}

#[test]
fn external_name_rules() {
    assert!(errors(json!({"type": "ExternalName", "externalName": "www.example.com."})).is_empty());
    assert_eq!(errors(json!({"type": "ExternalName"})), ["spec.externalName: Required value"]);
    assert_eq!(
        errors(json!({"type": "ExternalName", "externalName": "Bad_Name"})),
        ["spec.externalName: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"]
    );
    assert_eq!(
        errors(json!({"type": "ExternalName", "externalName": "a.example", "clusterIP": "10.96.0.5", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"})),
        [
            "spec.clusterIPs: Forbidden: may not be set for ExternalName services",
            "spec.ipFamilies: Forbidden: may not be set for ExternalName services",
            "spec.ipFamilyPolicy: Forbidden: may not be set for ExternalName services",
        ]
    );
}

#[test]
fn cluster_ips_rules() {
    assert_eq!(
        errors(json!({"clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.6"], "ports": [{"port": 80}]})),
        ["spec.clusterIPs: Invalid value: []string{\"10.96.0.6\"}: first value must match `clusterIP`"]
    );
    assert_eq!(errors(json!({"clusterIP": "10.96.0.5", "clusterIPs": [], "ports": [{"port": 80}]})), ["spec.clusterIPs: Required value"]);
    assert_eq!(
        errors(json!({"clusterIPs": ["10.96.0.6"], "ports": [{"port": 80}]})),
        ["spec.clusterIPs: Invalid value: []string{\"10.96.0.6\"}: must be empty when `clusterIP` is not specified"]
    );
    assert_eq!(
        errors(json!({"clusterIP": "nope", "ports": [{"port": 80}]})),
        ["spec.clusterIPs[0]: Invalid value: \"nope\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]
    );
    assert_eq!(
        errors(json!({"clusterIP": "None", "clusterIPs": ["None", "10.96.0.1"], "ports": [{"port": 80}]})),
        ["spec.clusterIPs: Invalid value: []string{\"None\", \"10.96.0.1\"}: 'None' must be the first and only value"]
    );
    assert_eq!(
        errors(json!({"clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1", "10.96.0.2"], "ports": [{"port": 80}]})),
        ["spec.clusterIPs: Invalid value: []string{\"10.96.0.1\", \"10.96.0.2\"}: may specify no more than one IP for each IP family"]
    );
    assert_eq!(
        errors(json!({"clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1", "fd00::1", "10.96.0.3"], "ports": [{"port": 80}]})),
        [
            "spec.clusterIPs: Invalid value: []string{\"10.96.0.1\", \"fd00::1\", \"10.96.0.3\"}: may only hold up to 2 values",
            "spec.clusterIPs: Invalid value: []string{\"10.96.0.1\", \"fd00::1\", \"10.96.0.3\"}: may specify no more than one IP for each IP family",
        ]
    );
    assert_eq!(
        errors(json!({"clusterIP": "fd00::1", "ipFamilies": ["IPv4"], "ports": [{"port": 80}]})),
        ["spec.clusterIPs[0]: Invalid value: \"fd00::1\": expected an IPv4 value as indicated by `ipFamilies[0]`"]
    );
    assert_eq!(
        errors(json!({"clusterIP": "10.96.0.1", "ipFamilies": ["IPv6"], "ports": [{"port": 80}]})),
        ["spec.clusterIPs[0]: Invalid value: \"10.96.0.1\": expected an IPv6 value as indicated by `ipFamilies[0]`"]
    );
    assert!(errors(json!({"clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1", "fd00::1"], "ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "RequireDualStack", "ports": [{"port": 80}]})).is_empty());
}

#[test]
fn ip_family_rules() {
    assert_eq!(
        errors(json!({"ipFamilies": ["IPv5", "IPv5"], "ipFamilyPolicy": "Triple", "ports": [{"port": 80}]})),
        [
            "spec.ipFamilies[0]: Unsupported value: \"IPv5\": supported values: \"IPv4\", \"IPv6\"",
            "spec.ipFamilies[1]: Unsupported value: \"IPv5\": supported values: \"IPv4\", \"IPv6\"",
            "spec.ipFamilies[1]: Duplicate value: \"IPv5\"",
            "spec.ipFamilyPolicy: Unsupported value: \"Triple\": supported values: \"PreferDualStack\", \"RequireDualStack\", \"SingleStack\"",
        ]
    );
}

#[test]
fn external_ips_rules() {
    assert_eq!(
        errors(json!({"ports": [{"port": 80}], "externalIPs": ["x", "127.0.0.1", "0.0.0.0"]})),
        [
            "spec.externalIPs[0]: Invalid value: \"x\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            "spec.externalIPs[1]: Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)",
            "spec.externalIPs[2]: Invalid value: \"0.0.0.0\": may not be unspecified (0.0.0.0)",
        ]
    );
}

#[test]
fn type_rules() {
    assert_eq!(
        errors(json!({"type": "Foo", "ports": [{"port": 80}]})),
        ["spec.type: Unsupported value: \"Foo\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""]
    );
}

#[test]
fn load_balancer_only_fields() {
    assert_eq!(
        errors(json!({"ports": [{"port": 80}], "loadBalancerSourceRanges": ["10.0.0.0/8", "nope"], "allocateLoadBalancerNodePorts": false, "loadBalancerClass": "x/y"})),
        [
            "spec.LoadBalancerSourceRanges: Forbidden: may only be used when `type` is 'LoadBalancer'",
            "spec.LoadBalancerSourceRanges[1]: Invalid value: \"nope\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
            "spec.allocateLoadBalancerNodePorts: Forbidden: may only be used when `type` is 'LoadBalancer'",
            "spec.loadBalancerClass: Forbidden: may only be used when `type` is 'LoadBalancer'",
        ]
    );
    let mut svc = service("x", json!({"ports": [{"port": 80}], "type": "LoadBalancer"}));
    svc["spec"].as_object_mut().expect("spec").remove("allocateLoadBalancerNodePorts");
    svc["metadata"]["annotations"] = json!({"service.beta.kubernetes.io/load-balancer-source-ranges": "10.0.0.0/8, bad"});
    assert_eq!(texts(validate(&svc)), [
        "metadata.annotations[service.beta.kubernetes.io/load-balancer-source-ranges]: Invalid value: \"bad\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
        "allocateLoadBalancerNodePorts: Required value",
    ]);
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
    assert!(errors(json!({"ports": [{"port": 80}], "externalIPs": ["1.2.3.4"], "externalTrafficPolicy": "Local"})).is_empty());
    let mut svc = service("x", json!({"type": "NodePort", "ports": [{"port": 80}]}));
    svc["spec"].as_object_mut().expect("spec").remove("externalTrafficPolicy");
    assert_eq!(texts(validate(&svc)), ["spec.externalTrafficPolicy: Required value"]);
}

#[test]
fn health_check_node_port_rules() {
    assert_eq!(
        errors(json!({"type": "NodePort", "ports": [{"port": 80}], "healthCheckNodePort": 30000})),
        ["spec.healthCheckNodePort: Invalid value: 30000: may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"]
    );
    assert_eq!(
        errors(json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"port": 80}]})),
        ["spec.healthCheckNodePort: Required value"]
    );
    assert_eq!(
        errors(json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": 70000, "ports": [{"port": 80}]})),
        ["spec.healthCheckNodePort: Invalid value: 70000: must be between 1 and 65535, inclusive"]
    );
}

#[test]
fn internal_traffic_policy_and_distribution() {
    assert_eq!(
        errors(json!({"ports": [{"port": 80}], "internalTrafficPolicy": "Node", "trafficDistribution": "Anywhere"})),
        [
            "spec.internalTrafficPolicy: Unsupported value: \"Node\": supported values: \"Cluster\", \"Local\"",
            "spec.trafficDistribution: Unsupported value: \"Anywhere\": supported values: \"PreferClose\"",
        ]
    );
    let mut svc = service("x", json!({"ports": [{"port": 80}]}));
    svc["spec"].as_object_mut().expect("spec").remove("internalTrafficPolicy");
    assert_eq!(texts(validate(&svc)), ["spec.internalTrafficPolicy: Required value"]);
}

#[test]
fn selector_and_topology_annotations() {
    let mut svc = service("x", json!({"ports": [{"port": 80}], "selector": {"app": "a b"}}));
    svc["metadata"]["annotations"] = json!({"service.kubernetes.io/topology-mode": "Auto", "service.kubernetes.io/topology-aware-hints": "Disabled"});
    assert_eq!(texts(validate(&svc)), [
        "metadata.annotations[service.kubernetes.io/topology-mode]: Invalid value: \"Auto\": must match annotations[service.kubernetes.io/topology-aware-hints] when both are specified",
        "spec.selector: Invalid value: \"a b\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
    ]);
}

#[test]
fn create_goes_through_the_catalogue() {
    let errs = crate::validation::validate_create(svc_def(), &service("x", json!({})));
    assert_eq!(texts(errs), ["spec.ports: Required value"]);
}

mod update;
