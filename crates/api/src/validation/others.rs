//! The other kinds of the catalogue: Namespace, ConfigMap, Secret, Endpoints,
//! EndpointSlice, Ingress and IngressClass get their upstream rules; Lease,
//! Event and Node get the metadata rules only.

use super::fields::{self, IMMUTABLE, dns1123_label, dns1123_subdomain, port_num, qualified_name};
use super::meta::validate_object_meta_update;
use super::net::{parse_ip_sloppy, validate_ip, validate_non_special_ip};
use super::{object_meta, validate_meta};
use crate::resources::ResourceDef;
use crate::selectors::qualified_name::{is_config_map_key, is_dns1035_label, is_dns1123_subdomain, is_valid_port_name, regex_error};
use crate::status::{BadValue, FieldError};
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Namespace, Secret};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;
use std::collections::HashSet;

/// `core.MaxSecretSize`: the data of a Secret or ConfigMap.
const MAX_SECRET_SIZE: usize = 1024 * 1024;
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const INGRESS_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

fn decoded<T: serde::de::DeserializeOwned>(obj: &Value, f: impl FnOnce(T) -> Vec<FieldError>) -> Vec<FieldError> {
    match fields::decode::<T>(obj) {
        Ok(t) => f(t),
        Err(e) => e,
    }
}

/// `validateFinalizerName` for `spec.finalizers` of a Namespace.
fn namespace_spec(ns: Namespace) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for f in ns.spec.and_then(|s| s.finalizers).unwrap_or_default() {
        errs.extend(fields::check("spec.finalizers", &f, crate::selectors::qualified_name::is_qualified_name(&f)));
        if !f.contains('/') && !["kubernetes", "orphan", "foregroundDeletion"].contains(&f.as_str()) {
            errs.push(FieldError::invalid("spec.finalizers", f.as_str(), "name is neither a standard finalizer name nor is it fully qualified"));
        }
    }
    errs
}

/// `ValidateConfigMap` beyond metadata.
fn config_map(cm: ConfigMap) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut total = 0;
    let binary = cm.binary_data.unwrap_or_default();
    for (k, v) in cm.data.iter().flatten() {
        errs.extend(fields::check(&format!("data[{k}]"), k, is_config_map_key(k)));
        if binary.contains_key(k) {
            errs.push(FieldError::invalid(format!("data[{k}]"), k.as_str(), "duplicate of key present in binaryData"));
        }
        total += v.len();
    }
    for (k, v) in &binary {
        errs.extend(fields::check(&format!("binaryData[{k}]"), k, is_config_map_key(k)));
        total += v.0.len();
    }
    if total > MAX_SECRET_SIZE {
        errs.push(FieldError::too_long("", MAX_SECRET_SIZE));
    }
    errs
}

/// `ValidateSecret` beyond metadata (`stringData` is merged into `data` first, as upstream converts it).
fn secret(s: Secret) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut data: std::collections::BTreeMap<String, usize> = s.data.iter().flatten().map(|(k, v)| (k.clone(), v.0.len())).collect();
    for (k, v) in s.string_data.iter().flatten() {
        data.insert(k.clone(), v.len());
    }
    for k in data.keys() {
        errs.extend(fields::check(&format!("data[{k}]"), k, is_config_map_key(k)));
    }
    if data.values().sum::<usize>() > MAX_SECRET_SIZE {
        errs.push(FieldError::too_long("data", MAX_SECRET_SIZE));
    }
    let required = |errs: &mut Vec<FieldError>, key: &str| errs.push(FieldError::required(format!("data[{key}]"), ""));
    match s.type_.as_deref().unwrap_or("") {
        "kubernetes.io/service-account-token" => {
            let name = s.metadata.annotations.as_ref().and_then(|a| a.get("kubernetes.io/service-account.name"));
            if name.is_none_or(String::is_empty) {
                errs.push(FieldError::required("metadata.annotations[kubernetes.io/service-account.name]", ""));
            }
        }
        "kubernetes.io/dockercfg" if !data.contains_key(".dockercfg") => required(&mut errs, ".dockercfg"),
        "kubernetes.io/dockerconfigjson" if !data.contains_key(".dockerconfigjson") => required(&mut errs, ".dockerconfigjson"),
        "kubernetes.io/basic-auth" if !data.contains_key("username") && !data.contains_key("password") => {
            required(&mut errs, "username");
            required(&mut errs, "password");
        }
        "kubernetes.io/ssh-auth" if !data.contains_key("ssh-privatekey") => required(&mut errs, "ssh-privatekey"),
        "kubernetes.io/tls" => {
            for key in ["tls.crt", "tls.key"] {
                if !data.contains_key(key) {
                    required(&mut errs, key);
                }
            }
        }
        _ => {}
    }
    errs
}

