//! `ValidatePodSpec` for what Portico runs (containers, ports, probes, env,
//! volumes and mounts, policies, names) and `ValidatePodUpdate`'s rule that a
//! Pod's spec is immutable except for images and a few scheduling fields.

use super::fields::{dns1123_label, dns1123_subdomain, labels, nonnegative, port_num, port_num_or_name};
use super::meta::{NameRule, validate_object_meta, validate_object_meta_update};
use super::fields;
use crate::selectors::qualified_name::is_valid_port_name;
use crate::status::{BadValue, FieldError};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodTemplateSpec, Probe, Volume};
use serde_json::Value;
use std::collections::HashSet;

const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const HANDLER_MULTIPLE: &str = "may not specify more than 1 handler type";

/// Which container list is being checked; init containers have extra rules.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Regular,
    Init,
}

/// `validateHandler` (probes and lifecycle hooks).
fn validate_handler(exec: Option<bool>, http: Option<&k8s_openapi::api::core::v1::HTTPGetAction>, tcp: Option<&k8s_openapi::api::core::v1::TCPSocketAction>, grpc: Option<i32>, sleep: bool, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut handlers = 0;
    let mut one = |name: &str, errs: &mut Vec<FieldError>| -> bool {
        if handlers > 0 {
            errs.push(FieldError::forbidden(format!("{path}.{name}"), HANDLER_MULTIPLE));
            false
        } else {
            handlers += 1;
            true
        }
    };
    if let Some(has_command) = exec
        && one("exec", &mut errs)
        && !has_command
    {
        errs.push(FieldError::required(format!("{path}.exec.command"), ""));
    }
    if let Some(h) = http
        && one("httpGet", &mut errs)
    {
        let hp = format!("{path}.httpGet");
        if h.path.as_deref().unwrap_or("").is_empty() {
            errs.push(FieldError::required(format!("{hp}.path"), ""));
        }
        errs.extend(port_num_or_name(Some(&h.port), &format!("{hp}.port")));
        let scheme = h.scheme.as_deref().unwrap_or("");
        if !matches!(scheme, "HTTP" | "HTTPS") {
            errs.push(FieldError::not_supported(format!("{hp}.scheme"), scheme, &["HTTP", "HTTPS"]));
        }
        for header in h.http_headers.iter().flatten() {
            if header.name.is_empty() || !header.name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-') {
                let msg = crate::selectors::qualified_name::regex_error("a valid HTTP header must consist of alphanumeric characters or '-'", "[-A-Za-z0-9]+", &["X-Header-Name"]);
                errs.push(FieldError::invalid(format!("{hp}.httpHeaders"), header.name.as_str(), msg));
            }
        }
    }
    if let Some(t) = tcp
        && one("tcpSocket", &mut errs)
    {
        errs.extend(port_num_or_name(Some(&t.port), &format!("{path}.tcpSocket.port")));
    }
    if let Some(port) = grpc
        && one("grpc", &mut errs)
    {
        errs.extend(port_num(port, &format!("{path}.grpc.port")));
    }
    if sleep {
        one("sleep", &mut errs);
    }
    if handlers == 0 {
        errs.push(FieldError::required(path, "must specify a handler type"));
    }
    errs
}

/// `validateProbe` plus the liveness/readiness/startup specifics.
fn validate_probe(p: Option<&Probe>, which: &str, path: &str) -> Vec<FieldError> {
    let Some(p) = p else { return Vec::new() };
    let exec = p.exec.as_ref().map(|e| e.command.as_ref().is_some_and(|c| !c.is_empty()));
    let mut errs = validate_handler(exec, p.http_get.as_ref(), p.tcp_socket.as_ref(), p.grpc.as_ref().map(|g| g.port), false, path);
    for (f, v) in [
        ("initialDelaySeconds", p.initial_delay_seconds),
        ("timeoutSeconds", p.timeout_seconds),
        ("periodSeconds", p.period_seconds),
        ("successThreshold", p.success_threshold),
        ("failureThreshold", p.failure_threshold),
    ] {
        errs.extend(nonnegative(i64::from(v.unwrap_or(0)), &format!("{path}.{f}")));
    }
    if let Some(t) = p.termination_grace_period_seconds
        && t <= 0
    {
        errs.push(FieldError::invalid(format!("{path}.terminationGracePeriodSeconds"), t, "must be greater than 0"));
    }
    match which {
        "readinessProbe" => {
            if let Some(t) = p.termination_grace_period_seconds {
                errs.push(FieldError::invalid(format!("{path}.terminationGracePeriodSeconds"), t, "must not be set for readinessProbes"));
            }
        }
        _ => {
            let st = p.success_threshold.unwrap_or(0);
            if st != 1 {
                errs.push(FieldError::invalid(format!("{path}.successThreshold"), st, "must be 1"));
            }
        }
    }
    errs
}

