//! The netlink path against nft as the oracle: every plan is loaded through
//! `nft -f` in one network namespace and through netlink in another, and
//! nft's listings of the two tables must be identical (nft decoding our
//! bytes, with `--debug=netlink`: the kernel's expressions, registers and
//! element bytes as well as the ruleset text). Needs root, like the
//! end-to-end tests. The IPv6 table has its own walks in `tests/ipv6.rs`.

use super::{NetlinkError, compile};
use crate::nft::apply::{self, Path};
use crate::nft::golden::{node, sharded_services};
use crate::nft::plan::{self, State};
use crate::nft::ruleset::{self, NodeConfig};
use crate::nft::shards::Layout;
use crate::nft::slots::Slots;
use crate::servicemap;
use serde_json::json;
use std::collections::BTreeSet;
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

mod ipv6;

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A throwaway network namespace, deleted on drop (also when a test fails).
struct Netns(String);

impl Netns {
    fn new() -> Self {
        let name = format!("portico-e2e-{}-nl{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
        let out = Command::new("ip").args(["netns", "add", &name]).output().expect("running ip");
        assert!(out.status.success(), "ip netns add failed (these tests need root): {}", String::from_utf8_lossy(&out.stderr));
        Netns(name)
    }

    fn nft(&self, script: &str) -> Result<(), String> {
        let path = std::env::temp_dir().join(format!("{}.nft", self.0));
        std::fs::write(&path, script).expect("write script");
        let out = Command::new("timeout").args(["20", "ip", "netns", "exec", &self.0, "nft", "-f"]).arg(&path).output().expect("running nft");
        let _ = std::fs::remove_file(&path);
        if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).into_owned()) }
    }

    fn list(&self) -> String {
        self.list_table("ip", "portico")
    }

    /// A table as `nft --debug=netlink list` shows it: every set's elements
    /// as bytes, every rule as the kernel's expressions (registers, offsets,
    /// lengths, data), then the ruleset text. Elements come in hash order,
    /// which differs between two sets holding the same elements, so each
    /// run of them is sorted.
    fn list_table(&self, family: &str, table: &str) -> String {
        let out = Command::new("timeout").args(["20", "ip", "netns", "exec", &self.0, "nft", "--debug=netlink", "list", "table", family, table]).output().expect("running nft");
        assert!(out.status.success(), "nft list: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        let (mut lines, mut run) = (Vec::new(), Vec::new());
        for l in text.lines() {
            if l.starts_with("\telement ") {
                run.push(l);
            } else {
                run.sort_unstable();
                lines.append(&mut run);
                lines.push(l);
            }
        }
        run.sort_unstable();
        lines.append(&mut run);
        lines.join("\n")
    }

    /// Runs `f` on a thread that entered this namespace (sockets it opens live there).
    fn inside<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.0);
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).expect("open netns");
            nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
        .join()
        .expect("thread in the namespace")
    }

    fn netlink(&self, script: &str) -> Result<(), NetlinkError> {
        let tx = compile(script).unwrap_or_else(|e| panic!("{e}"));
        self.inside(move || tx.apply())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Two namespaces holding the base table of `node`, loaded by nft.
fn pair_for(node: &NodeConfig) -> (Netns, Netns) {
    let base = plan::full(node, &State::default());
    let (a, b) = (Netns::new(), Netns::new());
    a.nft(&base).expect("base ruleset via nft");
    b.nft(&base).expect("base ruleset via nft");
    (a, b)
}

/// Two namespaces holding the base `ip portico` table.
fn pair() -> (Netns, Netns) {
    pair_for(&node())
}

/// The `(family, table)` of every statement of `script`.
fn tables_named(script: &str) -> BTreeSet<(String, String)> {
    script
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            match w.as_slice() {
                ["table", f, t, ..] => Some((f.to_string(), t.to_string())),
                [_, _, f, t, ..] if matches!(*f, "ip" | "ip6") => Some((f.to_string(), t.to_string())),
                _ => None,
            }
        })
        .collect()
}

