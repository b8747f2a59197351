//! `ValidateService` (`pkg/apis/core/validation/validation.go`): ports,
//! types, session affinity, IPs, LoadBalancer fields and traffic policies.
//! The update rules and the registry's type-change preparation live in
//! `service/update.rs`; cluster IP rules in `service/ips.rs`.

mod ips;
mod update;

pub use update::{prepare_service_update, validate_update};

use super::fields::{self, dns1123_label, dns1123_subdomain, opt_str, port_num, port_num_or_name, qualified_name};
use super::meta::{self, NameRule};
use super::net::{validate_cidr, validate_ip, validate_non_special_ip};
use crate::status::{BadValue, FieldError};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use serde_json::Value;
use std::collections::HashSet;

const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const AFFINITIES: &[&str] = &["ClientIP", "None"];
const TRAFFIC_POLICIES: &[&str] = &["Cluster", "Local"];
/// `core.MaxClientIPServiceAffinitySeconds`.
const MAX_AFFINITY_SECONDS: i32 = 86400;
const TOPOLOGY_MODE: &str = "service.kubernetes.io/topology-mode";
const TOPOLOGY_HINTS: &str = "service.kubernetes.io/topology-aware-hints";
const SOURCE_RANGES_ANNOTATION: &str = "service.beta.kubernetes.io/load-balancer-source-ranges";
const LB_ONLY: &str = "may only be used when `type` is 'LoadBalancer'";

fn ty(spec: &ServiceSpec) -> &str {
    spec.type_.as_deref().unwrap_or("")
}

/// `isHeadlessService`: exactly one clusterIP, `None`.
fn is_headless(spec: &ServiceSpec) -> bool {
    spec.cluster_ips.as_deref().is_some_and(|ips| ips.len() == 1 && ips[0] == "None")
}

/// `apiservice.ExternallyAccessible`.
fn externally_accessible(spec: &ServiceSpec) -> bool {
    matches!(ty(spec), "LoadBalancer" | "NodePort") || (ty(spec) == "ClusterIP" && spec.external_ips.as_ref().is_some_and(|a| !a.is_empty()))
}

/// `apiservice.NeedsHealthCheck`.
fn needs_health_check(spec: &ServiceSpec) -> bool {
    ty(spec) == "LoadBalancer" && spec.external_traffic_policy.as_deref() == Some("Local")
}

/// Go's `%#v` of the `core.ServicePort{Protocol, Port}` key upstream reports for duplicate ports.
fn port_key_dump(protocol: &str, port: i32) -> String {
    format!(
        "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{port}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}",
        crate::status::go_quote(protocol)
    )
}

/// `validateServicePort`.
fn validate_port(sp: &ServicePort, require_name: bool, names: &mut HashSet<String>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = sp.name.as_deref().unwrap_or("");
    if require_name && name.is_empty() {
        errs.push(FieldError::required(format!("{path}.name"), ""));
    } else if !name.is_empty() {
        errs.extend(dns1123_label(name, &format!("{path}.name")));
        if !names.insert(name.to_owned()) {
            errs.push(FieldError::duplicate(format!("{path}.name"), name));
        }
    }
    errs.extend(port_num(sp.port, &format!("{path}.port")));
    match sp.protocol.as_deref().unwrap_or("") {
        "" => errs.push(FieldError::required(format!("{path}.protocol"), "")),
        p if !PROTOCOLS.contains(&p) => errs.push(FieldError::not_supported(format!("{path}.protocol"), p, PROTOCOLS)),
        _ => {}
    }
    errs.extend(port_num_or_name(sp.target_port.as_ref(), &format!("{path}.targetPort")));
    if let Some(ap) = &sp.app_protocol {
        errs.extend(qualified_name(ap, &format!("{path}.appProtocol")));
    }
    errs
}

fn validate_type_specific(spec: &ServiceSpec, errs: &mut Vec<FieldError>) {
    let first_ip = || spec.cluster_ips.as_ref().and_then(|a| a.first()).cloned().unwrap_or_default();
    match ty(spec) {
        "LoadBalancer" if is_headless(spec) => {
            errs.push(FieldError::invalid("spec.clusterIPs[0]", first_ip(), "may not be set to 'None' for LoadBalancer services"));
        }
        "NodePort" if is_headless(spec) => {
            errs.push(FieldError::invalid("spec.clusterIPs[0]", first_ip(), "may not be set to 'None' for NodePort services"));
        }
        "ExternalName" => {
            if spec.cluster_ips.as_ref().is_some_and(|a| !a.is_empty()) {
                errs.push(FieldError::forbidden("spec.clusterIPs", "may not be set for ExternalName services"));
            }
            if spec.ip_families.as_ref().is_some_and(|a| !a.is_empty()) {
                errs.push(FieldError::forbidden("spec.ipFamilies", "may not be set for ExternalName services"));
            }
            if spec.ip_family_policy.is_some() {
                errs.push(FieldError::forbidden("spec.ipFamilyPolicy", "may not be set for ExternalName services"));
            }
            // The value (a CNAME) may have a trailing dot to denote it as fully qualified.
            let name = spec.external_name.as_deref().unwrap_or("");
            let cname = name.strip_suffix('.').unwrap_or(name);
            if cname.is_empty() {
                errs.push(FieldError::required("spec.externalName", ""));
            } else {
                errs.extend(dns1123_subdomain(cname, "spec.externalName"));
            }
        }
        _ => {}
    }
}

