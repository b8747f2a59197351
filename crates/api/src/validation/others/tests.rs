use super::*;
use crate::resources::find;
use crate::validation::{validate_create, validate_update as update};
use serde_json::json;

fn texts(errs: Vec<FieldError>) -> Vec<String> {
    errs.iter().map(ToString::to_string).collect()
}

fn create(group: &str, plural: &str, obj: Value) -> Vec<String> {
    texts(validate_create(find(group, "v1", plural).expect("served"), &obj))
}

#[test]
fn namespaces() {
    assert!(create("", "namespaces", json!({"metadata": {"name": "team-a"}, "spec": {"finalizers": ["kubernetes"]}})).is_empty());
    assert_eq!(create("", "namespaces", json!({"metadata": {"name": "Team"}})), [
        "metadata.name: Invalid value: \"Team\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
    ]);
    assert_eq!(create("", "namespaces", json!({"metadata": {"name": "a", "namespace": "b"}, "spec": {"finalizers": ["custom"]}})), [
        "metadata.namespace: Forbidden: not allowed on this type",
        "spec.finalizers: Invalid value: \"custom\": name is neither a standard finalizer name nor is it fully qualified",
    ]);
}

#[test]
fn config_map_and_secret_keys() {
    assert_eq!(create("", "configmaps", json!({"metadata": {"name": "c", "namespace": "d"}, "data": {"a b": "1", "k": "v"}, "binaryData": {"k": "AA=="}})), [
        "data[a b]: Invalid value: \"a b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
        "data[k]: Invalid value: \"k\": duplicate of key present in binaryData",
    ]);
    assert_eq!(create("", "secrets", json!({"metadata": {"name": "s", "namespace": "d"}, "type": "kubernetes.io/tls", "data": {"..x": "AA=="}})), [
        "data[..x]: Invalid value: \"..x\": must not start with '..'",
        "data[tls.crt]: Required value",
        "data[tls.key]: Required value",
    ]);
    assert!(create("", "secrets", json!({"metadata": {"name": "s", "namespace": "d"}, "type": "kubernetes.io/basic-auth", "stringData": {"username": "u"}})).is_empty());
}

#[test]
fn immutable_config_maps_and_secret_types() {
    let rd = find("", "v1", "configmaps").expect("cm");
    let old = json!({"metadata": {"name": "c", "namespace": "d", "resourceVersion": "1"}, "immutable": true, "data": {"k": "v"}});
    let new = json!({"metadata": {"name": "c", "namespace": "d", "resourceVersion": "1"}, "data": {"k": "w"}});
    assert_eq!(texts(update(rd, &new, &old)), [
        "data: Forbidden: field is immutable when `immutable` is set",
        "immutable: Forbidden: field is immutable when `immutable` is set",
    ]);
    let rd = find("", "v1", "secrets").expect("secrets");
    let old = json!({"metadata": {"name": "s", "namespace": "d", "resourceVersion": "1"}, "type": "Opaque"});
    let new = json!({"metadata": {"name": "s", "namespace": "d", "resourceVersion": "1"}, "type": "kubernetes.io/ssh-auth", "data": {"ssh-privatekey": "AA=="}});
    assert_eq!(texts(update(rd, &new, &old)), ["type: Invalid value: \"kubernetes.io/ssh-auth\": field is immutable"]);
}

#[test]
fn endpoints() {
    assert_eq!(
        create("", "endpoints", json!({"metadata": {"name": "e", "namespace": "d"}, "subsets": [
            {"addresses": [{"ip": "10.0.0.1"}, {"ip": "127.0.0.1"}, {"ip": "x"}], "ports": [{"port": 80, "protocol": "TCP"}, {"name": "b", "port": 0, "protocol": "TCP"}]},
            {"ports": [{"port": 80, "protocol": "TCP"}]}]})),
        [
            "subsets[0].addresses[1].ip: Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)",
            "subsets[0].addresses[2].ip: Invalid value: \"x\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            "subsets[0].addresses[2].ip: Invalid value: \"x\": must be a valid IP address",
            "subsets[0].ports[0].name: Required value",
            "subsets[0].ports[1].port: Invalid value: 0: must be between 1 and 65535, inclusive",
            "subsets[1]: Required value: must specify `addresses` or `notReadyAddresses`",
        ]
    );
}

