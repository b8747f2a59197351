//! Imperative kubectl commands: create (protobuf bodies), expose, scale.

use crate::harness::{Cluster, NGINX, in_service_range, row};

#[test]
fn create_service_variants_and_namespace() {
    let c = Cluster::start();
    assert_eq!(c.ok(&["create", "service", "clusterip", "cs1", "--tcp=80:80"]), "service/cs1 created\n");
    assert_eq!(c.ok(&["create", "service", "nodeport", "np1", "--tcp=1234:80"]), "service/np1 created\n");
    assert_eq!(c.ok(&["create", "service", "clusterip", "hl", "--clusterip=None"]), "service/hl created\n");
    assert_eq!(c.ok(&["create", "namespace", "team-a"]), "namespace/team-a created\n");
    let svc = c.ok(&["get", "svc"]);
    let cs1 = row(&svc, "cs1");
    assert!(in_service_range(cs1[2]));
    assert_eq!(cs1[4], "80/TCP");
    let np1 = row(&svc, "np1");
    assert_eq!(np1[1], "NodePort");
    let port = np1[4].strip_prefix("1234:").and_then(|p| p.strip_suffix("/TCP")).and_then(|p| p.parse::<u16>().ok());
    assert!(port.is_some_and(|p| (30000..=32767).contains(&p)), "{}", np1[4]);
    assert_eq!(&row(&svc, "hl")[1..3], ["ClusterIP", "None"]);
    let ns = c.ok(&["get", "ns"]);
    assert_eq!(&row(&ns, "team-a")[..2], ["team-a", "Active"]);
}

#[test]
fn expose_and_scale_a_deployment() {
    let c = Cluster::start();
    c.apply(NGINX, &[]);
    assert_eq!(c.ok(&["expose", "deployment", "my-nginx", "--port=8090", "--target-port=80", "--name=exposed"]), "service/exposed exposed\n");
    let wide = c.ok(&["get", "svc", "exposed", "-o", "wide"]);
    let r = row(&wide, "exposed");
    assert_eq!((r[4], r[6]), ("8090/TCP", "run=my-nginx"));
    assert_eq!(c.ok(&["get", "svc", "exposed", "-o", "jsonpath={.spec.ports[0].targetPort}"]), "80");
    assert_eq!(c.ok(&["scale", "deployment", "my-nginx", "--replicas=3"]), "deployment.apps/my-nginx scaled\n");
    assert_eq!(c.ok(&["get", "deploy", "my-nginx", "-o", "jsonpath={.spec.replicas}"]), "3");
}

#[test]
fn events_created_by_components_show_in_describe() {
    let c = Cluster::start();
    c.apply(NGINX, &[]);
    let uid = c.ok(&["get", "svc", "my-nginx", "-o", "jsonpath={.metadata.uid}"]);
    let event = format!(
        "apiVersion: v1\nkind: Event\nmetadata:\n  name: my-nginx.demo\ninvolvedObject:\n  apiVersion: v1\n  kind: Service\n  name: my-nginx\n  namespace: default\n  uid: {uid}\nreason: EnsuringLoadBalancer\nmessage: Ensuring load balancer\ntype: Normal\nsource:\n  component: portico-test\ncount: 1\nfirstTimestamp: \"2026-01-01T00:00:00Z\"\nlastTimestamp: \"2026-01-01T00:00:00Z\"\n"
    );
    let out = c.apply(&event, &[]);
    assert!(out.status.success(), "{}", crate::harness::stderr(&out));
    let describe = c.ok(&["describe", "svc", "my-nginx"]);
    let events = describe.split("Events:").nth(1).unwrap_or_default();
    assert!(events.contains("EnsuringLoadBalancer") && events.contains("Ensuring load balancer"), "{describe}");
    let listed = c.ok(&["get", "events", "--field-selector", "involvedObject.kind=Service,involvedObject.name=my-nginx"]);
    assert!(listed.contains("EnsuringLoadBalancer"), "{listed}");
    assert!(c.ok(&["get", "events", "--field-selector", "involvedObject.name=other"]).is_empty());
}
