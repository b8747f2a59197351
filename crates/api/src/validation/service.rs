//! `ValidateService` / `ValidateServiceUpdate` and the registry's
//! type-change preparation (`dropTypeDependentFields`).

use super::meta::validate_labels;
use super::{IP_FORMAT, PORT_RANGE};
use crate::selectors::qualified_name::{is_dns1123_label, is_dns1123_subdomain, is_qualified_name, is_valid_port_name};
use crate::status::{BadValue, FieldError};
use serde_json::Value;
use std::net::IpAddr;

const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const MAX_AFFINITY_SECONDS: i64 = 86400;

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

fn strings(v: &Value, p: &str) -> Vec<String> {
    v.pointer(p).and_then(Value::as_array).map(|a| a.iter().map(|x| x.as_str().unwrap_or("").to_owned()).collect()).unwrap_or_default()
}

fn is_headless(svc: &Value) -> bool {
    s(svc, "/spec/clusterIP") == "None"
}

fn externally_accessible(svc: &Value) -> bool {
    matches!(s(svc, "/spec/type"), "NodePort" | "LoadBalancer")
        || (s(svc, "/spec/type") == "ClusterIP" && svc.pointer("/spec/externalIPs").and_then(Value::as_array).is_some_and(|a| !a.is_empty()))
}

fn needs_health_check(svc: &Value) -> bool {
    s(svc, "/spec/type") == "LoadBalancer" && s(svc, "/spec/externalTrafficPolicy") == "Local"
}

/// Go's `%#v` of a `core.ServicePort` key, as upstream prints duplicate ports.
fn port_key_dump(protocol: &str, port: i64) -> String {
    format!(
        "core.ServicePort{{Name:\"\", Protocol:\"{protocol}\", AppProtocol:(*string)(nil), Port:{port}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}"
    )
}

fn validate_port(p: &Value, require_name: bool, headless: bool, names: &mut Vec<String>, path: &str) -> Vec<FieldError> {
    let _ = headless;
    let mut errs = Vec::new();
    let name = p.get("name").and_then(Value::as_str).unwrap_or("");
    if require_name && name.is_empty() {
        errs.push(FieldError::required(format!("{path}.name"), ""));
    } else if !name.is_empty() {
        for msg in is_dns1123_label(name) {
            errs.push(FieldError::invalid(format!("{path}.name"), name, msg));
        }
        if names.iter().any(|n| n == name) {
            errs.push(FieldError::duplicate(format!("{path}.name"), name));
        } else {
            names.push(name.to_owned());
        }
    }
    let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
    if !(1..=65535).contains(&port) {
        errs.push(FieldError::invalid(format!("{path}.port"), port, PORT_RANGE));
    }
    match p.get("protocol").and_then(Value::as_str).unwrap_or("") {
        "" => errs.push(FieldError::required(format!("{path}.protocol"), "")),
        proto if !PROTOCOLS.contains(&proto) => errs.push(FieldError::not_supported(format!("{path}.protocol"), proto, PROTOCOLS)),
        _ => {}
    }
    match p.get("targetPort") {
        Some(Value::Number(n)) => {
            let t = n.as_i64().unwrap_or(0);
            if !(1..=65535).contains(&t) {
                errs.push(FieldError::invalid(format!("{path}.targetPort"), t, PORT_RANGE));
            }
        }
        Some(Value::String(t)) => {
            for msg in is_valid_port_name(t) {
                errs.push(FieldError::invalid(format!("{path}.targetPort"), t.as_str(), msg));
            }
        }
        _ => {}
    }
    if let Some(ap) = p.get("appProtocol").and_then(Value::as_str) {
        for msg in is_qualified_name(ap) {
            errs.push(FieldError::invalid(format!("{path}.appProtocol"), ap, msg));
        }
    }
    errs
}