/// Applies `script` via nft in `a` and via netlink in `b`; every table it
/// names must then list the same in both.
fn both(a: &Netns, b: &Netns, script: &str, what: &str) {
    a.nft(script).unwrap_or_else(|e| panic!("{what}: nft refused the plan: {e}\n{script}"));
    b.netlink(script).unwrap_or_else(|e| panic!("{what}: netlink refused the plan: {e}\n{script}"));
    for (family, table) in tables_named(script) {
        let (want, got) = (a.list_table(&family, &table), b.list_table(&family, &table));
        assert_eq!(got, want, "{what}: the netlink table {family} {table} differs from nft's\nscript:\n{script}");
    }
}

#[test]
fn every_golden_service_loads_the_same_through_netlink_as_through_nft() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut files: Vec<_> = std::fs::read_dir(&dir).expect("golden dir").flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "nft")).collect();
    files.sort();
    assert!(files.len() >= 6, "golden files found: {files:?}");
    let mut ipv6 = 0;
    for f in files {
        let text = std::fs::read_to_string(&f).expect("golden");
        // Shard tables have a test of their own.
        if text.contains("portico-shard-") {
            continue;
        }
        // A full-sync script per table (two in a dual-stack golden): the base
        // table block through nft, then the Services' statements both ways.
        let (a, b) = (Netns::new(), Netns::new());
        let segments: Vec<String> = text.split("add table ").filter(|s| !s.is_empty()).map(|s| format!("add table {s}")).collect();
        for segment in &segments {
            let (block, rest) = segment.split_once("\n}\n").expect("a table block");
            let block = format!("{block}\n}}\n");
            a.nft(&block).expect("base via nft");
            b.nft(&block).expect("base via nft");
            ipv6 += usize::from(block.starts_with("add table ip6 "));
            both(&a, &b, rest, &f.display().to_string());
        }
    }
    assert!(ipv6 >= 3, "the IPv6 goldens were loaded: {ipv6}");
}

/// The states of `node`'s table for each step's Services and slices (with
/// one slot allocator across them, as the sync loop keeps it), from nothing
/// and back.
fn states(node: &NodeConfig, steps: &[(serde_json::Value, serde_json::Value)]) -> Vec<State> {
    let mut slots = Slots::default();
    let mut out = vec![State::default()];
    for (services, slices) in steps {
        let services: Vec<_> = serde_json::from_value(services.clone()).expect("services");
        let slices: Vec<_> = serde_json::from_value(slices.clone()).expect("slices");
        let map = servicemap::build(&services, &slices, "node-1", node.family);
        let rendered: Vec<_> = map.values().map(|p| ruleset::render(p, node, &mut slots)).collect();
        slots.settle();
        out.push(State::from_rendered(&rendered));
    }
    out.push(State::default());
    out
}

/// Walks the states of `steps` (from nothing, through each, back to nothing)
/// applying every diff both ways; each step must change something.
fn walk_steps(node: &NodeConfig, name: &str, steps: &[(serde_json::Value, serde_json::Value)]) {
    let st = states(node, steps);
    let (a, b) = pair_for(node);
    for (i, w) in st.windows(2).enumerate() {
        let script = plan::diff(node, &w[0], &w[1]);
        assert!(!script.is_empty(), "{name} step {i} changes nothing");
        both(&a, &b, &script, &format!("{name} step {i}"));
    }
}

/// [`walk_steps`] with the same Services at every step.
fn walk_for(node: &NodeConfig, name: &str, services: serde_json::Value, slices: &[serde_json::Value]) {
    let steps: Vec<_> = slices.iter().map(|s| (services.clone(), s.clone())).collect();
    walk_steps(node, name, &steps);
}

fn walk(name: &str, services: serde_json::Value, slices: &[serde_json::Value]) {
    walk_for(&node(), name, services, slices)
}

/// Endpoints; those whose address starts with `local` are on this node (`node-1`).
fn endpoints(local: &str, ips: &[&str]) -> serde_json::Value {
    json!(ips.iter().map(|ip| json!({"addresses": [ip], "nodeName": if ip.starts_with(local) { "node-1" } else { "node-2" }})).collect::<Vec<_>>())
}

