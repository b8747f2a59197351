use super::*;
use crate::defaults::apply_defaults;
use crate::resources::find;
use serde_json::json;

fn pod(spec: Value) -> Value {
    let mut p = json!({"metadata": {"name": "p", "namespace": "default", "resourceVersion": "3"}, "spec": spec});
    apply_defaults(find("", "v1", "pods").expect("pods"), &mut p);
    p
}

fn texts(errs: Vec<FieldError>) -> Vec<String> {
    errs.iter().map(ToString::to_string).collect()
}

fn errors(spec: Value) -> Vec<String> {
    texts(validate_pod(&pod(spec)))
}

#[test]
fn a_plain_pod_is_valid() {
    assert!(errors(json!({"containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80, "name": "http"}],
        "readinessProbe": {"httpGet": {"port": "http"}}, "livenessProbe": {"tcpSocket": {"port": 80}}}]})).is_empty());
}

#[test]
fn containers_are_required() {
    assert_eq!(errors(json!({"containers": []})), ["spec.containers: Required value"]);
}

#[test]
fn container_names_images_and_duplicates() {
    assert_eq!(
        errors(json!({"containers": [{"name": "Web", "image": "nginx"}, {"name": "Web", "image": ""}], "initContainers": [{"name": "Web", "image": "busybox"}]})),
        [
            "spec.containers[0].name: Invalid value: \"Web\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
            "spec.containers[1].name: Invalid value: \"Web\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
            "spec.containers[1].image: Required value",
            "spec.containers[1].name: Duplicate value: \"Web\"",
            "spec.initContainers[0].name: Duplicate value: \"Web\"",
            "spec.initContainers[0].name: Invalid value: \"Web\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
        ]
    );
    assert_eq!(errors(json!({"containers": [{"image": "nginx"}]})), ["spec.containers[0].name: Required value"]);
}

#[test]
fn container_ports() {
    assert_eq!(
        errors(json!({"containers": [{"name": "c", "image": "i", "ports": [
            {"containerPort": 0, "name": "HTTP"}, {"containerPort": 70000, "protocol": "ICMP", "hostPort": 70000},
            {"containerPort": 80, "name": "web"}, {"containerPort": 81, "name": "web"}]}]})),
        [
            "spec.containers[0].ports[0].name: Invalid value: \"HTTP\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
            "spec.containers[0].ports[0].name: Invalid value: \"HTTP\": must contain at least one letter (a-z)",
            "spec.containers[0].ports[0].containerPort: Required value",
            "spec.containers[0].ports[1].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            "spec.containers[0].ports[1].hostPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            "spec.containers[0].ports[1].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            "spec.containers[0].ports[3].name: Duplicate value: \"web\"",
        ]
    );
}

#[test]
fn probes() {
    assert_eq!(
        errors(json!({"containers": [{"name": "c", "image": "i",
            "livenessProbe": {"successThreshold": 2, "exec": {"command": []}},
            "readinessProbe": {"httpGet": {"port": 0, "path": "/"}, "tcpSocket": {"port": 80}, "terminationGracePeriodSeconds": 5},
            "startupProbe": {"periodSeconds": -1}}]})),
        [
            "spec.containers[0].livenessProbe.exec.command: Required value",
            "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
            "spec.containers[0].readinessProbe.httpGet.port: Invalid value: 0: must be between 1 and 65535, inclusive",
            "spec.containers[0].readinessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type",
            "spec.containers[0].readinessProbe.terminationGracePeriodSeconds: Invalid value: 5: must not be set for readinessProbes",
            "spec.containers[0].startupProbe: Required value: must specify a handler type",
            "spec.containers[0].startupProbe.periodSeconds: Invalid value: -1: must be greater than or equal to 0",
        ]
    );
}