fn validate_cluster_ips(svc: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if s(svc, "/spec/type") == "ExternalName" {
        return errs;
    }
    let ip = s(svc, "/spec/clusterIP");
    let ips = strings(svc, "/spec/clusterIPs");
    if !ip.is_empty() {
        if ips.is_empty() {
            errs.push(FieldError::required("spec.clusterIPs", ""));
        } else if ips[0] != ip {
            errs.push(FieldError::invalid("spec.clusterIPs", BadValue::string_slice(&ips), "first value must match `clusterIP`"));
        }
    } else if !ips.is_empty() {
        errs.push(FieldError::invalid("spec.clusterIPs", BadValue::string_slice(&ips), "must be empty when `clusterIP` is not specified"));
    }
    let families = strings(svc, "/spec/ipFamilies");
    for (i, f) in families.iter().enumerate() {
        if !matches!(f.as_str(), "IPv4" | "IPv6") {
            errs.push(FieldError::not_supported(format!("spec.ipFamilies[{i}]"), f.as_str(), &["IPv4", "IPv6"]));
        }
        if families[..i].contains(f) {
            errs.push(FieldError::duplicate(format!("spec.ipFamilies[{i}]"), f.as_str()));
        }
    }
    if let Some(policy) = svc.pointer("/spec/ipFamilyPolicy").and_then(Value::as_str)
        && !matches!(policy, "SingleStack" | "PreferDualStack" | "RequireDualStack") {
            errs.push(FieldError::not_supported("spec.ipFamilyPolicy", policy, &["PreferDualStack", "RequireDualStack", "SingleStack"]));
        }
    for (i, ip) in ips.iter().enumerate() {
        if i == 0 && ip == "None" {
            if ips.len() > 1 {
                errs.push(FieldError::invalid("spec.clusterIPs", BadValue::string_slice(&ips), "'None' must be the first and only value"));
            }
            continue;
        }
        if ip.parse::<IpAddr>().is_err() {
            errs.push(FieldError::invalid(format!("spec.clusterIPs[{i}]"), ip.as_str(), IP_FORMAT));
        }
    }
    if ips.len() > 2 {
        errs.push(FieldError::invalid("spec.clusterIPs", BadValue::string_slice(&ips), "may only hold up to 2 values"));
    }
    if !errs.is_empty() {
        return errs;
    }
    if ips.len() > 1 {
        let v6: Vec<bool> = ips.iter().filter_map(|i| i.parse::<IpAddr>().ok()).map(|a| a.is_ipv6()).collect();
        if v6.len() == 2 && v6[0] == v6[1] {
            errs.push(FieldError::invalid("spec.clusterIPs", BadValue::string_slice(&ips), "may specify no more than one IP for each IP family"));
        }
    }
    if !is_headless(svc) {
        for (i, (ip, fam)) in ips.iter().zip(families.iter()).enumerate() {
            let is_v6 = ip.parse::<IpAddr>().is_ok_and(|a| a.is_ipv6());
            if fam == "IPv4" && is_v6 {
                errs.push(FieldError::invalid(format!("spec.clusterIPs[{i}]"), ip.as_str(), format!("expected an IPv4 value as indicated by `ipFamilies[{i}]`")));
            }
            if fam == "IPv6" && !is_v6 {
                errs.push(FieldError::invalid(format!("spec.clusterIPs[{i}]"), ip.as_str(), format!("expected an IPv6 value as indicated by `ipFamilies[{i}]`")));
            }
        }
    }
    errs
}

