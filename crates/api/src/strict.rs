//! Strict decoding: unknown and mistyped fields in request bodies, found by
//! a round trip through the typed k8s-openapi structs.

use crate::resources::ResourceDef;
use k8s_openapi::api;
use serde_json::Value;

/// What strict decoding found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldReport {
    /// Unknown fields, as paths like `spec.foo` or `spec.ports[0].bar`.
    pub unknown: Vec<String>,
    /// A value of the wrong type (the decoder's message).
    pub type_error: Option<String>,
}

fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(obj: &Value) -> Result<Value, String> {
    let typed: T = serde_json::from_value(obj.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(&typed).map_err(|e| e.to_string())
}

fn typed_round_trip(rd: &ResourceDef, obj: &Value) -> Option<Result<Value, String>> {
    Some(match (rd.group, rd.kind) {
        ("", "ConfigMap") => round_trip::<api::core::v1::ConfigMap>(obj),
        ("", "Endpoints") => round_trip::<api::core::v1::Endpoints>(obj),
        ("", "Event") => round_trip::<api::core::v1::Event>(obj),
        ("", "Namespace") => round_trip::<api::core::v1::Namespace>(obj),
        ("", "Node") => round_trip::<api::core::v1::Node>(obj),
        ("", "Pod") => round_trip::<api::core::v1::Pod>(obj),
        ("", "Secret") => round_trip::<api::core::v1::Secret>(obj),
        ("", "Service") => round_trip::<api::core::v1::Service>(obj),
        ("apps", "Deployment") => round_trip::<api::apps::v1::Deployment>(obj),
        ("apps", "ReplicaSet") => round_trip::<api::apps::v1::ReplicaSet>(obj),
        ("coordination.k8s.io", "Lease") => round_trip::<api::coordination::v1::Lease>(obj),
        ("discovery.k8s.io", "EndpointSlice") => round_trip::<api::discovery::v1::EndpointSlice>(obj),
        ("networking.k8s.io", "Ingress") => round_trip::<api::networking::v1::Ingress>(obj),
        ("networking.k8s.io", "IngressClass") => round_trip::<api::networking::v1::IngressClass>(obj),
        _ => return None,
    })
}

fn walk(input: &Value, typed: &Value, path: &str, out: &mut Vec<String>) {
    match (input, typed) {
        (Value::Object(i), Value::Object(t)) => {
            for (k, v) in i {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                match t.get(k) {
                    Some(tv) => walk(v, tv, &p, out),
                    None if v.is_null() => {}
                    None => out.push(p),
                }
            }
        }
        (Value::Array(i), Value::Array(t)) => {
            for (n, (iv, tv)) in i.iter().zip(t).enumerate() {
                walk(iv, tv, &format!("{path}[{n}]"), out);
            }
        }
        _ => {}
    }
}

/// Checks a body against the kind's schema.
pub fn check_fields(rd: &ResourceDef, obj: &Value) -> FieldReport {
    let Some(result) = typed_round_trip(rd, obj) else { return FieldReport::default() };
    match result {
        Err(e) => FieldReport { unknown: Vec::new(), type_error: Some(e) },
        Ok(typed) => {
            let mut unknown = Vec::new();
            walk(obj, &typed, "", &mut unknown);
            // Server-populated or client-ignored fields that k8s-openapi drops when empty.
            unknown.retain(|p| p != "status" && !p.starts_with("metadata.managedFields"));
            FieldReport { unknown, type_error: None }
        }
    }
}

/// `<Kind> in version "<v>" cannot be handled as a <Kind>: <why>`, for a strict failure.
pub fn strict_error_message(kind: &str, version: &str, report: &FieldReport) -> Option<String> {
    let why = if let Some(t) = &report.type_error {
        t.clone()
    } else if !report.unknown.is_empty() {
        let fields: Vec<String> = report.unknown.iter().map(|f| format!("unknown field {}", crate::status::go_quote(f))).collect();
        format!("strict decoding error: {}", fields.join(", "))
    } else {
        return None;
    };
    Some(format!("{kind} in version {} cannot be handled as a {kind}: {why}", crate::status::go_quote(version)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_found_with_paths() {
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x", "creationTimestamp": null},
                         "spec": {"foo": 1, "ports": [{"port": 80, "bar": true}]}, "status": {"loadBalancer": {}}});
        let r = check_fields(find("", "v1", "services").expect("svc"), &svc);
        assert_eq!(r.unknown, ["spec.foo", "spec.ports[0].bar"]);
        assert_eq!(
            strict_error_message("Service", "v1", &r).as_deref(),
            Some("Service in version \"v1\" cannot be handled as a Service: strict decoding error: unknown field \"spec.foo\", unknown field \"spec.ports[0].bar\"")
        );
    }

    #[test]
    fn clean_bodies_pass_and_type_errors_are_reported() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "labels": {}},
                       "spec": {"replicas": 2, "selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80}]}]}}}});
        assert_eq!(check_fields(find("apps", "v1", "deployments").expect("deploy"), &d), FieldReport::default());
        let bad = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"ports": [{"port": "eighty"}]}});
        assert!(check_fields(find("", "v1", "services").expect("svc"), &bad).type_error.is_some());
    }
}