/// `validateContainerPorts`.
fn validate_ports(c: &Container, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut names = HashSet::new();
    for (i, p) in c.ports.iter().flatten().enumerate() {
        let pp = format!("{path}[{i}]");
        if let Some(name) = p.name.as_deref().filter(|n| !n.is_empty()) {
            let msgs = is_valid_port_name(name);
            if !msgs.is_empty() {
                errs.extend(fields::check(&format!("{pp}.name"), name, msgs));
            } else if !names.insert(name.to_owned()) {
                errs.push(FieldError::duplicate(format!("{pp}.name"), name));
            }
        }
        if p.container_port == 0 {
            errs.push(FieldError::required(format!("{pp}.containerPort"), ""));
        } else {
            errs.extend(port_num(p.container_port, &format!("{pp}.containerPort")));
        }
        if let Some(hp) = p.host_port.filter(|h| *h != 0) {
            errs.extend(port_num(hp, &format!("{pp}.hostPort")));
        }
        match p.protocol.as_deref().unwrap_or("") {
            "" => errs.push(FieldError::required(format!("{pp}.protocol"), "")),
            pr if !PROTOCOLS.contains(&pr) => errs.push(FieldError::not_supported(format!("{pp}.protocol"), pr, PROTOCOLS)),
            _ => {}
        }
    }
    errs
}

/// `ValidateEnv` with relaxed names (the 1.32 default) and the shape of `valueFrom`.
fn validate_env(c: &Container, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, ev) in c.env.iter().flatten().enumerate() {
        let ep = format!("{path}[{i}]");
        if ev.name.is_empty() {
            errs.push(FieldError::required(format!("{ep}.name"), ""));
            errs.push(FieldError::invalid(format!("{ep}.name"), "", "environment variable name must be non-empty"));
        } else if ev.name.chars().any(|ch| !ch.is_ascii() || ch.is_ascii_control() || ch == '=') {
            errs.push(FieldError::invalid(format!("{ep}.name"), ev.name.as_str(), "a valid environment variable name must consist only of printable ASCII characters other than '='"));
        }
        if let Some(vf) = &ev.value_from {
            let n = [vf.field_ref.is_some(), vf.resource_field_ref.is_some(), vf.config_map_key_ref.is_some(), vf.secret_key_ref.is_some()].iter().filter(|b| **b).count();
            let vp = format!("{ep}.valueFrom");
            if ev.value.as_deref().is_some_and(|v| !v.is_empty()) {
                errs.push(FieldError::invalid(vp.as_str(), "", "may not be specified when `value` is not empty"));
            }
            if n == 0 {
                errs.push(FieldError::invalid(vp.as_str(), "", "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"));
            } else if n > 1 {
                errs.push(FieldError::invalid(vp.as_str(), "", "may not have more than one field specified at a time"));
            }
        }
    }
    errs
}

/// `ValidateVolumeMounts`: names must match volumes, paths set and unique.
fn validate_mounts(c: &Container, volumes: &HashSet<String>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut points = HashSet::new();
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        let mp = format!("{path}[{i}]");
        if m.name.is_empty() {
            errs.push(FieldError::required(format!("{mp}.name"), ""));
        } else if !volumes.contains(&m.name) {
            errs.push(FieldError::not_found(format!("{mp}.name"), m.name.as_str()));
        }
        if m.mount_path.is_empty() {
            errs.push(FieldError::required(format!("{mp}.mountPath"), ""));
        }
        if !points.insert(m.mount_path.clone()) {
            errs.push(FieldError::invalid(format!("{mp}.mountPath"), m.mount_path.as_str(), "must be unique"));
        }
    }
    errs
}

