//! Golden tests of the renderer: representative Services rendered as a full
//! sync transaction and compared with files under `tests/golden/`. Set
//! `UPDATE_GOLDEN=1` to rewrite the files after an intended change.

use super::plan::{self, State};
use super::ruleset::{self, NodeConfig};
use super::shards::Layout;
use super::slots::Slots;
use crate::servicemap::{self, Family};
use serde_json::json;

pub(crate) fn node() -> NodeConfig {
    NodeConfig { table: "portico".into(), family: Family::V4, cluster_cidr: Some("10.244.0.0/16".into()) }
}

pub(crate) fn node6() -> NodeConfig {
    NodeConfig { table: "portico".into(), family: Family::V6, cluster_cidr: Some("fd00:10:244::/56".into()) }
}

pub(crate) fn slice(ns: &str, svc: &str, port: serde_json::Value, eps: serde_json::Value) -> serde_json::Value {
    json!({"metadata": {"name": format!("{svc}-abc"), "namespace": ns, "labels": {"kubernetes.io/service-name": svc}}, "addressType": "IPv4", "ports": [port], "endpoints": eps})
}

pub(crate) fn slice6(ns: &str, svc: &str, port: serde_json::Value, eps: serde_json::Value) -> serde_json::Value {
    json!({"metadata": {"name": format!("{svc}-v6"), "namespace": ns, "labels": {"kubernetes.io/service-name": svc}}, "addressType": "IPv6", "ports": [port], "endpoints": eps})
}

/// The full-sync transaction of `node`'s table.
fn script_for(node: &NodeConfig, services: &serde_json::Value, slices: &serde_json::Value) -> String {
    let services: Vec<_> = serde_json::from_value(services.clone()).expect("services");
    let slices: Vec<_> = serde_json::from_value(slices.clone()).expect("slices");
    let map = servicemap::build(&services, &slices, "node-1", node.family);
    let mut slots = Slots::default();
    let rendered: Vec<_> = map.values().map(|p| ruleset::render(p, node, &mut slots)).collect();
    plan::full(node, &State::from_rendered(&rendered))
}

fn script(services: serde_json::Value, slices: serde_json::Value) -> String {
    script_for(&node(), &services, &slices)
}

fn check(name: &str, got: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(format!("{name}.nft"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, got).expect("write golden");
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1 to create it)", path.display()));
    assert_eq!(got, want, "rendering of {name} changed; if intended, rerun with UPDATE_GOLDEN=1 and review the diff");
}

const TWO: &str = r#"[{"addresses": ["10.244.0.2"], "nodeName": "node-1"}, {"addresses": ["10.244.1.3"], "nodeName": "node-2"}]"#;

pub(crate) fn two() -> serde_json::Value {
    serde_json::from_str(TWO).expect("eps")
}

