//! Bodies encoded here with k8s-pb (the same wire format kube-apiserver's
//! clients produce) for what `kubectl create` cannot send: probes, volumes,
//! inlined structs, quantities, times and pointer fields holding zero.

use super::decode;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message;
use serde_json::{Value, json};

fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta { api_version: Some(api_version.into()), kind: Some(kind.into()) }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut out = b"k8s\0".to_vec();
    out.extend(unknown.encode_to_vec());
    out
}

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

fn int_or_string(v: Value) -> Option<IntOrString> {
    Some(match v {
        Value::String(str_val) => IntOrString { r#type: Some(1), int_val: Some(0), str_val: Some(str_val) },
        other => IntOrString { r#type: Some(0), int_val: other.as_i64().and_then(|i| i32::try_from(i).ok()), str_val: Some(String::new()) },
    })
}

fn pod() -> core::Pod {
    let cm_ref = Some(core::LocalObjectReference { name: s("settings") });
    core::Pod {
        metadata: Some(meta::ObjectMeta {
            name: s("web"),
            namespace: s("default"),
            labels: [("app".to_owned(), "web".to_owned())].into(),
            creation_timestamp: Some(meta::Time { seconds: Some(1_700_000_000), nanos: Some(0) }),
            owner_references: vec![meta::OwnerReference {
                api_version: s("apps/v1"),
                kind: s("ReplicaSet"),
                name: s("web-1"),
                uid: s("u-1"),
                controller: Some(true),
                block_owner_deletion: Some(false),
            }],
            ..Default::default()
        }),
        spec: Some(core::PodSpec {
            containers: vec![core::Container {
                name: s("nginx"),
                image: s("nginx:1.25"),
                ports: vec![core::ContainerPort { name: s("http"), container_port: Some(80), protocol: s("TCP"), ..Default::default() }],
                env: vec![
                    core::EnvVar { name: s("A"), value: s("1"), value_from: None },
                    core::EnvVar {
                        name: s("B"),
                        value: s(""),
                        value_from: Some(core::EnvVarSource {
                            config_map_key_ref: Some(core::ConfigMapKeySelector { local_object_reference: cm_ref.clone(), key: s("b"), optional: Some(false) }),
                            ..Default::default()
                        }),
                    },
                ],
                resources: Some(core::ResourceRequirements {
                    limits: [("cpu".to_owned(), Quantity { string: s("500m") })].into(),
                    requests: [("memory".to_owned(), Quantity { string: s("64Mi") })].into(),
                    ..Default::default()
                }),
                liveness_probe: Some(core::Probe {
                    handler: Some(core::ProbeHandler {
                        http_get: Some(core::HttpGetAction { path: s("/healthz"), port: int_or_string(json!("http")), ..Default::default() }),
                        ..Default::default()
                    }),
                    initial_delay_seconds: Some(0),
                    period_seconds: Some(10),
                    ..Default::default()
                }),
                readiness_probe: Some(core::Probe {
                    handler: Some(core::ProbeHandler {
                        tcp_socket: Some(core::TcpSocketAction { port: int_or_string(json!(8080)), host: s("") }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                volume_mounts: vec![core::VolumeMount { name: s("data"), mount_path: s("/data"), ..Default::default() }],
                security_context: Some(core::SecurityContext { run_as_user: Some(0), privileged: Some(false), ..Default::default() }),
                ..Default::default()
            }],
            volumes: vec![
                core::Volume { name: s("data"), volume_source: Some(core::VolumeSource { empty_dir: Some(core::EmptyDirVolumeSource::default()), ..Default::default() }) },
                core::Volume {
                    name: s("cfg"),
                    volume_source: Some(core::VolumeSource {
                        config_map: Some(core::ConfigMapVolumeSource { local_object_reference: cm_ref, default_mode: Some(420), ..Default::default() }),
                        ..Default::default()
                    }),
                },
            ],
            termination_grace_period_seconds: Some(0),
            enable_service_links: Some(false),
            ..Default::default()
        }),
        status: Some(core::PodStatus {
            phase: s("Running"),
            pod_ip: s("10.244.0.5"),
            conditions: vec![core::PodCondition {
                r#type: s("Ready"),
                status: s("True"),
                last_transition_time: Some(meta::Time { seconds: Some(1_700_000_060), nanos: Some(0) }),
                ..Default::default()
            }],
            ..Default::default()
        }),
    }
}

#[test]
fn pod_with_probes_volumes_and_pointer_zeros() {
    let got = decode(&envelope("v1", "Pod", pod().encode_to_vec())).expect("decodes");
    assert_eq!(
        got,
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"},
                         "creationTimestamp": "2023-11-14T22:13:20Z",
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "u-1",
                                              "controller": true, "blockOwnerDeletion": false}]},
            "spec": {
                "containers": [{
                    "name": "nginx", "image": "nginx:1.25",
                    "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
                    "env": [{"name": "A", "value": "1"},
                            {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "b", "optional": false}}}],
                    "resources": {"limits": {"cpu": "500m"}, "requests": {"memory": "64Mi"}},
                    "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10},
                    "readinessProbe": {"tcpSocket": {"port": 8080}},
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    "securityContext": {"runAsUser": 0, "privileged": false}
                }],
                "volumes": [{"name": "data", "emptyDir": {}},
                            {"name": "cfg", "configMap": {"name": "settings", "defaultMode": 420}}],
                "terminationGracePeriodSeconds": 0,
                "enableServiceLinks": false
            },
            "status": {"phase": "Running", "podIP": "10.244.0.5",
                       "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2023-11-14T22:14:20Z"}]}
        })
    );
}

