//! The cluster zone: an immutable snapshot of what `cluster.local` contains,
//! built from Services, EndpointSlices and Namespaces, and the pure function
//! that answers a question from it the way CoreDNS's `kubernetes` plugin does
//! (NODATA vs NXDOMAIN, SOA in negative answers, SERVFAIL before the first sync).

use crate::wire::{RData, Record, Response, rcode, rtype};
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// The schema version served at `dns-version.<zone>`.
pub const SCHEMA_VERSION: &str = "1.1.0";

/// Zone settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneConfig {
    /// Cluster domain, lower case, no trailing dot.
    pub domain: String,
    /// TTL of answers (and the SOA minimum).
    pub ttl: u32,
}

/// A port of a Service or endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// Port name, lower case ("" when unnamed).
    pub name: String,
    /// `tcp`, `udp` or `sctp`.
    pub proto: String,
    /// Number.
    pub port: u16,
}

/// A ready endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ep {
    /// Addresses.
    pub ips: Vec<IpAddr>,
    /// `hostname`, or the dashed IP (lower case).
    pub hostname: String,
    /// Whether `hostname` came from the API (not generated).
    pub explicit_hostname: bool,
    /// The slice's ports.
    pub ports: Vec<Port>,
}

/// One Service as DNS sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Svc {
    /// ClusterIPs (empty for headless).
    pub cluster_ips: Vec<IpAddr>,
    /// ExternalName target (lower case, no trailing dot).
    pub external_name: Option<String>,
    /// Service ports.
    pub ports: Vec<Port>,
    /// Ready endpoints.
    pub endpoints: Vec<Ep>,
}

impl Svc {
    fn headless(&self) -> bool {
        self.cluster_ips.is_empty() && self.external_name.is_none()
    }
}

/// A snapshot of the zone.
#[derive(Debug, Clone, Default)]
pub struct Zone {
    /// Whether the watches have listed everything once.
    pub synced: bool,
    /// SOA serial (seconds since the epoch of the last change).
    pub serial: u32,
    /// Namespaces that exist.
    pub namespaces: HashSet<String>,
    /// Services by (namespace, name), lower case.
    pub services: HashMap<(String, String), Arc<Svc>>,
    /// Reverse records.
    pub ptr: HashMap<IpAddr, Vec<String>>,
}

/// What to do with a question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Answer from the zone.
    Answer(Response),
    /// Not ours: forward upstream.
    Forward,
    /// An ExternalName: the CNAME, then the target's records from upstream.
    Chase {
        /// The response so far (the CNAME).
        response: Response,
        /// The name to look up upstream.
        target: String,
    },
}

fn dashed(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => {
            let s = v6.to_string().replace(':', "-");
            if s.ends_with('-') { format!("{s}0") } else { s }
        }
    }
}

fn proto_of(p: Option<&str>) -> String {
    p.unwrap_or("TCP").to_lowercase()
}

/// Builds one Service's DNS view from the Service and its slices.
pub fn service_view(svc: &Service, slices: &[&EndpointSlice]) -> Svc {
    let spec = svc.spec.clone().unwrap_or_default();
    let mut out = Svc::default();
    if spec.type_.as_deref() == Some("ExternalName") {
        let target = spec.external_name.unwrap_or_default().trim_end_matches('.').to_lowercase();
        out.external_name = (!target.is_empty()).then_some(target);
        return out;
    }
    let ips: Vec<String> = spec.cluster_ips.clone().filter(|v| !v.is_empty()).or_else(|| spec.cluster_ip.clone().map(|c| vec![c])).unwrap_or_default();
    out.cluster_ips = ips.iter().filter(|ip| *ip != "None").filter_map(|ip| ip.parse().ok()).collect();
    out.ports = spec
        .ports
        .unwrap_or_default()
        .iter()
        .filter_map(|p| Some(Port { name: p.name.clone().unwrap_or_default().to_lowercase(), proto: proto_of(p.protocol.as_deref()), port: u16::try_from(p.port).ok()? }))
        .collect();
    for s in slices {
        let ports: Vec<Port> = s
            .ports
            .iter()
            .flatten()
            .filter_map(|p| Some(Port { name: p.name.clone().unwrap_or_default().to_lowercase(), proto: proto_of(p.protocol.as_deref()), port: u16::try_from(p.port?).ok()? }))
            .collect();
        for e in &s.endpoints {
            if e.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                continue;
            }
            let ips: Vec<IpAddr> = e.addresses.iter().filter_map(|a| a.parse().ok()).collect();
            let Some(first) = ips.first() else { continue };
            let (hostname, explicit) = match e.hostname.as_deref().filter(|h| !h.is_empty()) {
                Some(h) => (h.to_lowercase(), true),
                None => (dashed(first), false),
            };
            out.endpoints.push(Ep { ips, hostname, explicit_hostname: explicit, ports: ports.clone() });
        }
    }
    out
}

