use super::*;

fn allocs() -> Allocators {
    Allocators::new(&["10.96.0.0/12".parse().expect("cidr")], 30000..=32767)
}

fn internal(e: AllocError) -> String {
    match e {
        AllocError::Internal(m) => m,
        other => panic!("expected Internal, got {other:?}"),
    }
}

fn svc(spec: Value) -> Value {
    json!({"metadata": {"name": "s", "namespace": "default"}, "spec": spec})
}

fn invalid(e: AllocError) -> Vec<String> {
    match e {
        AllocError::Invalid(errs) => errs.iter().map(ToString::to_string).collect(),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn cluster_ip_service_gets_an_ip_and_families() {
    let mut a = allocs();
    let mut s = svc(json!({"type": "ClusterIP", "ports": [{"port": 80, "protocol": "TCP"}]}));
    allocate_service(&mut a, None, &mut s).expect("alloc").commit(&mut a);
    let ip = s["spec"]["clusterIP"].as_str().expect("ip").to_owned();
    let range: ipnet::IpNet = "10.96.0.0/12".parse().expect("cidr");
    assert!(range.contains(&ip.parse::<IpAddr>().expect("ip")));
    assert_eq!(s["spec"]["clusterIPs"], json!([ip]));
    assert_eq!(s["spec"]["ipFamilies"], json!(["IPv4"]));
    assert_eq!(s["spec"]["ipFamilyPolicy"], json!("SingleStack"));
    assert!(s["spec"]["ports"][0].get("nodePort").is_none());
}

#[test]
fn manual_ip_collisions_and_range_errors_are_upstream_messages() {
    let mut a = allocs();
    let mut first = svc(json!({"clusterIP": "10.102.1.87", "ports": [{"port": 80}]}));
    allocate_service(&mut a, None, &mut first).expect("manual ip").commit(&mut a);
    let mut dup = svc(json!({"clusterIP": "10.102.1.87", "ports": [{"port": 80}]}));
    assert_eq!(
        invalid(allocate_service(&mut a, None, &mut dup).expect_err("dup")),
        ["spec.clusterIPs: Invalid value: []string{\"10.102.1.87\"}: failed to allocate IP 10.102.1.87: provided IP is already allocated"]
    );
    let mut out = svc(json!({"clusterIP": "1.1.1.1", "ports": [{"port": 80}]}));
    assert_eq!(
        invalid(allocate_service(&mut a, None, &mut out).expect_err("range")),
        ["spec.clusterIPs: Invalid value: []string{\"1.1.1.1\"}: failed to allocate IP 1.1.1.1: the provided IP (1.1.1.1) is not in the valid range. The range of valid IPs is 10.96.0.0/12"]
    );
}

#[test]
fn node_ports_are_allocated_honoured_and_checked() {
    let mut a = allocs();
    let mut s = svc(json!({"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30380}, {"port": 443, "protocol": "TCP"}]}));
    allocate_service(&mut a, None, &mut s).expect("alloc").commit(&mut a);
    assert_eq!(s["spec"]["ports"][0]["nodePort"], json!(30380));
    let auto = s["spec"]["ports"][1]["nodePort"].as_i64().expect("auto port");
    assert!((30000..=32767).contains(&auto));
    let mut low = svc(json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}));
    assert_eq!(
        invalid(allocate_service(&mut a, None, &mut low).expect_err("range")),
        ["spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767"]
    );
    let mut taken = svc(json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30380}]}));
    assert_eq!(
        invalid(allocate_service(&mut a, None, &mut taken).expect_err("taken")),
        ["spec.ports[0].nodePort: Invalid value: 30380: provided port is already allocated"]
    );
    // TCP and UDP may share one node port within a Service.
    let mut dns = svc(json!({"type": "NodePort", "ports": [{"port": 53, "protocol": "UDP", "nodePort": 30053}, {"port": 53, "protocol": "TCP", "nodePort": 30053}]}));
    allocate_service(&mut a, None, &mut dns).expect("shared").commit(&mut a);
}

