use super::*;
use serde_json::json;

/// A Service as the API server stores it: single-stack IPv4 unless `spec` says otherwise.
fn svc(mut spec: serde_json::Value) -> Service {
    if spec.get("ipFamilies").is_none() {
        spec["ipFamilies"] = json!(["IPv4"]);
    }
    serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "default", "uid": "u1"}, "spec": spec})).expect("svc")
}

fn pod(name: &str, ip: &str, ready: bool, extra: serde_json::Value) -> Pod {
    let mut p = json!({"metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "labels": {"app": "web"}},
        "spec": {"nodeName": "node1", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
        "status": {"phase": "Running", "podIP": ip, "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}});
    if let (Some(m), Some(e)) = (p.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            m.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(p).expect("pod")
}

/// Created slices as the API server stores them (named `web-N`).
fn stored(created: &[EndpointSlice]) -> Vec<EndpointSlice> {
    created
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut s = s.clone();
            s.metadata.name = Some(format!("web-{i}"));
            s.metadata.generate_name = None;
            s
        })
        .collect()
}

#[test]
fn endpoints_split_ready_and_not_ready_on_the_resolved_port() {
    let s = svc(json!({"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http", "protocol": "TCP"}]}));
    let (a, b, c) = (pod("a", "10.244.0.3", true, json!({})), pod("b", "10.244.0.2", false, json!({})), pod("c", "", true, json!({})));
    let other: Pod = serde_json::from_value(json!({"metadata": {"name": "x", "labels": {"app": "db"}}, "status": {"podIP": "10.244.0.9"}})).expect("pod");
    let ep = desired_endpoints(&s, &[&a, &b, &c, &other]);
    let subsets = ep.subsets.expect("subsets");
    assert_eq!(subsets.len(), 1);
    let ips = |v: &Option<Vec<EndpointAddress>>| v.iter().flatten().map(|a| a.ip.clone()).collect::<Vec<_>>();
    assert_eq!(ips(&subsets[0].addresses), ["10.244.0.3"]);
    assert_eq!(ips(&subsets[0].not_ready_addresses), ["10.244.0.2"]);
    assert_eq!(subsets[0].ports.as_ref().map(|p| p[0].port), Some(8080));
}

#[test]
fn publish_not_ready_and_terminating_pods() {
    let s = svc(json!({"selector": {"app": "web"}, "publishNotReadyAddresses": true, "ports": [{"port": 80, "targetPort": 8080}]}));
    let b = pod("b", "10.244.0.2", false, json!({}));
    let ep = desired_endpoints(&s, &[&b]);
    assert!(ep.subsets.expect("subsets")[0].addresses.is_some());
    let plain = svc(json!({"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}));
    let mut t = pod("t", "10.244.0.7", true, json!({}));
    t.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH));
    assert!(desired_endpoints(&plain, &[&t]).subsets.is_none(), "terminating pods leave Endpoints");
    let plan = plan_slices(&plain, &[&t], &[]);
    let cond = plan.create[0].endpoints[0].conditions.clone().expect("conditions");
    assert_eq!((cond.ready, cond.serving, cond.terminating), (Some(false), Some(true), Some(true)));
}

#[test]
fn pods_without_a_named_port_are_left_out_for_that_port() {
    let s = svc(json!({"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}, {"name": "metrics", "port": 9090, "targetPort": "metrics"}]}));
    let a = pod("a", "10.244.0.3", true, json!({}));
    let ep = desired_endpoints(&s, &[&a]);
    let ports = ep.subsets.expect("subsets")[0].ports.clone().expect("ports");
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0].name.as_deref(), Some("http"));
}

#[test]
fn slices_are_packed_by_100_and_reused() {
    let s = svc(json!({"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}));
    let owned: Vec<Pod> = (0..250).map(|i| pod(&format!("p{i}"), &format!("10.244.{}.{}", i / 200, i % 200 + 1), true, json!({}))).collect();
    let refs: Vec<&Pod> = owned.iter().collect();
    let plan = plan_slices(&s, &refs, &[]);
    assert_eq!(plan.create.iter().map(|s| s.endpoints.len()).collect::<Vec<_>>(), [100, 100, 50]);
    let slice = &plan.create[0];
    assert_eq!(slice.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL)).map(String::as_str), Some("web"));
    assert_eq!(slice.ports.as_ref().map(|p| p[0].port), Some(Some(8080)));
    // Existing slices with the same content are left alone.
    let existing = stored(&plan.create);
    let again = plan_slices(&s, &refs, &existing);
    assert_eq!(again, SlicePlan::default());
    // One pod fewer: one slice updated, nothing created or deleted.
    let fewer = plan_slices(&s, &refs[1..], &existing);
    assert_eq!((fewer.create.len(), fewer.update.len(), fewer.delete.len()), (0, 3, 0));
}

#[test]
fn hostname_only_with_matching_subdomain() {
    let s = svc(json!({"selector": {"app": "web"}, "clusterIP": "None"}));
    let a = pod("a", "10.244.0.3", true, json!({"spec": {"hostname": "web-0", "subdomain": "web", "containers": []}}));
    let b = pod("b", "10.244.0.4", true, json!({"spec": {"hostname": "web-1", "subdomain": "other", "containers": []}}));
    let plan = plan_slices(&s, &[&a, &b], &[]);
    let hosts: Vec<Option<String>> = plan.create[0].endpoints.iter().map(|e| e.hostname.clone()).collect();
    assert_eq!(hosts, [Some("web-0".to_owned()), None]);
}

#[test]
fn selectorless_endpoints_are_mirrored() {
    let s = svc(json!({"ports": [{"port": 3306}]}));
    let ep: Endpoints = serde_json::from_value(json!({"metadata": {"name": "web", "uid": "e1"},
        "subsets": [{"addresses": [{"ip": "192.0.2.10"}], "notReadyAddresses": [{"ip": "192.0.2.11"}], "ports": [{"port": 3306}]}]})).expect("ep");
    let plan = plan_mirrored_slices(&s, Some(&ep), &[]);
    assert_eq!(plan.create.len(), 1);
    let slice = &plan.create[0];
    assert_eq!(slice.metadata.labels.as_ref().and_then(|l| l.get(MANAGED_BY_LABEL)).map(String::as_str), Some(MIRROR_MANAGED_BY));
    let ready: Vec<(String, Option<bool>)> = slice.endpoints.iter().map(|e| (e.addresses[0].clone(), e.conditions.as_ref().and_then(|c| c.ready))).collect();
    assert_eq!(ready, [("192.0.2.10".to_owned(), Some(true)), ("192.0.2.11".to_owned(), Some(false))]);
    // Gone Endpoints: the mirror goes too.
    let mut existing = slice.clone();
    existing.metadata.name = Some("web-abc".into());
    assert_eq!(plan_mirrored_slices(&s, None, &[existing]).delete, ["web-abc"]);
}

#[test]
fn dual_stack_services_get_one_slice_per_family() {
    let s = svc(json!({"selector": {"app": "web"}, "ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "RequireDualStack", "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}));
    let both = pod("a", "10.244.0.3", true, json!({}));
    let mut both = both;
    if let Some(st) = both.status.as_mut() {
        st.pod_ips = serde_json::from_value(json!([{"ip": "10.244.0.3"}, {"ip": "fd00:10:244::3"}])).expect("ips");
    }
    let v4only = pod("b", "10.244.0.4", true, json!({}));
    let plan = plan_slices(&s, &[&both, &v4only], &[]);
    let got: Vec<(String, Vec<String>)> = plan.create.iter().map(|s| (s.address_type.clone(), s.endpoints.iter().map(|e| e.addresses[0].clone()).collect())).collect();
    assert_eq!(got, [("IPv4".to_owned(), vec!["10.244.0.3".to_owned(), "10.244.0.4".to_owned()]), ("IPv6".to_owned(), vec!["fd00:10:244::3".to_owned()])]);
    // Without IPv6 pods the IPv6 slice is an empty placeholder; a single-stack Service has no IPv6 slice.
    let plan = plan_slices(&s, &[&v4only], &[]);
    assert_eq!(plan.create.iter().map(|s| (s.address_type.as_str(), s.endpoints.len())).collect::<Vec<_>>(), [("IPv4", 1), ("IPv6", 0)]);
    // The empty IPv6 placeholder is never turned into the IPv4 slice (addressType is immutable).
    let existing = stored(&plan.create);
    let v6_slice = existing.iter().find(|s| s.address_type == "IPv6").and_then(|s| s.metadata.name.clone()).expect("v6 slice");
    let again = plan_slices(&s, &[&both, &v4only], &[existing[1].clone()]);
    assert!(again.update.iter().all(|u| u.address_type == "IPv6" && u.metadata.name.as_deref() == Some(v6_slice.as_str())), "{again:?}");
    assert_eq!(again.create.iter().map(|s| s.address_type.as_str()).collect::<Vec<_>>(), ["IPv4"]);
    // Endpoints (core/v1) carry the primary family's address only.
    let v6_first = svc(json!({"selector": {"app": "web"}, "ipFamilies": ["IPv6", "IPv4"], "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}));
    let ep = desired_endpoints(&v6_first, &[&both, &v4only]);
    let ips: Vec<String> = ep.subsets.iter().flatten().flat_map(|s| s.addresses.iter().flatten().map(|a| a.ip.clone())).collect();
    assert_eq!(ips, ["fd00:10:244::3"]);
    let single = svc(json!({"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}));
    assert_eq!(plan_slices(&single, &[&both], &[]).create.iter().map(|s| s.address_type.as_str()).collect::<Vec<_>>(), ["IPv4"]);
}
