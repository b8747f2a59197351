//! Deployments and ReplicaSets (`pkg/apis/apps/validation`).

use super::fields::{self, IMMUTABLE};
use super::pod::validate_pod_spec;
use crate::selectors::LabelSelector;
use crate::status::{BadValue, FieldError};
use serde_json::Value;

fn validate_labels(labels: Option<&Value>, path: &str) -> Vec<FieldError> {
    let map = labels.and_then(|l| serde_json::from_value(l.clone()).ok());
    fields::labels(map.as_ref(), path)
}

/// A Deployment or ReplicaSet (`what` names it in the empty-selector message).
fn validate_workload(obj: &Value, what: &str, deployment: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let replicas = obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0);
    if replicas < 0 {
        errs.push(FieldError::invalid("spec.replicas", replicas, "must be greater than or equal to 0"));
    }
    let template_labels = obj.pointer("/spec/template/metadata/labels");
    match obj.pointer("/spec/selector") {
        None | Some(Value::Null) => errs.push(FieldError::required("spec.selector", "")),
        Some(sel) => {
            let empty = sel.get("matchLabels").and_then(Value::as_object).is_none_or(|m| m.is_empty())
                && sel.get("matchExpressions").and_then(Value::as_array).is_none_or(Vec::is_empty);
            if empty {
                errs.push(FieldError::invalid("spec.selector", BadValue::Raw(selector_dump(sel)), format!("empty selector is invalid for {what}")));
            } else {
                errs.extend(validate_labels(sel.get("matchLabels"), "spec.selector.matchLabels"));
                match LabelSelector::from_label_selector_json(sel) {
                    Ok(s) => {
                        let labels = template_labels.and_then(Value::as_object).cloned().unwrap_or_default();
                        if !s.matches(&labels) {
                            errs.push(FieldError::invalid(
                                "spec.template.metadata.labels",
                                BadValue::Raw(map_dump(template_labels)),
                                "`selector` does not match template `labels`",
                            ));
                        }
                    }
                    Err(e) => errs.push(FieldError::invalid("spec.selector", BadValue::Raw(selector_dump(sel)), e.to_string())),
                }
            }
        }
    }
    errs.extend(validate_labels(template_labels, "spec.template.metadata.labels"));
    if let Some(spec) = obj.pointer("/spec/template/spec") {
        errs.extend(validate_pod_spec(spec, "spec.template.spec", &["Always"]));
    }
    if deployment {
        match obj.pointer("/spec/strategy/type").and_then(Value::as_str) {
            Some("Recreate") if obj.pointer("/spec/strategy/rollingUpdate").is_some_and(|v| !v.is_null()) => {
                errs.push(FieldError::forbidden("spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'"));
            }
            Some("Recreate" | "RollingUpdate") | None => {}
            Some(other) => errs.push(FieldError::not_supported("spec.strategy.type", other, &["Recreate", "RollingUpdate"])),
        }
    }
    errs
}

/// Selectors of workloads may not change.
fn validate_selector_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let (n, o) = (new.pointer("/spec/selector"), old.pointer("/spec/selector"));
    if n != o {
        return vec![FieldError::invalid("spec.selector", BadValue::Raw(selector_dump(n.unwrap_or(&Value::Null))), IMMUTABLE)];
    }
    Vec::new()
}

fn map_dump(m: Option<&Value>) -> String {
    match m.and_then(Value::as_object) {
        None => "map[string]string(nil)".into(),
        Some(m) => {
            let mut pairs: Vec<String> = m.iter().map(|(k, v)| format!("{:?}:{:?}", k, v.as_str().unwrap_or(""))).collect();
            pairs.sort();
            format!("map[string]string{{{}}}", pairs.join(", "))
        }
    }
}

/// Go's `%#v` of a `v1.LabelSelector`, approximately.
fn selector_dump(sel: &Value) -> String {
    let exprs = if sel.get("matchExpressions").and_then(Value::as_array).is_some_and(|a| !a.is_empty()) {
        "[]v1.LabelSelectorRequirement{...}"
    } else {
        "[]v1.LabelSelectorRequirement(nil)"
    };
    format!("v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{exprs}}}", map_dump(sel.get("matchLabels")))
}

fn rd(plural: &str) -> &'static crate::resources::ResourceDef {
    crate::resources::find("apps", "v1", plural).expect("apps resources are served")
}

/// `ValidateDeployment`.
pub fn validate_deployment(obj: &Value) -> Vec<FieldError> {
    let mut errs = super::validate_meta(rd("deployments"), obj);
    errs.extend(validate_workload(obj, "deployment", true));
    errs
}

/// `ValidateReplicaSet`.
pub fn validate_replica_set(obj: &Value) -> Vec<FieldError> {
    let mut errs = super::validate_meta(rd("replicasets"), obj);
    errs.extend(validate_workload(obj, "replicaset", false));
    errs
}

/// `ValidateDeploymentUpdate`.
pub fn validate_deployment_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = super::validate_meta_update(new, old);
    errs.extend(validate_selector_update(new, old));
    errs.extend(validate_workload(new, "deployment", true));
    errs
}

/// `ValidateReplicaSetUpdate`.
pub fn validate_replica_set_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = super::validate_meta_update(new, old);
    errs.extend(validate_selector_update(new, old));
    errs.extend(validate_workload(new, "replicaset", false));
    errs
}
