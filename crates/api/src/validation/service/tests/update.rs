use super::*;

/// A stored Service as the allocator left it.
fn stored(spec: Value) -> Value {
    let mut s = service("x", spec);
    s["metadata"]["resourceVersion"] = json!("7");
    s["metadata"]["uid"] = json!("u-1");
    s
}

fn update(new: &Value, old: &Value) -> Vec<String> {
    texts(validate_update(new, old))
}

#[test]
fn cluster_ip_may_not_change() {
    let old = stored(json!({"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}));
    let new = stored(json!({"clusterIP": "10.96.0.11", "ports": [{"port": 80}]}));
    assert_eq!(update(&new, &old), ["spec.clusterIPs[0]: Invalid value: []string{\"10.96.0.11\"}: may not change once set"]);
}

#[test]
fn primary_cluster_ip_can_not_be_unset() {
    let old = stored(json!({"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}));
    let new = stored(json!({"ports": [{"port": 80}]}));
    assert_eq!(update(&new, &old), ["spec.clusterIPs[0]: Invalid value: []string(nil): primary clusterIP can not be unset"]);
}

#[test]
fn releasing_the_secondary_needs_single_stack() {
    let old = stored(json!({"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10", "fd00::10"], "ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "PreferDualStack", "ports": [{"port": 80}]}));
    let new = stored(json!({"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "PreferDualStack", "ports": [{"port": 80}]}));
    assert_eq!(update(&new, &old), [
        "spec.ipFamilyPolicy: Invalid value: \"PreferDualStack\": must be set to 'SingleStack' when releasing the secondary clusterIP",
        "spec.ipFamilyPolicy: Invalid value: \"PreferDualStack\": must be set to 'SingleStack' when releasing the secondary ipFamily",
    ]);
}

#[test]
fn ip_families_may_not_change() {
    let old = stored(json!({"clusterIP": "10.96.0.10", "ipFamilies": ["IPv4"], "ports": [{"port": 80}]}));
    let new = stored(json!({"clusterIP": "10.96.0.10", "ipFamilies": ["IPv6"], "ports": [{"port": 80}]}));
    assert_eq!(update(&new, &old), [
        "spec.ipFamilies[0]: Invalid value: []core.IPFamily{\"IPv6\"}: may not change once set",
        "spec.clusterIPs[0]: Invalid value: \"10.96.0.10\": expected an IPv6 value as indicated by `ipFamilies[0]`",
    ]);
}

#[test]
fn headless_to_headless_is_free() {
    let old = stored(json!({"clusterIP": "None", "ports": [{"port": 80}]}));
    let new = stored(json!({"clusterIP": "None", "ipFamilies": ["IPv6"], "ports": [{"port": 80}]}));
    assert!(update(&new, &old).is_empty());
}

#[test]
fn load_balancer_class_and_health_check_port_are_immutable() {
    let old = stored(json!({"type": "LoadBalancer", "loadBalancerClass": "a.io/lb", "externalTrafficPolicy": "Local", "healthCheckNodePort": 31000, "ports": [{"port": 80}]}));
    let new = stored(json!({"type": "LoadBalancer", "loadBalancerClass": "b.io/lb", "externalTrafficPolicy": "Local", "healthCheckNodePort": 31001, "ports": [{"port": 80}]}));
    assert_eq!(update(&new, &old), [
        "spec.loadBalancerClass: Invalid value: \"b.io/lb\": may not change once set",
        "spec.healthCheckNodePort: Forbidden: field is immutable",
    ]);
    let mut unset = new.clone();
    unset["spec"].as_object_mut().expect("spec").remove("loadBalancerClass");
    unset["spec"]["healthCheckNodePort"] = json!(31000);
    assert_eq!(update(&unset, &old), ["spec.loadBalancerClass: Invalid value: \"null\": may not change once set"]);
}

#[test]
fn metadata_is_immutable() {
    let old = stored(json!({"ports": [{"port": 80}]}));
    let mut new = old.clone();
    new["metadata"]["uid"] = json!("u-2");
    assert_eq!(update(&new, &old), ["metadata.uid: Invalid value: \"u-2\": field is immutable"]);
}

#[test]
fn node_port_to_cluster_ip_drops_untouched_node_ports() {
    let old = stored(json!({"type": "NodePort", "clusterIP": "10.96.0.10", "ports": [{"port": 80, "nodePort": 30080}]}));
    // kubectl apply of a ClusterIP manifest: the live nodePort and policy are patched through.
    let mut new = old.clone();
    new["spec"]["type"] = json!("ClusterIP");
    prepare_service_update(&mut new, &old);
    assert!(new["spec"]["ports"][0].get("nodePort").is_none());
    assert!(new["spec"].get("externalTrafficPolicy").is_none());
    assert_eq!(new["spec"]["clusterIP"], "10.96.0.10", "ClusterIP still needs its IP");
    assert!(update(&new, &old).is_empty(), "{:?}", update(&new, &old));
}

#[test]
fn a_new_node_port_is_kept_and_rejected() {
    let old = stored(json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}));
    let mut new = old.clone();
    new["spec"]["type"] = json!("ClusterIP");
    new["spec"]["ports"][0]["nodePort"] = json!(30081);
    prepare_service_update(&mut new, &old);
    assert_eq!(new["spec"]["ports"][0]["nodePort"], 30081);
    assert_eq!(update(&new, &old), ["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]);
}

#[test]
fn to_external_name_drops_cluster_ips_and_families() {
    let old = stored(json!({"clusterIP": "10.96.0.10", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "ports": [{"port": 80}]}));
    let mut new = old.clone();
    new["spec"]["type"] = json!("ExternalName");
    new["spec"]["externalName"] = json!("db.example.com");
    prepare_service_update(&mut new, &old);
    for f in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
        assert!(new["spec"].get(f).is_none(), "{f}");
    }
    assert!(update(&new, &old).is_empty(), "{:?}", update(&new, &old));
}

#[test]
fn load_balancer_to_cluster_ip_drops_lb_fields_and_status() {
    let old = stored(json!({"type": "LoadBalancer", "loadBalancerClass": "a.io/lb", "externalTrafficPolicy": "Local", "healthCheckNodePort": 31000,
                            "ports": [{"port": 80, "nodePort": 30080}]}));
    let mut old = old;
    old["status"] = json!({"loadBalancer": {"ingress": [{"ip": "1.2.3.4", "ipMode": "VIP"}]}});
    let mut new = old.clone();
    new["spec"]["type"] = json!("ClusterIP");
    prepare_service_update(&mut new, &old);
    for f in ["allocateLoadBalancerNodePorts", "loadBalancerClass", "healthCheckNodePort", "externalTrafficPolicy"] {
        assert!(new["spec"].get(f).is_none(), "{f}");
    }
    assert_eq!(new["status"], json!({"loadBalancer": {}}));
    assert!(update(&new, &old).is_empty(), "{:?}", update(&new, &old));
}

#[test]
fn changed_fields_are_left_for_validation() {
    let old = stored(json!({"type": "LoadBalancer", "ports": [{"port": 80}]}));
    let mut new = old.clone();
    new["spec"]["type"] = json!("ClusterIP");
    new["spec"]["allocateLoadBalancerNodePorts"] = json!(false);
    prepare_service_update(&mut new, &old);
    assert_eq!(new["spec"]["allocateLoadBalancerNodePorts"], false);
    assert_eq!(update(&new, &old), ["spec.allocateLoadBalancerNodePorts: Forbidden: may only be used when `type` is 'LoadBalancer'"]);
}
