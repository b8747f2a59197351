//! Strict decoding of request bodies: unknown fields and values of the wrong
//! type, found by a round trip through the typed k8s-openapi structs, with
//! kube-apiserver's messages (`strict decoding error: unknown field "spec.foo"`,
//! `json: cannot unmarshal string into Go struct field ServicePort.spec.ports.port of type int32`).

mod go_type_error;

use crate::resources::ResourceDef;
use crate::status::go_quote;
use k8s_openapi::api;
use serde_json::Value;

/// What strict decoding found in a body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldReport {
    /// Unknown fields, as paths like `spec.foo` or `spec.ports[0].bar`, in body order.
    pub unknown: Vec<String>,
    /// A value of the wrong type, as Go's decoder words it; such a body is
    /// rejected whatever the field validation mode.
    pub type_error: Option<String>,
}

/// Decodes a body (JSON text) into its typed form and serializes it back.
type RoundTrip = fn(&str) -> Result<Value, serde_json::Error>;

fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(text: &str) -> Result<Value, serde_json::Error> {
    let typed: T = serde_json::from_str(text)?;
    serde_json::to_value(&typed)
}

/// The typed round trip of a resource, if Portico knows its schema.
fn round_trip_of(rd: &ResourceDef) -> Option<RoundTrip> {
    Some(match (rd.group, rd.kind) {
        ("", "ConfigMap") => round_trip::<api::core::v1::ConfigMap>,
        ("", "Endpoints") => round_trip::<api::core::v1::Endpoints>,
        ("", "Event") => round_trip::<api::core::v1::Event>,
        ("", "Namespace") => round_trip::<api::core::v1::Namespace>,
        ("", "Node") => round_trip::<api::core::v1::Node>,
        ("", "Pod") => round_trip::<api::core::v1::Pod>,
        ("", "Secret") => round_trip::<api::core::v1::Secret>,
        ("", "Service") => round_trip::<api::core::v1::Service>,
        ("apps", "Deployment") => round_trip::<api::apps::v1::Deployment>,
        ("apps", "ReplicaSet") => round_trip::<api::apps::v1::ReplicaSet>,
        ("coordination.k8s.io", "Lease") => round_trip::<api::coordination::v1::Lease>,
        ("discovery.k8s.io", "EndpointSlice") => round_trip::<api::discovery::v1::EndpointSlice>,
        ("networking.k8s.io", "Ingress") => round_trip::<api::networking::v1::Ingress>,
        ("networking.k8s.io", "IngressClass") => round_trip::<api::networking::v1::IngressClass>,
        _ => return None,
    })
}

/// Appends `key` to a dotted path.
fn child(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

/// Keys present (and not null) in `input` that the typed round trip dropped.
fn walk(input: &Value, typed: &Value, path: &str, out: &mut Vec<String>) {
    match (input, typed) {
        (Value::Object(i), Value::Object(t)) => {
            for (k, v) in i {
                let p = child(path, k);
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

/// Checks a body against the kind's schema. `apiVersion` and `kind` are the
/// caller's to check; resources without a known schema pass.
pub fn check_fields(rd: &ResourceDef, obj: &Value) -> FieldReport {
    let Some(decode) = round_trip_of(rd) else { return FieldReport::default() };
    let mut body = obj.clone();
    if let Some(m) = body.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
    }
    // Decoded from text printed one value per line, so that an error's line locates the field.
    let (text, _) = go_type_error::print_lines(&body);
    match decode(&text) {
        Err(e) => FieldReport { unknown: Vec::new(), type_error: Some(go_type_error::describe(&body, &e, decode)) },
        Ok(typed) => {
            let mut unknown = Vec::new();
            walk(&body, &typed, "", &mut unknown);
            FieldReport { unknown, type_error: None }
        }
    }
}

/// `<Kind> in version "<v>" cannot be handled as a <Kind>: <why>` when the
/// report holds a type error or unknown fields (the strict-mode message).
pub fn strict_error_message(kind: &str, version: &str, report: &FieldReport) -> Option<String> {
    let why = match (&report.type_error, report.unknown.is_empty()) {
        (Some(t), _) => t.clone(),
        (None, false) => {
            let fields: Vec<String> = report.unknown.iter().map(|f| format!("unknown field {}", go_quote(f))).collect();
            format!("strict decoding error: {}", fields.join(", "))
        }
        (None, true) => return None,
    };
    Some(format!("{kind} in version {} cannot be handled as a {kind}: {why}", go_quote(version)))
}

#[cfg(test)]
mod tests;
