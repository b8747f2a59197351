//! Stale UDP conntrack entries: UDP has no connection end, so a flow DNATed
//! to an endpoint that went away keeps going there until its entry is
//! deleted; a flow that hit a Service with no endpoints keeps being rejected.
//! As kube-proxy does, delete them when endpoints go away and when a Service
//! gets its first endpoint.

use crate::servicemap::{Family, ServicePort};
use std::net::IpAddr;

/// One `conntrack -D` filter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Flush {
    /// Flows to `vip:port` DNATed to `endpoint`.
    ToEndpoint {
        /// Service address.
        vip: IpAddr,
        /// Service port.
        port: u16,
        /// The endpoint that went away.
        endpoint: IpAddr,
    },
    /// Every flow to `vip:port`.
    Service {
        /// Service address.
        vip: IpAddr,
        /// Service port.
        port: u16,
    },
    /// Every flow to a NodePort.
    NodePort(u16),
    /// Flows to a NodePort DNATed to `endpoint`.
    NodePortToEndpoint(u16, IpAddr),
}

fn vips(sp: &ServicePort) -> Vec<IpAddr> {
    sp.cluster_ip.into_iter().chain(sp.external_ips.iter().copied()).collect()
}

/// What to flush for one UDP Service port going from `old` to `new`.
pub fn flushes(old: Option<&ServicePort>, new: Option<&ServicePort>) -> Vec<Flush> {
    let sp = match (old, new) {
        (_, Some(n)) => n,
        (Some(o), None) => o,
        (None, None) => return vec![],
    };
    if sp.protocol != "udp" {
        return vec![];
    }
    let mut out = Vec::new();
    let old_eps: Vec<IpAddr> = old.map(|o| o.endpoints.iter().map(|e| e.ip).collect()).unwrap_or_default();
    let new_eps: Vec<IpAddr> = new.map(|n| n.endpoints.iter().map(|e| e.ip).collect()).unwrap_or_default();
    for gone in old_eps.iter().filter(|e| !new_eps.contains(e)) {
        let o = old.unwrap_or(sp);
        for vip in vips(o) {
            out.push(Flush::ToEndpoint { vip, port: o.port, endpoint: *gone });
        }
        if let Some(np) = o.node_port {
            out.push(Flush::NodePortToEndpoint(np, *gone));
        }
    }
    if old_eps.is_empty() && !new_eps.is_empty() {
        for vip in vips(sp) {
            out.push(Flush::Service { vip, port: sp.port });
        }
        if let Some(np) = sp.node_port {
            out.push(Flush::NodePort(np));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Runs `conntrack -D` for each filter of `family`'s flows ("0 flow entries" is not an error).
pub async fn run(flushes: &[Flush], family: Family) {
    for f in flushes {
        let mut args: Vec<String> = match family {
            Family::V4 => vec![],
            Family::V6 => vec!["-f".into(), "ipv6".into()],
        };
        args.extend::<Vec<String>>(match f {
            Flush::ToEndpoint { vip, port, endpoint } => {
                vec!["-D".into(), "-p".into(), "udp".into(), "--orig-dst".into(), vip.to_string(), "--orig-port-dst".into(), port.to_string(), "--dst-nat".into(), endpoint.to_string()]
            }
            Flush::Service { vip, port } => vec!["-D".into(), "-p".into(), "udp".into(), "--orig-dst".into(), vip.to_string(), "--orig-port-dst".into(), port.to_string()],
            Flush::NodePort(p) => vec!["-D".into(), "-p".into(), "udp".into(), "--orig-port-dst".into(), p.to_string()],
            Flush::NodePortToEndpoint(p, ep) => vec!["-D".into(), "-p".into(), "udp".into(), "--orig-port-dst".into(), p.to_string(), "--dst-nat".into(), ep.to_string()],
        });
        match tokio::process::Command::new("conntrack").args(&args).output().await {
            Ok(_) => tracing::debug!(?f, "conntrack entries deleted"),
            Err(e) => tracing::warn!(error = %e, "conntrack is needed to clear stale UDP flows (apt-get install conntrack)"),
        }
    }
}