#[test]
fn ports_with_one_number_share_a_node_port() {
    let mut a = allocs();
    // Both unset: one allocation, shared (upstream keys by service port).
    let mut dns = svc(json!({"type": "NodePort", "ports": [{"name": "u", "port": 53, "protocol": "UDP"}, {"name": "t", "port": 53, "protocol": "TCP"}]}));
    let txn = allocate_service(&mut a, None, &mut dns).expect("alloc");
    assert_eq!(txn.allocated_ports().len(), 1);
    txn.commit(&mut a);
    assert_eq!(dns["spec"]["ports"][0]["nodePort"], dns["spec"]["ports"][1]["nodePort"]);
    // Only the second names one: the first takes it too.
    let mut late = svc(json!({"type": "NodePort", "ports": [{"port": 54, "protocol": "UDP"}, {"port": 54, "protocol": "TCP", "nodePort": 30054}]}));
    allocate_service(&mut a, None, &mut late).expect("alloc").commit(&mut a);
    assert_eq!(late["spec"]["ports"][0]["nodePort"], json!(30054));
    // Different port numbers may not share one on create.
    let mut clash = svc(json!({"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}, {"port": 81, "protocol": "UDP", "nodePort": 30080}]}));
    assert_eq!(
        invalid(allocate_service(&mut a, None, &mut clash).expect_err("clash")),
        ["spec.ports[1].nodePort: Invalid value: 30080: provided port is already allocated"]
    );
    assert!(!a.ports.is_allocated(30080), "the failed create left nothing behind");
}

#[test]
fn load_balancers_without_node_ports_honour_requested_ones() {
    let mut a = allocs();
    let mut lb = svc(json!({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false,
        "ports": [{"port": 80, "protocol": "TCP"}, {"port": 443, "protocol": "TCP", "nodePort": 30443}]}));
    allocate_service(&mut a, None, &mut lb).expect("alloc").commit(&mut a);
    assert!(lb["spec"]["ports"][0].get("nodePort").is_none());
    assert_eq!(lb["spec"]["ports"][1]["nodePort"], json!(30443));
    assert!(a.ports.is_allocated(30443));
    assert_eq!(a.ports.used(), 1);
}

#[test]
fn health_check_node_ports() {
    let mut a = allocs();
    let mut lb = svc(json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"port": 80, "protocol": "TCP"}]}));
    allocate_service(&mut a, None, &mut lb).expect("alloc").commit(&mut a);
    let hc = lb["spec"]["healthCheckNodePort"].as_i64().expect("hc");
    assert!(a.ports.is_allocated(hc) && hc != lb["spec"]["ports"][0]["nodePort"].as_i64().expect("np"));
    // A requested one that is taken is an internal error upstream.
    let mut dup = svc(json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": hc, "ports": [{"port": 80}]}));
    assert_eq!(
        internal(allocate_service(&mut a, None, &mut dup).expect_err("taken")),
        format!("failed to allocate requested HealthCheck NodePort {hc}: provided port is already allocated")
    );
    // An update that omits it keeps it; Cluster policy releases it.
    let mut same = svc(json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"port": 80, "protocol": "TCP"}]}));
    allocate_service(&mut a, Some(&lb), &mut same).expect("keep").commit(&mut a);
    assert_eq!(same["spec"]["healthCheckNodePort"], json!(hc));
    let mut cluster = same.clone();
    cluster["spec"]["externalTrafficPolicy"] = json!("Cluster");
    cluster["spec"].as_object_mut().expect("spec").remove("healthCheckNodePort");
    allocate_service(&mut a, Some(&same), &mut cluster).expect("release").commit(&mut a);
    assert!(!a.ports.is_allocated(hc));
    // And back to Local allocates a new one.
    let mut local = cluster.clone();
    local["spec"]["externalTrafficPolicy"] = json!("Local");
    allocate_service(&mut a, Some(&cluster), &mut local).expect("again").commit(&mut a);
    assert!(a.ports.is_allocated(local["spec"]["healthCheckNodePort"].as_i64().expect("hc")));
    release_service(&mut a, &local);
    assert_eq!((a.ports.used(), a.ips.used()), (0, 0));
}