impl Zone {
    /// Builds a whole snapshot.
    pub fn build(services: &[Service], slices: &[EndpointSlice], namespaces: &[Namespace], cfg: &ZoneConfig) -> Self {
        let mut z = Zone { synced: true, ..Default::default() };
        z.namespaces = namespaces.iter().filter_map(|n| n.metadata.name.clone()).map(|n| n.to_lowercase()).collect();
        let mut by_svc: HashMap<(String, String), Vec<&EndpointSlice>> = HashMap::new();
        for s in slices {
            if let Some(name) = s.metadata.labels.as_ref().and_then(|l| l.get("kubernetes.io/service-name")) {
                by_svc.entry((s.metadata.namespace.clone().unwrap_or_default(), name.clone())).or_default().push(s);
            }
        }
        for svc in services {
            let key = (svc.metadata.namespace.clone().unwrap_or_default(), svc.metadata.name.clone().unwrap_or_default());
            let view = service_view(svc, by_svc.get(&key).map(Vec::as_slice).unwrap_or(&[]));
            z.put(key, Some(view), cfg);
        }
        z
    }

    /// Replaces (or with `None` removes) one Service, keeping reverse records right.
    pub fn put(&mut self, key: (String, String), view: Option<Svc>, cfg: &ZoneConfig) {
        let key = (key.0.to_lowercase(), key.1.to_lowercase());
        if let Some(old) = self.services.remove(&key) {
            for (ip, name) in reverse_names(&key, &old, cfg) {
                if let Some(v) = self.ptr.get_mut(&ip) {
                    v.retain(|n| *n != name);
                    if v.is_empty() {
                        self.ptr.remove(&ip);
                    }
                }
            }
        }
        if let Some(v) = view {
            for (ip, name) in reverse_names(&key, &v, cfg) {
                let list = self.ptr.entry(ip).or_default();
                if !list.contains(&name) {
                    list.push(name);
                }
            }
            self.services.insert(key, Arc::new(v));
        }
    }
}

fn reverse_names(key: &(String, String), v: &Svc, cfg: &ZoneConfig) -> Vec<(IpAddr, String)> {
    let fqdn = format!("{}.{}.svc.{}", key.1, key.0, cfg.domain);
    let mut out: Vec<(IpAddr, String)> = v.cluster_ips.iter().map(|ip| (*ip, fqdn.clone())).collect();
    for e in &v.endpoints {
        for ip in &e.ips {
            out.push((*ip, format!("{}.{fqdn}", e.hostname)));
        }
    }
    out
}

/// Parses a reverse name (`4.3.2.1.in-addr.arpa`, nibbles under `ip6.arpa`).
pub fn reverse_ip(lname: &str) -> Option<IpAddr> {
    if let Some(rest) = lname.strip_suffix(".in-addr.arpa") {
        let parts: Vec<u8> = rest.split('.').map(|p| p.parse().ok()).collect::<Option<_>>()?;
        if parts.len() != 4 {
            return None;
        }
        return Some(IpAddr::V4(Ipv4Addr::new(parts[3], parts[2], parts[1], parts[0])));
    }
    let rest = lname.strip_suffix(".ip6.arpa")?;
    let nibbles: Vec<u8> = rest.split('.').map(|n| u8::from_str_radix(n, 16).ok().filter(|_| n.len() == 1)).collect::<Option<_>>()?;
    if nibbles.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (i, pair) in nibbles.iter().rev().collect::<Vec<_>>().chunks(2).enumerate() {
        bytes[i] = (pair[0] << 4) | pair[1];
    }
    Some(IpAddr::V6(Ipv6Addr::from(bytes)))
}