fn validate_session_affinity(spec: &ServiceSpec, errs: &mut Vec<FieldError>) {
    let affinity = spec.session_affinity.as_deref().unwrap_or("");
    if affinity.is_empty() {
        errs.push(FieldError::required("spec.sessionAffinity", ""));
    } else if !AFFINITIES.contains(&affinity) {
        errs.push(FieldError::not_supported("spec.sessionAffinity", affinity, AFFINITIES));
    }
    match affinity {
        "ClientIP" => {
            // validateClientIPAffinityConfig
            let when = "when session affinity type is ClientIP";
            let path = "spec.sessionAffinityConfig";
            match &spec.session_affinity_config {
                None => errs.push(FieldError::required(path, when)),
                Some(c) => match &c.client_ip {
                    None => errs.push(FieldError::required(format!("{path}.clientIP"), when)),
                    Some(cip) => match cip.timeout_seconds {
                        None => errs.push(FieldError::required(format!("{path}.clientIP.timeoutSeconds"), when)),
                        Some(t) if t <= 0 || t > MAX_AFFINITY_SECONDS => errs.push(FieldError::invalid(
                            format!("{path}.clientIP.timeoutSeconds"),
                            t,
                            format!("must be greater than 0 and less than {MAX_AFFINITY_SECONDS}"),
                        )),
                        Some(_) => {}
                    },
                },
            }
        }
        "None" if spec.session_affinity_config.is_some() => {
            errs.push(FieldError::forbidden("spec.sessionAffinityConfig", "must not be set when session affinity is None"));
        }
        _ => {}
    }
}

fn validate_node_ports_and_duplicates(spec: &ServiceSpec, errs: &mut Vec<FieldError>) {
    let ports = spec.ports.as_deref().unwrap_or_default();
    if ty(spec) == "ClusterIP" {
        for (i, p) in ports.iter().enumerate() {
            if p.node_port.unwrap_or(0) != 0 {
                errs.push(FieldError::forbidden(format!("spec.ports[{i}].nodePort"), "may not be used when `type` is 'ClusterIP'"));
            }
        }
    }
    // Duplicate NodePorts, by (protocol, nodePort).
    let mut node_ports = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let np = p.node_port.unwrap_or(0);
        if np == 0 {
            continue;
        }
        if !node_ports.insert((p.protocol.clone().unwrap_or_default(), np)) {
            errs.push(FieldError::duplicate(format!("spec.ports[{i}].nodePort"), np));
        }
    }
    // Duplicate ports, by (protocol, port).
    let mut seen = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let proto = p.protocol.clone().unwrap_or_default();
        if !seen.insert((proto.clone(), p.port)) {
            errs.push(FieldError::duplicate(format!("spec.ports[{i}]"), BadValue::Raw(port_key_dump(&proto, p.port))));
        }
    }
}

fn validate_load_balancer_fields(svc: &Service, spec: &ServiceSpec, errs: &mut Vec<FieldError>) {
    let is_lb = ty(spec) == "LoadBalancer";
    let annotation = svc.metadata.annotations.as_ref().and_then(|a| a.get(SOURCE_RANGES_ANNOTATION));
    match spec.load_balancer_source_ranges.as_deref() {
        Some(ranges) if !ranges.is_empty() => {
            let path = "spec.LoadBalancerSourceRanges";
            if !is_lb {
                errs.push(FieldError::forbidden(path, LB_ONLY));
            }
            // Space padding is tolerated, a historical accident of the annotation.
            for (i, r) in ranges.iter().enumerate() {
                errs.extend(validate_cidr(&format!("{path}[{i}]"), r.trim()));
            }
        }
        _ => {
            if let Some(val) = annotation {
                let path = format!("metadata.annotations[{SOURCE_RANGES_ANNOTATION}]");
                if !is_lb {
                    errs.push(FieldError::forbidden(path.as_str(), LB_ONLY));
                }
                let val = val.trim();
                if !val.is_empty() {
                    for cidr in val.split(',') {
                        errs.extend(validate_cidr(&path, cidr.trim()));
                    }
                }
            }
        }
    }
    if spec.allocate_load_balancer_node_ports.is_some() && !is_lb {
        errs.push(FieldError::forbidden("spec.allocateLoadBalancerNodePorts", LB_ONLY));
    }
    if is_lb && spec.allocate_load_balancer_node_ports.is_none() {
        // Upstream builds this path without `spec.`.
        errs.push(FieldError::required("allocateLoadBalancerNodePorts", ""));
    }
}

