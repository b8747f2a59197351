//! Service allocation at create/update time, as kube-apiserver's service
//! registry does it: ClusterIPs, NodePorts and the health-check NodePort,
//! with a transaction the caller commits after the store write or reverts.

use super::ranges::{ClusterIpAllocator, NodePortAllocator, RangeError};
use portico_api::status::{BadValue, FieldError};
use serde_json::{Value, json};
use std::net::IpAddr;

/// The allocators of one API server.
#[derive(Debug, Clone)]
pub struct Allocators {
    /// ClusterIPs.
    pub ips: ClusterIpAllocator,
    /// NodePorts.
    pub ports: NodePortAllocator,
}

/// Why a Service could not be allocated.
#[derive(Debug, Clone, PartialEq)]
pub enum AllocError {
    /// The user asked for something unavailable (422 with these causes).
    Invalid(Vec<FieldError>),
    /// The range is exhausted (500).
    Internal(String),
}

/// Allocations made (to undo on failure) and releases due (to do on success).
#[derive(Debug, Default)]
#[must_use = "commit or revert the allocation"]
pub struct AllocTxn {
    ips: Vec<IpAddr>,
    ports: Vec<i64>,
    release_ips: Vec<IpAddr>,
    release_ports: Vec<i64>,
}

impl AllocTxn {
    /// The write succeeded: perform the releases.
    pub fn commit(self, a: &mut Allocators) {
        self.release_ips.into_iter().for_each(|ip| a.ips.release(ip));
        self.release_ports.into_iter().for_each(|p| a.ports.release(p));
    }

    /// The write failed or was a dry run: undo the allocations.
    pub fn revert(self, a: &mut Allocators) {
        self.ips.into_iter().for_each(|ip| a.ips.release(ip));
        self.ports.into_iter().for_each(|p| a.ports.release(p));
    }
}

fn svc_type(svc: &Value) -> &str {
    svc.pointer("/spec/type").and_then(Value::as_str).unwrap_or("ClusterIP")
}

fn needs_cluster_ip(svc: &Value) -> bool {
    svc_type(svc) != "ExternalName"
}

fn needs_node_ports(svc: &Value) -> bool {
    match svc_type(svc) {
        "NodePort" => true,
        "LoadBalancer" => svc.pointer("/spec/allocateLoadBalancerNodePorts").and_then(Value::as_bool) != Some(false),
        _ => false,
    }
}

fn needs_health_check(svc: &Value) -> bool {
    svc_type(svc) == "LoadBalancer" && svc.pointer("/spec/externalTrafficPolicy").and_then(Value::as_str) == Some("Local")
}

fn cluster_ips(svc: &Value) -> Vec<String> {
    match svc.pointer("/spec/clusterIPs").and_then(Value::as_array) {
        Some(a) if !a.is_empty() => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => svc.pointer("/spec/clusterIP").and_then(Value::as_str).filter(|s| !s.is_empty()).map(|s| vec![s.to_owned()]).unwrap_or_default(),
    }
}

