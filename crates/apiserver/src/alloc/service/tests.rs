use super::*;

fn allocs() -> Allocators {
    repair("10.96.0.0/12".parse().expect("cidr"), (30000, 32767), &[]).0
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
    let mut e = svc(json!({"type": "ExternalName", "externalName": "www.baidu.com"}));
    allocate_service(&mut a, None, &mut e).expect("external").commit(&mut a);
    assert_eq!(a.ips.used(), 0);
}

#[test]
fn repair_rebuilds_and_reports_duplicates() {
    let s1 = svc(json!({"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "type": "NodePort", "ports": [{"port": 53, "nodePort": 30053}]}));
    let s2 = svc(json!({"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "ports": [{"port": 80}]}));
    let (a, problems) = repair("10.96.0.0/12".parse().expect("cidr"), (30000, 32767), &[s1, s2]);
    assert!(a.ips.is_allocated("10.96.0.10".parse().expect("ip")));
    assert!(a.ports.is_allocated(30053));
    assert_eq!(problems.len(), 1, "{problems:?}");
}