#[test]
fn updates_keep_release_and_add_node_ports() {
    let mut a = allocs();
    let mut v1 = svc(json!({"type": "NodePort", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "https", "port": 443, "protocol": "TCP"}]}));
    allocate_service(&mut a, None, &mut v1).expect("create").commit(&mut a);
    let (http, https) = (v1["spec"]["ports"][0]["nodePort"].as_i64().expect("np"), v1["spec"]["ports"][1]["nodePort"].as_i64().expect("np"));
    // The http port changes number but keeps its name: its node port follows (by name).
    // https is removed: its node port is released on commit, not before.
    let mut v2 = svc(json!({"type": "NodePort", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "admin", "port": 9000, "protocol": "TCP"}]}));
    let txn = allocate_service(&mut a, Some(&v1), &mut v2).expect("update");
    assert_eq!(v2["spec"]["ports"][0]["nodePort"], json!(http));
    let admin = v2["spec"]["ports"][1]["nodePort"].as_i64().expect("admin");
    assert!(a.ports.is_allocated(https), "released only on commit");
    txn.commit(&mut a);
    assert!(!a.ports.is_allocated(https) && a.ports.is_allocated(admin) && a.ports.is_allocated(http));
    // A reverted update gives back what it took and keeps what it would have released.
    let mut v3 = svc(json!({"type": "NodePort", "ports": [{"name": "x", "port": 1, "protocol": "TCP", "nodePort": 30999}]}));
    allocate_service(&mut a, Some(&v2), &mut v3).expect("update").revert(&mut a);
    assert!(!a.ports.is_allocated(30999) && a.ports.is_allocated(http) && a.ports.is_allocated(admin));
    // Two ports of one protocol on one node port is refused on update.
    let mut dup = svc(json!({"type": "NodePort", "ports": [{"name": "a", "port": 1, "protocol": "TCP", "nodePort": http}, {"name": "b", "port": 2, "protocol": "TCP", "nodePort": http}]}));
    assert_eq!(internal(allocate_service(&mut a, Some(&v2), &mut dup).expect_err("dup")), format!("duplicate nodePort: {{TCP {http}}}"));
    assert!(a.ports.is_allocated(http), "the failed update released nothing");
}

#[test]
fn external_name_to_cluster_ip_allocates() {
    let mut a = allocs();
    let mut e = svc(json!({"type": "ExternalName", "externalName": "example.com"}));
    allocate_service(&mut a, None, &mut e).expect("create").commit(&mut a);
    assert!(e["spec"].get("ipFamilyPolicy").is_none() && e["spec"].get("clusterIPs").is_none());
    let mut c = svc(json!({"type": "ClusterIP", "selector": {"app": "x"}, "ports": [{"port": 80}]}));
    allocate_service(&mut a, Some(&e), &mut c).expect("update").commit(&mut a);
    let ip: IpAddr = c["spec"]["clusterIP"].as_str().expect("ip").parse().expect("ip");
    assert!(a.ips.is_allocated(ip));
    assert_eq!((c["spec"]["ipFamilyPolicy"].as_str(), &c["spec"]["ipFamilies"]), (Some("SingleStack"), &json!(["IPv4"])));
}

#[test]
fn full_ranges_are_internal_errors() {
    let mut a = Allocators::new(&["10.0.0.0/30".parse().expect("cidr")], 30000..=30000);
    for _ in 0..2 {
        allocate_service(&mut a, None, &mut svc(json!({"ports": [{"port": 80}]}))).expect("fits").commit(&mut a);
    }
    assert_eq!(
        internal(allocate_service(&mut a, None, &mut svc(json!({"ports": [{"port": 80}]}))).expect_err("full")),
        "failed to allocate a serviceIP: range is full"
    );
    let mut b = Allocators::new(&["10.0.0.0/24".parse().expect("cidr")], 30000..=30000);
    let mut np = svc(json!({"type": "NodePort", "ports": [{"port": 80}, {"port": 81}]}));
    assert_eq!(internal(allocate_service(&mut b, None, &mut np).expect_err("full")), "failed to allocate a nodePort: range is full");
    assert_eq!((b.ips.used(), b.ports.used()), (0, 0), "nothing kept after the failure");
    assert_eq!(AllocError::Internal("x".into()).to_string(), "x");
}

#[test]
fn failed_allocation_leaves_nothing_behind() {
    let mut a = allocs();
    let mut s = svc(json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30001}, {"port": 81, "nodePort": 99}]}));
    assert!(allocate_service(&mut a, None, &mut s).is_err());
    assert!(!a.ports.is_allocated(30001));
    assert_eq!(a.ips.used(), 0);
}

