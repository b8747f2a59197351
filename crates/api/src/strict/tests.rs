use super::*;
use crate::resources::find;
use serde_json::json;

fn svc() -> &'static ResourceDef {
    find("", "v1", "services").expect("services")
}

fn type_error(rd: &ResourceDef, body: Value) -> Option<String> {
    check_fields(rd, &body).type_error
}

#[test]
fn unknown_fields_are_found_with_paths() {
    let body = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x", "creationTimestamp": null},
                      "spec": {"foo": 1, "ports": [{"port": 80, "bar": true}], "bar": {}}, "status": {"loadBalancer": {}}});
    let r = check_fields(svc(), &body);
    assert_eq!(r.unknown, ["spec.foo", "spec.ports[0].bar", "spec.bar"], "in body order, as the decoder meets them");
    assert_eq!(r.type_error, None);
    assert_eq!(
        strict_error_message("Service", "v1", &r).as_deref(),
        Some("Service in version \"v1\" cannot be handled as a Service: strict decoding error: unknown field \"spec.foo\", unknown field \"spec.ports[0].bar\", unknown field \"spec.bar\"")
    );
}

#[test]
fn clean_bodies_pass() {
    let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "labels": {}, "annotations": {"a": "b"}},
                   "spec": {"replicas": 2, "selector": {"matchLabels": {"a": "b"}}, "strategy": {},
                            "template": {"metadata": {"labels": {"a": "b"}, "creationTimestamp": null},
                                         "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80}], "args": [],
                                                                  "resources": {"limits": {"cpu": 1, "memory": "1Gi"}}}]}}},
                   "status": {}});
    assert_eq!(check_fields(find("apps", "v1", "deployments").expect("deploy"), &d), FieldReport::default());
    assert_eq!(strict_error_message("Deployment", "v1", &FieldReport::default()), None);
    let s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "dmFsdWU="}, "stringData": {"x": "y"}, "type": "Opaque"});
    assert_eq!(check_fields(find("", "v1", "secrets").expect("secrets"), &s), FieldReport::default());
}

#[test]
fn case_matters() {
    let r = check_fields(svc(), &json!({"metadata": {"name": "x"}, "spec": {"Ports": [{"port": 80}]}}));
    assert_eq!(r.unknown, ["spec.Ports"]);
}

#[test]
fn type_errors_read_like_go() {
    assert_eq!(
        type_error(svc(), json!({"metadata": {"name": "x"}, "spec": {"ports": [{"port": "eighty"}]}})).as_deref(),
        Some("json: cannot unmarshal string into Go struct field ServicePort.spec.ports.port of type int32")
    );
    assert_eq!(
        type_error(svc(), json!({"metadata": {"name": "x"}, "spec": {"ports": [{"port": 80}, {"port": 1.5}]}})).as_deref(),
        Some("json: cannot unmarshal number 1.5 into Go struct field ServicePort.spec.ports.port of type int32")
    );
    assert_eq!(
        type_error(svc(), json!({"metadata": {"name": "x"}, "spec": "x"})).as_deref(),
        Some("json: cannot unmarshal string into Go struct field Service.spec of type v1.ServiceSpec")
    );
    assert_eq!(
        type_error(svc(), json!({"metadata": {"name": "x"}, "spec": {"ports": {"port": 80}}})).as_deref(),
        Some("json: cannot unmarshal object into Go struct field ServiceSpec.spec.ports of type []v1.ServicePort")
    );
    assert_eq!(
        type_error(svc(), json!({"metadata": {"name": "x", "labels": {"a": 1}}})).as_deref(),
        Some("json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels of type string")
    );
    assert_eq!(
        type_error(svc(), json!({"metadata": {"name": "x"}, "spec": {"selector": ["a"]}})).as_deref(),
        Some("json: cannot unmarshal array into Go struct field ServiceSpec.spec.selector of type map[string]string")
    );
    assert_eq!(
        type_error(svc(), json!({"metadata": {"name": "x"}, "spec": {"externalIPs": [1]}})).as_deref(),
        Some("json: cannot unmarshal number into Go struct field ServiceSpec.spec.externalIPs of type string")
    );
    assert_eq!(
        type_error(svc(), json!({"metadata": {"name": "x"}, "spec": {"ports": [{"port": 80, "targetPort": true}]}})).as_deref(),
        Some("json: cannot unmarshal bool into Go struct field ServicePort.spec.ports.targetPort of type int32")
    );
    assert_eq!(
        type_error(svc(), json!({"metadata": {"name": "x"}, "spec": {"allocateLoadBalancerNodePorts": "yes"}})).as_deref(),
        Some("json: cannot unmarshal string into Go struct field ServiceSpec.spec.allocateLoadBalancerNodePorts of type bool")
    );
    let r = check_fields(svc(), &json!({"metadata": {"name": "x"}, "spec": {"ports": [{"port": "eighty"}]}}));
    assert_eq!(
        strict_error_message("Service", "v1", &r).as_deref(),
        Some("Service in version \"v1\" cannot be handled as a Service: json: cannot unmarshal string into Go struct field ServicePort.spec.ports.port of type int32")
    );
}

#[test]
fn decoder_errors_of_special_types() {
    let secrets = find("", "v1", "secrets").expect("secrets");
    assert_eq!(type_error(secrets, json!({"metadata": {"name": "s"}, "data": {"a": "!!!"}})).as_deref(), Some("illegal base64 data at input byte 0"));
    assert_eq!(
        type_error(svc(), json!({"metadata": {"name": "x", "creationTimestamp": "yesterday"}})).as_deref(),
        Some("parsing time \"yesterday\" as \"2006-01-02T15:04:05Z07:00\": cannot parse \"yesterday\" as \"2006\"")
    );
    let pods = find("", "v1", "pods").expect("pods");
    assert_eq!(
        type_error(pods, json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": true}}}]}})).as_deref(),
        Some("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    );
}

#[test]
fn kinds_without_a_schema_pass() {
    let mut rd = svc().clone();
    rd.kind = "Unknown";
    assert_eq!(check_fields(&rd, &json!({"anything": 1})), FieldReport::default());
}