/// `validateContainerCommon` plus the per-list rules of `validateContainers` / `validateInitContainers`.
fn validate_container(c: &Container, kind: Kind, volumes: &HashSet<String>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if c.name.is_empty() {
        errs.push(FieldError::required(format!("{path}.name"), ""));
    } else {
        errs.extend(dns1123_label(&c.name, &format!("{path}.name")));
    }
    if c.image.as_deref().unwrap_or("").is_empty() {
        errs.push(FieldError::required(format!("{path}.image"), ""));
    }
    match c.termination_message_policy.as_deref().unwrap_or("") {
        "File" | "FallbackToLogsOnError" => {}
        "" => errs.push(FieldError::required(format!("{path}.terminationMessagePolicy"), "")),
        other => errs.push(FieldError::not_supported(format!("{path}.terminationMessagePolicy"), other, &["File", "FallbackToLogsOnError"])),
    }
    errs.extend(validate_ports(c, &format!("{path}.ports")));
    errs.extend(validate_env(c, &format!("{path}.env")));
    errs.extend(validate_mounts(c, volumes, &format!("{path}.volumeMounts")));
    match c.image_pull_policy.as_deref().unwrap_or("") {
        "Always" | "IfNotPresent" | "Never" => {}
        "" => errs.push(FieldError::required(format!("{path}.imagePullPolicy"), "")),
        other => errs.push(FieldError::not_supported(format!("{path}.imagePullPolicy"), other, &["Always", "IfNotPresent", "Never"])),
    }
    let sidecar = c.restart_policy.as_deref() == Some("Always");
    if kind == Kind::Regular || sidecar {
        if let Some(lc) = &c.lifecycle {
            for (hook, h) in [("postStart", &lc.post_start), ("preStop", &lc.pre_stop)] {
                if let Some(h) = h {
                    let exec = h.exec.as_ref().map(|e| e.command.as_ref().is_some_and(|c| !c.is_empty()));
                    errs.extend(validate_handler(exec, h.http_get.as_ref(), h.tcp_socket.as_ref(), None, h.sleep.is_some(), &format!("{path}.lifecycle.{hook}")));
                }
            }
        }
        errs.extend(validate_probe(c.liveness_probe.as_ref(), "livenessProbe", &format!("{path}.livenessProbe")));
        errs.extend(validate_probe(c.readiness_probe.as_ref(), "readinessProbe", &format!("{path}.readinessProbe")));
        errs.extend(validate_probe(c.startup_probe.as_ref(), "startupProbe", &format!("{path}.startupProbe")));
    } else {
        let why = "may not be set for init containers without restartPolicy=Always";
        for (f, set) in [("lifecycle", c.lifecycle.is_some()), ("livenessProbe", c.liveness_probe.is_some()), ("readinessProbe", c.readiness_probe.is_some()), ("startupProbe", c.startup_probe.is_some())] {
            if set {
                errs.push(FieldError::forbidden(format!("{path}.{f}"), why));
            }
        }
    }
    match (kind, c.restart_policy.as_deref()) {
        (Kind::Regular, Some(_)) => errs.push(FieldError::forbidden(format!("{path}.restartPolicy"), "may not be set for non-init containers")),
        (Kind::Init, Some(rp)) if rp != "Always" => errs.push(FieldError::not_supported(format!("{path}.restartPolicy"), rp, &["Always"])),
        _ => {}
    }
    errs
}

/// `ValidateVolumes`: names and exactly one source each.
fn validate_volumes(volumes: &[Volume], path: &str) -> (HashSet<String>, Vec<FieldError>) {
    let mut errs = Vec::new();
    let mut names = HashSet::new();
    for (i, v) in volumes.iter().enumerate() {
        let vp = format!("{path}[{i}]");
        let sources: Vec<String> = serde_json::to_value(v)
            .ok()
            .and_then(|j| j.as_object().map(|m| m.keys().filter(|k| *k != "name").cloned().collect()))
            .unwrap_or_default();
        match sources.as_slice() {
            [] => errs.push(FieldError::required(vp.as_str(), "must specify a volume type")),
            [_] => {}
            [_, rest @ ..] => {
                for s in rest {
                    errs.push(FieldError::forbidden(format!("{vp}.{s}"), "may not specify more than 1 volume type"));
                }
            }
        }
        if v.name.is_empty() {
            errs.push(FieldError::required(format!("{vp}.name"), ""));
        } else {
            errs.extend(dns1123_label(&v.name, &format!("{vp}.name")));
        }
        if !names.insert(v.name.clone()) {
            errs.push(FieldError::duplicate(format!("{vp}.name"), v.name.as_str()));
        }
    }
    (names, errs)
}