#[test]
fn init_containers_without_restart_policy_may_not_probe() {
    assert_eq!(
        errors(json!({"containers": [{"name": "c", "image": "i"}], "initContainers": [{"name": "init", "image": "i", "readinessProbe": {"tcpSocket": {"port": 1}}, "restartPolicy": "OnFailure"}]})),
        [
            "spec.initContainers[0].readinessProbe: Forbidden: may not be set for init containers without restartPolicy=Always",
            "spec.initContainers[0].restartPolicy: Unsupported value: \"OnFailure\": supported values: \"Always\"",
        ]
    );
    assert_eq!(
        errors(json!({"containers": [{"name": "c", "image": "i", "restartPolicy": "Always"}]})),
        ["spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers"]
    );
}

#[test]
fn env_volumes_and_mounts() {
    assert_eq!(
        errors(json!({"containers": [{"name": "c", "image": "i", "env": [{"name": "A=B"}, {"name": "X", "value": "1", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            "volumeMounts": [{"name": "nope", "mountPath": "/a"}, {"name": "data", "mountPath": "/a"}]}],
            "volumes": [{"name": "data", "emptyDir": {}}, {"name": "data", "emptyDir": {}, "hostPath": {"path": "/x"}}]})),
        [
            "spec.volumes[1].hostPath: Forbidden: may not specify more than 1 volume type",
            "spec.volumes[1].name: Duplicate value: \"data\"",
            "spec.containers[0].env[0].name: Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='",
            "spec.containers[0].env[1].valueFrom: Invalid value: \"\": may not be specified when `value` is not empty",
            "spec.containers[0].volumeMounts[0].name: Not found: \"nope\"",
            "spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"/a\": must be unique",
        ]
    );
}

#[test]
fn pod_level_policies_and_names() {
    assert_eq!(
        errors(json!({"containers": [{"name": "c", "image": "i", "imagePullPolicy": "Sometimes"}], "restartPolicy": "Maybe", "dnsPolicy": "Google",
            "hostname": "Host", "nodeName": "Node_1", "activeDeadlineSeconds": 0})),
        [
            "spec.containers[0].imagePullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\"",
            "spec.restartPolicy: Unsupported value: \"Maybe\": supported values: \"Always\", \"OnFailure\", \"Never\"",
            "spec.dnsPolicy: Unsupported value: \"Google\": supported values: \"ClusterFirstWithHostNet\", \"ClusterFirst\", \"Default\", \"None\"",
            "spec.nodeName: Invalid value: \"Node_1\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive",
            "spec.hostname: Invalid value: \"Host\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
        ]
    );
}

#[test]
fn stored_pods_are_defaulted_before_comparing() {
    let raw = json!({"metadata": {"name": "p", "namespace": "default", "resourceVersion": "3"}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
    assert!(texts(validate_pod_update(&pod(json!({"containers": [{"name": "c", "image": "nginx"}]})), &raw)).is_empty());
}

#[test]
fn pod_spec_is_immutable_except_images() {
    let old = pod(json!({"containers": [{"name": "c", "image": "nginx:1"}]}));
    let mut new = old.clone();
    new["spec"]["containers"][0]["image"] = json!("nginx:2");
    assert!(texts(validate_pod_update(&new, &old)).is_empty());
    new["spec"]["nodeName"] = json!("node-1");
    assert!(texts(validate_pod_update(&new, &old)).is_empty(), "binding by setting nodeName is tolerated");
    let bound = new.clone();
    let mut moved = bound.clone();
    moved["spec"]["nodeName"] = json!("node-2");
    let e = texts(validate_pod_update(&moved, &bound));
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n"), "{e:?}");
    assert!(e[0].contains("spec.nodeName: \"node-1\" -> \"node-2\""), "{e:?}");
    let mut more = old.clone();
    more["spec"]["containers"] = json!([{"name": "c", "image": "i"}, {"name": "d", "image": "i"}]);
    apply_defaults(find("", "v1", "pods").expect("pods"), &mut more);
    assert_eq!(texts(validate_pod_update(&more, &old)), ["spec.containers: Forbidden: pod updates may not add or remove containers"]);
}