/// Whether this is the API server's own `default/kubernetes` Endpoints or
/// EndpointSlice. Deviation: Portico advertises loopback on a single machine
/// (upstream refuses such an address), so these skip `ValidateNonSpecialIP`.
fn is_api_server_own(meta: &ObjectMeta) -> bool {
    meta.namespace.as_deref() == Some("default") && meta.name.as_deref() == Some("kubernetes")
}

/// `validateEndpointSubsets`.
fn endpoints(ep: Endpoints) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let special_ok = is_api_server_own(&ep.metadata);
    for (i, ss) in ep.subsets.iter().flatten().enumerate() {
        let sp = format!("subsets[{i}]");
        let (ready, not_ready) = (ss.addresses.as_deref().unwrap_or_default(), ss.not_ready_addresses.as_deref().unwrap_or_default());
        if ready.is_empty() && not_ready.is_empty() {
            errs.push(FieldError::required(sp.as_str(), "must specify `addresses` or `notReadyAddresses`"));
        }
        for (list, addrs) in [("addresses", ready), ("notReadyAddresses", not_ready)] {
            for (j, a) in addrs.iter().enumerate() {
                let ap = format!("{sp}.{list}[{j}]");
                errs.extend(validate_ip(&format!("{ap}.ip"), &a.ip));
                if let Some(h) = a.hostname.as_deref().filter(|h| !h.is_empty()) {
                    errs.extend(dns1123_label(h, &format!("{ap}.hostname")));
                }
                if let Some(n) = &a.node_name {
                    errs.extend(dns1123_subdomain(n, &format!("{ap}.nodeName")));
                }
                if !special_ok {
                    errs.extend(validate_non_special_ip(&format!("{ap}.ip"), &a.ip));
                }
            }
        }
        let ports = ss.ports.as_deref().unwrap_or_default();
        for (j, p) in ports.iter().enumerate() {
            let pp = format!("{sp}.ports[{j}]");
            let name = p.name.as_deref().unwrap_or("");
            if ports.len() > 1 && name.is_empty() {
                errs.push(FieldError::required(format!("{pp}.name"), ""));
            } else if !name.is_empty() {
                errs.extend(dns1123_label(name, &format!("{pp}.name")));
            }
            errs.extend(port_num(p.port, &format!("{pp}.port")));
            match p.protocol.as_deref().unwrap_or("") {
                "" => errs.push(FieldError::required(format!("{pp}.protocol"), "")),
                pr if !PROTOCOLS.contains(&pr) => errs.push(FieldError::not_supported(format!("{pp}.protocol"), pr, PROTOCOLS)),
                _ => {}
            }
            if let Some(ap) = &p.app_protocol {
                errs.extend(qualified_name(ap, &format!("{pp}.appProtocol")));
            }
        }
    }
    errs
}