#[test]
fn type_changes_allocate_and_release() {
    let mut a = allocs();
    let mut v1 = svc(json!({"type": "ClusterIP", "ports": [{"port": 80, "protocol": "TCP"}]}));
    allocate_service(&mut a, None, &mut v1).expect("create").commit(&mut a);
    let ip: IpAddr = v1["spec"]["clusterIP"].as_str().expect("ip").parse().expect("ip");
    // ClusterIP -> NodePort: same IP (kept even if the new object omits it), a node port.
    let mut v2 = svc(json!({"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP"}]}));
    allocate_service(&mut a, Some(&v1), &mut v2).expect("to nodeport").commit(&mut a);
    assert_eq!(v2["spec"]["clusterIP"], json!(ip.to_string()));
    let np = v2["spec"]["ports"][0]["nodePort"].as_i64().expect("np");
    assert!(a.ports.is_allocated(np));
    // NodePort -> LoadBalancer keeps the port; an apply without nodePort keeps it too.
    let mut v3 = svc(json!({"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]}));
    allocate_service(&mut a, Some(&v2), &mut v3).expect("to lb").commit(&mut a);
    assert_eq!(v3["spec"]["ports"][0]["nodePort"], json!(np));
    // Back to ClusterIP: the node port is released.
    let mut v4 = svc(json!({"type": "ClusterIP", "ports": [{"port": 80, "protocol": "TCP"}]}));
    allocate_service(&mut a, Some(&v3), &mut v4).expect("to clusterip").commit(&mut a);
    assert!(!a.ports.is_allocated(np));
    // To ExternalName: the IP is released.
    let mut v5 = svc(json!({"type": "ExternalName", "externalName": "example.com"}));
    allocate_service(&mut a, Some(&v4), &mut v5).expect("to externalname").commit(&mut a);
    assert!(!a.ips.is_allocated(ip));
    assert!(v5["spec"].get("clusterIP").is_none());
}

#[test]
fn dry_runs_revert_and_deletes_release() {
    let mut a = allocs();
    let mut s = svc(json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30500}]}));
    allocate_service(&mut a, None, &mut s).expect("dry").revert(&mut a);
    assert!(!a.ports.is_allocated(30500));
    assert_eq!(a.ips.used(), 0);
    allocate_service(&mut a, None, &mut s).expect("real").commit(&mut a);
    release_service(&mut a, &s);
    assert!(!a.ports.is_allocated(30500));
    assert_eq!(a.ips.used(), 0);
}

#[test]
fn headless_and_external_name_get_no_ip() {
    let mut a = allocs();
    let mut h = svc(json!({"clusterIP": "None", "ports": [{"port": 80}]}));
    allocate_service(&mut a, None, &mut h).expect("headless").commit(&mut a);
    assert_eq!(h["spec"]["clusterIPs"], json!(["None"]));
    // Selectorless headless Services get both families (upstream's special case).
    assert_eq!((h["spec"]["ipFamilyPolicy"].as_str(), &h["spec"]["ipFamilies"]), (Some("RequireDualStack"), &json!(["IPv4", "IPv6"])));
    let mut e = svc(json!({"type": "ExternalName", "externalName": "www.baidu.com"}));
    allocate_service(&mut a, None, &mut e).expect("external").commit(&mut a);
    assert_eq!(a.ips.used(), 0);
}


fn dual(primary_v6: bool) -> Allocators {
    let (v4, v6): (ipnet::IpNet, ipnet::IpNet) = ("10.96.0.0/12".parse().expect("cidr"), "fd00:10:96::/112".parse().expect("cidr"));
    Allocators::new(&if primary_v6 { [v6, v4] } else { [v4, v6] }, 30000..=32767)
}

fn families_and_ips(s: &Value) -> (Vec<String>, Vec<&'static str>) {
    let ips = spec_strings(s, "clusterIPs");
    let fams = ips.iter().map(|ip| super::super::families::family_of(ip)).collect();
    (spec_strings(s, "ipFamilies"), fams)
}