fn eps(ips: &[&str]) -> serde_json::Value {
    endpoints("10.244.0.", ips)
}

/// One family's table and addresses for the walks every family takes.
struct Addrs {
    node: NodeConfig,
    /// Two ClusterIPs.
    cluster_ips: [&'static str; 2],
    /// Endpoint addresses: the even ones on this node, the odd ones elsewhere.
    endpoints: [&'static str; 6],
    /// What the addresses on this node start with.
    local: &'static str,
}

impl Addrs {
    fn v4() -> Self {
        Addrs { node: node(), cluster_ips: ["10.96.3.1", "10.96.3.2"], endpoints: ["10.244.0.2", "10.244.1.3", "10.244.0.7", "10.244.2.9", "10.244.0.11", "10.244.1.4"], local: "10.244.0." }
    }

    /// A Service of this family only.
    fn service(&self, name: &str, annotations: serde_json::Value, spec: serde_json::Value) -> serde_json::Value {
        let mut s = json!({"metadata": {"name": name, "namespace": "d", "annotations": annotations}, "spec": spec});
        s["spec"]["ipFamilies"] = json!([self.node.family.api_name()]);
        if let Some(ip) = s["spec"]["clusterIP"].as_str() {
            s["spec"]["clusterIPs"] = json!([ip]);
        }
        s
    }

    /// The EndpointSlice of Service `svc` with the endpoints at `picks` of [`Addrs::endpoints`].
    fn slice(&self, svc: &str, port: serde_json::Value, picks: &[usize]) -> serde_json::Value {
        let ips: Vec<&str> = picks.iter().map(|i| self.endpoints[*i]).collect();
        json!({"metadata": {"name": format!("{svc}-abc"), "namespace": "d", "labels": {"kubernetes.io/service-name": svc}}, "addressType": self.node.family.api_name(),
            "ports": [port], "endpoints": endpoints(self.local, &ips)})
    }
}

/// A Service of every algorithm from two endpoints to five, one, none.
fn walk_algorithms(f: &Addrs) {
    for alg in ["source-hash", "rr", "random"] {
        let service = f.service("web", json!({"portico.dev/lb-algorithm": alg}), json!({"clusterIP": f.cluster_ips[0], "ports": [{"port": 80}]}));
        let slices: Vec<_> = [&[0, 1][..], &[0, 1, 2, 3, 4], &[2], &[]].iter().map(|picks| json!([f.slice("web", json!({"port": 8080}), picks)])).collect();
        walk_for(&f.node, &format!("{} {alg}", f.node.family.nft()), json!([service]), &slices);
    }
}

/// A ClientIP Service through endpoint changes, affinity off and on again, no endpoints.
fn walk_affinity(f: &Addrs) {
    let svc = |affinity: &str| {
        json!([f.service("sticky", json!({}), json!({"clusterIP": f.cluster_ips[1], "sessionAffinity": affinity,
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10}}, "ports": [{"port": 80, "protocol": "TCP"}]}))])
    };
    let slices = |picks: &[usize]| json!([f.slice("sticky", json!({"port": 5353, "protocol": "TCP"}), picks)]);
    let steps = [
        (svc("ClientIP"), slices(&[0, 1])),
        (svc("ClientIP"), slices(&[0, 5, 4])),
        (svc("None"), slices(&[0, 5, 4])),
        (svc("ClientIP"), slices(&[4])),
        (svc("ClientIP"), slices(&[])),
    ];
    walk_steps(&f.node, &format!("{} affinity", f.node.family.nft()), &steps);
}

#[test]
fn source_hash_and_round_robin_services_change_and_go_the_same_way() {
    walk_algorithms(&Addrs::v4());
}

#[test]
fn affinity_switched_on_and_off_goes_the_same_way() {
    walk_affinity(&Addrs::v4());
}