/// `IsFullyQualifiedDomainName`.
fn fully_qualified_domain_name(path: &str, name: &str) -> Vec<FieldError> {
    if name.is_empty() {
        return vec![FieldError::required(path, "")];
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    let errs = is_dns1123_subdomain(name);
    if !errs.is_empty() {
        return vec![FieldError::invalid(path, name, errs.join(","))];
    }
    if name.split('.').count() < 2 {
        return vec![FieldError::invalid(path, name, "should be a domain with at least two segments separated by dots")];
    }
    Vec::new()
}

/// discovery `ValidateEndpointSlice` beyond metadata.
fn endpoint_slice(es: EndpointSlice) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let special_ok = is_api_server_own(&es.metadata);
    let types = ["FQDN", "IPv4", "IPv6"];
    match es.address_type.as_str() {
        "" => errs.push(FieldError::required("addressType", "")),
        t if !types.contains(&t) => errs.push(FieldError::not_supported("addressType", t, &types)),
        _ => {}
    }
    if es.endpoints.len() > 1000 {
        errs.push(FieldError::too_many("endpoints", es.endpoints.len(), 1000));
    } else {
        for (i, ep) in es.endpoints.iter().enumerate() {
            let path = format!("endpoints[{i}]");
            let ap = format!("{path}.addresses");
            if ep.addresses.is_empty() {
                errs.push(FieldError::required(ap.as_str(), "must contain at least 1 address"));
            } else if ep.addresses.len() > 100 {
                errs.push(FieldError::too_many(ap.as_str(), ep.addresses.len(), 100));
            }
            for (j, a) in ep.addresses.iter().enumerate() {
                let p = format!("{ap}[{j}]");
                match es.address_type.as_str() {
                    "IPv4" | "IPv6" => {
                        let want_v6 = es.address_type == "IPv6";
                        match parse_ip_sloppy(a) {
                            Some(ip) if ip.is_ipv6() == want_v6 => {
                                if !special_ok {
                                    errs.extend(validate_non_special_ip(&p, a));
                                }
                            }
                            _ => errs.push(FieldError::invalid(p.as_str(), a.as_str(), format!("must be a valid {} address", es.address_type))),
                        }
                    }
                    "FQDN" => errs.extend(fully_qualified_domain_name(&p, a)),
                    _ => {}
                }
            }
            if let Some(n) = &ep.node_name {
                errs.extend(dns1123_subdomain(n, &format!("{path}.nodeName")));
            }
            let topology = ep.deprecated_topology.as_ref();
            if topology.is_some_and(|t| t.len() > 16) {
                errs.push(FieldError::too_many(format!("{path}.deprecatedTopology"), topology.map_or(0, |t| t.len()), 16));
            }
            errs.extend(fields::labels(topology, &format!("{path}.deprecatedTopology")));
            if let Some(z) = &ep.zone {
                errs.extend(dns1123_label(z, &format!("{path}.zone")));
            }
            if let Some(h) = &ep.hostname {
                errs.extend(dns1123_label(h, &format!("{path}.hostname")));
            }
        }
    }
    let ports = es.ports.unwrap_or_default();
    let mut names = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let pp = format!("ports[{i}]");
        let name = p.name.clone().unwrap_or_default();
        if !name.is_empty() {
            errs.extend(dns1123_label(&name, &format!("{pp}.name")));
        }
        if !names.insert(name.clone()) {
            errs.push(FieldError::duplicate(format!("{pp}.name"), name));
        }
        match p.protocol.as_deref() {
            None => errs.push(FieldError::required(format!("{pp}.protocol"), "")),
            Some(pr) if !PROTOCOLS.contains(&pr) => errs.push(FieldError::not_supported(format!("{pp}.protocol"), pr, PROTOCOLS)),
            Some(_) => {}
        }
        if let Some(ap) = &p.app_protocol {
            errs.extend(qualified_name(ap, &format!("{pp}.appProtocol")));
        }
    }
    errs
}

/// `IsWildcardDNS1123Subdomain`.
fn is_wildcard_dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 253 {
        errs.push("must be no more than 253 characters".to_owned());
    }
    let ok = value.strip_prefix("*.").is_some_and(|rest| is_dns1123_subdomain(rest).iter().all(|m| m.starts_with("must be no more")));
    if !ok {
        let msg = "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character";
        errs.push(regex_error(msg, "\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", &["*.example.com"]));
    }
    errs
}

/// `validateIngressBackend`.
fn ingress_backend(b: &IngressBackend, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    match (&b.resource, &b.service) {
        (Some(_), Some(_)) => errs.push(FieldError::invalid(path, "", "cannot set both resource and service backends")),
        (Some(r), None) => {
            if r.kind.is_empty() {
                errs.push(FieldError::required(format!("{path}.resource.kind"), ""));
            }
            if r.name.is_empty() {
                errs.push(FieldError::required(format!("{path}.resource.name"), ""));
            }
        }
        (None, Some(svc)) => {
            let np = format!("{path}.service.name");
            if svc.name.is_empty() {
                errs.push(FieldError::required(np.as_str(), ""));
            } else {
                errs.extend(fields::check(&np, &svc.name, is_dns1035_label(&svc.name)));
            }
            let port = svc.port.clone().unwrap_or_default();
            let name = port.name.unwrap_or_default();
            let number = port.number.unwrap_or(0);
            match (name.is_empty(), number == 0) {
                (false, false) => errs.push(FieldError::invalid(path, "", "cannot set both port name & port number")),
                (false, true) => errs.extend(fields::check(&format!("{path}.service.port.name"), &name, is_valid_port_name(&name))),
                (true, false) => errs.extend(port_num(number, &format!("{path}.service.port.number"))),
                (true, true) => errs.push(FieldError::required(path, "port name or number is required")),
            }
        }
        (None, None) => errs.push(FieldError::invalid(path, "", "resource or service backend is required")),
    }
    errs
}