#[test]
fn dual_stack_policies_allocate_one_address_per_family() {
    let mut a = dual(false);
    let mut single = svc(json!({"selector": {"a": "b"}, "ports": [{"port": 80}]}));
    allocate_service(&mut a, None, &mut single).expect("single").commit(&mut a);
    assert_eq!(families_and_ips(&single), (vec!["IPv4".to_owned()], vec!["IPv4"]), "SingleStack gets the primary family");
    let mut prefer = svc(json!({"ipFamilyPolicy": "PreferDualStack", "selector": {"a": "b"}, "ports": [{"port": 80}]}));
    allocate_service(&mut a, None, &mut prefer).expect("prefer").commit(&mut a);
    assert_eq!(families_and_ips(&prefer), (vec!["IPv4".to_owned(), "IPv6".to_owned()], vec!["IPv4", "IPv6"]));
    let mut require6 = svc(json!({"ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv6"], "selector": {"a": "b"}, "ports": [{"port": 80}]}));
    allocate_service(&mut a, None, &mut require6).expect("require").commit(&mut a);
    assert_eq!(families_and_ips(&require6), (vec!["IPv6".to_owned(), "IPv4".to_owned()], vec!["IPv6", "IPv4"]), "ipFamilies order is kept");
    assert_eq!(require6["spec"]["clusterIP"], require6["spec"]["clusterIPs"][0]);
    let mut manual = svc(json!({"ipFamilyPolicy": "RequireDualStack", "clusterIPs": ["10.96.5.5", "fd00:10:96::55"], "selector": {"a": "b"}, "ports": [{"port": 80}]}));
    allocate_service(&mut a, None, &mut manual).expect("manual").commit(&mut a);
    assert_eq!((manual["spec"]["clusterIP"].as_str(), &manual["spec"]["clusterIPs"]), (Some("10.96.5.5"), &json!(["10.96.5.5", "fd00:10:96::55"])));
    assert_eq!(a.ips.used(), 7);
    let mut v6only = svc(json!({"ipFamilies": ["IPv6"], "selector": {"a": "b"}, "ports": [{"port": 80}]}));
    allocate_service(&mut a, None, &mut v6only).expect("v6").commit(&mut a);
    assert_eq!(families_and_ips(&v6only), (vec!["IPv6".to_owned()], vec!["IPv6"]));
    release_service(&mut a, &manual);
    assert!(!a.ips.is_allocated("fd00:10:96::55".parse().expect("ip")));
}

#[test]
fn the_primary_family_is_the_first_range() {
    let mut a = dual(true);
    let mut s = svc(json!({"selector": {"a": "b"}, "ports": [{"port": 80}]}));
    allocate_service(&mut a, None, &mut s).expect("alloc").commit(&mut a);
    assert_eq!(families_and_ips(&s), (vec!["IPv6".to_owned()], vec!["IPv6"]));
}

#[test]
fn upgrade_to_dual_stack_allocates_and_downgrade_releases_the_secondary() {
    let mut a = dual(false);
    let mut s = svc(json!({"selector": {"a": "b"}, "ports": [{"port": 80}]}));
    allocate_service(&mut a, None, &mut s).expect("alloc").commit(&mut a);
    let mut up = s.clone();
    up["spec"]["ipFamilyPolicy"] = json!("RequireDualStack");
    allocate_service(&mut a, Some(&s), &mut up).expect("upgrade").commit(&mut a);
    assert_eq!(families_and_ips(&up), (vec!["IPv4".to_owned(), "IPv6".to_owned()], vec!["IPv4", "IPv6"]));
    assert_eq!(up["spec"]["clusterIPs"][0], s["spec"]["clusterIP"]);
    let v6: IpAddr = up["spec"]["clusterIPs"][1].as_str().expect("ip").parse().expect("ip");
    assert!(a.ips.is_allocated(v6));
    let mut down = up.clone();
    down["spec"]["ipFamilyPolicy"] = json!("SingleStack");
    allocate_service(&mut a, Some(&up), &mut down).expect("downgrade").commit(&mut a);
    assert_eq!(down["spec"]["clusterIPs"], json!([s["spec"]["clusterIP"]]));
    assert!(!a.ips.is_allocated(v6));
}

#[test]
fn single_stack_clusters_refuse_the_other_family_with_upstream_messages() {
    let mut a = allocs();
    let mut s = svc(json!({"ipFamilyPolicy": "RequireDualStack", "selector": {"a": "b"}, "ports": [{"port": 80}]}));
    assert_eq!(
        invalid(allocate_service(&mut a, None, &mut s).expect_err("dual")),
        ["spec.ipFamilyPolicy: Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services"]
    );
    let mut v6 = svc(json!({"ipFamilies": ["IPv6"], "selector": {"a": "b"}, "ports": [{"port": 80}]}));
    assert_eq!(invalid(allocate_service(&mut a, None, &mut v6).expect_err("v6")), ["spec.ipFamilies[0]: Invalid value: \"IPv6\": not configured on this cluster"]);
    let mut prefer = svc(json!({"ipFamilyPolicy": "PreferDualStack", "selector": {"a": "b"}, "ports": [{"port": 80}]}));
    allocate_service(&mut a, None, &mut prefer).expect("prefer").commit(&mut a);
    assert_eq!(families_and_ips(&prefer), (vec!["IPv4".to_owned()], vec!["IPv4"]), "PreferDualStack falls back to one family");
    assert_eq!(a.ips.used(), 1);
}
