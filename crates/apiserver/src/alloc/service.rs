//! Service allocation at create/update time, as kube-apiserver's service
//! registry does it (`pkg/registry/core/service/storage/alloc.go`):
//! ClusterIPs, NodePorts and the health-check NodePort, with a transaction
//! the caller commits after the store write or reverts.

use super::families::{init_ip_family_fields, matching_prefer_dual_stack, normalize_cluster_ips, patch_cluster_ips};
use super::ranges::{NodePortAllocator, RangeError, ServiceIpRanges};
use super::spec::{
    PortSpec, health_port, is_headless, needs_cluster_ip, needs_health_check, needs_node_port, node_port_numbers, ports, set_node_port,
    set_spec, should_allocate_node_ports, spec_str, spec_strings, svc_type,
};
use portico_api::status::{BadValue, FieldError};
use serde_json::{Value, json};
use std::net::IpAddr;

/// The allocators of one API server.
#[derive(Debug, Clone)]
pub struct Allocators {
    /// ClusterIPs, one range per configured family.
    pub ips: ServiceIpRanges,
    /// NodePorts.
    pub ports: NodePortAllocator,
}

impl Allocators {
    /// Empty allocators over the given ranges (service CIDRs primary first).
    pub fn new(cidrs: &[ipnet::IpNet], node_ports: std::ops::RangeInclusive<u16>) -> Self {
        Self { ips: ServiceIpRanges::new(cidrs), ports: NodePortAllocator::new(node_ports) }
    }
}

/// Why a Service could not be allocated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AllocError {
    /// The user asked for something unavailable (422 with these causes).
    #[error("{}", portico_api::status::aggregate_message(.0))]
    Invalid(Vec<FieldError>),
    /// A range is exhausted or the request is inconsistent (500).
    #[error("{0}")]
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

    /// The write failed or was a dry run: undo the allocations, keep
    /// what would have been released.
    pub fn revert(self, a: &mut Allocators) {
        self.ips.into_iter().for_each(|ip| a.ips.release(ip));
        self.ports.into_iter().for_each(|p| a.ports.release(p));
    }

    /// Addresses allocated by this transaction.
    pub fn allocated_ips(&self) -> &[IpAddr] {
        &self.ips
    }

    /// Ports allocated by this transaction.
    pub fn allocated_ports(&self) -> &[i64] {
        &self.ports
    }
}

/// Allocates what a Service needs, filling in `spec.clusterIP(s)`,
/// `ipFamilies`, `ipFamilyPolicy`, `ports[*].nodePort` and
/// `healthCheckNodePort`; `old` is the stored object on update. On error
/// nothing stays allocated.
pub fn allocate_service(a: &mut Allocators, old: Option<&Value>, new: &mut Value) -> Result<AllocTxn, AllocError> {
    let mut txn = AllocTxn::default();
    let result = match old {
        None => allocate_create(a, new, &mut txn),
        Some(old) => allocate_update(a, old, new, &mut txn),
    };
    match result {
        Ok(()) => Ok(txn),
        Err(e) => {
            txn.revert(a);
            Err(e)
        }
    }
}

fn allocate_create(a: &mut Allocators, new: &mut Value, txn: &mut AllocTxn) -> Result<(), AllocError> {
    normalize_cluster_ips(None, new);
    init_ip_family_fields(&a.ips.families(), None, new)?;
    alloc_cluster_ips(a, new, txn)?;
    if needs_node_port(new) {
        init_node_ports(a, new, txn)?;
    }
    if needs_health_check(new) {
        alloc_health_check_port(a, new, txn)?;
    }
    Ok(())
}

fn allocate_update(a: &mut Allocators, old: &Value, new: &mut Value, txn: &mut AllocTxn) -> Result<(), AllocError> {
    patch_allocated_values(old, new);
    normalize_cluster_ips(Some(old), new);
    init_ip_family_fields(&a.ips.families(), Some(old), new)?;
    update_cluster_ips(a, old, new, txn)?;
    // Node ports: released when the type no longer has them, updated when it does.
    if needs_node_port(old) && matches!(svc_type(new), "ClusterIP" | "ExternalName") {
        txn.release_ports.extend(node_port_numbers(old));
    }
    if needs_node_port(new) {
        update_node_ports(a, old, new, txn)?;
    }
    match (needs_health_check(old), needs_health_check(new)) {
        (false, true) => alloc_health_check_port(a, new, txn)?,
        (true, false) if health_port(old) != 0 => txn.release_ports.push(health_port(old)),
        _ => {}
    }
    Ok(())
}