/// `ValidateService` (without the ObjectMeta part, done by the caller).
pub fn validate(svc: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let ty = s(svc, "/spec/type");
    let ports: Vec<Value> = svc.pointer("/spec/ports").and_then(Value::as_array).cloned().unwrap_or_default();
    if ports.is_empty() && !is_headless(svc) && ty != "ExternalName" {
        errs.push(FieldError::required("spec.ports", ""));
    }
    let ips = strings(svc, "/spec/clusterIPs");
    match ty {
        "LoadBalancer" if is_headless(svc) => {
            errs.push(FieldError::invalid("spec.clusterIPs[0]", ips.first().map_or("None", String::as_str), "may not be set to 'None' for LoadBalancer services"));
        }
        "NodePort" if is_headless(svc) => {
            errs.push(FieldError::invalid("spec.clusterIPs[0]", ips.first().map_or("None", String::as_str), "may not be set to 'None' for NodePort services"));
        }
        "ExternalName" => {
            if !ips.is_empty() || !s(svc, "/spec/clusterIP").is_empty() {
                errs.push(FieldError::forbidden("spec.clusterIPs", "may not be set for ExternalName services"));
            }
            if svc.pointer("/spec/ipFamilies").and_then(Value::as_array).is_some_and(|a| !a.is_empty()) {
                errs.push(FieldError::forbidden("spec.ipFamilies", "may not be set for ExternalName services"));
            }
            if svc.pointer("/spec/ipFamilyPolicy").is_some_and(|v| !v.is_null()) {
                errs.push(FieldError::forbidden("spec.ipFamilyPolicy", "may not be set for ExternalName services"));
            }
            let name = s(svc, "/spec/externalName");
            let cname = name.strip_suffix('.').unwrap_or(name);
            if cname.is_empty() {
                errs.push(FieldError::required("spec.externalName", ""));
            } else {
                for msg in is_dns1123_subdomain(cname) {
                    errs.push(FieldError::invalid("spec.externalName", cname, msg));
                }
            }
        }
        _ => {}
    }
    let mut names = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        errs.extend(validate_port(p, ports.len() > 1, is_headless(svc), &mut names, &format!("spec.ports[{i}]")));
    }
    errs.extend(validate_labels(svc.pointer("/spec/selector"), "spec.selector"));
    match s(svc, "/spec/sessionAffinity") {
        "" => errs.push(FieldError::required("spec.sessionAffinity", "")),
        "ClientIP" => {
            let when = "when session affinity type is ClientIP";
            match svc.pointer("/spec/sessionAffinityConfig") {
                None | Some(Value::Null) => errs.push(FieldError::required("spec.sessionAffinityConfig", when)),
                Some(c) => match c.get("clientIP") {
                    None | Some(Value::Null) => errs.push(FieldError::required("spec.sessionAffinityConfig.clientIP", when)),
                    Some(cip) => match cip.get("timeoutSeconds").and_then(Value::as_i64) {
                        None => errs.push(FieldError::required("spec.sessionAffinityConfig.clientIP.timeoutSeconds", when)),
                        Some(t) if t <= 0 || t > MAX_AFFINITY_SECONDS => errs.push(FieldError::invalid(
                            "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                            t,
                            format!("must be greater than 0 and less than {MAX_AFFINITY_SECONDS}"),
                        )),
                        Some(_) => {}
                    },
                },
            }
        }
        "None" => {
            if svc.pointer("/spec/sessionAffinityConfig").is_some_and(|v| !v.is_null()) {
                errs.push(FieldError::forbidden("spec.sessionAffinityConfig", "must not be set when session affinity is None"));
            }
        }
        other => errs.push(FieldError::not_supported("spec.sessionAffinity", other, &["ClientIP", "None"])),
    }
    errs.extend(validate_cluster_ips(svc));
    for (i, ip) in strings(svc, "/spec/externalIPs").iter().enumerate() {
        let path = format!("spec.externalIPs[{i}]");
        match ip.parse::<IpAddr>() {
            Err(_) => errs.push(FieldError::invalid(path, ip.as_str(), IP_FORMAT)),
            Ok(a) if a.is_unspecified() => errs.push(FieldError::invalid(path, ip.as_str(), "may not be unspecified (0.0.0.0)")),
            Ok(a) if a.is_loopback() => errs.push(FieldError::invalid(path, ip.as_str(), "may not be in the loopback range (127.0.0.0/8, ::1/128)")),
            Ok(_) => {}
        }
    }
    match ty {
        "" => errs.push(FieldError::required("spec.type", "")),
        t if !TYPES.contains(&t) => errs.push(FieldError::not_supported("spec.type", t, TYPES)),
        _ => {}
    }
    if ty == "ClusterIP" {
        for (i, p) in ports.iter().enumerate() {
            if p.get("nodePort").and_then(Value::as_i64).unwrap_or(0) != 0 {
                errs.push(FieldError::forbidden(format!("spec.ports[{i}].nodePort"), "may not be used when `type` is 'ClusterIP'"));
            }
        }
    }
    let proto = |p: &Value| p.get("protocol").and_then(Value::as_str).unwrap_or("").to_owned();
    let mut node_ports: Vec<(String, i64)> = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let np = p.get("nodePort").and_then(Value::as_i64).unwrap_or(0);
        if np == 0 {
            continue;
        }
        let key = (proto(p), np);
        if node_ports.contains(&key) {
            errs.push(FieldError::duplicate(format!("spec.ports[{i}].nodePort"), np));
        }
        node_ports.push(key);
    }
    let mut seen: Vec<(String, i64)> = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let key = (proto(p), p.get("port").and_then(Value::as_i64).unwrap_or(0));
        if seen.contains(&key) {
            errs.push(FieldError::duplicate(format!("spec.ports[{i}]"), BadValue::Raw(port_key_dump(&key.0, key.1))));
        }
        seen.push(key);
    }
    if let Some(ranges) = svc.pointer("/spec/loadBalancerSourceRanges").and_then(Value::as_array).filter(|a| !a.is_empty()) {
        if ty != "LoadBalancer" {
            errs.push(FieldError::forbidden("spec.LoadBalancerSourceRanges", "may only be used when `type` is 'LoadBalancer'"));
        }
        for (i, r) in ranges.iter().enumerate() {
            let r = r.as_str().unwrap_or("").trim();
            if r.parse::<ipnet::IpNet>().is_err() {
                errs.push(FieldError::invalid(format!("spec.LoadBalancerSourceRanges[{i}]"), r, "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"));
            }
        }
    }
    let alloc_lb = svc.pointer("/spec/allocateLoadBalancerNodePorts").filter(|v| !v.is_null());
    if alloc_lb.is_some() && ty != "LoadBalancer" {
        errs.push(FieldError::forbidden("spec.allocateLoadBalancerNodePorts", "may only be used when `type` is 'LoadBalancer'"));
    }
    if ty == "LoadBalancer" && alloc_lb.is_none() {
        errs.push(FieldError::required("allocateLoadBalancerNodePorts", ""));
    }
    if let Some(class) = svc.pointer("/spec/loadBalancerClass").and_then(Value::as_str) {
        if ty != "LoadBalancer" {
            errs.push(FieldError::forbidden("spec.loadBalancerClass", "may only be used when `type` is 'LoadBalancer'"));
        } else {
            for msg in is_qualified_name(class) {
                errs.push(FieldError::invalid("spec.loadBalancerClass", class, msg));
            }
        }
    }
    let etp = s(svc, "/spec/externalTrafficPolicy");
    if !externally_accessible(svc) {
        if !etp.is_empty() {
            errs.push(FieldError::invalid("spec.externalTrafficPolicy", etp, "may only be set for externally-accessible services"));
        }
    } else if etp.is_empty() {
        errs.push(FieldError::required("spec.externalTrafficPolicy", ""));
    } else if !matches!(etp, "Cluster" | "Local") {
        errs.push(FieldError::not_supported("spec.externalTrafficPolicy", etp, &["Cluster", "Local"]));
    }
    let hc = svc.pointer("/spec/healthCheckNodePort").and_then(Value::as_i64).unwrap_or(0);
    if !needs_health_check(svc) {
        if hc != 0 {
            errs.push(FieldError::invalid("spec.healthCheckNodePort", hc, "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"));
        }
    } else if hc == 0 {
        errs.push(FieldError::required("spec.healthCheckNodePort", ""));
    } else if !(1..=65535).contains(&hc) {
        errs.push(FieldError::invalid("spec.healthCheckNodePort", hc, PORT_RANGE));
    }
    match svc.pointer("/spec/internalTrafficPolicy").and_then(Value::as_str) {
        None if matches!(ty, "ClusterIP" | "NodePort" | "LoadBalancer") => {
            errs.push(FieldError::required("spec.internalTrafficPolicy", "must be specified"));
        }
        Some(itp) if !matches!(itp, "Cluster" | "Local") => errs.push(FieldError::not_supported("spec.internalTrafficPolicy", itp, &["Cluster", "Local"])),
        _ => {}
    }
    if let Some(td) = svc.pointer("/spec/trafficDistribution").and_then(Value::as_str)
        && td != "PreferClose" {
            errs.push(FieldError::not_supported("spec.trafficDistribution", td, &["PreferClose"]));
        }
    errs
}

