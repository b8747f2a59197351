//! The oracle walks of the `ip6` table: IPv6 Services through changes,
//! loaded through nft in one namespace and through netlink in the other.

use super::{Addrs, Netns, both, endpoints, layout_step, pair_for, walk_affinity, walk_algorithms, walk_for};
use crate::nft::apply::Path;
use crate::nft::golden::{node6, slice6, two6};
use crate::nft::ruleset::NodeConfig;
use crate::nft::shards::Layout;
use crate::servicemap::{self, Family};
use serde_json::json;

fn v6() -> Addrs {
    Addrs {
        node: node6(),
        cluster_ips: ["fd00:10:96::31", "fd00:10:96::32"],
        endpoints: ["fd00:10:244::2", "fd00:10:244:1::3", "fd00:10:244::7", "fd00:10:244:2::9", "fd00:10:244::b", "fd00:10:244:1::4"],
        local: "fd00:10:244::",
    }
}

fn eps6(ips: &[&str]) -> serde_json::Value {
    endpoints(v6().local, ips)
}

#[test]
fn ipv6_services_with_every_algorithm_change_and_go_the_same_way() {
    walk_algorithms(&v6());
}

#[test]
fn ipv6_affinity_switched_on_and_off_goes_the_same_way() {
    walk_affinity(&v6());
}

#[test]
fn ipv6_node_ports_external_ips_local_policy_and_udp_go_the_same_way() {
    // A pod range whose prefix is not on a byte boundary: the masquerade
    // match masks all 16 bytes.
    let node = NodeConfig { cluster_cidr: Some("fd00:10:240::/44".into()), ..node6() };
    let ports = json!([{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}, {"name": "metrics", "port": 9153, "protocol": "TCP"}]);
    let slice = |ports: serde_json::Value, ips: &[&str]| {
        json!([{"metadata": {"name": "dns6-a", "namespace": "d", "labels": {"kubernetes.io/service-name": "dns6"}}, "addressType": "IPv6", "ports": ports, "endpoints": eps6(ips)}])
    };
    let mut service = v6().service("dns6", json!({}), json!({"clusterIP": "fd00:10:96::a", "type": "LoadBalancer", "externalTrafficPolicy": "Local", "externalIPs": ["2001:db8::7"],
        "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053}, {"name": "dns-tcp", "port": 53, "protocol": "TCP", "nodePort": 30054},
            {"name": "metrics", "port": 9153, "protocol": "TCP", "nodePort": 30055}]}));
    service["status"] = json!({"loadBalancer": {"ingress": [{"ip": "2001:db8::10"}]}});
    walk_for(
        &node,
        "ipv6 multi-port",
        json!([service]),
        &[
            slice(ports.clone(), &["fd00:10:244::2", "fd00:10:244:1::3", "fd00:10:244::4"]),
            slice(json!([ports[0].clone(), ports[1].clone()]), &["fd00:10:244:1::3"]),
            slice(ports.clone(), &["fd00:10:244::2"]),
            slice(ports, &[]),
        ],
    );
}

#[test]
fn an_ipv6_change_into_a_shard_table_goes_over_netlink() {
    let node = node6();
    let svc = |name: &str, ip: &str| v6().service(name, json!({}), json!({"clusterIP": ip, "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}));
    let services = json!([svc("a", "fd00:10:96::11"), svc("b", "fd00:10:96::12"), svc("c", "fd00:10:96::13")]);
    let port = json!({"name": "http", "port": 8080, "protocol": "TCP"});
    let slices = json!([slice6("d", "a", port.clone(), two6()), slice6("d", "b", port.clone(), two6()), slice6("d", "c", port, eps6(&["fd00:10:244::9"]))]);
    let services: Vec<k8s_openapi::api::core::v1::Service> = serde_json::from_value(services).expect("services");
    let slices: Vec<_> = serde_json::from_value(slices).expect("slices");
    let map = servicemap::build(&services, &slices, "node-1", Family::V6);
    let ports: Vec<_> = map.values().collect();
    // Capacity 2 packs the three ports one per table; each table has room for one more.
    let full = Layout::full(&node, 2, &ports);
    let script = full.script(&node);
    let (a, b) = (Netns::new(), Netns::new());
    a.nft(&script).expect("full sync via nft");
    b.nft(&script).expect("full sync via nft");
    let mut layout = full.layout;
    let mut extra = map.values().find(|p| p.key.starts_with("d/a/")).expect("a").clone();
    for (i, table) in [(1, "portico"), (2, "portico-shard-1")] {
        extra.key = format!("d/new-{i}/tcp/http");
        extra.cluster_ip = Some(format!("fd00:10:96:1::{i}").parse().expect("ip"));
        let key = extra.key.clone();
        let tx = layout_step(&a, &b, &node, &mut layout, &key, Some(&extra), Path::Netlink);
        assert!(tx.contains(&format!("add element ip6 {table} service-ips {{ fd00:10:96:1::{i} . tcp . 80 : goto service-")), "{key} lands in {table}:\n{tx}");
        assert!(tx.contains("dnat ip6 to numgen random mod 2 offset"), "{tx}");
    }
    // Its endpoints change, then it goes.
    extra.endpoints.truncate(1);
    let key = extra.key.clone();
    let tx = layout_step(&a, &b, &node, &mut layout, &key, Some(&extra), Path::Netlink);
    assert!(tx.contains("flush chain ip6 portico-shard-1 service-") && tx.contains("dnat ip6 to [fd00:10:244::2]:8080"), "{tx}");
    let tx = layout_step(&a, &b, &node, &mut layout, &key, None, Path::Netlink);
    assert!(tx.contains("delete chain ip6 portico-shard-1 service-"), "{tx}");
    for t in ["portico", "portico-shard-1", "portico-shard-2"] {
        assert_eq!(b.list_table("ip6", t), a.list_table("ip6", t), "table ip6 {t}");
    }
}

#[test]
fn a_dual_stack_change_goes_the_same_way_in_both_tables() {
    let (a, b) = pair_for(&node6());
    let v4 = crate::nft::plan::full(&crate::nft::golden::node(), &crate::nft::plan::State::default());
    a.nft(&v4).expect("ip table via nft");
    b.nft(&v4).expect("ip table via nft");
    // One batch touching both families' tables (each message carries its family).
    let script = "add chain ip portico service-x\nadd rule ip portico service-x meta l4proto tcp dnat ip to 10.244.0.2:80\n\
        add element ip portico service-ips { 10.96.7.1 . tcp . 80 : goto service-x }\n\
        add chain ip6 portico service-x\nadd rule ip6 portico service-x meta l4proto tcp dnat ip6 to [fd00:10:244::2]:80\n\
        add element ip6 portico service-ips { fd00:10:96:7::1 . tcp . 80 : goto service-x }\n\
        add element ip6 portico hairpin { fd00:10:244::2 . fd00:10:244::2 }\n";
    both(&a, &b, script, "dual stack");
    assert!(b.list_table("ip6", "portico").contains("fd00:10:96:7::1 . tcp . 80 : goto service-x"));
}
