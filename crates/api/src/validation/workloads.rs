//! Pods and the workloads that template them (Deployment, ReplicaSet).

use super::PORT_RANGE;
use super::meta::validate_labels;
use crate::selectors::LabelSelector;
use crate::selectors::qualified_name::is_dns1123_label;
use crate::status::{BadValue, FieldError};
use serde_json::Value;

const RESTART_POLICIES: &[&str] = &["Always", "Never", "OnFailure"];
const DNS_POLICIES: &[&str] = &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];

fn validate_containers(list: Option<&Value>, path: &str, required: bool, names: &mut Vec<String>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let containers = list.and_then(Value::as_array).cloned().unwrap_or_default();
    if containers.is_empty() && required {
        errs.push(FieldError::required(path, ""));
    }
    for (i, c) in containers.iter().enumerate() {
        let cpath = format!("{path}[{i}]");
        let name = c.get("name").and_then(Value::as_str).unwrap_or("");
        if name.is_empty() {
            errs.push(FieldError::required(format!("{cpath}.name"), ""));
        } else {
            for msg in is_dns1123_label(name) {
                errs.push(FieldError::invalid(format!("{cpath}.name"), name, msg));
            }
            if names.iter().any(|n| n == name) {
                errs.push(FieldError::duplicate(format!("{cpath}.name"), name));
            }
            names.push(name.to_owned());
        }
        if c.get("image").and_then(Value::as_str).unwrap_or("").trim().is_empty() {
            errs.push(FieldError::required(format!("{cpath}.image"), ""));
        }
        for (j, p) in c.get("ports").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let ppath = format!("{cpath}.ports[{j}]");
            let cp = p.get("containerPort").and_then(Value::as_i64).unwrap_or(0);
            if !(1..=65535).contains(&cp) {
                errs.push(FieldError::invalid(format!("{ppath}.containerPort"), cp, PORT_RANGE));
            }
            match p.get("protocol").and_then(Value::as_str).unwrap_or("") {
                "" => errs.push(FieldError::required(format!("{ppath}.protocol"), "")),
                pr if !PROTOCOLS.contains(&pr) => errs.push(FieldError::not_supported(format!("{ppath}.protocol"), pr, PROTOCOLS)),
                _ => {}
            }
        }
    }
    errs
}

/// `ValidatePodSpec` essentials at `path`.
fn validate_pod_spec(spec: &Value, path: &str, restart: &[&str]) -> Vec<FieldError> {
    let mut names = Vec::new();
    let mut errs = validate_containers(spec.get("containers"), &format!("{path}.containers"), true, &mut names);
    errs.extend(validate_containers(spec.get("initContainers"), &format!("{path}.initContainers"), false, &mut names));
    match spec.get("restartPolicy").and_then(Value::as_str).unwrap_or("") {
        "" => errs.push(FieldError::required(format!("{path}.restartPolicy"), "")),
        rp if !restart.contains(&rp) => errs.push(FieldError::not_supported(format!("{path}.restartPolicy"), rp, restart)),
        _ => {}
    }
    match spec.get("dnsPolicy").and_then(Value::as_str).unwrap_or("") {
        "" => errs.push(FieldError::required(format!("{path}.dnsPolicy"), "")),
        dp if !DNS_POLICIES.contains(&dp) => errs.push(FieldError::not_supported(format!("{path}.dnsPolicy"), dp, DNS_POLICIES)),
        _ => {}
    }
    errs
}

/// A Pod.
pub fn validate_pod(pod: &Value) -> Vec<FieldError> {
    validate_pod_spec(pod.get("spec").unwrap_or(&Value::Null), "spec", RESTART_POLICIES)
}

/// A Deployment or ReplicaSet (`what` names it in the empty-selector message).
pub fn validate_workload(obj: &Value, what: &str, deployment: bool) -> Vec<FieldError> {
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
pub fn validate_selector_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let (n, o) = (new.pointer("/spec/selector"), old.pointer("/spec/selector"));
    if n != o {
        return vec![FieldError::invalid("spec.selector", BadValue::Raw(selector_dump(n.unwrap_or(&Value::Null))), "field is immutable")];
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
