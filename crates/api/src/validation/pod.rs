//! `ValidatePodSpec` essentials: containers, ports, restart and DNS policies.

use super::fields::PORT_RANGE;
use crate::selectors::qualified_name::is_dns1123_label;
use crate::status::FieldError;
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
pub(super) fn validate_pod_spec(spec: &Value, path: &str, restart: &[&str]) -> Vec<FieldError> {
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

/// `ValidatePodCreate`.
pub fn validate_pod(pod: &Value) -> Vec<FieldError> {
    let mut errs = super::validate_meta(crate::resources::find("", "v1", "pods").expect("pods are served"), pod);
    errs.extend(validate_pod_spec(pod.get("spec").unwrap_or(&Value::Null), "spec", RESTART_POLICIES));
    errs
}

/// `ValidatePodUpdate`.
pub fn validate_pod_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = super::validate_meta_update(new, old);
    errs.extend(validate_pod_spec(new.get("spec").unwrap_or(&Value::Null), "spec", RESTART_POLICIES));
    errs
}

