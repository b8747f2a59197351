//! Bad input gets upstream's error text, and loses nothing.

use crate::harness::{Cluster, stderr};

fn svc(name: &str, spec: &str) -> String {
    format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n{spec}")
}

#[test]
fn service_validation_and_allocation_errors() {
    let c = Cluster::start();
    let err = stderr(&c.apply(&svc("x", "  type: NodePort\n  ports:\n  - port: 80\n    nodePort: 80\n"), &[]));
    assert_eq!(
        err.trim(),
        "The Service \"x\" is invalid: spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767"
    );
    assert!(c.apply(&svc("a", "  type: NodePort\n  ports:\n  - port: 80\n    nodePort: 30080\n"), &[]).status.success());
    let err = stderr(&c.apply(&svc("b", "  type: NodePort\n  ports:\n  - port: 80\n    nodePort: 30080\n"), &[]));
    assert_eq!(err.trim(), "The Service \"b\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated");
    let err = stderr(&c.apply(&svc("c", "  clusterIP: 1.1.1.1\n  ports:\n  - port: 80\n"), &[]));
    assert_eq!(
        err.trim(),
        "The Service \"c\" is invalid: spec.clusterIPs: Invalid value: []string{\"1.1.1.1\"}: failed to allocate IP 1.1.1.1: the provided IP (1.1.1.1) is not in the valid range. The range of valid IPs is 10.96.0.0/12"
    );
    let err = stderr(&c.apply(&svc("d", "  ports:\n  - port: 80\n  - port: 81\n"), &[]));
    assert_eq!(err.trim(), "The Service \"d\" is invalid: \n* spec.ports[0].name: Required value\n* spec.ports[1].name: Required value");
    // The manual clusterIP of the seeds works, and a second claim of it fails.
    assert!(c.apply(&svc("manual", "  clusterIP: 10.102.1.87\n  ports:\n  - port: 80\n"), &[]).status.success());
    let err = stderr(&c.apply(&svc("manual2", "  clusterIP: 10.102.1.87\n  ports:\n  - port: 80\n"), &[]));
    assert!(err.contains("failed to allocate IP 10.102.1.87: provided IP is already allocated"), "{err}");
    // Nothing half-created.
    assert!(c.fails(&["get", "svc", "b"]).contains("NotFound"));
}

#[test]
fn unknown_fields_and_malformed_documents() {
    let c = Cluster::start();
    let err = stderr(&c.apply(&svc("u", "  foo: bar\n  ports:\n  - port: 80\n"), &[]));
    assert!(
        err.contains("Service in version \"v1\" cannot be handled as a Service: strict decoding error: unknown field \"spec.foo\""),
        "{err}"
    );
    // fieldValidation=Ignore (--validate=false) accepts it.
    assert!(c.apply(&svc("u", "  foo: bar\n  ports:\n  - port: 80\n"), &["--validate=false"]).status.success());
    let err = stderr(&c.apply("apiVersion: v1\nkind: Service\nmetadata: [\n", &[]));
    assert!(err.contains("error converting YAML to JSON") || err.contains("yaml"), "{err}");
    // Malformed YAML reaching the server (server-side apply bodies are YAML) is a 400 too.
    let bad = c.write_file("metadata: [name: x\n");
    let (code, body) = c.curl("PATCH", "/api/v1/namespaces/default/configmaps/x?fieldManager=t", Some(&c.token()), Some("application/apply-patch+yaml"), Some(&bad));
    assert_eq!(code, 400, "{body}");
    let path = c.write_file("{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\", \"metadata\": {\"name\": ");
    let (code, body) = c.curl("POST", "/api/v1/namespaces/default/configmaps", Some(&c.token()), Some("application/json"), Some(&path));
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("\"reason\":\"BadRequest\""), "{body}");
}

#[test]
fn transport_errors_are_status_objects() {
    let c = Cluster::start();
    let big = c.write_file(&format!("{{\"metadata\":{{\"name\":\"big\"}},\"data\":{{\"k\":\"{}\"}}}}", "x".repeat(3 * 1024 * 1024 + 10)));
    let (code, body) = c.curl("POST", "/api/v1/namespaces/default/configmaps", Some(&c.token()), Some("application/json"), Some(&big));
    assert_eq!(code, 413, "{body}");
    assert!(body.contains("\"reason\":\"RequestEntityTooLarge\""), "{body}");
    let small = c.write_file("{\"metadata\":{\"name\":\"x\"}}");
    let (code, body) = c.curl("POST", "/api/v1/namespaces/default/configmaps", Some(&c.token()), Some("text/plain"), Some(&small));
    assert_eq!(code, 415, "{body}");
    assert!(body.contains("\"reason\":\"UnsupportedMediaType\""), "{body}");
    for token in [None, Some("not-the-token")] {
        let (code, body) = c.curl("GET", "/api/v1/namespaces/default/services", token, None, None);
        assert_eq!(code, 401, "{body}");
        assert!(body.contains("\"kind\":\"Status\"") && body.contains("\"reason\":\"Unauthorized\""), "{body}");
    }
}
