//! `ValidateObjectMeta`: names, namespace, labels, annotations.

use crate::resources::ResourceDef;
use crate::selectors::qualified_name::{is_dns1035_label, is_dns1123_label, is_dns1123_subdomain, is_qualified_name, is_valid_label_value};
use crate::status::{BadValue, FieldError};
use serde_json::Value;

/// Upstream's limit on the total size of annotations.
const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

fn meta_str<'a>(obj: &'a Value, f: &str) -> &'a str {
    obj.pointer(&format!("/metadata/{f}")).and_then(Value::as_str).unwrap_or("")
}

/// The name rule of a resource (`ValidateServiceName`, `ValidateNamespaceName`, ...).
fn name_rule(rd: &ResourceDef) -> fn(&str) -> Vec<String> {
    match (rd.group, rd.plural) {
        ("", "services") => is_dns1035_label,
        ("", "namespaces") => is_dns1123_label,
        _ => is_dns1123_subdomain,
    }
}

/// Errors in `metadata`.
pub fn validate_object_meta(rd: &ResourceDef, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let rule = name_rule(rd);
    let name = meta_str(obj, "name");
    let generate = meta_str(obj, "generateName");
    if !generate.is_empty() {
        // A prefix may end in '-': check it as if a suffix followed.
        let masked = match generate.strip_suffix('-') {
            Some(p) => format!("{p}a"),
            None => generate.to_owned(),
        };
        for msg in rule(&masked) {
            errs.push(FieldError::invalid("metadata.generateName", generate, msg));
        }
    }
    if name.is_empty() {
        if generate.is_empty() {
            errs.push(FieldError::required("metadata.name", "name or generateName is required"));
        }
    } else {
        for msg in rule(name) {
            errs.push(FieldError::invalid("metadata.name", name, msg));
        }
    }
    let ns = meta_str(obj, "namespace");
    if rd.namespaced {
        if ns.is_empty() {
            errs.push(FieldError::required("metadata.namespace", ""));
        } else {
            for msg in is_dns1123_label(ns) {
                errs.push(FieldError::invalid("metadata.namespace", ns, msg));
            }
        }
    } else if !ns.is_empty() {
        errs.push(FieldError::forbidden("metadata.namespace", "not allowed on this type"));
    }
    errs.extend(validate_labels(obj.pointer("/metadata/labels"), "metadata.labels"));
    if let Some(ann) = obj.pointer("/metadata/annotations").and_then(Value::as_object) {
        let mut total = 0;
        for (k, v) in ann {
            for msg in is_qualified_name(&k.to_lowercase()) {
                errs.push(FieldError::invalid("metadata.annotations", k.as_str(), msg));
            }
            total += k.len() + v.as_str().map_or(0, str::len);
        }
        if total > TOTAL_ANNOTATION_SIZE_LIMIT {
            errs.push(FieldError::too_long("metadata.annotations", TOTAL_ANNOTATION_SIZE_LIMIT));
        }
    }
    errs
}

/// `ValidateLabels` for a label map at `path`.
pub fn validate_labels(labels: Option<&Value>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (k, v) in labels.and_then(Value::as_object).into_iter().flatten() {
        for msg in is_qualified_name(k) {
            errs.push(FieldError::invalid(path, k.as_str(), msg));
        }
        let value = v.as_str().unwrap_or("");
        for msg in is_valid_label_value(value) {
            errs.push(FieldError::invalid(path, value, msg));
        }
    }
    errs
}

/// `ValidateObjectMetaUpdate`: what may not change.
pub fn validate_object_meta_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for f in ["name", "namespace"] {
        if meta_str(new, f) != meta_str(old, f) {
            errs.push(FieldError::invalid(format!("metadata.{f}"), BadValue::Str(meta_str(new, f).to_owned()), "field is immutable"));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc() -> &'static ResourceDef {
        crate::resources::find("", "v1", "services").expect("services")
    }

    #[test]
    fn service_names_are_dns1035_labels() {
        let errs = validate_object_meta(svc(), &json!({"metadata": {"name": "1abc", "namespace": "default"}}));
        assert_eq!(
            errs.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["metadata.name: Invalid value: \"1abc\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"]
        );
    }

    #[test]
    fn name_or_generate_name_is_required() {
        let errs = validate_object_meta(svc(), &json!({"metadata": {"namespace": "default"}}));
        assert_eq!(errs[0].to_string(), "metadata.name: Required value: name or generateName is required");
        assert!(validate_object_meta(svc(), &json!({"metadata": {"generateName": "web-", "namespace": "default"}})).is_empty());
    }

    #[test]
    fn bad_label_values() {
        let errs = validate_labels(Some(&json!({"app": "-x"})), "metadata.labels");
        assert!(errs[0].to_string().starts_with("metadata.labels: Invalid value: \"-x\": a valid label must be an empty string"));
    }
}