/// Copies allocated values an update left unset from the stored object
/// (upstream `patchAllocatedValues`), so PUTs and applies without them keep
/// the Service's IP and ports. Node ports are matched by port name.
fn patch_allocated_values(old: &Value, new: &mut Value) {
    patch_cluster_ips(old, new);
    if needs_node_port(old) && needs_node_port(new) {
        let (old_ports, new_ports) = (ports(old), ports(new));
        let used: Vec<i64> = node_port_numbers(old).into_iter().filter(|np| new_ports.iter().any(|p| p.node_port == *np)).collect();
        for (i, p) in new_ports.iter().enumerate() {
            if p.node_port != 0 {
                continue;
            }
            // Upstream maps by name; the last old port of a name wins.
            let old_np = old_ports.iter().rev().find(|o| o.name == p.name).map_or(0, |o| o.node_port);
            if old_np != 0 && !used.contains(&old_np) {
                set_node_port(new, i, old_np);
            }
        }
    }
    if needs_health_check(old) && needs_health_check(new) && health_port(new) == 0 && health_port(old) != 0 {
        set_spec(new, "healthCheckNodePort", json!(health_port(old)));
    }
}

/// Upstream `allocIPs` for one family: `ip` when given, else the next free one.
fn alloc_ip(a: &mut Allocators, new: &Value, family: &str, ip: &str, txn: &mut AllocTxn) -> Result<IpAddr, AllocError> {
    if ip.is_empty() {
        let got = a
            .ips
            .allocate_next(family)
            .ok_or_else(|| AllocError::Internal(format!("can not allocate IP for family {family}; cluster is not configured for that")))?
            .map_err(|e| AllocError::Internal(format!("failed to allocate a serviceIP: {e}")))?;
        txn.ips.push(got);
        return Ok(got);
    }
    let parsed: IpAddr = ip.parse().map_err(|_| AllocError::Internal(format!("failed to parse service IP {}", portico_api::status::go_quote(ip))))?;
    a.ips.allocate(parsed).map_err(|e| {
        AllocError::Invalid(vec![FieldError::invalid(
            "spec.clusterIPs",
            BadValue::string_slice(&spec_strings(new, "clusterIPs")),
            format!("failed to allocate IP {ip}: {e}"),
        )])
    })?;
    txn.ips.push(parsed);
    Ok(parsed)
}

/// Upstream `allocClusterIPs`: one address per family in `ipFamilies`
/// (the ones given in `clusterIPs` honoured), in that order.
fn alloc_cluster_ips(a: &mut Allocators, new: &mut Value, txn: &mut AllocTxn) -> Result<(), AllocError> {
    if !needs_cluster_ip(new) || is_headless(new) {
        return Ok(());
    }
    let mut ips = spec_strings(new, "clusterIPs");
    for (i, family) in spec_strings(new, "ipFamilies").iter().enumerate() {
        let wanted = ips.get(i).cloned().unwrap_or_default();
        let ip = alloc_ip(a, new, family, &wanted, txn)?.to_string();
        match ips.get_mut(i) {
            Some(slot) => *slot = ip,
            None => ips.push(ip),
        }
    }
    let Some(first) = ips.first().cloned() else { return Ok(()) };
    set_spec(new, "clusterIPs", json!(ips));
    set_spec(new, "clusterIP", json!(first));
    Ok(())
}

fn parsed_ips(ips: &[String]) -> Vec<IpAddr> {
    ips.iter().filter_map(|s| s.parse().ok()).collect()
}

/// Upstream `handleClusterIPsForUpdatedService`: type changes to and from
/// ExternalName, upgrades to dual-stack (the secondary IP allocated) and
/// downgrades (the secondary IP released).
fn update_cluster_ips(a: &mut Allocators, old: &Value, new: &mut Value, txn: &mut AllocTxn) -> Result<(), AllocError> {
    if matching_prefer_dual_stack(Some(old), new) {
        return Ok(());
    }
    if svc_type(old) == "ExternalName" && svc_type(new) != "ExternalName" {
        return alloc_cluster_ips(a, new, txn);
    }
    if is_headless(old) {
        return Ok(());
    }
    let old_ips = spec_strings(old, "clusterIPs");
    if svc_type(old) != "ExternalName" && svc_type(new) == "ExternalName" {
        txn.release_ips.extend(parsed_ips(&old_ips));
        return Ok(());
    }
    let (old_families, families) = (spec_strings(old, "ipFamilies"), spec_strings(new, "ipFamilies"));
    // Upgraded to dual-stack: allocate the secondary family's address.
    if old_families.len() == 1 && families.len() == 2 {
        let mut ips = spec_strings(new, "clusterIPs");
        if ips.len() < 2 {
            ips.push(String::new());
        }
        let ip = alloc_ip(a, new, &families[1], &ips[1].clone(), txn)?;
        ips[1] = ip.to_string();
        set_spec(new, "clusterIPs", json!(ips));
        return Ok(());
    }
    if old_families.len() == 2 && families.len() == 1 && old_ips.len() > 1 {
        txn.release_ips.extend(parsed_ips(&old_ips[1..]));
    }
    Ok(())
}