/// `ValidatePodSpec` (the parts Portico honours) at `path`.
pub(super) fn validate_pod_spec(spec: &PodSpec, path: &str) -> Vec<FieldError> {
    let (volumes, mut errs) = validate_volumes(spec.volumes.as_deref().unwrap_or_default(), &format!("{path}.volumes"));
    if spec.containers.is_empty() {
        errs.push(FieldError::required(format!("{path}.containers"), ""));
    }
    let mut names = HashSet::new();
    for (i, c) in spec.containers.iter().enumerate() {
        let cp = format!("{path}.containers[{i}]");
        errs.extend(validate_container(c, Kind::Regular, &volumes, &cp));
        if !names.insert(c.name.clone()) {
            errs.push(FieldError::duplicate(format!("{cp}.name"), c.name.as_str()));
        }
    }
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        let cp = format!("{path}.initContainers[{i}]");
        if !names.insert(c.name.clone()) {
            errs.push(FieldError::duplicate(format!("{cp}.name"), c.name.as_str()));
        }
        errs.extend(validate_container(c, Kind::Init, &volumes, &cp));
    }
    let restart = spec.restart_policy.as_deref().unwrap_or("");
    match restart {
        "Always" | "OnFailure" | "Never" => {}
        "" => errs.push(FieldError::required(format!("{path}.restartPolicy"), "")),
        other => errs.push(FieldError::not_supported(format!("{path}.restartPolicy"), other, &["Always", "OnFailure", "Never"])),
    }
    match spec.dns_policy.as_deref().unwrap_or("") {
        "ClusterFirstWithHostNet" | "ClusterFirst" | "Default" | "None" => {}
        "" => errs.push(FieldError::required(format!("{path}.dnsPolicy"), "")),
        other => errs.push(FieldError::not_supported(format!("{path}.dnsPolicy"), other, &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"])),
    }
    errs.extend(labels(spec.node_selector.as_ref(), &format!("{path}.nodeSelector")));
    if let Some(sa) = spec.service_account_name.as_deref().filter(|s| !s.is_empty()) {
        errs.extend(dns1123_subdomain(sa, &format!("{path}.serviceAccountName")));
    }
    if let Some(node) = spec.node_name.as_deref().filter(|s| !s.is_empty()) {
        errs.extend(dns1123_subdomain(node, &format!("{path}.nodeName")));
    }
    if let Some(ads) = spec.active_deadline_seconds
        && !(1..=i64::from(i32::MAX)).contains(&ads)
    {
        errs.push(FieldError::invalid(format!("{path}.activeDeadlineSeconds"), ads, format!("must be between 1 and {}, inclusive", i32::MAX)));
    }
    if let Some(h) = spec.hostname.as_deref().filter(|s| !s.is_empty()) {
        errs.extend(dns1123_label(h, &format!("{path}.hostname")));
    }
    if let Some(s) = spec.subdomain.as_deref().filter(|s| !s.is_empty()) {
        errs.extend(dns1123_label(s, &format!("{path}.subdomain")));
    }
    if let Some(pp) = spec.preemption_policy.as_deref()
        && !matches!(pp, "PreemptLowerPriority" | "Never")
    {
        errs.push(FieldError::not_supported(format!("{path}.preemptionPolicy"), pp, &["Never", "PreemptLowerPriority"]));
    }
    errs
}

/// `ValidatePodTemplateSpec` at `path`: template labels, annotations and spec.
pub(super) fn validate_pod_template_spec(t: &PodTemplateSpec, path: &str) -> Vec<FieldError> {
    let meta = t.metadata.clone().unwrap_or_default();
    let mut errs = labels(meta.labels.as_ref(), &format!("{path}.labels"));
    errs.extend(super::meta::validate_annotations(meta.annotations.as_ref(), &format!("{path}.annotations")));
    errs.extend(validate_pod_spec(&t.spec.clone().unwrap_or_default(), &format!("{path}.spec")));
    if t.spec.as_ref().is_some_and(|s| s.ephemeral_containers.as_ref().is_some_and(|e| !e.is_empty())) {
        errs.push(FieldError::forbidden(format!("{path}.spec.ephemeralContainers"), "ephemeral containers not allowed in pod template"));
    }
    errs
}

/// `ValidatePodCreate`.
pub fn validate_pod(obj: &Value) -> Vec<FieldError> {
    let pod: Pod = match fields::decode(obj) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let mut errs = validate_object_meta(&pod.metadata, true, NameRule::Dns1123Subdomain);
    errs.extend(validate_pod_spec(&pod.spec.unwrap_or_default(), "spec"));
    errs
}

/// The fields of a pod update upstream tolerates, in its message.
const UPDATABLE: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// The JSON paths under `spec` where two values differ (a stand-in for Go's `cmp.Diff`).
fn diff_paths(old: &Value, new: &Value, path: &str, out: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let keys: std::collections::BTreeSet<&String> = o.keys().chain(n.keys()).collect();
            for k in keys {
                diff_paths(o.get(k).unwrap_or(&Value::Null), n.get(k).unwrap_or(&Value::Null), &format!("{path}.{k}"), out);
            }
        }
        (Value::Array(o), Value::Array(n)) if o.len() == n.len() => {
            for (i, (a, b)) in o.iter().zip(n).enumerate() {
                diff_paths(a, b, &format!("{path}[{i}]"), out);
            }
        }
        (a, b) if a != b => out.push(format!("  {path}: {a} -> {b}")),
        _ => {}
    }
}