#[test]
fn multi_port_local_and_udp_services_go_the_same_way() {
    walk(
        "multi-port",
        json!([
            {"metadata": {"name": "dns", "namespace": "kube-system"}, "spec": {"clusterIP": "10.96.0.10", "type": "NodePort", "externalTrafficPolicy": "Local", "externalIPs": ["192.0.2.7"],
                "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053}, {"name": "dns-tcp", "port": 53, "protocol": "TCP", "nodePort": 30054}, {"name": "metrics", "port": 9153, "protocol": "TCP", "nodePort": 30055}]}}
        ]),
        &[
            json!([{"metadata": {"name": "dns-a", "namespace": "kube-system", "labels": {"kubernetes.io/service-name": "dns"}}, "addressType": "IPv4",
                "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}, {"name": "metrics", "port": 9153, "protocol": "TCP"}],
                "endpoints": eps(&["10.244.0.2", "10.244.1.3"])}]),
            json!([{"metadata": {"name": "dns-a", "namespace": "kube-system", "labels": {"kubernetes.io/service-name": "dns"}}, "addressType": "IPv4",
                "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}],
                "endpoints": eps(&["10.244.1.3"])}]),
        ],
    );
}

#[test]
fn a_rejected_batch_changes_nothing_and_says_why() {
    let (a, _b) = pair();
    let before = a.list();
    let script = "add chain ip portico service-ok\nadd rule ip portico service-ok jump mark-for-masquerade\nadd element ip portico service-ips { 10.96.9.9 . tcp . 80 : goto service-ok }\nadd rule ip portico service-ok goto no-such-chain\n";
    match a.netlink(script) {
        Err(NetlinkError::Rejected(msg)) => {
            assert!(msg.contains("No such file or directory"), "{msg}");
            assert!(msg.contains("add rule ip portico service-ok goto no-such-chain"), "names the statement: {msg}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(a.list(), before, "a failed batch leaves the table as it was");
}

#[test]
fn incremental_syncs_use_netlink_and_fall_back_to_nft_for_unknown_statements() {
    let (a, _b) = pair();
    let known = "add chain ip portico service-x\nadd rule ip portico service-x meta l4proto tcp dnat ip to 10.244.0.2:80\n";
    assert_eq!(a.inside(move || apply::apply_incremental(known).map_err(|e| e.to_string())), Ok(Path::Netlink));
    let unknown = "add chain ip portico service-y\nadd rule ip portico service-y counter meta l4proto tcp dnat ip to 10.244.0.3:80\n";
    assert_eq!(a.inside(move || apply::apply_incremental(unknown).map_err(|e| e.to_string())), Ok(Path::Nft));
    let listed = a.list();
    assert!(listed.contains("chain service-x {\n\t\tmeta l4proto tcp dnat to 10.244.0.2:80"), "{listed}");
    assert!(listed.contains("counter packets 0 bytes 0 meta l4proto tcp dnat to 10.244.0.3:80"), "{listed}");
    let bad = "add rule ip portico service-x goto nowhere\n";
    let err = a.inside(move || apply::apply_incremental(bad)).expect_err("refused");
    assert!(err.to_string().starts_with("nft rejected the transaction: Error: Could not process rule: No such file or directory"), "{err}");
}

/// Changes one port of `layout` (in `node`'s family), through nft in `a`
/// and through [`apply::apply_incremental`] in `b`, which must take `via`;
/// returns the transaction.
fn layout_step(a: &Netns, b: &Netns, node: &NodeConfig, layout: &mut Layout, key: &str, p: Option<&crate::servicemap::ServicePort>, via: Path) -> String {
    let (mut opened, mut script) = (String::new(), String::new());
    layout.change(node, key, p, &mut opened, &mut script);
    layout.settle();
    let tx = opened + &script;
    let want = tx.clone();
    a.nft(&tx).unwrap_or_else(|e| panic!("{key}: nft refused: {e}\n{tx}"));
    let path = b.inside(move || apply::apply_incremental(&want).map_err(|e| e.to_string())).unwrap_or_else(|e| panic!("{key}: {e}\n{tx}"));
    assert_eq!(path, via, "{key}:\n{tx}");
    tx
}

#[test]
fn changes_in_shard_tables_go_the_same_way_and_open_tables_through_nft() {
    let (services, slices) = sharded_services();
    let services: Vec<k8s_openapi::api::core::v1::Service> = serde_json::from_value(services).expect("services");
    let slices: Vec<_> = serde_json::from_value(slices).expect("slices");
    let map = servicemap::build(&services, &slices, "node-1", servicemap::Family::V4);
    let ports: Vec<_> = map.values().collect();
    // Capacity 2 packs the five ports one per table; every table then has room for one more.
    let full = Layout::full(&node(), 2, &ports);
    let script = full.script(&node());
    let (a, b) = (Netns::new(), Netns::new());
    a.nft(&script).expect("full sync via nft");
    b.nft(&script).expect("full sync via nft");
    let mut layout = full.layout;
    let mut extra = map.values().find(|p| p.key.starts_with("default/a/")).expect("a").clone();
    let step = |layout: &mut Layout, key: &str, p: Option<&crate::servicemap::ServicePort>, via: Path| layout_step(&a, &b, &node(), layout, key, p, via);
    // New ports take the first table with room: the main one, then shard 1, then shard 2.
    for (i, table) in [(1, "portico"), (2, "portico-shard-1"), (3, "portico-shard-2")] {
        extra.key = format!("default/new-{i}/tcp/http");
        extra.cluster_ip = Some(format!("10.96.1.{i}").parse().expect("ip"));
        let key = extra.key.clone();
        let tx = step(&mut layout, &key, Some(&extra), Path::Netlink);
        assert!(tx.contains(&format!("add element ip {table} service-ips {{ 10.96.1.{i} . tcp . 80 : goto service-")), "{key} lands in {table}:\n{tx}");
    }
    // Gaining a NodePort moves a port from its shard table to the main table.
    extra.node_port = Some(30099);
    let tx = step(&mut layout, &extra.key.clone(), Some(&extra), Path::Netlink);
    assert!(tx.contains("delete chain ip portico-shard-2 service-") && tx.contains("add element ip portico service-nodeports { tcp . 30099 :"), "{tx}");
    // With every table full, the next port opens a new shard table (through nft: base chains).
    for i in 4..=7 {
        extra.key = format!("default/more-{i}/tcp/http");
        extra.cluster_ip = Some(format!("10.96.1.{i}").parse().expect("ip"));
        extra.node_port = None;
        let key = extra.key.clone();
        let via = if i == 7 { Path::Nft } else { Path::Netlink };
        let tx = step(&mut layout, &key, Some(&extra), via);
        if i == 7 {
            assert!(tx.starts_with("table ip portico-shard-5 {"), "{tx}");
        }
    }
    // A port that goes leaves its table's objects behind in neither table.
    let tx = step(&mut layout, "default/more-7/tcp/http", None, Path::Netlink);
    assert!(tx.contains("delete chain ip portico-shard-5 service-"), "{tx}");
    for t in ["portico", "portico-shard-1", "portico-shard-2", "portico-shard-3", "portico-shard-4", "portico-shard-5"] {
        assert_eq!(b.list_table("ip", t), a.list_table("ip", t), "table {t}");
    }
    assert!(a.list_table("ip", "portico").contains("10.96.0.14 . tcp . 80 : goto reject-chain"), "d has no endpoints: its reject element is in the main table");
}

#[test]
fn the_table_dump_names_every_table_of_the_family_and_no_other() {
    let a = Netns::new();
    a.nft("table ip portico { }\ntable ip portico-shard-1 { chain c { } ; }\ntable ip6 portico { }\ntable inet other { }\n").expect("tables via nft");
    let mut v4 = a.inside(|| super::table_names("ip").map_err(|e| e.to_string())).expect("dump");
    v4.sort();
    assert_eq!(v4, ["portico", "portico-shard-1"]);
    assert_eq!(a.inside(|| super::table_names("ip6").map_err(|e| e.to_string())), Ok(vec!["portico".to_owned()]));
    let empty = Netns::new();
    assert_eq!(empty.inside(|| super::table_names("ip").map_err(|e| e.to_string())), Ok(vec![]));
}
