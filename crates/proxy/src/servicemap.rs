//! The ServiceMap: what the data plane must do for each Service port, derived
//! purely from Services and EndpointSlices (and this node's name).

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// Label that hands a Service to another proxy.
pub const SERVICE_PROXY_NAME: &str = "service.kubernetes.io/service-proxy-name";
/// Label that marks a Service headless for proxies.
pub const HEADLESS: &str = "service.kubernetes.io/headless";
/// Annotation choosing the endpoint-selection algorithm.
pub const LB_ALGORITHM: &str = "portico.dev/lb-algorithm";

/// How an endpoint is chosen for a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Algorithm {
    /// `numgen random` (kube-proxy's behaviour).
    Random,
    /// `numgen inc`: round robin.
    RoundRobin,
    /// `jhash ip saddr`: source hashing.
    SourceHash,
}

/// One backend.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    /// Address.
    pub ip: Ipv4Addr,
    /// Target port.
    pub port: u16,
    /// On this node.
    pub local: bool,
}

/// Everything the data plane needs for one Service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// `namespace/name/protocol/portName` (lower-case protocol), unique.
    pub key: String,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: &'static str,
    /// The ClusterIP (none for a Service that only has external addresses).
    pub cluster_ip: Option<Ipv4Addr>,
    /// Service port.
    pub port: u16,
    /// NodePort, if allocated.
    pub node_port: Option<u16>,
    /// externalIPs plus LoadBalancer ingress IPs.
    pub external_ips: Vec<Ipv4Addr>,
    /// ClientIP affinity timeout in seconds.
    pub affinity: Option<u32>,
    /// Selection algorithm.
    pub algorithm: Algorithm,
    /// internalTrafficPolicy Local.
    pub internal_local: bool,
    /// externalTrafficPolicy Local.
    pub external_local: bool,
    /// Usable endpoints cluster-wide (ready, or terminating-but-serving as the fallback).
    pub endpoints: Vec<Endpoint>,
    /// Usable endpoints on this node (same fallback, applied to local ones).
    pub local_endpoints: Vec<Endpoint>,
}

impl ServicePort {
    /// Endpoints for traffic to the ClusterIP.
    pub fn internal(&self) -> &[Endpoint] {
        if self.internal_local { &self.local_endpoints } else { &self.endpoints }
    }

    /// Endpoints for NodePort, externalIP and LoadBalancer traffic.
    pub fn external(&self) -> &[Endpoint] {
        if self.external_local { &self.local_endpoints } else { &self.endpoints }
    }

    /// Whether the Service receives traffic from outside (NodePort, external or LB IPs).
    pub fn has_external(&self) -> bool {
        self.node_port.is_some() || !self.external_ips.is_empty()
    }
}

/// The Service ports by key.
pub type ServiceMap = BTreeMap<String, ServicePort>;

struct Candidate {
    ep: Endpoint,
    ready: bool,
    serving: bool,
    terminating: bool,
}

/// Ready endpoints, or if there are none, the serving terminating ones (ProxyTerminatingEndpoints).
fn usable(cands: &[&Candidate]) -> Vec<Endpoint> {
    let ready: Vec<Endpoint> = cands.iter().filter(|c| c.ready && !c.terminating).map(|c| c.ep.clone()).collect();
    let mut out = if ready.is_empty() { cands.iter().filter(|c| c.serving && c.terminating).map(|c| c.ep.clone()).collect() } else { ready };
    out.sort();
    out.dedup();
    out
}