/// `ValidateIngressSpec` and the class-annotation check of `ValidateIngressCreate`.
fn ingress(ing: Ingress) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = ing.spec.unwrap_or_default();
    let rules = spec.rules.as_deref().unwrap_or_default();
    if rules.is_empty() && spec.default_backend.is_none() {
        let value = if spec.rules.is_some() { "[]networking.IngressRule{}" } else { "[]networking.IngressRule(nil)" };
        errs.push(FieldError::invalid("spec", BadValue::Raw(value.into()), "either `defaultBackend` or `rules` must be specified"));
    }
    if let Some(b) = &spec.default_backend {
        errs.extend(ingress_backend(b, "spec.defaultBackend"));
    }
    for (i, rule) in rules.iter().enumerate() {
        let rp = format!("spec.rules[{i}]");
        if let Some(host) = rule.host.as_deref().filter(|h| !h.is_empty()) {
            let hp = format!("{rp}.host");
            if parse_ip_sloppy(host).is_some() {
                errs.push(FieldError::invalid(hp.as_str(), host, "must be a DNS name, not an IP address"));
            }
            let msgs = if host.contains('*') { is_wildcard_dns1123_subdomain(host) } else { is_dns1123_subdomain(host) };
            errs.extend(fields::check(&hp, host, msgs));
        }
        if let Some(http) = &rule.http {
            if http.paths.is_empty() {
                errs.push(FieldError::required(format!("{rp}.http.paths"), ""));
            }
            for (j, p) in http.paths.iter().enumerate() {
                let pp = format!("{rp}.http.paths[{j}]");
                let path = p.path.as_deref().unwrap_or("");
                match p.path_type.as_str() {
                    "" => {
                        errs.push(FieldError::required(format!("{pp}.pathType"), "pathType must be specified"));
                        continue;
                    }
                    "Exact" | "Prefix" => {
                        if !path.starts_with('/') {
                            errs.push(FieldError::invalid(format!("{pp}.path"), path, "must be an absolute path"));
                        }
                        for seq in ["//", "/./", "/../", "%2f", "%2F"] {
                            if path.contains(seq) {
                                errs.push(FieldError::invalid(format!("{pp}.path"), path, format!("must not contain '{seq}'")));
                            }
                        }
                        for suffix in ["/..", "/."] {
                            if path.ends_with(suffix) {
                                errs.push(FieldError::invalid(format!("{pp}.path"), path, format!("cannot end with '{suffix}'")));
                            }
                        }
                    }
                    "ImplementationSpecific" => {
                        if !path.is_empty() && !path.starts_with('/') {
                            errs.push(FieldError::invalid(format!("{pp}.path"), path, "must be an absolute path"));
                        }
                    }
                    other => errs.push(FieldError::not_supported(format!("{pp}.pathType"), other, &["Exact", "ImplementationSpecific", "Prefix"])),
                }
                errs.extend(ingress_backend(&p.backend, &format!("{pp}.backend")));
            }
        }
    }
    for (i, tls) in spec.tls.iter().flatten().enumerate() {
        for (j, host) in tls.hosts.iter().flatten().enumerate() {
            let msgs = if host.contains('*') { is_wildcard_dns1123_subdomain(host) } else { is_dns1123_subdomain(host) };
            errs.extend(fields::check(&format!("spec.tls[{i}].hosts[{j}]"), host, msgs));
        }
        if let Some(name) = tls.secret_name.as_deref().filter(|n| !n.is_empty()) {
            errs.extend(dns1123_subdomain(name, &format!("spec.tls[{i}].secretName")));
        }
    }
    if let Some(class) = &spec.ingress_class_name {
        errs.extend(dns1123_subdomain(class, "spec.ingressClassName"));
        if let Some(annotation) = ing.metadata.annotations.as_ref().and_then(|a| a.get(INGRESS_CLASS_ANNOTATION))
            && annotation != class
        {
            errs.push(FieldError::invalid(format!("annotations.{INGRESS_CLASS_ANNOTATION}"), annotation.as_str(), "must match `ingressClassName` when both are specified"));
        }
    }
    errs
}