fn parse_dashed(label: &str) -> Option<IpAddr> {
    if let Ok(v4) = label.replace('-', ".").parse::<Ipv4Addr>() {
        return Some(IpAddr::V4(v4));
    }
    label.replace('-', ":").parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

impl Zone {
    fn soa(&self, cfg: &ZoneConfig) -> Record {
        Record {
            name: cfg.domain.clone(),
            ttl: cfg.ttl.min(300),
            data: RData::Soa {
                mname: format!("ns.dns.{}", cfg.domain),
                rname: format!("hostmaster.{}", cfg.domain),
                serial: self.serial,
                refresh: 7200,
                retry: 1800,
                expire: 86400,
                minimum: cfg.ttl,
            },
        }
    }

    fn negative(&self, cfg: &ZoneConfig, code: u8) -> Outcome {
        Outcome::Answer(Response { rcode: code, aa: true, authority: vec![self.soa(cfg)], ..Default::default() })
    }

    fn records(&self, qname: &str, qtype: u16, cfg: &ZoneConfig, recs: Vec<Record>, additional: Vec<Record>) -> Outcome {
        // The name exists: records of the asked type, or NODATA.
        let answers: Vec<Record> = recs.into_iter().filter(|r| qtype == rtype::ANY || r.data.rtype() == qtype).map(|mut r| {
            r.name = qname.to_owned();
            r
        }).collect();
        if answers.is_empty() {
            return self.negative(cfg, rcode::NOERROR);
        }
        Outcome::Answer(Response { rcode: rcode::NOERROR, aa: true, answers, additional, ..Default::default() })
    }

    /// Answers `qname`/`qtype` (`qname` as asked, any case, no trailing dot).
    pub fn answer(&self, qname: &str, qtype: u16, cfg: &ZoneConfig) -> Outcome {
        let lname = qname.to_ascii_lowercase();
        if let Some(ip) = reverse_ip(&lname) {
            return match (qtype, self.ptr.get(&ip)) {
                (rtype::PTR | rtype::ANY, Some(names)) if self.synced => Outcome::Answer(Response {
                    aa: true,
                    answers: names.iter().map(|n| Record { name: qname.to_owned(), ttl: cfg.ttl, data: RData::Ptr(n.clone()) }).collect(),
                    ..Default::default()
                }),
                _ => Outcome::Forward,
            };
        }
        let rest = if lname == cfg.domain {
            ""
        } else if let Some(r) = lname.strip_suffix(&format!(".{}", cfg.domain)) {
            r
        } else {
            return Outcome::Forward;
        };
        if !self.synced {
            return Outcome::Answer(Response { rcode: rcode::SERVFAIL, ..Default::default() });
        }
        if matches!(qtype, rtype::AXFR | rtype::IXFR) {
            return Outcome::Answer(Response { rcode: rcode::REFUSED, ..Default::default() });
        }
        let labels: Vec<&str> = if rest.is_empty() { vec![] } else { rest.rsplit('.').collect() };
        let ttl = cfg.ttl;
        match labels.as_slice() {
            [] => {
                let recs = vec![
                    self.soa(cfg),
                    Record { name: cfg.domain.clone(), ttl, data: RData::Ns(format!("ns.dns.{}", cfg.domain)) },
                ];
                self.records(qname, qtype, cfg, recs, vec![])
            }
            ["dns-version"] => self.records(qname, qtype, cfg, vec![Record { name: String::new(), ttl: 28800, data: RData::Txt(SCHEMA_VERSION.into()) }], vec![]),
            ["svc"] | ["pod"] => self.negative(cfg, rcode::NOERROR),
            ["svc", ns] | ["pod", ns] => {
                if self.namespaces.contains(*ns) { self.negative(cfg, rcode::NOERROR) } else { self.negative(cfg, rcode::NXDOMAIN) }
            }
            ["pod", ns, ip] => match parse_dashed(ip) {
                Some(addr) if self.namespaces.contains(*ns) => self.records(qname, qtype, cfg, vec![Record { name: String::new(), ttl, data: RData::addr(addr) }], vec![]),
                _ => self.negative(cfg, rcode::NXDOMAIN),
            },
            ["svc", ns, svc] => self.service(qname, qtype, cfg, ns, svc),
            ["svc", ns, svc, host] => {
                let Some(s) = self.services.get(&((*ns).to_owned(), (*svc).to_owned())) else { return self.negative(cfg, rcode::NXDOMAIN) };
                let recs: Vec<Record> = s
                    .endpoints
                    .iter()
                    .filter(|e| e.hostname == *host)
                    .flat_map(|e| e.ips.iter().map(|ip| Record { name: String::new(), ttl, data: RData::addr(*ip) }))
                    .collect();
                if recs.is_empty() {
                    return self.negative(cfg, rcode::NXDOMAIN);
                }
                self.records(qname, qtype, cfg, recs, vec![])
            }
            ["svc", ns, svc, proto, port] if proto.starts_with('_') && port.starts_with('_') => {
                let Some(s) = self.services.get(&((*ns).to_owned(), (*svc).to_owned())) else { return self.negative(cfg, rcode::NXDOMAIN) };
                let (srv, extra) = srv_records(s, ns, svc, Some((&port[1..], &proto[1..])), cfg);
                if srv.is_empty() {
                    return self.negative(cfg, rcode::NXDOMAIN);
                }
                self.records(qname, qtype, cfg, srv, extra)
            }
            _ => self.negative(cfg, rcode::NXDOMAIN),
        }
    }

    fn service(&self, qname: &str, qtype: u16, cfg: &ZoneConfig, ns: &str, name: &str) -> Outcome {
        let ttl = cfg.ttl;
        let Some(s) = self.services.get(&(ns.to_owned(), name.to_owned())) else { return self.negative(cfg, rcode::NXDOMAIN) };
        if let Some(target) = &s.external_name {
            let cname = Record { name: qname.to_owned(), ttl, data: RData::Cname(target.clone()) };
            return match qtype {
                rtype::CNAME | rtype::ANY => Outcome::Answer(Response { aa: true, answers: vec![cname], ..Default::default() }),
                rtype::A | rtype::AAAA => {
                    // A target inside the zone is answered here; others go upstream.
                    if target == &cfg.domain || target.ends_with(&format!(".{}", cfg.domain)) {
                        if let Outcome::Answer(mut inner) = self.answer(target, qtype, cfg) {
                            let mut answers = vec![cname];
                            answers.append(&mut inner.answers);
                            return Outcome::Answer(Response { aa: true, rcode: inner.rcode, answers, authority: inner.authority, ..Default::default() });
                        }
                    }
                    Outcome::Chase { response: Response { aa: true, answers: vec![cname], ..Default::default() }, target: target.clone() }
                }
                _ => self.negative(cfg, rcode::NOERROR),
            };
        }
        if s.headless() {
            if s.endpoints.is_empty() {
                return self.negative(cfg, rcode::NXDOMAIN);
            }
            if qtype == rtype::SRV {
                let (srv, extra) = srv_records(s, ns, name, None, cfg);
                return self.records(qname, qtype, cfg, srv, extra);
            }
            let recs = s.endpoints.iter().flat_map(|e| e.ips.iter().map(|ip| Record { name: String::new(), ttl, data: RData::addr(*ip) })).collect();
            return self.records(qname, qtype, cfg, recs, vec![]);
        }
        if qtype == rtype::SRV {
            let (srv, extra) = srv_records(s, ns, name, None, cfg);
            return self.records(qname, qtype, cfg, srv, extra);
        }
        let recs = s.cluster_ips.iter().map(|ip| Record { name: String::new(), ttl, data: RData::addr(*ip) }).collect();
        self.records(qname, qtype, cfg, recs, vec![])
    }
}

/// SRV records (and their targets' addresses) for a Service; `filter` is (port name, proto).
fn srv_records(s: &Svc, ns: &str, name: &str, filter: Option<(&str, &str)>, cfg: &ZoneConfig) -> (Vec<Record>, Vec<Record>) {
    let fqdn = format!("{name}.{ns}.svc.{}", cfg.domain);
    let matches = |p: &Port| !p.name.is_empty() && filter.is_none_or(|(n, pr)| p.name == n && p.proto == pr);
    let (mut srv, mut extra) = (Vec::new(), Vec::new());
    if s.headless() {
        let n = s.endpoints.len().max(1) as u16;
        for e in &s.endpoints {
            let target = format!("{}.{fqdn}", e.hostname);
            let mut any = false;
            for p in e.ports.iter().filter(|p| matches(p)) {
                any = true;
                srv.push(Record { name: String::new(), ttl: cfg.ttl, data: RData::Srv { priority: 0, weight: (100 / n).max(1), port: p.port, target: target.clone() } });
            }
            if any {
                extra.extend(e.ips.iter().map(|ip| Record { name: target.clone(), ttl: cfg.ttl, data: RData::addr(*ip) }));
            }
        }
    } else {
        for p in s.ports.iter().filter(|p| matches(p)) {
            srv.push(Record { name: String::new(), ttl: cfg.ttl, data: RData::Srv { priority: 0, weight: 100, port: p.port, target: fqdn.clone() } });
        }
        if !srv.is_empty() {
            extra.extend(s.cluster_ips.iter().map(|ip| Record { name: fqdn.clone(), ttl: cfg.ttl, data: RData::addr(*ip) }));
        }
    }
    (srv, extra)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg() -> ZoneConfig {
        ZoneConfig { domain: "cluster.local".into(), ttl: 5 }
    }

    fn zone() -> Zone {
        let services: Vec<Service> = serde_json::from_value(json!([
            {"metadata": {"name": "web", "namespace": "default"}, "spec": {"clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"], "ports": [{"name": "http", "port": 80}, {"port": 81}]}},
            {"metadata": {"name": "db", "namespace": "default"}, "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}},
            {"metadata": {"name": "empty", "namespace": "default"}, "spec": {"clusterIP": "None", "ports": [{"name": "x", "port": 1}]}},
            {"metadata": {"name": "ext", "namespace": "default"}, "spec": {"type": "ExternalName", "externalName": "www.example.com."}},
            {"metadata": {"name": "alias", "namespace": "default"}, "spec": {"type": "ExternalName", "externalName": "web.default.svc.cluster.local"}}
        ]))
        .expect("services");
        let slices: Vec<EndpointSlice> = serde_json::from_value(json!([
            {"metadata": {"name": "db-1", "namespace": "default", "labels": {"kubernetes.io/service-name": "db"}}, "addressType": "IPv4",
             "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
             "endpoints": [{"addresses": ["10.244.0.5"], "hostname": "db-0"}, {"addresses": ["10.244.0.6"]}, {"addresses": ["10.244.0.7"], "conditions": {"ready": false}}]}
        ]))
        .expect("slices");
        let ns: Vec<Namespace> = serde_json::from_value(json!([{"metadata": {"name": "default"}}, {"metadata": {"name": "kube-system"}}])).expect("ns");
        Zone::build(&services, &slices, &ns, &cfg())
    }

    fn answers(o: &Outcome) -> Vec<String> {
        match o {
            Outcome::Answer(r) => r.answers.iter().map(|a| format!("{:?}", a.data)).collect(),
            other => vec![format!("{other:?}")],
        }
    }

    fn code(o: &Outcome) -> u8 {
        match o {
            Outcome::Answer(r) => r.rcode,
            _ => 255,
        }
    }

    #[test]
    fn records_like_coredns() {
        let z = zone();
        let c = cfg();
        let cases: &[(&str, u16, u8, &[&str])] = &[
            ("web.default.svc.cluster.local", rtype::A, 0, &["A(10.96.0.20)"]),
            ("WEB.Default.svc.Cluster.Local", rtype::A, 0, &["A(10.96.0.20)"]),
            ("web.default.svc.cluster.local", rtype::AAAA, 0, &[]),
            ("web.default.svc.cluster.local", rtype::TXT, 0, &[]),
            ("_http._tcp.web.default.svc.cluster.local", rtype::SRV, 0, &["Srv { priority: 0, weight: 100, port: 80, target: \"web.default.svc.cluster.local\" }"]),
            ("_x._tcp.web.default.svc.cluster.local", rtype::SRV, 3, &[]),
            ("db.default.svc.cluster.local", rtype::A, 0, &["A(10.244.0.5)", "A(10.244.0.6)"]),
            ("db-0.db.default.svc.cluster.local", rtype::A, 0, &["A(10.244.0.5)"]),
            ("10-244-0-6.db.default.svc.cluster.local", rtype::A, 0, &["A(10.244.0.6)"]),
            ("nope.db.default.svc.cluster.local", rtype::A, 3, &[]),
            ("empty.default.svc.cluster.local", rtype::A, 3, &[]),
            ("ext.default.svc.cluster.local", rtype::CNAME, 0, &["Cname(\"www.example.com\")"]),
            ("alias.default.svc.cluster.local", rtype::A, 0, &["Cname(\"web.default.svc.cluster.local\")", "A(10.96.0.20)"]),
            ("missing.default.svc.cluster.local", rtype::A, 3, &[]),
            ("default.svc.cluster.local", rtype::A, 0, &[]),
            ("nons.svc.cluster.local", rtype::A, 3, &[]),
            ("svc.cluster.local", rtype::A, 0, &[]),
            ("cluster.local", rtype::A, 0, &[]),
            ("dns-version.cluster.local", rtype::TXT, 0, &["Txt(\"1.1.0\")"]),
            ("10-1-2-3.default.pod.cluster.local", rtype::A, 0, &["A(10.1.2.3)"]),
            ("10-1-2-3.nons.pod.cluster.local", rtype::A, 3, &[]),
            ("a.b.c.d.e.f.cluster.local", rtype::A, 3, &[]),
            ("20.0.96.10.in-addr.arpa", rtype::PTR, 0, &["Ptr(\"web.default.svc.cluster.local\")"]),
            ("5.0.244.10.in-addr.arpa", rtype::PTR, 0, &["Ptr(\"db-0.db.default.svc.cluster.local\")"]),
        ];
        for (name, t, rc, want) in cases {
            let o = z.answer(name, *t, &c);
            assert_eq!(code(&o), *rc, "{name} {t}: {o:?}");
            if *rc == 0 {
                assert_eq!(answers(&o), *want, "{name} {t}");
            }
            if let Outcome::Answer(r) = &o {
                if r.answers.is_empty() {
                    assert!(matches!(r.authority.first().map(|a| &a.data), Some(RData::Soa { minimum: 5, .. })), "SOA in the negative answer for {name}");
                }
            }
        }
        assert!(matches!(z.answer("ext.default.svc.cluster.local", rtype::A, &c), Outcome::Chase { target, .. } if target == "www.example.com"));
        assert_eq!(z.answer("example.org", rtype::A, &c), Outcome::Forward);
        assert_eq!(z.answer("9.9.9.9.in-addr.arpa", rtype::PTR, &c), Outcome::Forward, "reverse misses fall through");
    }

    #[test]
    fn servfail_until_synced_and_reverse_records_follow_changes() {
        let c = cfg();
        assert_eq!(code(&Zone::default().answer("web.default.svc.cluster.local", rtype::A, &c)), rcode::SERVFAIL);
        let mut z = zone();
        z.put(("default".into(), "web".into()), None, &c);
        assert_eq!(code(&z.answer("web.default.svc.cluster.local", rtype::A, &c)), rcode::NXDOMAIN);
        assert_eq!(z.answer("20.0.96.10.in-addr.arpa", rtype::PTR, &c), Outcome::Forward, "PTR removed with the Service");
    }

    #[test]
    fn reverse_names_parse() {
        assert_eq!(reverse_ip("4.3.2.1.in-addr.arpa"), Some("1.2.3.4".parse().expect("ip")));
        let v6 = "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.ip6.arpa";
        assert_eq!(reverse_ip(v6), Some("4321:0:1:2:3:4:567:89ab".parse().expect("ip")));
        assert_eq!(reverse_ip("1.2.3.in-addr.arpa"), None);
    }
}