/// `ValidatePodUpdate`: metadata, the new spec, and spec immutability. One
/// deviation: `spec.nodeName` may go from unset to set, which is how Portico's
/// scheduler binds (upstream uses the `binding` subresource).
pub fn validate_pod_update(new: &Value, old: &Value) -> Vec<FieldError> {
    // Upstream decodes stored objects with defaulting; do the same for `old` so
    // objects stored before a default existed compare equal.
    let mut old = old.clone();
    if let Some(pods) = crate::resources::find("", "v1", "pods") {
        crate::defaults::apply_defaults(pods, &mut old);
    }
    let (np, op): (Pod, Pod) = match (fields::decode(new), fields::decode(&old)) {
        (Ok(n), Ok(o)) => (n, o),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let mut errs = validate_object_meta_update(&np.metadata, &op.metadata);
    errs.extend(validate_object_meta(&np.metadata, true, NameRule::Dns1123Subdomain));
    let (ns, os) = (np.spec.unwrap_or_default(), op.spec.unwrap_or_default());
    errs.extend(validate_pod_spec(&ns, "spec"));
    for (list, n, o) in [("containers", Some(&ns.containers), Some(&os.containers)), ("initContainers", ns.init_containers.as_ref(), os.init_containers.as_ref())] {
        let (n, o) = (n.map_or(0, Vec::len), o.map_or(0, Vec::len));
        if n != o {
            errs.push(FieldError::forbidden(format!("spec.{list}"), "pod updates may not add or remove containers"));
            return errs;
        }
    }
    if let (Some(o), n) = (os.active_deadline_seconds, ns.active_deadline_seconds) {
        match n {
            None => errs.push(FieldError::invalid("spec.activeDeadlineSeconds", BadValue::Str("null".into()), "must not update from a positive integer to nil value")),
            Some(n) if n > o => errs.push(FieldError::invalid("spec.activeDeadlineSeconds", n, "must be less than or equal to previous value")),
            _ => {}
        }
    }
    // Compare with the tolerated changes taken back out.
    let mut munged = ns.clone();
    for (m, o) in munged.containers.iter_mut().zip(&os.containers) {
        m.image.clone_from(&o.image);
    }
    for (m, o) in munged.init_containers.iter_mut().flatten().zip(os.init_containers.iter().flatten()) {
        m.image.clone_from(&o.image);
    }
    munged.active_deadline_seconds = os.active_deadline_seconds;
    let old_tolerations = os.tolerations.clone().unwrap_or_default();
    if munged.tolerations.as_ref().is_some_and(|t| old_tolerations.iter().all(|o| t.contains(o))) {
        munged.tolerations.clone_from(&os.tolerations);
    }
    if os.termination_grace_period_seconds.is_some_and(|g| g < 0) && ns.termination_grace_period_seconds == Some(1) {
        munged.termination_grace_period_seconds = os.termination_grace_period_seconds;
    }
    if os.node_name.as_deref().unwrap_or("").is_empty() {
        munged.node_name.clone_from(&os.node_name);
    }
    let (a, b) = (serde_json::to_value(&os).unwrap_or_default(), serde_json::to_value(&munged).unwrap_or_default());
    if a != b {
        let mut lines = Vec::new();
        diff_paths(&a, &b, "spec", &mut lines);
        errs.push(FieldError::forbidden("spec", format!("pod updates may not change fields other than {UPDATABLE}\n{}", lines.join("\n"))));
    }
    errs
}

#[cfg(test)]
mod tests;