/// `ValidateServiceUpdate`'s own checks (the caller adds `validate`).
pub fn validate_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if s(old, "/spec/type") == "ExternalName" || s(new, "/spec/type") == "ExternalName" {
        return errs;
    }
    let (old_ips, new_ips) = (strings(old, "/spec/clusterIPs"), strings(new, "/spec/clusterIPs"));
    if old_ips.first().map(String::as_str) == Some("None") && new_ips.first().map(String::as_str) == Some("None") {
        return errs;
    }
    match (old_ips.first(), new_ips.first()) {
        (Some(_), None) => errs.push(FieldError::invalid("spec.clusterIPs[0]", BadValue::string_slice(&new_ips), "primary clusterIP can not be unset")),
        (Some(o), Some(n)) if o != n => errs.push(FieldError::invalid("spec.clusterIPs[0]", BadValue::string_slice(&new_ips), "may not change once set")),
        _ => {}
    }
    if s(old, "/spec/type") == "LoadBalancer" && s(new, "/spec/type") == "LoadBalancer" {
        let (o, n) = (old.pointer("/spec/loadBalancerClass"), new.pointer("/spec/loadBalancerClass"));
        if o != n {
            errs.push(FieldError::invalid("spec.loadBalancerClass", n.and_then(Value::as_str).unwrap_or(""), "may not change once set"));
        }
    }
    errs
}