/// Builds the ServiceMap.
pub fn build(services: &[Service], slices: &[EndpointSlice], node_name: &str) -> ServiceMap {
    let mut by_service: BTreeMap<(String, String), Vec<&EndpointSlice>> = BTreeMap::new();
    for s in slices {
        if s.address_type != "IPv4" {
            continue;
        }
        let Some(svc) = s.metadata.labels.as_ref().and_then(|l| l.get("kubernetes.io/service-name")) else { continue };
        by_service.entry((s.metadata.namespace.clone().unwrap_or_default(), svc.clone())).or_default().push(s);
    }
    let mut out = ServiceMap::new();
    for svc in services {
        let labels = svc.metadata.labels.clone().unwrap_or_default();
        if labels.contains_key(SERVICE_PROXY_NAME) || labels.contains_key(HEADLESS) {
            continue;
        }
        let Some(spec) = svc.spec.as_ref() else { continue };
        if spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        let cluster_ip = spec.cluster_ip.as_deref().and_then(|ip| ip.parse::<Ipv4Addr>().ok());
        if spec.cluster_ip.as_deref() == Some("None") {
            continue;
        }
        let ns = svc.metadata.namespace.clone().unwrap_or_default();
        let name = svc.metadata.name.clone().unwrap_or_default();
        let mut external_ips: Vec<Ipv4Addr> = spec.external_ips.iter().flatten().filter_map(|ip| ip.parse().ok()).collect();
        if spec.type_.as_deref() == Some("LoadBalancer") {
            external_ips.extend(
                svc.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|lb| lb.ingress.as_ref()).into_iter().flatten().filter_map(|i| i.ip.as_deref()?.parse::<Ipv4Addr>().ok()),
            );
        }
        external_ips.sort();
        external_ips.dedup();
        let affinity = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config.as_ref().and_then(|c| c.client_ip.as_ref()).and_then(|c| c.timeout_seconds).unwrap_or(10800).clamp(1, 86400) as u32
        });
        let algorithm = match svc.metadata.annotations.as_ref().and_then(|a| a.get(LB_ALGORITHM)).map(String::as_str) {
            Some("rr") => Algorithm::RoundRobin,
            Some("source-hash") => Algorithm::SourceHash,
            _ => Algorithm::Random,
        };
        let slices = by_service.get(&(ns.clone(), name.clone())).cloned().unwrap_or_default();
        for p in spec.ports.iter().flatten() {
            let protocol = match p.protocol.as_deref().unwrap_or("TCP") {
                "UDP" => "udp",
                "SCTP" => "sctp",
                _ => "tcp",
            };
            let Ok(port) = u16::try_from(p.port) else { continue };
            let pname = p.name.clone().unwrap_or_default();
            let mut cands = Vec::new();
            for s in &slices {
                let Some(sp) = s.ports.iter().flatten().find(|sp| sp.name.clone().unwrap_or_default() == pname && sp.protocol.as_deref().unwrap_or("TCP").eq_ignore_ascii_case(protocol)) else {
                    continue;
                };
                let Some(target) = sp.port.and_then(|x| u16::try_from(x).ok()) else { continue };
                for e in &s.endpoints {
                    let cond = e.conditions.clone().unwrap_or_default();
                    let ready = cond.ready.unwrap_or(true);
                    let local = e.node_name.as_deref() == Some(node_name);
                    for a in &e.addresses {
                        let Ok(ip) = a.parse::<Ipv4Addr>() else { continue };
                        cands.push(Candidate { ep: Endpoint { ip, port: target, local }, ready, serving: cond.serving.unwrap_or(ready), terminating: cond.terminating.unwrap_or(false) });
                    }
                }
            }
            let all: Vec<&Candidate> = cands.iter().collect();
            let local: Vec<&Candidate> = cands.iter().filter(|c| c.ep.local).collect();
            let key = format!("{ns}/{name}/{protocol}/{pname}");
            out.insert(
                key.clone(),
                ServicePort {
                    key,
                    protocol,
                    cluster_ip,
                    port,
                    node_port: p.node_port.and_then(|n| u16::try_from(n).ok()).filter(|n| *n > 0),
                    external_ips: external_ips.clone(),
                    affinity,
                    algorithm,
                    internal_local: spec.internal_traffic_policy.as_deref() == Some("Local"),
                    external_local: spec.external_traffic_policy.as_deref() == Some("Local"),
                    endpoints: usable(&all),
                    local_endpoints: usable(&local),
                },
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(v: serde_json::Value) -> Service {
        serde_json::from_value(v).expect("svc")
    }
    fn slice(v: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(v).expect("slice")
    }

    fn web() -> Service {
        svc(json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"clusterIP": "10.96.0.5", "type": "NodePort",
            "ports": [{"name": "http", "port": 80, "nodePort": 30380, "protocol": "TCP"}]}}))
    }

    #[test]
    fn merges_slices_by_port_name_and_keeps_ready_endpoints() {
        let slices = vec![
            slice(json!({"metadata": {"name": "web-a", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}}, "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                "endpoints": [{"addresses": ["10.244.0.2"], "conditions": {"ready": true}, "nodeName": "n1"},
                              {"addresses": ["10.244.0.9"], "conditions": {"ready": false}, "nodeName": "n1"}]})),
            slice(json!({"metadata": {"name": "web-b", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}}, "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                "endpoints": [{"addresses": ["10.244.1.3"], "nodeName": "n2"}]})),
        ];
        let m = build(&[web()], &slices, "n1");
        let p = &m["default/web/tcp/http"];
        assert_eq!(p.cluster_ip, Some(Ipv4Addr::new(10, 96, 0, 5)));
        assert_eq!(p.node_port, Some(30380));
        let ips: Vec<String> = p.endpoints.iter().map(|e| format!("{}:{}", e.ip, e.port)).collect();
        assert_eq!(ips, ["10.244.0.2:8080", "10.244.1.3:8080"]);
        assert_eq!(p.local_endpoints.len(), 1);
    }

    #[test]
    fn terminating_serving_endpoints_are_the_fallback() {
        let slices = vec![slice(json!({"metadata": {"name": "web-a", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}}, "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [{"addresses": ["10.244.0.2"], "conditions": {"ready": false, "serving": true, "terminating": true}},
                          {"addresses": ["10.244.0.3"], "conditions": {"ready": false, "serving": false, "terminating": true}}]}))];
        let m = build(&[web()], &slices, "n1");
        assert_eq!(m["default/web/tcp/http"].endpoints.iter().map(|e| e.ip.to_string()).collect::<Vec<_>>(), ["10.244.0.2"]);
    }

    #[test]
    fn skips_headless_external_name_and_other_proxies() {
        let services = vec![
            svc(json!({"metadata": {"name": "h", "namespace": "d"}, "spec": {"clusterIP": "None", "ports": [{"port": 80}]}})),
            svc(json!({"metadata": {"name": "x", "namespace": "d"}, "spec": {"type": "ExternalName", "externalName": "example.com"}})),
            svc(json!({"metadata": {"name": "o", "namespace": "d", "labels": {"service.kubernetes.io/service-proxy-name": "other"}}, "spec": {"clusterIP": "10.96.0.9", "ports": [{"port": 80}]}})),
        ];
        assert!(build(&services, &[], "n1").is_empty());
    }

    #[test]
    fn affinity_algorithm_policies_and_lb_ips() {
        let s = svc(json!({"metadata": {"name": "lb", "namespace": "d", "annotations": {"portico.dev/lb-algorithm": "rr"}},
            "spec": {"clusterIP": "10.96.0.7", "type": "LoadBalancer", "externalIPs": ["192.0.2.9"], "sessionAffinity": "ClientIP",
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 5}}, "externalTrafficPolicy": "Local", "ports": [{"port": 53, "protocol": "UDP"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}}));
        let m = build(&[s], &[], "n1");
        let p = &m["d/lb/udp/"];
        assert_eq!((p.affinity, p.algorithm, p.external_local, p.protocol), (Some(5), Algorithm::RoundRobin, true, "udp"));
        assert_eq!(p.external_ips, [Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 9)]);
    }
}