#[test]
fn the_api_servers_own_endpoints_may_be_loopback() {
    assert!(create("", "endpoints", json!({"metadata": {"name": "kubernetes", "namespace": "default"},
        "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}]})).is_empty());
    assert!(create("discovery.k8s.io", "endpointslices", json!({"metadata": {"name": "kubernetes", "namespace": "default"}, "addressType": "IPv4",
        "endpoints": [{"addresses": ["127.0.0.1"]}], "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]})).is_empty());
}

#[test]
fn endpoint_slices() {
    assert!(create("discovery.k8s.io", "endpointslices", json!({"metadata": {"name": "s", "namespace": "d"}, "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": true}}], "ports": [{"name": "", "port": 80, "protocol": "TCP"}]})).is_empty());
    assert_eq!(
        create("discovery.k8s.io", "endpointslices", json!({"metadata": {"name": "s", "namespace": "d"}, "addressType": "IPv5",
            "endpoints": [{"addresses": []}], "ports": [{"name": "a", "protocol": "TCP"}, {"name": "a"}]})),
        [
            "addressType: Unsupported value: \"IPv5\": supported values: \"FQDN\", \"IPv4\", \"IPv6\"",
            "endpoints[0].addresses: Required value: must contain at least 1 address",
            "ports[1].name: Duplicate value: \"a\"",
            "ports[1].protocol: Required value",
        ]
    );
    assert_eq!(
        create("discovery.k8s.io", "endpointslices", json!({"metadata": {"name": "s", "namespace": "d"}, "addressType": "IPv4",
            "endpoints": [{"addresses": ["fd00::1", "0.0.0.0"]}]})),
        [
            "endpoints[0].addresses[0]: Invalid value: \"fd00::1\": must be a valid IPv4 address",
            "endpoints[0].addresses[1]: Invalid value: \"0.0.0.0\": may not be unspecified (0.0.0.0)",
        ]
    );
    let rd = find("discovery.k8s.io", "v1", "endpointslices").expect("slices");
    let old = json!({"metadata": {"name": "s", "namespace": "d", "resourceVersion": "1"}, "addressType": "IPv4", "endpoints": []});
    let new = json!({"metadata": {"name": "s", "namespace": "d", "resourceVersion": "1"}, "addressType": "IPv6", "endpoints": []});
    assert_eq!(texts(update(rd, &new, &old)), ["addressType: Invalid value: \"IPv6\": field is immutable"]);
}

#[test]
fn ingresses() {
    let ok = json!({"metadata": {"name": "i", "namespace": "d"}, "spec": {"ingressClassName": "portico", "rules": [{"host": "*.example.com", "http": {"paths": [
        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}});
    assert!(create("networking.k8s.io", "ingresses", ok).is_empty());
    assert_eq!(create("networking.k8s.io", "ingresses", json!({"metadata": {"name": "i", "namespace": "d"}, "spec": {}})), [
        "spec: Invalid value: []networking.IngressRule(nil): either `defaultBackend` or `rules` must be specified"
    ]);
    assert_eq!(
        create("networking.k8s.io", "ingresses", json!({"metadata": {"name": "i", "namespace": "d"}, "spec": {"rules": [
            {"host": "10.0.0.1", "http": {"paths": [
                {"path": "/a", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                {"path": "a//b", "pathType": "Exact", "backend": {"service": {"name": "Web", "port": {"name": "http", "number": 80}}}},
                {"path": "/", "pathType": "Regex", "backend": {}}]}}]}})),
        [
            "spec.rules[0].host: Invalid value: \"10.0.0.1\": must be a DNS name, not an IP address",
            "spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified",
            "spec.rules[0].http.paths[1].path: Invalid value: \"a//b\": must be an absolute path",
            "spec.rules[0].http.paths[1].path: Invalid value: \"a//b\": must not contain '//'",
            "spec.rules[0].http.paths[1].backend.service.name: Invalid value: \"Web\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
            "spec.rules[0].http.paths[1].backend: Invalid value: \"\": cannot set both port name & port number",
            "spec.rules[0].http.paths[2].pathType: Unsupported value: \"Regex\": supported values: \"Exact\", \"ImplementationSpecific\", \"Prefix\"",
            "spec.rules[0].http.paths[2].backend: Invalid value: \"\": resource or service backend is required",
        ]
    );
}

#[test]
fn ingress_classes() {
    assert!(create("networking.k8s.io", "ingressclasses", json!({"metadata": {"name": "portico"}, "spec": {"controller": "portico.dev/ingress"}})).is_empty());
    assert_eq!(create("networking.k8s.io", "ingressclasses", json!({"metadata": {"name": "x"}, "spec": {"controller": "nginx"}})), [
        "spec.controller: Invalid value: \"nginx\": must be a domain-prefixed path (such as \"acme.io/foo\")"
    ]);
    let rd = find("networking.k8s.io", "v1", "ingressclasses").expect("ic");
    let old = json!({"metadata": {"name": "x", "resourceVersion": "1"}, "spec": {"controller": "a.io/x"}});
    let new = json!({"metadata": {"name": "x", "resourceVersion": "1"}, "spec": {"controller": "b.io/x"}});
    assert_eq!(texts(update(rd, &new, &old)), ["spec.controller: Invalid value: \"b.io/x\": field is immutable"]);
}

#[test]
fn metadata_only_kinds() {
    assert!(create("coordination.k8s.io", "leases", json!({"metadata": {"name": "portico-controllers", "namespace": "kube-system"}})).is_empty());
    assert_eq!(create("", "nodes", json!({"metadata": {"name": "Node"}})), [
        "metadata.name: Invalid value: \"Node\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    ]);
}