/// Before validating an update: clear fields the new type does not use when
/// the user left them as they were (upstream `dropTypeDependentFields`).
pub fn prepare_service_update(new: &mut Value, old: &Value) {
    let unchanged = |f: &str, new: &Value| new.pointer(&format!("/spec/{f}")) == old.pointer(&format!("/spec/{f}"));
    let Some(spec) = new.get("spec").cloned() else { return };
    let ty = spec.get("type").and_then(Value::as_str).unwrap_or("").to_owned();
    let remove = |new: &mut Value, f: &str| {
        if let Some(m) = new.get_mut("spec").and_then(Value::as_object_mut) {
            m.remove(f);
        }
    };
    if ty == "ExternalName" && s(old, "/spec/type") != "ExternalName" {
        for f in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            if unchanged(f, new) {
                remove(new, f);
            }
        }
    }
    let needs_node_ports = matches!(ty.as_str(), "NodePort" | "LoadBalancer");
    let had_node_ports = matches!(s(old, "/spec/type"), "NodePort" | "LoadBalancer");
    if had_node_ports && !needs_node_ports && unchanged("ports", new)
        && let Some(ports) = new.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
            for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                p.remove("nodePort");
            }
        }
    if had_node_ports && !needs_node_ports && !unchanged("ports", new) {
        // Node ports the user did not touch go with the type.
        let old_ports = old.pointer("/spec/ports").and_then(Value::as_array).cloned().unwrap_or_default();
        if let Some(ports) = new.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
            for p in ports.iter_mut() {
                let np = p.get("nodePort").cloned();
                if np.is_some() && old_ports.iter().any(|o| o.get("nodePort") == np.as_ref())
                    && let Some(m) = p.as_object_mut() {
                        m.remove("nodePort");
                    }
            }
        }
    }
    if !needs_health_check(new) && unchanged("healthCheckNodePort", new) {
        remove(new, "healthCheckNodePort");
    }
    if ty != "LoadBalancer" {
        for f in ["allocateLoadBalancerNodePorts", "loadBalancerClass"] {
            if unchanged(f, new) {
                remove(new, f);
            }
        }
    }
    if !externally_accessible(new) && unchanged("externalTrafficPolicy", new) {
        remove(new, "externalTrafficPolicy");
    }
    if ty == "ExternalName" && unchanged("internalTrafficPolicy", new) {
        remove(new, "internalTrafficPolicy");
    }
}

#[cfg(test)]
mod tests;
