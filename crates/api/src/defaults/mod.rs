//! Upstream defaulting (`SetDefaults_*` in `pkg/apis/*/v1/defaults.go` and the
//! declarative `+default` markers), applied to every written object before
//! validation. Defaults only fill what is absent (`null`, missing, or Go's
//! zero value where upstream tests for it); they never overwrite.

mod core;
mod pod;

use crate::resources::ResourceDef;
use serde_json::{Map, Value, json};

/// The object under `key`, made an empty object first if absent or not an object.
fn obj_mut<'a>(m: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = m.entry(key.to_owned()).or_insert_with(|| json!({}));
    if !slot.is_object() {
        *slot = json!({});
    }
    slot.as_object_mut().expect("made an object above")
}

/// Whether a field holds nothing: absent or `null`.
fn is_unset(m: &Map<String, Value>, key: &str) -> bool {
    m.get(key).is_none_or(Value::is_null)
}

/// Sets `key` when absent, `null` or the empty string (Go's `== ""` test).
fn default_str(m: &mut Map<String, Value>, key: &str, value: &str) {
    if m.get(key).is_none_or(|v| v.is_null() || v == "") {
        m.insert(key.to_owned(), json!(value));
    }
}

/// Sets `key` when absent or `null` (a Go pointer left nil).
fn default_ptr(m: &mut Map<String, Value>, key: &str, value: Value) {
    if is_unset(m, key) {
        m.insert(key.to_owned(), value);
    }
}

/// Sets `key` when absent, `null` or 0 (a Go int tested `== 0`).
fn default_int(m: &mut Map<String, Value>, key: &str, value: i64) {
    if m.get(key).is_none_or(|v| v.is_null() || v == 0) {
        m.insert(key.to_owned(), json!(value));
    }
}

/// Each object of the list under `key`.
fn each_mut<'a>(m: &'a mut Map<String, Value>, key: &str) -> impl Iterator<Item = &'a mut Map<String, Value>> {
    m.get_mut(key).and_then(Value::as_array_mut).into_iter().flatten().filter_map(Value::as_object_mut)
}

/// Applies the kind's defaults in place.
pub fn apply_defaults(rd: &ResourceDef, obj: &mut Value) {
    let Some(root) = obj.as_object_mut() else { return };
    match (rd.group, rd.kind) {
        ("", "Service") => core::service(root),
        ("", "Pod") => pod::pod(root),
        ("apps", "Deployment") => pod::deployment(root),
        ("apps", "ReplicaSet") => pod::replica_set(root),
        ("", "Namespace") => core::namespace(root),
        ("", "Secret") => default_str(root, "type", "Opaque"),
        ("", "Endpoints") => core::endpoints(root),
        ("discovery.k8s.io", "EndpointSlice") => core::endpoint_slice(root),
        _ => {}
    }
}

#[cfg(test)]
mod tests;
