//! Rebuilding the allocators from the stored Services at start-up, as
//! upstream's repair controllers do, with their problem messages.

use super::ranges::RangeError;
use super::service::Allocators;
use super::spec::{health_port, is_headless, needs_cluster_ip, node_port_numbers, spec_str, spec_strings};
use serde_json::Value;
use std::net::IpAddr;

fn name(svc: &Value) -> String {
    format!(
        "{}/{}",
        svc.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or(""),
        svc.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("")
    )
}

/// Rebuilds the allocators from the stored Services; problems (addresses
/// or ports held twice or outside the ranges) are reported, not fatal.
pub fn repair(cidrs: &[ipnet::IpNet], node_ports: (u16, u16), services: &[Value]) -> (Allocators, Vec<String>) {
    let mut a = Allocators::new(cidrs, node_ports.0..=node_ports.1);
    let mut problems = Vec::new();
    for svc in services {
        let name = name(svc);
        if needs_cluster_ip(svc) && !is_headless(svc) && !spec_str(svc, "clusterIP").is_empty() {
            for ip in spec_strings(svc, "clusterIPs") {
                let Ok(parsed) = ip.parse::<IpAddr>() else {
                    problems.push(format!("the cluster IP {ip} for service {name} is not a valid IP; please recreate"));
                    continue;
                };
                // Problems name the range of the address's family (the primary one when it has none).
                let cidr = a.ips.range(super::families::family_of(&ip)).or(a.ips.primary()).map(|r| r.cidr().to_string()).unwrap_or_default();
                match a.ips.allocate(parsed) {
                    Ok(()) => {}
                    Err(RangeError::Allocated(_)) => {
                        problems.push(format!("the cluster IP {ip} for service {name} was assigned to multiple services; please recreate"));
                    }
                    Err(RangeError::NotInRange(_)) => {
                        problems.push(format!("the cluster IP {ip} for service {name} is not within the service CIDR {cidr}; please recreate"));
                    }
                    Err(RangeError::Full) => {
                        problems.push(format!("the service CIDR {cidr} is full; you must widen the CIDR in order to create new services"));
                    }
                }
            }
        }
        let mut own = node_port_numbers(svc);
        if health_port(svc) != 0 {
            own.push(health_port(svc));
        }
        own.sort_unstable();
        own.dedup();
        for port in own {
            match a.ports.allocate(port) {
                Ok(()) => {}
                Err(RangeError::Allocated(_)) => {
                    problems.push(format!("the node port {port} for service {name} was assigned to multiple services; please recreate"));
                }
                Err(RangeError::NotInRange(_)) => problems.push(format!(
                    "the node port {port} for service {name} is not within the port range {}; please recreate",
                    a.ports.range()
                )),
                Err(RangeError::Full) => problems.push(format!(
                    "the port range {} is full; you must widen the port range in order to create new services",
                    a.ports.range()
                )),
            }
        }
    }
    (a, problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(name: &str, spec: Value) -> Value {
        json!({"metadata": {"name": name, "namespace": "default"}, "spec": spec})
    }

    #[test]
    fn rebuilds_and_reports_upstream_problems() {
        let services = [
            svc("dns", json!({"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "type": "NodePort",
                "ports": [{"port": 53, "protocol": "UDP", "nodePort": 30053}, {"port": 53, "protocol": "TCP", "nodePort": 30053}]})),
            svc("twin", json!({"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "type": "NodePort", "ports": [{"port": 80, "nodePort": 30053}]})),
            svc("far", json!({"clusterIP": "192.168.0.1", "clusterIPs": ["192.168.0.1"], "type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]})),
            svc("lb", json!({"clusterIP": "10.96.0.11", "clusterIPs": ["10.96.0.11"], "type": "LoadBalancer", "externalTrafficPolicy": "Local",
                "healthCheckNodePort": 31000, "ports": [{"port": 80, "nodePort": 31001}]})),
            svc("headless", json!({"clusterIP": "None", "clusterIPs": ["None"]})),
        ];
        let (a, problems) = repair(&["10.96.0.0/12".parse().expect("cidr")], (30000, 32767), &services);
        assert!(a.ips.is_allocated("10.96.0.10".parse().expect("ip")));
        assert!(a.ips.is_allocated("10.96.0.11".parse().expect("ip")));
        assert_eq!(a.ips.used(), 2);
        assert!([30053, 31000, 31001].iter().all(|p| a.ports.is_allocated(*p)));
        assert_eq!(a.ports.used(), 3);
        assert_eq!(
            problems,
            [
                "the cluster IP 10.96.0.10 for service default/twin was assigned to multiple services; please recreate",
                "the node port 30053 for service default/twin was assigned to multiple services; please recreate",
                "the cluster IP 192.168.0.1 for service default/far is not within the service CIDR 10.96.0.0/12; please recreate",
                "the node port 80 for service default/far is not within the port range 30000-32767; please recreate",
            ]
        );
    }
}
