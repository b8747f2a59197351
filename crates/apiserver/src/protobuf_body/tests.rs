//! Bodies captured from kubectl 1.32 (`fixtures/*.bin`), decoded to JSON.

use super::decode;
use serde_json::json;

fn fixture(name: &str) -> serde_json::Value {
    let bytes = match name {
        "svc_clusterip" => &include_bytes!("fixtures/svc_clusterip.bin")[..],
        "svc_nodeport" => &include_bytes!("fixtures/svc_nodeport.bin")[..],
        "svc_headless" => &include_bytes!("fixtures/svc_headless.bin")[..],
        "svc_extname" => &include_bytes!("fixtures/svc_extname.bin")[..],
        "ns" => &include_bytes!("fixtures/ns.bin")[..],
        "cm" => &include_bytes!("fixtures/cm.bin")[..],
        "secret" => &include_bytes!("fixtures/secret.bin")[..],
        "deploy" => &include_bytes!("fixtures/deploy.bin")[..],
        other => panic!("no fixture {other}"),
    };
    decode(bytes).expect("decodes")
}

#[test]
fn create_service_clusterip() {
    assert_eq!(
        fixture("svc_clusterip"),
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "cs1", "labels": {"app": "cs1"}},
               "spec": {"ports": [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}],
                        "selector": {"app": "cs1"}, "type": "ClusterIP"},
               "status": {"loadBalancer": {}}})
    );
}

#[test]
fn create_service_nodeport_headless_and_externalname() {
    let np = fixture("svc_nodeport");
    assert_eq!(np["spec"]["type"], "NodePort");
    assert_eq!(np["spec"]["ports"][0], json!({"name": "1234-80", "protocol": "TCP", "port": 1234, "targetPort": 80, "nodePort": 30080}));
    let hl = fixture("svc_headless");
    assert_eq!(hl["spec"]["clusterIP"], "None");
    let en = fixture("svc_extname");
    assert_eq!((en["spec"]["type"].as_str(), en["spec"]["externalName"].as_str()), (Some("ExternalName"), Some("www.example.com")));
}

#[test]
fn create_namespace_configmap_secret() {
    let ns = fixture("ns");
    assert_eq!((ns["kind"].as_str(), ns["metadata"]["name"].as_str()), (Some("Namespace"), Some("foo")));
    let cm = fixture("cm");
    assert_eq!(cm["data"], json!({"a": "b", "x": "y"}));
    let secret = fixture("secret");
    assert_eq!(secret["data"], json!({"pw": "aHVudGVyMg=="}));
}

#[test]
fn create_deployment() {
    let d = fixture("deploy");
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(d["spec"]["selector"], json!({"matchLabels": {"app": "web"}}));
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!((c["name"].as_str(), c["image"].as_str()), (Some("nginx"), Some("nginx:1.25")));
    assert_eq!(c["ports"], json!([{"containerPort": 80}]));
}

#[test]
fn garbage_is_a_bad_request_not_a_panic() {
    for body in [&b"k8s\0\x0a\xff\xff\xff"[..], b"nope", b"k8s\0", b"k8s\0\x12\x05abc"] {
        let e = decode(body).expect_err("rejected");
        assert!(matches!(e.code, 400 | 415), "{e:?}");
    }
}

/// Bodies of `kubectl create` 1.32 next to `kubectl create ... --dry-run=client -o json`
/// of the same command (nulls dropped): the decoded body must equal it.
#[test]
fn decoded_bodies_equal_kubectl_json() {
    let cases: [(&str, &[u8], &str); 6] = [
        ("create ingress", include_bytes!("fixtures/kubectl_ingress.bin"), include_str!("fixtures/kubectl_ingress.json")),
        ("create service loadbalancer", include_bytes!("fixtures/kubectl_svc_lb.bin"), include_str!("fixtures/kubectl_svc_lb.json")),
        ("create service nodeport", include_bytes!("fixtures/kubectl_svc_np2.bin"), include_str!("fixtures/kubectl_svc_np2.json")),
        ("create deployment", include_bytes!("fixtures/kubectl_deploy_port.bin"), include_str!("fixtures/kubectl_deploy_port.json")),
        ("create configmap", include_bytes!("fixtures/kubectl_cm.bin"), include_str!("fixtures/kubectl_cm.json")),
        ("create secret docker-registry", include_bytes!("fixtures/kubectl_secret_dockercfg.bin"), include_str!("fixtures/kubectl_secret_dockercfg.json")),
    ];
    for (what, body, want) in cases {
        let want: serde_json::Value = serde_json::from_str(want).expect("fixture json");
        assert_eq!(decode(body).expect(what), want, "{what}");
    }
}

#[test]
fn kinds_portico_does_not_serve_are_unsupported_media_types() {
    for body in [&include_bytes!("fixtures/kubectl_job.bin")[..], include_bytes!("fixtures/kubectl_sa.bin")] {
        let e = decode(body).expect_err("unsupported");
        assert_eq!(e.code, 415, "{e:?}");
    }
}
