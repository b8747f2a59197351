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

/// The `conntrack` arguments deleting `f`'s flows of `family`. The family flag
/// matters for the NodePort filters, which name no address.
pub fn args(f: &Flush, family: Family) -> Vec<String> {
    let mut args: Vec<String> = match family {
        Family::V4 => vec![],
        Family::V6 => vec!["-f".into(), "ipv6".into()],
    };
    args.extend(["-D", "-p", "udp"].map(String::from));
    match f {
        Flush::ToEndpoint { vip, port, endpoint } => {
            args.extend(["--orig-dst".into(), vip.to_string(), "--orig-port-dst".into(), port.to_string(), "--dst-nat".into(), endpoint.to_string()]);
        }
        Flush::Service { vip, port } => args.extend(["--orig-dst".into(), vip.to_string(), "--orig-port-dst".into(), port.to_string()]),
        Flush::NodePort(p) => args.extend(["--orig-port-dst".into(), p.to_string()]),
        Flush::NodePortToEndpoint(p, ep) => args.extend(["--orig-port-dst".into(), p.to_string(), "--dst-nat".into(), ep.to_string()]),
    }
    args
}

/// Runs `conntrack -D` for each filter of `family`'s flows ("0 flow entries" is not an error).
pub async fn run(flushes: &[Flush], family: Family) {
    for f in flushes {
        match tokio::process::Command::new("conntrack").args(args(f, family)).output().await {
            Ok(_) => tracing::debug!(?f, "conntrack entries deleted"),
            Err(e) => tracing::warn!(error = %e, "conntrack is needed to clear stale UDP flows (apt-get install conntrack)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::servicemap::{Algorithm, Endpoint};

    fn udp6(endpoints: &[&str], node_port: Option<u16>) -> ServicePort {
        let endpoints: Vec<Endpoint> = endpoints.iter().map(|ip| Endpoint { ip: ip.parse().expect("ip"), port: 8081, local: true }).collect();
        ServicePort {
            key: "default/udp6/udp/dns".into(),
            protocol: "udp",
            cluster_ip: Some("fd00:10:96::53".parse().expect("ip")),
            port: 53,
            node_port,
            external_ips: vec!["2001:db8::7".parse().expect("ip")],
            affinity: None,
            algorithm: Algorithm::Random,
            internal_local: false,
            external_local: false,
            local_endpoints: endpoints.clone(),
            endpoints,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn a_gone_endpoint_flushes_its_flows_to_every_service_address_and_the_node_port() {
        let (old, new) = (udp6(&["fd00:10:244::2", "fd00:10:244::3"], Some(30553)), udp6(&["fd00:10:244::3"], Some(30553)));
        let gone = ip("fd00:10:244::2");
        assert_eq!(
            flushes(Some(&old), Some(&new)),
            vec![
                Flush::ToEndpoint { vip: ip("2001:db8::7"), port: 53, endpoint: gone },
                Flush::ToEndpoint { vip: ip("fd00:10:96::53"), port: 53, endpoint: gone },
                Flush::NodePortToEndpoint(30553, gone),
            ]
        );
        // A deleted Service flushes what reached its endpoints.
        assert_eq!(flushes(Some(&new), None).len(), 3);
    }

    #[test]
    fn a_first_endpoint_flushes_every_flow_to_the_service_and_tcp_flushes_nothing() {
        let (empty, one) = (udp6(&[], Some(30553)), udp6(&["fd00:10:244::2"], Some(30553)));
        let want = vec![Flush::Service { vip: ip("2001:db8::7"), port: 53 }, Flush::Service { vip: ip("fd00:10:96::53"), port: 53 }, Flush::NodePort(30553)];
        assert_eq!(flushes(Some(&empty), Some(&one)), want);
        assert_eq!(flushes(None, Some(&one)), want, "a new Service with endpoints");
        assert_eq!(flushes(Some(&one), Some(&one)), vec![]);
        assert_eq!(flushes(None, Some(&empty)), vec![], "no endpoints yet: nothing to redirect");
        let mut tcp = one.clone();
        tcp.protocol = "tcp";
        assert_eq!(flushes(Some(&tcp), None), vec![]);
    }

    #[test]
    fn ipv6_flushes_name_the_family_and_unbracketed_addresses() {
        let f = Flush::ToEndpoint { vip: ip("fd00:10:96::53"), port: 53, endpoint: ip("fd00:10:244::2") };
        assert_eq!(
            args(&f, Family::V6).join(" "),
            "-f ipv6 -D -p udp --orig-dst fd00:10:96::53 --orig-port-dst 53 --dst-nat fd00:10:244::2"
        );
        assert_eq!(args(&Flush::NodePort(30553), Family::V6).join(" "), "-f ipv6 -D -p udp --orig-port-dst 30553");
        assert_eq!(args(&Flush::NodePortToEndpoint(30553, ip("10.244.0.2")), Family::V4).join(" "), "-D -p udp --orig-port-dst 30553 --dst-nat 10.244.0.2");
    }
}
