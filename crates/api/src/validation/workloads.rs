//! Deployments and ReplicaSets (`pkg/apis/apps/validation`): selectors, the
//! template they must match, replicas, the rollout strategy, and the
//! selector immutability the apps/v1 strategies add on update.

use super::fields::{self, IMMUTABLE, go_map, nonnegative};
use super::meta::{NameRule, validate_object_meta, validate_object_meta_update};
use super::pod::validate_pod_template_spec;
use crate::selectors::LabelSelector;
use crate::selectors::qualified_name::{is_valid_label_value, regex_error};
use crate::status::{BadValue, FieldError, go_quote};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as MetaSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Map, Value};

/// Go's `%#v` of a `v1.LabelSelector`, as immutable-selector errors print it.
fn selector_dump(sel: Option<&MetaSelector>) -> BadValue {
    let Some(sel) = sel else { return BadValue::Raw("(*v1.LabelSelector)(nil)".into()) };
    let labels = match go_map(sel.match_labels.as_ref()) {
        BadValue::Raw(s) => s,
        _ => String::new(),
    };
    let exprs = match &sel.match_expressions {
        None => "[]v1.LabelSelectorRequirement(nil)".to_owned(),
        Some(es) => {
            let items: Vec<String> = es
                .iter()
                .map(|e| {
                    let values = match &e.values {
                        None => "[]string(nil)".to_owned(),
                        Some(v) => format!("[]string{{{}}}", v.iter().map(|s| go_quote(s)).collect::<Vec<_>>().join(", ")),
                    };
                    format!("v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{values}}}", go_quote(&e.key), go_quote(&e.operator))
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
        }
    };
    BadValue::Raw(format!("v1.LabelSelector{{MatchLabels:{labels}, MatchExpressions:{exprs}}}"))
}

/// Go's `%#v` of an `intstr.IntOrString`.
fn int_or_string_dump(v: &IntOrString) -> BadValue {
    BadValue::Raw(match v {
        IntOrString::Int(n) => format!("intstr.IntOrString{{Type:0, IntVal:{n}, StrVal:\"\"}}"),
        IntOrString::String(s) => format!("intstr.IntOrString{{Type:1, IntVal:0, StrVal:{}}}", go_quote(s)),
    })
}

/// metav1 `ValidateLabelSelector` (strict label values).
fn validate_label_selector(sel: &MetaSelector, path: &str) -> Vec<FieldError> {
    let mut errs = fields::labels(sel.match_labels.as_ref(), &format!("{path}.matchLabels"));
    for (i, e) in sel.match_expressions.iter().flatten().enumerate() {
        let ep = format!("{path}.matchExpressions[{i}]");
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => {
                errs.push(FieldError::required(format!("{ep}.values"), "must be specified when `operator` is 'In' or 'NotIn'"));
            }
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                errs.push(FieldError::forbidden(format!("{ep}.values"), "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"));
            }
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errs.push(FieldError::invalid(format!("{ep}.operator"), other, "not a valid selector operator")),
        }
        errs.extend(fields::qualified_name(&e.key, &format!("{ep}.key")));
        for (j, v) in values.iter().enumerate() {
            errs.extend(fields::check(&format!("{ep}.values[{j}]"), v, is_valid_label_value(v)));
        }
    }
    errs
}

/// `LabelSelectorAsSelector`; `None` when the selector cannot be built.
fn as_selector(sel: Option<&MetaSelector>) -> Option<LabelSelector> {
    let json = serde_json::to_value(sel).ok()?;
    LabelSelector::from_label_selector_json(&json).ok()
}