#[test]
fn lease_endpoint_slice_and_node() {
    use k8s_pb::api::coordination::v1 as coordination;
    use k8s_pb::api::discovery::v1 as discovery;
    let lease = coordination::Lease {
        metadata: Some(meta::ObjectMeta { name: s("portico-controllers"), ..Default::default() }),
        spec: Some(coordination::LeaseSpec {
            holder_identity: s("a"),
            lease_duration_seconds: Some(15),
            renew_time: Some(meta::MicroTime { seconds: Some(1_700_000_000), nanos: Some(123_456_000) }),
            lease_transitions: Some(0),
            ..Default::default()
        }),
    };
    assert_eq!(
        decode(&envelope("coordination.k8s.io/v1", "Lease", lease.encode_to_vec())).expect("lease"),
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "portico-controllers"},
               "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15, "renewTime": "2023-11-14T22:13:20.123456Z", "leaseTransitions": 0}})
    );
    let slice = discovery::EndpointSlice {
        metadata: Some(meta::ObjectMeta { name: s("web-abc"), ..Default::default() }),
        address_type: s("IPv4"),
        endpoints: vec![discovery::Endpoint {
            addresses: vec!["10.244.0.5".into()],
            conditions: Some(discovery::EndpointConditions { ready: Some(false), serving: Some(true), terminating: Some(false) }),
            node_name: s("n1"),
            ..Default::default()
        }],
        ports: vec![discovery::EndpointPort { name: s(""), protocol: s("TCP"), port: Some(8080), app_protocol: None }],
    };
    assert_eq!(
        decode(&envelope("discovery.k8s.io/v1", "EndpointSlice", slice.encode_to_vec())).expect("slice"),
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "web-abc"}, "addressType": "IPv4",
               "endpoints": [{"addresses": ["10.244.0.5"], "conditions": {"ready": false, "serving": true, "terminating": false}, "nodeName": "n1"}],
               "ports": [{"name": "", "protocol": "TCP", "port": 8080}]})
    );
    let node = core::Node {
        metadata: Some(meta::ObjectMeta { name: s("n1"), ..Default::default() }),
        spec: Some(core::NodeSpec { pod_cidr: s("10.244.0.0/24"), pod_cid_rs: vec!["10.244.0.0/24".into()], ..Default::default() }),
        status: None,
    };
    assert_eq!(
        decode(&envelope("v1", "Node", node.encode_to_vec())).expect("node"),
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}, "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]}})
    );
}