fn port_err(i: usize, np: i64, e: &RangeError) -> AllocError {
    AllocError::Invalid(vec![FieldError::invalid(format!("spec.ports[{i}].nodePort"), np, e.to_string())])
}

fn next_port(a: &mut Allocators, txn: &mut AllocTxn) -> Result<i64, AllocError> {
    let np = a.ports.allocate_next().map_err(|e| AllocError::Internal(format!("failed to allocate a nodePort: {e}")))?;
    txn.ports.push(np);
    Ok(np)
}

/// Upstream `initNodePorts`: ports with the same port number (say 53/TCP
/// and 53/UDP) share one node port; user-chosen node ports are honoured
/// even when `allocateLoadBalancerNodePorts` is false.
fn init_node_ports(a: &mut Allocators, new: &mut Value, txn: &mut AllocTxn) -> Result<(), AllocError> {
    let should = should_allocate_node_ports(new);
    let specs: Vec<PortSpec> = ports(new);
    let mut by_port: Vec<(i64, i64)> = Vec::new();
    for (i, p) in specs.iter().enumerate() {
        if p.node_port == 0 && !should {
            continue;
        }
        match by_port.iter().find(|(port, _)| *port == p.port).map(|(_, np)| *np) {
            None => {
                let requested = specs.iter().find(|q| q.port == p.port && q.node_port != 0).map_or(0, |q| q.node_port);
                let np = if requested != 0 {
                    a.ports.allocate(requested).map_err(|e| port_err(i, requested, &e))?;
                    txn.ports.push(requested);
                    requested
                } else {
                    next_port(a, txn)?
                };
                set_node_port(new, i, np);
                by_port.push((p.port, np));
            }
            Some(np) if p.node_port == 0 => set_node_port(new, i, np),
            Some(np) if p.node_port != np => {
                a.ports.allocate(p.node_port).map_err(|e| port_err(i, p.node_port, &e))?;
                txn.ports.push(p.node_port);
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Upstream `updateNodePorts`: node ports the Service held are kept, new
/// ones allocated, and the ones it no longer uses released on commit.
fn update_node_ports(a: &mut Allocators, old: &Value, new: &mut Value, txn: &mut AllocTxn) -> Result<(), AllocError> {
    let should = should_allocate_node_ports(new);
    let old_numbers = node_port_numbers(old);
    let mut allocated_here: Vec<i64> = Vec::new();
    let mut seen: Vec<(String, i64)> = Vec::new();
    for (i, p) in ports(new).into_iter().enumerate() {
        if p.node_port == 0 && !should {
            continue;
        }
        let np = if p.node_port != 0 {
            if !old_numbers.contains(&p.node_port) && !allocated_here.contains(&p.node_port) {
                a.ports.allocate(p.node_port).map_err(|e| port_err(i, p.node_port, &e))?;
                txn.ports.push(p.node_port);
                allocated_here.push(p.node_port);
            }
            p.node_port
        } else {
            let np = next_port(a, txn)?;
            set_node_port(new, i, np);
            np
        };
        if seen.iter().any(|(proto, n)| *proto == p.protocol && *n == np) {
            return Err(AllocError::Internal(format!("duplicate nodePort: {{{} {np}}}", p.protocol)));
        }
        seen.push((p.protocol, np));
    }
    let new_numbers = node_port_numbers(new);
    txn.release_ports.extend(old_numbers.into_iter().filter(|np| !new_numbers.contains(np)));
    Ok(())
}

/// Upstream `allocHealthCheckNodePort` (its errors are internal errors).
fn alloc_health_check_port(a: &mut Allocators, new: &mut Value, txn: &mut AllocTxn) -> Result<(), AllocError> {
    let hc = health_port(new);
    if hc != 0 {
        a.ports.allocate(hc).map_err(|e| AllocError::Internal(format!("failed to allocate requested HealthCheck NodePort {hc}: {e}")))?;
        txn.ports.push(hc);
    } else {
        let np = a.ports.allocate_next().map_err(|e| AllocError::Internal(format!("failed to allocate a HealthCheck NodePort 0: {e}")))?;
        txn.ports.push(np);
        set_spec(new, "healthCheckNodePort", json!(np));
    }
    Ok(())
}

/// Releases everything a deleted Service held (upstream
/// `releaseAllocatedResources`).
pub fn release_service(a: &mut Allocators, svc: &Value) {
    if needs_cluster_ip(svc) && !is_headless(svc) {
        let ips = spec_strings(svc, "clusterIPs");
        let ips = if ips.is_empty() { vec![spec_str(svc, "clusterIP").to_owned()] } else { ips };
        parsed_ips(&ips).into_iter().for_each(|ip| a.ips.release(ip));
    }
    node_port_numbers(svc).into_iter().for_each(|np| a.ports.release(np));
    if needs_health_check(svc) && health_port(svc) > 0 {
        a.ports.release(health_port(svc));
    }
}

#[cfg(test)]
mod tests;
