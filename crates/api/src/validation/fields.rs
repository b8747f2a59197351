//! Field-level validators shared by the kinds (`ValidateDNS1123Label`,
//! `ValidateQualifiedName`, `ValidatePortNumOrName`, `ValidateNonnegativeField`, ...):
//! each turns the messages of `selectors::qualified_name` into `FieldError`s at a path.

use crate::selectors::qualified_name::{is_dns1123_label, is_dns1123_subdomain, is_qualified_name, is_valid_label_value, is_valid_port_name};
use crate::status::{BadValue, FieldError};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeMap;

/// `validation.IsValidPortNum`'s message.
pub const PORT_RANGE: &str = "must be between 1 and 65535, inclusive";
/// `IsNegativeErrorMsg`.
pub const NEGATIVE: &str = "must be greater than or equal to 0";
/// `FieldImmutableErrorMsg`.
pub const IMMUTABLE: &str = "field is immutable";

/// Decodes an object into its typed form. Bodies were type-checked by strict
/// decoding before validation, so a failure here is an internal error.
pub fn decode<T: DeserializeOwned>(obj: &Value) -> Result<T, Vec<FieldError>> {
    serde_json::from_value(obj.clone()).map_err(|e| vec![FieldError::internal("<nil>", e.to_string())])
}

/// Applies a message-returning check at `path`, one `Invalid` per message.
pub fn check(path: &str, value: &str, msgs: Vec<String>) -> Vec<FieldError> {
    msgs.into_iter().map(|m| FieldError::invalid(path, value, m)).collect()
}

/// `ValidateDNS1123Label`.
pub fn dns1123_label(value: &str, path: &str) -> Vec<FieldError> {
    check(path, value, is_dns1123_label(value))
}

/// `ValidateDNS1123Subdomain`.
pub fn dns1123_subdomain(value: &str, path: &str) -> Vec<FieldError> {
    check(path, value, is_dns1123_subdomain(value))
}

/// `ValidateQualifiedName`.
pub fn qualified_name(value: &str, path: &str) -> Vec<FieldError> {
    check(path, value, is_qualified_name(value))
}

/// `ValidateLabels`: keys are qualified names, values label values; errors at `path`.
pub fn labels(labels: Option<&BTreeMap<String, String>>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (k, v) in labels.into_iter().flatten() {
        errs.extend(qualified_name(k, path));
        errs.extend(check(path, v, is_valid_label_value(v)));
    }
    errs
}

/// `IsValidPortNum` at `path`.
pub fn port_num(port: i32, path: &str) -> Vec<FieldError> {
    if (1..=65535).contains(&port) { Vec::new() } else { vec![FieldError::invalid(path, port, PORT_RANGE)] }
}

/// `ValidatePortNumOrName`; an absent value is Go's zero `IntOrString` (the int 0).
pub fn port_num_or_name(port: Option<&IntOrString>, path: &str) -> Vec<FieldError> {
    match port {
        None => port_num(0, path),
        Some(IntOrString::Int(n)) => port_num(*n, path),
        Some(IntOrString::String(s)) => check(path, s, is_valid_port_name(s)),
    }
}

/// `ValidateNonnegativeField`.
pub fn nonnegative(value: i64, path: &str) -> Vec<FieldError> {
    if value < 0 { vec![FieldError::invalid(path, value, NEGATIVE)] } else { Vec::new() }
}

/// Go's `%#v` of a `map[string]string` (keys sorted, as Go's fmt prints maps).
pub fn go_map(m: Option<&BTreeMap<String, String>>) -> BadValue {
    match m {
        None => BadValue::Raw("map[string]string(nil)".into()),
        Some(m) => {
            let pairs: Vec<String> =
                m.iter().map(|(k, v)| format!("{}:{}", crate::status::go_quote(k), crate::status::go_quote(v))).collect();
            BadValue::Raw(format!("map[string]string{{{}}}", pairs.join(", ")))
        }
    }
}

/// A `*string` as `field.Invalid` prints it: the string quoted; a nil pointer
/// becomes the string `"null"` (quoted too, as upstream's `ErrorBody` does).
pub fn opt_str(v: Option<&String>) -> BadValue {
    BadValue::Str(v.map_or("null", String::as_str).to_owned())
}

/// Go's `%#v` of a slice of a named string type, e.g. `[]core.IPFamily{"IPv4"}`.
/// A nil slice prints as `[]T(nil)`.
pub fn go_slice(type_name: &str, items: Option<&Vec<String>>) -> BadValue {
    match items {
        None => BadValue::Raw(format!("[]{type_name}(nil)")),
        Some(items) => {
            let quoted: Vec<String> = items.iter().map(|s| crate::status::go_quote(s)).collect();
            BadValue::Raw(format!("[]{type_name}{{{}}}", quoted.join(", ")))
        }
    }
}