/// `validateIngressClassSpec`.
fn ingress_class(ic: IngressClass) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let controller = ic.spec.and_then(|s| s.controller).unwrap_or_default();
    let path = "spec.controller";
    if controller.len() > 250 {
        errs.push(FieldError::too_long(path, 250));
    }
    // IsDomainPrefixedPath
    if controller.is_empty() {
        errs.push(FieldError::required(path, ""));
        return errs;
    }
    match controller.split_once('/') {
        Some((host, rest)) if !host.is_empty() && !rest.is_empty() => {
            errs.extend(fields::check(path, host, is_dns1123_subdomain(host)));
            let ok = rest.bytes().all(|c| c.is_ascii_alphanumeric() || b"/-._~%!$&'()*+,;=:".contains(&c));
            if !ok {
                errs.push(FieldError::invalid(path, rest, regex_error("Invalid path", "[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+", &[])));
            }
        }
        _ => errs.push(FieldError::invalid(path, controller.as_str(), "must be a domain-prefixed path (such as \"acme.io/foo\")")),
    }
    errs
}

/// Kind-specific rules beyond metadata (`Validate<Kind>` without `ValidateObjectMeta`).
pub fn validate(rd: &ResourceDef, obj: &Value) -> Vec<FieldError> {
    match (rd.group, rd.kind) {
        ("", "Namespace") => decoded(obj, namespace_spec),
        ("", "ConfigMap") => decoded(obj, config_map),
        ("", "Secret") => decoded(obj, secret),
        ("", "Endpoints") => decoded(obj, endpoints),
        ("discovery.k8s.io", "EndpointSlice") => decoded(obj, endpoint_slice),
        ("networking.k8s.io", "Ingress") => decoded(obj, ingress),
        ("networking.k8s.io", "IngressClass") => decoded(obj, ingress_class),
        _ => Vec::new(),
    }
}

/// What `immutable: true` freezes on a ConfigMap or Secret.
fn immutable_data(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if old.get("immutable").and_then(Value::as_bool) != Some(true) {
        return errs;
    }
    let why = "field is immutable when `immutable` is set";
    for f in ["data", "binaryData"] {
        let norm = |v: &Value| v.get(f).filter(|d| !d.is_null() && d.as_object().is_none_or(|m| !m.is_empty())).cloned();
        if norm(new) != norm(old) {
            errs.push(FieldError::forbidden(f, why));
        }
    }
    if new.get("immutable").and_then(Value::as_bool) != Some(true) {
        errs.push(FieldError::forbidden("immutable", why));
    }
    errs
}

/// `Validate<Kind>Update` for these kinds.
pub fn validate_update(rd: &ResourceDef, new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = match (object_meta(new), object_meta(old)) {
        (Ok(n), Ok(o)) => validate_object_meta_update(&n, &o),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let str_at = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or("").to_owned();
    match (rd.group, rd.kind) {
        // Namespace, Lease, Event and Node updates check metadata only.
        ("", "Namespace" | "Event" | "Node") | ("coordination.k8s.io", "Lease") => {}
        ("", "Secret") => {
            let (nt, ot) = (str_at(new, "/type"), str_at(old, "/type"));
            if nt != ot {
                errs.push(FieldError::invalid("type", nt.as_str(), IMMUTABLE));
            }
            errs.extend(immutable_data(new, old));
            errs.extend(validate_meta(rd, new));
            errs.extend(validate(rd, new));
        }
        ("", "ConfigMap") => {
            errs.extend(immutable_data(new, old));
            errs.extend(validate_meta(rd, new));
            errs.extend(validate(rd, new));
        }
        ("discovery.k8s.io", "EndpointSlice") => {
            errs.extend(validate_meta(rd, new));
            errs.extend(validate(rd, new));
            let (nt, ot) = (str_at(new, "/addressType"), str_at(old, "/addressType"));
            if nt != ot {
                errs.push(FieldError::invalid("addressType", nt.as_str(), IMMUTABLE));
            }
        }
        ("networking.k8s.io", "IngressClass") => {
            errs.extend(validate_meta(rd, new));
            errs.extend(validate(rd, new));
            let (nc, oc) = (str_at(new, "/spec/controller"), str_at(old, "/spec/controller"));
            if nc != oc {
                errs.push(FieldError::invalid("spec.controller", nc.as_str(), IMMUTABLE));
            }
        }
        _ => {
            errs.extend(validate_meta(rd, new));
            errs.extend(validate(rd, new));
        }
    }
    errs
}

#[cfg(test)]
mod tests;