/// The selector checks shared by Deployments and ReplicaSets, then the template.
fn validate_selector_and_template(selector: Option<&MetaSelector>, template: &PodTemplateSpec, replicas: i32) -> Vec<FieldError> {
    let mut errs = Vec::new();
    match selector {
        None => errs.push(FieldError::required("spec.selector", "")),
        Some(sel) => {
            errs.extend(validate_label_selector(sel, "spec.selector"));
            let n = sel.match_labels.as_ref().map_or(0, |m| m.len()) + sel.match_expressions.as_ref().map_or(0, Vec::len);
            if n == 0 {
                // Upstream says "deployment" for ReplicaSets too.
                errs.push(FieldError::invalid("spec.selector", selector_dump(Some(sel)), "empty selector is invalid for deployment"));
            }
        }
    }
    let Some(parsed) = as_selector(selector) else {
        errs.push(FieldError::invalid("spec.selector", selector_dump(selector), "invalid label selector"));
        return errs;
    };
    // ValidatePodTemplateSpecForReplicaSet
    let labels = template.metadata.as_ref().and_then(|m| m.labels.as_ref());
    if !parsed.is_empty() {
        let map: Map<String, Value> = labels.into_iter().flatten().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        if !parsed.matches(&map) {
            errs.push(FieldError::invalid("spec.template.metadata.labels", go_map(labels), "`selector` does not match template `labels`"));
        }
    }
    errs.extend(validate_pod_template_spec(template, "spec.template"));
    // (With replicas > 1 upstream also rejects read-write persistent disks; Portico has none.)
    let _ = replicas;
    let spec = template.spec.clone().unwrap_or_default();
    let restart = spec.restart_policy.as_deref().unwrap_or("");
    if restart != "Always" {
        errs.push(FieldError::not_supported("spec.template.spec.restartPolicy", restart, &["Always"]));
    }
    if spec.active_deadline_seconds.is_some() {
        errs.push(FieldError::forbidden("spec.template.spec.activeDeadlineSeconds", "activeDeadlineSeconds in ReplicaSet is not Supported"));
    }
    errs
}

/// A percentage's value, if `v` is one (`getPercentValue`).
fn percent(v: &IntOrString) -> Option<i64> {
    match v {
        IntOrString::String(s) => s.strip_suffix('%').filter(|d| !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit())).and_then(|d| d.parse().ok()),
        IntOrString::Int(_) => None,
    }
}

/// `ValidatePositiveIntOrPercent`.
fn positive_int_or_percent(v: &IntOrString, path: &str) -> Vec<FieldError> {
    match v {
        IntOrString::String(_) if percent(v).is_none() => vec![FieldError::invalid(
            path,
            int_or_string_dump(v),
            regex_error("a valid percent string must be a numeric string followed by an ending '%'", "[0-9]+%", &["1%", "93%"]),
        )],
        IntOrString::String(_) => Vec::new(),
        IntOrString::Int(n) => nonnegative(i64::from(*n), path),
    }
}

/// `ValidateDeploymentStrategy`.
fn validate_strategy(strategy: Option<&DeploymentStrategy>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let empty = DeploymentStrategy::default();
    let s = strategy.unwrap_or(&empty);
    match s.type_.as_deref().unwrap_or("") {
        "Recreate" => {
            if s.rolling_update.is_some() {
                errs.push(FieldError::forbidden("spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'"));
            }
        }
        "RollingUpdate" => match &s.rolling_update {
            None => errs.push(FieldError::required("spec.strategy.rollingUpdate", "this should be defaulted and never be nil")),
            Some(ru) => {
                let zero = IntOrString::Int(0);
                let mu = ru.max_unavailable.as_ref().unwrap_or(&zero);
                let ms = ru.max_surge.as_ref().unwrap_or(&zero);
                errs.extend(positive_int_or_percent(mu, "spec.strategy.rollingUpdate.maxUnavailable"));
                errs.extend(positive_int_or_percent(ms, "spec.strategy.rollingUpdate.maxSurge"));
                let value = |v: &IntOrString| percent(v).unwrap_or(match v {
                    IntOrString::Int(n) => i64::from(*n),
                    IntOrString::String(_) => 0,
                });
                if value(mu) == 0 && value(ms) == 0 {
                    errs.push(FieldError::invalid("spec.strategy.rollingUpdate.maxUnavailable", int_or_string_dump(mu), "may not be 0 when `maxSurge` is 0"));
                }
                if percent(mu).is_some_and(|p| p > 100) {
                    errs.push(FieldError::invalid("spec.strategy.rollingUpdate.maxUnavailable", int_or_string_dump(mu), "must not be greater than 100%"));
                }
            }
        },
        other => {
            // Upstream prints the whole strategy struct.
            let dump = format!("apps.DeploymentStrategy{{Type:{}, RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}}", go_quote(other));
            errs.push(FieldError::not_supported("spec.strategy", BadValue::Raw(dump), &["Recreate", "RollingUpdate"]));
        }
    }
    errs
}