/// `validateLoadBalancerClassField`; `old` on update.
fn validate_load_balancer_class(old: Option<&ServiceSpec>, spec: &ServiceSpec) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(old) = old
        && ty(old) == "LoadBalancer"
        && ty(spec) == "LoadBalancer"
        && old.load_balancer_class != spec.load_balancer_class
    {
        errs.push(FieldError::invalid("spec.loadBalancerClass", opt_str(spec.load_balancer_class.as_ref()), "may not change once set"));
    }
    if let Some(class) = &spec.load_balancer_class {
        if ty(spec) == "LoadBalancer" {
            errs.extend(qualified_name(class, "spec.loadBalancerClass"));
        } else {
            errs.push(FieldError::forbidden("spec.loadBalancerClass", LB_ONLY));
        }
    }
    errs
}

fn validate_traffic_policies(spec: &ServiceSpec, errs: &mut Vec<FieldError>) {
    let etp = spec.external_traffic_policy.as_deref().unwrap_or("");
    if !externally_accessible(spec) {
        if !etp.is_empty() {
            errs.push(FieldError::invalid("spec.externalTrafficPolicy", etp, "may only be set for externally-accessible services"));
        }
    } else if etp.is_empty() {
        errs.push(FieldError::required("spec.externalTrafficPolicy", ""));
    } else if !TRAFFIC_POLICIES.contains(&etp) {
        errs.push(FieldError::not_supported("spec.externalTrafficPolicy", etp, TRAFFIC_POLICIES));
    }
    let hc = spec.health_check_node_port.unwrap_or(0);
    if !needs_health_check(spec) {
        if hc != 0 {
            errs.push(FieldError::invalid(
                "spec.healthCheckNodePort",
                hc,
                "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            ));
        }
    } else if hc == 0 {
        errs.push(FieldError::required("spec.healthCheckNodePort", ""));
    } else {
        errs.extend(port_num(hc, "spec.healthCheckNodePort"));
    }
    match spec.internal_traffic_policy.as_deref() {
        None if matches!(ty(spec), "NodePort" | "LoadBalancer" | "ClusterIP") => {
            errs.push(FieldError::required("spec.internalTrafficPolicy", ""));
        }
        Some(itp) if !TRAFFIC_POLICIES.contains(&itp) => {
            errs.push(FieldError::not_supported("spec.internalTrafficPolicy", itp, TRAFFIC_POLICIES));
        }
        _ => {}
    }
    if let Some(td) = spec.traffic_distribution.as_deref()
        && td != "PreferClose"
    {
        errs.push(FieldError::not_supported("spec.trafficDistribution", td, &["PreferClose"]));
    }
}

/// `ValidateService` on a typed Service (metadata included).
fn validate_typed(svc: &Service) -> Vec<FieldError> {
    let mut errs = meta::validate_object_meta(&svc.metadata, true, NameRule::Dns1035Label);
    let annotations = svc.metadata.annotations.as_ref();
    if let (Some(mode), Some(hints)) = (annotations.and_then(|a| a.get(TOPOLOGY_MODE)), annotations.and_then(|a| a.get(TOPOLOGY_HINTS)))
        && mode != hints
    {
        errs.push(FieldError::invalid(
            format!("metadata.annotations[{TOPOLOGY_MODE}]"),
            mode.as_str(),
            format!("must match annotations[{TOPOLOGY_HINTS}] when both are specified"),
        ));
    }
    let empty = ServiceSpec::default();
    let spec = svc.spec.as_ref().unwrap_or(&empty);
    let ports = spec.ports.as_deref().unwrap_or_default();
    if ports.is_empty() && !is_headless(spec) && ty(spec) != "ExternalName" {
        errs.push(FieldError::required("spec.ports", ""));
    }
    validate_type_specific(spec, &mut errs);
    let mut names = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        errs.extend(validate_port(p, ports.len() > 1, &mut names, &format!("spec.ports[{i}]")));
    }
    if spec.selector.is_some() {
        errs.extend(fields::labels(spec.selector.as_ref(), "spec.selector"));
    }
    validate_session_affinity(spec, &mut errs);
    errs.extend(ips::validate_cluster_ips_related_fields(spec));
    for (i, ip) in spec.external_ips.iter().flatten().enumerate() {
        let path = format!("spec.externalIPs[{i}]");
        let syntax = validate_ip(&path, ip);
        if syntax.is_empty() {
            errs.extend(validate_non_special_ip(&path, ip));
        } else {
            errs.extend(syntax);
        }
    }
    match ty(spec) {
        "" => errs.push(FieldError::required("spec.type", "")),
        t if !TYPES.contains(&t) => errs.push(FieldError::not_supported("spec.type", t, TYPES)),
        _ => {}
    }
    validate_node_ports_and_duplicates(spec, &mut errs);
    validate_load_balancer_fields(svc, spec, &mut errs);
    errs.extend(validate_load_balancer_class(None, spec));
    validate_traffic_policies(spec, &mut errs);
    errs
}

/// `ValidateService` (create): metadata and spec.
pub fn validate(obj: &Value) -> Vec<FieldError> {
    match fields::decode::<Service>(obj) {
        Ok(svc) => validate_typed(&svc),
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests;