fn node_ports(svc: &Value) -> Vec<(i64, String, i64)> {
    svc.pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|ports| {
            ports
                .iter()
                .map(|p| {
                    let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP").to_owned();
                    (p.get("port").and_then(Value::as_i64).unwrap_or(0), proto, p.get("nodePort").and_then(Value::as_i64).unwrap_or(0))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn health_port(svc: &Value) -> i64 {
    svc.pointer("/spec/healthCheckNodePort").and_then(Value::as_i64).unwrap_or(0)
}

/// Copies allocated values the new object left unset from the old one
/// (upstream `patchAllocatedValues`), so `kubectl apply` and PUTs without
/// them keep the Service's IP and ports.
fn patch_allocated_values(old: &Value, new: &mut Value) {
    if needs_cluster_ip(old) && needs_cluster_ip(new) {
        for f in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            let unset = new.pointer(&format!("/spec/{f}")).is_none_or(|v| v.is_null() || v == "" || v.as_array().is_some_and(Vec::is_empty));
            if let (true, Some(v)) = (unset, old.pointer(&format!("/spec/{f}"))) {
                new["spec"][f] = v.clone();
            }
        }
    }
    if needs_node_ports(old) && needs_node_ports(new) {
        let old_ports = node_ports(old);
        if let Some(ports) = new.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
            for p in ports.iter_mut() {
                if p.get("nodePort").and_then(Value::as_i64).unwrap_or(0) != 0 {
                    continue;
                }
                let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
                let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                if let Some((_, _, np)) = old_ports.iter().find(|(op, oproto, np)| *op == port && oproto == proto && *np != 0) {
                    p["nodePort"] = json!(np);
                }
            }
        }
    }
    if needs_health_check(old) && needs_health_check(new) && health_port(new) == 0 && health_port(old) != 0 {
        new["spec"]["healthCheckNodePort"] = json!(health_port(old));
    }
}

fn internal(e: RangeError, what: &str) -> AllocError {
    AllocError::Internal(format!("failed to allocate a {what}: {e}"))
}

/// Allocates what a Service needs; `old` is the stored object on update.
pub fn allocate_service(a: &mut Allocators, old: Option<&Value>, new: &mut Value) -> Result<AllocTxn, AllocError> {
    let mut txn = AllocTxn::default();
    let result = allocate_into(a, old, new, &mut txn);
    match result {
        Ok(()) => Ok(txn),
        Err(e) => {
            txn.revert(a);
            Err(e)
        }
    }
}

fn allocate_into(a: &mut Allocators, old: Option<&Value>, new: &mut Value, txn: &mut AllocTxn) -> Result<(), AllocError> {
    if let Some(old) = old {
        patch_allocated_values(old, new);
    }
    let old_ips: Vec<IpAddr> = old.filter(|o| needs_cluster_ip(o)).map(cluster_ips).unwrap_or_default().iter().filter_map(|s| s.parse().ok()).collect();

    // Cluster IPs.
    if needs_cluster_ip(new) {
        let wanted = cluster_ips(new);
        match wanted.first().map(String::as_str) {
            Some("None") => {
                new["spec"]["clusterIP"] = json!("None");
                new["spec"]["clusterIPs"] = json!(["None"]);
            }
            None => {
                let ip = a.ips.allocate_next().map_err(|e| internal(e, "serviceIP"))?;
                txn.ips.push(ip);
                new["spec"]["clusterIP"] = json!(ip.to_string());
                new["spec"]["clusterIPs"] = json!([ip.to_string()]);
            }
            Some(s) => {
                let ip: IpAddr = s.parse().map_err(|_| {
                    AllocError::Invalid(vec![FieldError::invalid("spec.clusterIPs[0]", s, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")])
                })?;
                if !old_ips.contains(&ip) {
                    a.ips.allocate(ip).map_err(|e| {
                        AllocError::Invalid(vec![FieldError::invalid(
                            "spec.clusterIPs",
                            BadValue::string_slice(&wanted),
                            format!("failed to allocate IP {ip}: {e}"),
                        )])
                    })?;
                    txn.ips.push(ip);
                }
                new["spec"]["clusterIP"] = json!(s);
                new["spec"]["clusterIPs"] = json!(wanted);
            }
        }
        let family = if a.ips.cidr().addr().is_ipv4() { "IPv4" } else { "IPv6" };
        if new.pointer("/spec/ipFamilies").and_then(Value::as_array).is_none_or(Vec::is_empty) {
            new["spec"]["ipFamilies"] = json!([family]);
        }
        if new.pointer("/spec/ipFamilyPolicy").and_then(Value::as_str).is_none_or(str::is_empty) {
            new["spec"]["ipFamilyPolicy"] = json!("SingleStack");
        }
    }
    let keep_ips: Vec<IpAddr> = if needs_cluster_ip(new) { cluster_ips(new).iter().filter_map(|s| s.parse().ok()).collect() } else { Vec::new() };
    txn.release_ips.extend(old_ips.into_iter().filter(|ip| !keep_ips.contains(ip)));

    // Node ports.
    let old_node_ports: Vec<i64> = old.filter(|o| needs_node_ports(o)).map(node_ports).unwrap_or_default().into_iter().map(|(_, _, np)| np).filter(|np| *np != 0).collect();
    let mut kept: Vec<i64> = Vec::new();
    if needs_node_ports(new) {
        let mut errs = Vec::new();
        // (nodePort, protocol) pairs already handled in this Service.
        let mut seen: Vec<(i64, String)> = Vec::new();
        let specs = node_ports(new);
        for (i, (_, proto, np)) in specs.iter().enumerate() {
            let path = format!("spec.ports[{i}].nodePort");
            if *np == 0 {
                continue;
            }
            if seen.iter().any(|(p, _)| p == np) || old_node_ports.contains(np) {
                // The same port with another protocol in this Service, or kept from before.
                seen.push((*np, proto.clone()));
                kept.push(*np);
                continue;
            }
            match a.ports.allocate(*np) {
                Ok(()) => {
                    txn.ports.push(*np);
                    kept.push(*np);
                    seen.push((*np, proto.clone()));
                }
                Err(e) => errs.push(FieldError::invalid(path, *np, e.to_string())),
            }
        }
        if !errs.is_empty() {
            return Err(AllocError::Invalid(errs));
        }
        for (i, (_, proto, np)) in specs.iter().enumerate() {
            if *np != 0 {
                continue;
            }
            let port = a.ports.allocate_next().map_err(|e| internal(e, "nodePort"))?;
            txn.ports.push(port);
            kept.push(port);
            seen.push((port, proto.clone()));
            new["spec"]["ports"][i]["nodePort"] = json!(port);
        }
    }
    // Health check node port.
    let old_hc = old.filter(|o| needs_health_check(o)).map(health_port).unwrap_or(0);
    if needs_health_check(new) {
        let hc = health_port(new);
        if hc == 0 {
            let port = a.ports.allocate_next().map_err(|e| internal(e, "healthCheck nodePort"))?;
            txn.ports.push(port);
            kept.push(port);
            new["spec"]["healthCheckNodePort"] = json!(port);
        } else if hc != old_hc {
            a.ports.allocate(hc).map_err(|e| AllocError::Invalid(vec![FieldError::invalid("spec.healthCheckNodePort", hc, e.to_string())]))?;
            txn.ports.push(hc);
            kept.push(hc);
        } else {
            kept.push(hc);
        }
    }
    let mut old_all = old_node_ports;
    if old_hc != 0 {
        old_all.push(old_hc);
    }
    txn.release_ports.extend(old_all.into_iter().filter(|p| !kept.contains(p)));
    Ok(())
}

/// Releases everything a deleted Service held.
pub fn release_service(a: &mut Allocators, svc: &Value) {
    if needs_cluster_ip(svc) {
        cluster_ips(svc).iter().filter_map(|s| s.parse().ok()).for_each(|ip| a.ips.release(ip));
    }
    if needs_node_ports(svc) {
        node_ports(svc).into_iter().filter(|(_, _, np)| *np != 0).for_each(|(_, _, np)| a.ports.release(np));
    }
    if needs_health_check(svc) && health_port(svc) != 0 {
        a.ports.release(health_port(svc));
    }
}

/// Rebuilds the allocators from the stored Services at start-up; problems
/// (duplicates, out-of-range values) are reported, not fatal.
pub fn repair(cidr: ipnet::IpNet, ports: (u16, u16), services: &[Value]) -> (Allocators, Vec<String>) {
    let mut a = Allocators { ips: ClusterIpAllocator::new(cidr), ports: NodePortAllocator::new(ports.0, ports.1) };
    let mut problems = Vec::new();
    for svc in services {
        let name = format!(
            "{}/{}",
            svc.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or(""),
            svc.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("")
        );
        if needs_cluster_ip(svc) {
            for ip in cluster_ips(svc).iter().filter(|s| s.as_str() != "None") {
                match ip.parse::<IpAddr>() {
                    Ok(ip) => {
                        if let Err(e) = a.ips.allocate(ip) {
                            problems.push(format!("service {name}: cluster IP {ip}: {e}"));
                        }
                    }
                    Err(_) => problems.push(format!("service {name}: cluster IP {ip:?} is not an IP")),
                }
            }
        }
        let mut own: Vec<i64> = Vec::new();
        let mut claim = |port: i64, what: &str, a: &mut Allocators, problems: &mut Vec<String>| {
            if own.contains(&port) {
                return;
            }
            own.push(port);
            if let Err(e) = a.ports.allocate(port) {
                problems.push(format!("service {name}: {what} {port}: {e}"));
            }
        };
        if needs_node_ports(svc) {
            for (_, _, np) in node_ports(svc).into_iter().filter(|(_, _, np)| *np != 0) {
                claim(np, "node port", &mut a, &mut problems);
            }
        }
        if needs_health_check(svc) && health_port(svc) != 0 {
            claim(health_port(svc), "health check node port", &mut a, &mut problems);
        }
    }
    (a, problems)
}

#[cfg(test)]
mod tests;
