//! The ServiceMap: what the data plane must do for each Service port of one
//! IP family, derived purely from Services and EndpointSlices (and this
//! node's name). A dual-stack Service appears in both families' maps.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Label that hands a Service to another proxy.
pub const SERVICE_PROXY_NAME: &str = "service.kubernetes.io/service-proxy-name";
/// Label that marks a Service headless for proxies.
pub const HEADLESS: &str = "service.kubernetes.io/headless";
/// Annotation choosing the endpoint-selection algorithm.
pub const LB_ALGORITHM: &str = "portico.dev/lb-algorithm";

/// An IP family: the proxy programs one nftables table per family, as kube-proxy does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// IPv4 (`table ip`).
    V4,
    /// IPv6 (`table ip6`).
    V6,
}

impl Family {
    /// Both families, IPv4 first.
    pub const BOTH: [Family; 2] = [Family::V4, Family::V6];

    /// The family of an address.
    pub fn of(ip: IpAddr) -> Self {
        if ip.is_ipv4() { Family::V4 } else { Family::V6 }
    }

    /// The EndpointSlice `addressType` and Service `ipFamilies` value.
    pub fn api_name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    fn parse(self, s: &str) -> Option<IpAddr> {
        s.parse::<IpAddr>().ok().filter(|ip| Family::of(*ip) == self)
    }
}

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
    /// Address (of the map's family).
    pub ip: IpAddr,
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
    /// The ClusterIP of the map's family (none for a Service that only has
    /// external addresses, or none of this family).
    pub cluster_ip: Option<IpAddr>,
    /// Service port.
    pub port: u16,
    /// NodePort, if allocated.
    pub node_port: Option<u16>,
    /// externalIPs plus LoadBalancer ingress IPs of the map's family.
    pub external_ips: Vec<IpAddr>,
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