/// `ValidateDeploymentSpec`.
fn validate_deployment_spec(spec: &DeploymentSpec, selector: Option<&MetaSelector>) -> Vec<FieldError> {
    let replicas = spec.replicas.unwrap_or(0);
    let mut errs = nonnegative(i64::from(replicas), "spec.replicas");
    errs.extend(validate_selector_and_template(selector, &spec.template, replicas));
    errs.extend(validate_strategy(spec.strategy.as_ref()));
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    errs.extend(nonnegative(i64::from(min_ready), "spec.minReadySeconds"));
    if let Some(r) = spec.revision_history_limit {
        errs.extend(nonnegative(i64::from(r), "spec.revisionHistoryLimit"));
    }
    if let Some(p) = spec.progress_deadline_seconds {
        errs.extend(nonnegative(i64::from(p), "spec.progressDeadlineSeconds"));
        if p <= min_ready {
            errs.push(FieldError::invalid("spec.progressDeadlineSeconds", p, "must be greater than minReadySeconds"));
        }
    }
    errs
}

/// `ValidateReplicaSetSpec`.
fn validate_replica_set_spec(spec: &ReplicaSetSpec, selector: Option<&MetaSelector>) -> Vec<FieldError> {
    let replicas = spec.replicas.unwrap_or(0);
    let mut errs = nonnegative(i64::from(replicas), "spec.replicas");
    errs.extend(nonnegative(i64::from(spec.min_ready_seconds.unwrap_or(0)), "spec.minReadySeconds"));
    errs.extend(validate_selector_and_template(selector, &spec.template.clone().unwrap_or_default(), replicas));
    errs
}

/// The selector as upstream sees it: k8s-openapi makes it required and defaults
/// it to `{}`, upstream keeps a missing one nil.
fn selector_of<'a>(obj: &Value, sel: &'a MetaSelector) -> Option<&'a MetaSelector> {
    obj.pointer("/spec/selector").is_some_and(|s| !s.is_null()).then_some(sel)
}

/// `ValidateDeployment`.
pub fn validate_deployment(obj: &Value) -> Vec<FieldError> {
    let d: Deployment = match fields::decode(obj) {
        Ok(d) => d,
        Err(e) => return e,
    };
    let mut errs = validate_object_meta(&d.metadata, true, NameRule::Dns1123Subdomain);
    let spec = d.spec.unwrap_or_default();
    errs.extend(validate_deployment_spec(&spec, selector_of(obj, &spec.selector)));
    errs
}

/// `ValidateReplicaSet`.
pub fn validate_replica_set(obj: &Value) -> Vec<FieldError> {
    let rs: ReplicaSet = match fields::decode(obj) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let mut errs = validate_object_meta(&rs.metadata, true, NameRule::Dns1123Subdomain);
    let spec = rs.spec.unwrap_or_default();
    errs.extend(validate_replica_set_spec(&spec, selector_of(obj, &spec.selector)));
    errs
}

/// The apps/v1 strategies' selector immutability check.
fn selector_immutable(new: Option<&MetaSelector>, old: Option<&MetaSelector>) -> Vec<FieldError> {
    if new != old {
        return vec![FieldError::invalid("spec.selector", selector_dump(new), IMMUTABLE)];
    }
    Vec::new()
}

/// `ValidateDeploymentUpdate` plus the immutable selector.
pub fn validate_deployment_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let (n, o): (Deployment, Deployment) = match (fields::decode(new), fields::decode(old)) {
        (Ok(n), Ok(o)) => (n, o),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let mut errs = validate_object_meta_update(&n.metadata, &o.metadata);
    let (ns, os) = (n.spec.unwrap_or_default(), o.spec.unwrap_or_default());
    errs.extend(validate_deployment_spec(&ns, selector_of(new, &ns.selector)));
    errs.extend(selector_immutable(selector_of(new, &ns.selector), selector_of(old, &os.selector)));
    errs
}

/// `ValidateReplicaSetUpdate` plus the immutable selector.
pub fn validate_replica_set_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let (n, o): (ReplicaSet, ReplicaSet) = match (fields::decode(new), fields::decode(old)) {
        (Ok(n), Ok(o)) => (n, o),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let mut errs = validate_object_meta_update(&n.metadata, &o.metadata);
    let (ns, os) = (n.spec.unwrap_or_default(), o.spec.unwrap_or_default());
    errs.extend(validate_replica_set_spec(&ns, selector_of(new, &ns.selector)));
    errs.extend(selector_immutable(selector_of(new, &ns.selector), selector_of(old, &os.selector)));
    errs
}

#[cfg(test)]
mod tests;