#[test]
fn cluster_ip() {
    let got = script(
        json!([{"metadata": {"name": "web", "namespace": "default"}, "spec": {"clusterIP": "10.96.0.5", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}]),
        json!([slice("default", "web", json!({"name": "http", "port": 8080, "protocol": "TCP"}), two())]),
    );
    check("cluster_ip", &got);
}

#[test]
fn node_port_and_round_robin() {
    let got = script(
        json!([{"metadata": {"name": "web", "namespace": "default", "annotations": {"portico.dev/lb-algorithm": "rr"}},
            "spec": {"clusterIP": "10.96.0.6", "type": "NodePort", "ports": [{"port": 80, "nodePort": 30380, "protocol": "TCP"}]}}]),
        json!([slice("default", "web", json!({"port": 8080, "protocol": "TCP"}), two())]),
    );
    check("node_port", &got);
}

#[test]
fn load_balancer_with_external_ips() {
    let got = script(
        json!([{"metadata": {"name": "lb", "namespace": "shop"}, "spec": {"clusterIP": "10.96.0.7", "type": "LoadBalancer", "externalIPs": ["192.0.2.50"],
            "ports": [{"name": "https", "port": 443, "nodePort": 31443, "protocol": "TCP"}]}, "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}}]),
        json!([slice("shop", "lb", json!({"name": "https", "port": 8443, "protocol": "TCP"}), two())]),
    );
    check("load_balancer", &got);
}

#[test]
fn client_ip_affinity() {
    let got = script(
        json!([{"metadata": {"name": "sticky", "namespace": "default"}, "spec": {"clusterIP": "10.96.0.8", "sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 30}}, "ports": [{"port": 80, "protocol": "TCP"}]}}]),
        json!([slice("default", "sticky", json!({"port": 8080, "protocol": "TCP"}), two())]),
    );
    check("affinity", &got);
}

#[test]
fn no_endpoints_reject() {
    let got = script(
        json!([{"metadata": {"name": "empty", "namespace": "default"}, "spec": {"clusterIP": "10.96.0.9", "type": "NodePort",
            "ports": [{"port": 53, "nodePort": 30053, "protocol": "UDP"}]}}]),
        json!([]),
    );
    check("no_endpoints", &got);
}

#[test]
fn local_traffic_policy() {
    let got = script(
        json!([
            {"metadata": {"name": "local", "namespace": "default"}, "spec": {"clusterIP": "10.96.0.10", "type": "NodePort", "externalTrafficPolicy": "Local",
                "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]}},
            {"metadata": {"name": "remote-only", "namespace": "default"}, "spec": {"clusterIP": "10.96.0.11", "type": "NodePort", "externalTrafficPolicy": "Local",
                "internalTrafficPolicy": "Local", "ports": [{"port": 80, "nodePort": 30081, "protocol": "TCP"}]}}
        ]),
        json!([
            slice("default", "local", json!({"port": 8080, "protocol": "TCP"}), two()),
            slice("default", "remote-only", json!({"port": 8080, "protocol": "TCP"}), json!([{"addresses": ["10.244.1.9"], "nodeName": "node-2"}]))
        ]),
    );
    check("local_policy", &got);
}

#[test]
fn local_traffic_policy_with_two_local_endpoints_and_a_remote_one() {
    let got = script(
        json!([{"metadata": {"name": "local2", "namespace": "default"}, "spec": {"clusterIP": "10.96.0.12", "type": "LoadBalancer", "externalTrafficPolicy": "Local",
            "ports": [{"port": 80, "nodePort": 30082, "protocol": "TCP"}]}, "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.20"}]}}}]),
        json!([slice("default", "local2", json!({"port": 8080, "protocol": "TCP"}), json!([
            {"addresses": ["10.244.0.2"], "nodeName": "node-1"}, {"addresses": ["10.244.0.3"], "nodeName": "node-1"}, {"addresses": ["10.244.1.3"], "nodeName": "node-2"}]))]),
    );
    // Outside clients reach only the two local endpoints (a block of their own);
    // pods and the node itself reach all three.
    check("local_policy_two_local", &got);
}

pub(crate) fn two6() -> serde_json::Value {
    json!([{"addresses": ["fd00:10:244::2"], "nodeName": "node-1"}, {"addresses": ["fd00:10:244:1::3"], "nodeName": "node-2"}])
}

#[test]
fn ipv6_cluster_ip() {
    let services = json!([{"metadata": {"name": "web6", "namespace": "default"}, "spec": {"clusterIP": "fd00:10:96::5", "clusterIPs": ["fd00:10:96::5"],
        "ipFamilies": ["IPv6"], "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}]);
    let slices = json!([slice6("default", "web6", json!({"name": "http", "port": 8080, "protocol": "TCP"}), two6())]);
    check("ipv6_cluster_ip", &script_for(&node6(), &services, &slices));
    let v4 = script_for(&node(), &services, &slices);
    assert!(!v4.contains("web6"), "an IPv6-only Service has nothing in the ip table:\n{v4}");
}

#[test]
fn dual_stack_node_port() {
    let services = json!([{"metadata": {"name": "ds", "namespace": "default"}, "spec": {"clusterIP": "10.96.0.13", "clusterIPs": ["10.96.0.13", "fd00:10:96::13"],
        "ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "RequireDualStack", "type": "NodePort", "ports": [{"port": 80, "nodePort": 30383, "protocol": "TCP"}]}}]);
    let slices = json!([slice("default", "ds", json!({"port": 8080, "protocol": "TCP"}), two()), slice6("default", "ds", json!({"port": 8080, "protocol": "TCP"}), two6())]);
    // Both tables, as a dual-stack node programs them.
    let got = format!("{}{}", script_for(&node(), &services, &slices), script_for(&node6(), &services, &slices));
    check("dual_stack_node_port", &got);
}

#[test]
fn ipv6_client_ip_affinity_and_source_hash() {
    let services = json!([
        {"metadata": {"name": "sticky6", "namespace": "default"}, "spec": {"clusterIP": "fd00:10:96::8", "clusterIPs": ["fd00:10:96::8"], "ipFamilies": ["IPv6"],
            "sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 30}}, "ports": [{"port": 80, "protocol": "TCP"}]}},
        {"metadata": {"name": "hash6", "namespace": "default", "annotations": {"portico.dev/lb-algorithm": "source-hash"}},
            "spec": {"clusterIP": "fd00:10:96::9", "clusterIPs": ["fd00:10:96::9"], "ipFamilies": ["IPv6"], "ports": [{"port": 80, "protocol": "TCP"}]}}
    ]);
    let slices = json!([
        slice6("default", "sticky6", json!({"port": 8080, "protocol": "TCP"}), two6()),
        slice6("default", "hash6", json!({"port": 8080, "protocol": "TCP"}), two6())
    ]);
    check("ipv6_affinity", &script_for(&node6(), &services, &slices));
}

/// Services spread over tables of two ports: the NodePort stays in the main
/// table, the ClusterIPs fill it and then a shard table, and the no-endpoint
/// Service's reject element lives in the main table whatever its place.
pub(crate) fn sharded_services() -> (serde_json::Value, serde_json::Value) {
    let svc = |name: &str, ip: &str| json!({"metadata": {"name": name, "namespace": "default"}, "spec": {"clusterIP": ip, "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}});
    let services = json!([
        svc("a", "10.96.0.11"), svc("b", "10.96.0.12"), svc("c", "10.96.0.13"), svc("d", "10.96.0.14"),
        {"metadata": {"name": "np", "namespace": "default"}, "spec": {"clusterIP": "10.96.0.15", "type": "NodePort", "ports": [{"name": "http", "port": 80, "nodePort": 30080, "protocol": "TCP"}]}}
    ]);
    let port = json!({"name": "http", "port": 8080, "protocol": "TCP"});
    let slices = json!([slice("default", "a", port.clone(), two()), slice("default", "b", port.clone(), two()), slice("default", "c", port.clone(), json!([{"addresses": ["10.244.0.9"], "nodeName": "node-1"}])),
        slice("default", "np", port, two())]);
    (services, slices)
}

#[test]
fn services_spread_over_shard_tables() {
    let (services, slices) = sharded_services();
    let services: Vec<_> = serde_json::from_value(services).expect("services");
    let slices: Vec<_> = serde_json::from_value(slices).expect("slices");
    let map = servicemap::build(&services, &slices, "node-1", Family::V4);
    let ports: Vec<_> = map.values().collect();
    let full = Layout::full(&node(), 2, &ports);
    assert_eq!(full.layout.placement.tables(), 5, "5 ports, one per table at a fill of 1 of 2");
    check("sharded", &full.script(&node()));
}

#[test]
fn incremental_changes_touch_only_the_changed_service() {
    let services: Vec<_> = serde_json::from_value(json!([
        {"metadata": {"name": "a", "namespace": "d"}, "spec": {"clusterIP": "10.96.1.1", "ports": [{"port": 80}]}},
        {"metadata": {"name": "b", "namespace": "d"}, "spec": {"clusterIP": "10.96.1.2", "ports": [{"port": 80}]}}
    ]))
    .expect("services");
    let before: Vec<_> = serde_json::from_value(json!([slice("d", "a", json!({"port": 8080}), two()), slice("d", "b", json!({"port": 8080}), two())])).expect("slices");
    let after: Vec<_> = serde_json::from_value(json!([
        slice("d", "a", json!({"port": 8080}), json!([{"addresses": ["10.244.0.2"], "nodeName": "node-1"}])),
        slice("d", "b", json!({"port": 8080}), two())
    ]))
    .expect("slices");
    // One allocator across syncs, as the sync loop keeps it.
    let mut slots = Slots::default();
    let mut state = |slices: &[_]| {
        let map = servicemap::build(&services, slices, "node-1", Family::V4);
        let s = State::from_rendered(&map.values().map(|p| ruleset::render(p, &node(), &mut slots)).collect::<Vec<_>>());
        slots.settle();
        s
    };
    let (before, after) = (state(&before), state(&after));
    let diff = plan::diff(&node(), &before, &after);
    assert_eq!(
        diff,
        "flush chain ip portico service-Y7QZIRY5-d/a/tcp/p80\n\
         add rule ip portico service-Y7QZIRY5-d/a/tcp/p80 ip daddr 10.96.1.1 ip saddr != 10.244.0.0/16 jump mark-for-masquerade\n\
         add rule ip portico service-Y7QZIRY5-d/a/tcp/p80 meta l4proto tcp dnat ip to 10.244.0.2:8080\n\
         delete element ip portico endpoint-slots-0 { 0, 1 }\n"
    );
    assert_eq!(plan::diff(&node(), &after, &after), "", "no change, no transaction");
}