/// Builds the ServiceMap of one family: the Service's ClusterIP, external and
/// LoadBalancer addresses of that family and the EndpointSlices of its
/// `addressType`. A Service with nothing of the family (no ClusterIP of it
/// and no external address of it) is left out.
pub fn build(services: &[Service], slices: &[EndpointSlice], node_name: &str, family: Family) -> ServiceMap {
    let mut by_service: BTreeMap<(String, String), Vec<&EndpointSlice>> = BTreeMap::new();
    for s in slices {
        if s.address_type != family.api_name() {
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
        if spec.cluster_ip.as_deref() == Some("None") {
            continue;
        }
        // clusterIPs holds every family's address (clusterIP is its first).
        let cluster_ip = spec.cluster_ips.iter().flatten().chain(spec.cluster_ip.iter()).find_map(|ip| family.parse(ip));
        let ns = svc.metadata.namespace.clone().unwrap_or_default();
        let name = svc.metadata.name.clone().unwrap_or_default();
        let mut external_ips: Vec<IpAddr> = spec.external_ips.iter().flatten().filter_map(|ip| family.parse(ip)).collect();
        if spec.type_.as_deref() == Some("LoadBalancer") {
            external_ips.extend(
                svc.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|lb| lb.ingress.as_ref()).into_iter().flatten().filter_map(|i| family.parse(i.ip.as_deref()?)),
            );
        }
        external_ips.sort();
        external_ips.dedup();
        if cluster_ip.is_none() && external_ips.is_empty() {
            continue;
        }
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
                        let Some(ip) = family.parse(a) else { continue };
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
        let m = build(&[web()], &slices, "n1", Family::V4);
        let p = &m["default/web/tcp/http"];
        assert_eq!(p.cluster_ip, Some(IpAddr::from([10, 96, 0, 5])));
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
        let m = build(&[web()], &slices, "n1", Family::V4);
        assert_eq!(m["default/web/tcp/http"].endpoints.iter().map(|e| e.ip.to_string()).collect::<Vec<_>>(), ["10.244.0.2"]);
    }

    #[test]
    fn skips_headless_external_name_and_other_proxies() {
        let services = vec![
            svc(json!({"metadata": {"name": "h", "namespace": "d"}, "spec": {"clusterIP": "None", "ports": [{"port": 80}]}})),
            svc(json!({"metadata": {"name": "x", "namespace": "d"}, "spec": {"type": "ExternalName", "externalName": "example.com"}})),
            svc(json!({"metadata": {"name": "o", "namespace": "d", "labels": {"service.kubernetes.io/service-proxy-name": "other"}}, "spec": {"clusterIP": "10.96.0.9", "ports": [{"port": 80}]}})),
        ];
        assert!(build(&services, &[], "n1", Family::V4).is_empty());
    }

    #[test]
    fn affinity_algorithm_policies_and_lb_ips() {
        let s = svc(json!({"metadata": {"name": "lb", "namespace": "d", "annotations": {"portico.dev/lb-algorithm": "rr"}},
            "spec": {"clusterIP": "10.96.0.7", "type": "LoadBalancer", "externalIPs": ["192.0.2.9"], "sessionAffinity": "ClientIP",
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 5}}, "externalTrafficPolicy": "Local", "ports": [{"port": 53, "protocol": "UDP"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}}));
        let m = build(&[s], &[], "n1", Family::V4);
        let p = &m["d/lb/udp/"];
        assert_eq!((p.affinity, p.algorithm, p.external_local, p.protocol), (Some(5), Algorithm::RoundRobin, true, "udp"));
        assert_eq!(p.external_ips, [IpAddr::from([192, 0, 2, 1]), IpAddr::from([192, 0, 2, 9])]);
    }

    #[test]
    fn each_family_gets_its_own_addresses_and_slices() {
        let s = svc(json!({"metadata": {"name": "ds", "namespace": "d"}, "spec": {"clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20", "fd00:10:96::20"],
            "ipFamilies": ["IPv4", "IPv6"], "type": "LoadBalancer", "externalIPs": ["192.0.2.9", "2001:db8::9"], "ports": [{"port": 80, "nodePort": 30080}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "2001:db8::1"}]}}}));
        let v4only = svc(json!({"metadata": {"name": "v4", "namespace": "d"}, "spec": {"clusterIP": "10.96.0.21", "type": "NodePort", "ports": [{"port": 80, "nodePort": 30081}]}}));
        let slices = vec![
            slice(json!({"metadata": {"name": "ds-4", "namespace": "d", "labels": {"kubernetes.io/service-name": "ds"}}, "addressType": "IPv4",
                "ports": [{"port": 8080}], "endpoints": [{"addresses": ["10.244.0.2"], "nodeName": "n1"}]})),
            slice(json!({"metadata": {"name": "ds-6", "namespace": "d", "labels": {"kubernetes.io/service-name": "ds"}}, "addressType": "IPv6",
                "ports": [{"port": 8080}], "endpoints": [{"addresses": ["fd00:10:244::2"], "nodeName": "n1"}]})),
        ];
        let v4 = build(&[s.clone(), v4only.clone()], &slices, "n1", Family::V4);
        let v6 = build(&[s, v4only], &slices, "n1", Family::V6);
        assert_eq!(v4["d/ds/tcp/"].cluster_ip, Some("10.96.0.20".parse().expect("ip")));
        assert_eq!(v4["d/ds/tcp/"].external_ips, ["192.0.2.9".parse::<IpAddr>().expect("ip")]);
        assert_eq!(v4["d/ds/tcp/"].endpoints[0].ip.to_string(), "10.244.0.2");
        let p = &v6["d/ds/tcp/"];
        assert_eq!(p.cluster_ip, Some("fd00:10:96::20".parse().expect("ip")));
        assert_eq!(p.external_ips.iter().map(ToString::to_string).collect::<Vec<_>>(), ["2001:db8::1", "2001:db8::9"]);
        assert_eq!(p.endpoints.iter().map(|e| e.ip.to_string()).collect::<Vec<_>>(), ["fd00:10:244::2"]);
        assert_eq!(p.node_port, Some(30080));
        assert!(v4.contains_key("d/v4/tcp/") && !v6.contains_key("d/v4/tcp/"), "a single-stack IPv4 Service has nothing in the IPv6 table");
    }
}
