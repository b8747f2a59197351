//! Desired Endpoints and EndpointSlices of a Service: pure functions of the
//! Service, the Pods in its namespace and (for slices) the slices it has.

use crate::pods;
use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort as SlicePort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use std::collections::BTreeMap;

/// Most endpoints in one EndpointSlice (upstream `--max-endpoints-per-slice` default).
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
/// The `managed-by` label value of slices this controller owns.
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
/// The label naming a slice's Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming a slice's manager.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";

/// Resolved ports of a group of addresses: (name, port, protocol).
type PortKey = Vec<(String, i32, String)>;

/// Whether the Service's selector selects the Pod (an empty or absent selector selects nothing).
pub fn selects(svc: &Service, pod: &Pod) -> bool {
    let Some(sel) = svc.spec.as_ref().and_then(|s| s.selector.as_ref()).filter(|s| !s.is_empty()) else { return false };
    let labels = pod.metadata.labels.as_ref();
    sel.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

fn publish_not_ready(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.publish_not_ready_addresses).unwrap_or(false)
}

fn target_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
}

fn hostname(svc: &Service, pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let sub = spec.subdomain.as_deref()?;
    (Some(sub) == svc.metadata.name.as_deref()).then(|| spec.hostname.clone()).flatten().filter(|h| !h.is_empty())
}

/// The resolved ports of a Pod for the Service, in Service port order; `None`
/// for a port the Pod does not have (a named port it lacks).
fn resolved_ports(svc: &Service, pod: &Pod) -> Vec<(String, Option<i32>, String, Option<String>)> {
    svc.spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .map(|ports| {
            ports
                .iter()
                .map(|p| (p.name.clone().unwrap_or_default(), pods::resolve_port(p, pod), p.protocol.clone().unwrap_or_else(|| "TCP".into()), p.app_protocol.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// The core/v1 Endpoints a Service with a selector should have.
pub fn desired_endpoints(svc: &Service, pods: &[&Pod]) -> Endpoints {
    let publish = publish_not_ready(svc);
    // Addresses grouped by the exact set of ports they serve (upstream's repacking).
    #[allow(clippy::type_complexity)]
    let mut groups: BTreeMap<PortKey, (Vec<EndpointAddress>, Vec<EndpointAddress>, Vec<EndpointPort>)> = BTreeMap::new();
    for pod in pods.iter().filter(|p| selects(svc, p)) {
        let Some(ip) = endpoints_ip(svc, pod) else { continue };
        if pods::is_finished(pod) || (pods::is_terminating(pod) && !publish) {
            continue;
        }
        let ports = resolved_ports(svc, pod);
        let has_ports = !ports.is_empty();
        let usable: Vec<(String, i32, String, Option<String>)> = ports.into_iter().filter_map(|(n, p, proto, ap)| p.map(|p| (n, p, proto, ap))).collect();
        if has_ports && usable.is_empty() {
            continue;
        }
        let key: PortKey = usable.iter().map(|(n, p, proto, _)| (n.clone(), *p, proto.clone())).collect();
        let addr = EndpointAddress {
            ip: ip.to_owned(),
            hostname: hostname(svc, pod),
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(target_ref(pod)),
        };
        let entry = groups.entry(key).or_insert_with(|| {
            let ports = usable.iter().map(|(n, p, proto, ap)| EndpointPort { name: Some(n.clone()).filter(|n| !n.is_empty()), port: *p, protocol: Some(proto.clone()), app_protocol: ap.clone() }).collect();
            (Vec::new(), Vec::new(), ports)
        });
        if publish || pods::is_ready(pod) {
            entry.0.push(addr);
        } else {
            entry.1.push(addr);
        }
    }
    let mut subsets: Vec<EndpointSubset> = groups
        .into_values()
        .map(|(mut ready, mut not_ready, ports)| {
            ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            not_ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            EndpointSubset {
                addresses: Some(ready).filter(|v| !v.is_empty()),
                not_ready_addresses: Some(not_ready).filter(|v| !v.is_empty()),
                ports: Some(ports).filter(|v| !v.is_empty()),
            }
        })
        .collect();
    subsets.sort_by_key(first_ip);
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    if svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None") {
        labels.insert("service.kubernetes.io/headless".into(), String::new());
    }
    Endpoints {
        metadata: ObjectMeta {
            name: svc.metadata.name.clone(),
            namespace: svc.metadata.namespace.clone(),
            labels: Some(labels).filter(|l| !l.is_empty()),
            ..Default::default()
        },
        subsets: Some(subsets).filter(|s| !s.is_empty()),
    }
}

fn first_ip(s: &EndpointSubset) -> String {
    s.addresses.iter().chain(s.not_ready_addresses.iter()).flatten().map(|a| a.ip.clone()).next().unwrap_or_default()
}

/// Packs endpoints into slices of at most [`MAX_ENDPOINTS_PER_SLICE`].
fn pack(svc: &Service, labels: &BTreeMap<String, String>, owner: &OwnerReference, family: &str, endpoints: &[Endpoint], ports: Option<Vec<SlicePort>>) -> Vec<EndpointSlice> {
    endpoints
        .chunks(MAX_ENDPOINTS_PER_SLICE)
        .map(|chunk| EndpointSlice {
            metadata: ObjectMeta {
                namespace: svc.metadata.namespace.clone(),
                labels: Some(labels.clone()),
                owner_references: Some(vec![owner.clone()]),
                ..Default::default()
            },
            address_type: family.to_owned(),
            endpoints: chunk.to_vec(),
            ports: ports.clone(),
        })
        .collect()
}

/// What to do with a Service's managed slices.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SlicePlan {
    /// Slices to create (with `generateName`).
    pub create: Vec<EndpointSlice>,
    /// Existing slices to replace (name and resourceVersion kept).
    pub update: Vec<EndpointSlice>,
    /// Names of existing slices to delete.
    pub delete: Vec<String>,
}

fn family(ip: &str) -> &'static str {
    if ip.contains(':') { "IPv6" } else { "IPv4" }
}

/// The Pod's address for the core/v1 Endpoints of a Service: the one of the
/// Service's primary family (upstream `podToEndpointAddressForService`: its
/// first `ipFamilies` entry, else its ClusterIP's family, else the family of
/// `podIP`).
fn endpoints_ip<'a>(svc: &Service, pod: &'a Pod) -> Option<&'a str> {
    let spec = svc.spec.as_ref();
    let wanted = match spec.and_then(|s| s.ip_families.as_ref()).and_then(|f| f.first()) {
        Some(f) => if f == "IPv6" { "IPv6" } else { "IPv4" },
        None => match spec.and_then(|s| s.cluster_ip.as_deref()).filter(|ip| !ip.is_empty() && *ip != "None") {
            Some(ip) => family(ip),
            None => family(pods::ip(pod)?),
        },
    };
    pods::ips(pod).into_iter().find(|ip| family(ip) == wanted)
}

/// The slice address types a Service has (upstream `getAddressTypesForService`):
/// its `ipFamilies`, else the family of its ClusterIP, else (headless) both.
fn address_types(svc: &Service) -> Vec<&'static str> {
    let spec = svc.spec.as_ref();
    let listed: Vec<&'static str> = spec.and_then(|s| s.ip_families.as_ref()).into_iter().flatten().map(|f| if f == "IPv6" { "IPv6" } else { "IPv4" }).collect();
    if !listed.is_empty() {
        return listed;
    }
    match spec.and_then(|s| s.cluster_ip.as_deref()).filter(|ip| !ip.is_empty() && *ip != "None") {
        Some(ip) => vec![family(ip)],
        None => vec!["IPv4", "IPv6"],
    }
}

/// The EndpointSlices a Service with a selector should have, as a change
/// against the slices it already has (reusing them to keep churn low).
pub fn plan_slices(svc: &Service, pods: &[&Pod], existing: &[EndpointSlice]) -> SlicePlan {
    let publish = publish_not_ready(svc);
    let svc_name = svc.metadata.name.clone().unwrap_or_default();
    let types = address_types(svc);
    // (address family, ports) → endpoints; one group per family of the Service the pod has an address of.
    let mut groups: BTreeMap<(String, PortKey), (Vec<SlicePort>, Vec<Endpoint>)> = BTreeMap::new();
    for (pod, ip) in pods.iter().filter(|p| selects(svc, p)).flat_map(|p| pods::ips(p).into_iter().filter(|ip| types.contains(&family(ip))).map(move |ip| (p, ip))) {
        if pods::is_finished(pod) {
            continue;
        }
        let ports = resolved_ports(svc, pod);
        let has_ports = !ports.is_empty();
        let usable: Vec<(String, i32, String, Option<String>)> = ports.into_iter().filter_map(|(n, p, proto, ap)| p.map(|p| (n, p, proto, ap))).collect();
        if has_ports && usable.is_empty() {
            continue;
        }
        let key = (family(ip).to_owned(), usable.iter().map(|(n, p, proto, _)| (n.clone(), *p, proto.clone())).collect());
        let ready = pods::is_ready(pod);
        let terminating = pods::is_terminating(pod);
        let endpoint = Endpoint {
            addresses: vec![ip.to_owned()],
            conditions: Some(EndpointConditions {
                ready: Some(publish || (ready && !terminating)),
                serving: Some(publish || ready),
                terminating: Some(terminating),
            }),
            hostname: hostname(svc, pod),
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(target_ref(pod)),
            ..Default::default()
        };
        let entry = groups.entry(key).or_insert_with(|| {
            let ports = usable.iter().map(|(n, p, proto, ap)| SlicePort { name: Some(n.clone()), port: Some(*p), protocol: Some(proto.clone()), app_protocol: ap.clone() }).collect();
            (ports, Vec::new())
        });
        entry.1.push(endpoint);
    }
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    labels.insert(SERVICE_NAME_LABEL.into(), svc_name.clone());
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    let owner = OwnerReference {
        api_version: "v1".into(),
        kind: "Service".into(),
        name: svc_name.clone(),
        uid: svc.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    // Desired slices without identity yet.
    let mut wanted: Vec<EndpointSlice> = Vec::new();
    for ((fam, _), (ports, mut endpoints)) in groups {
        endpoints.sort_by(|a, b| a.addresses.cmp(&b.addresses));
        wanted.extend(pack(svc, &labels, &owner, &fam, &endpoints, Some(ports)));
    }
    // A family with no endpoints still has one (empty) slice, as upstream.
    let empty: Vec<&str> = types.iter().copied().filter(|f| !wanted.iter().any(|w| w.address_type == *f)).collect();
    for fam in empty {
        let ports = svc.spec.as_ref().and_then(|s| s.ports.as_ref()).map(|ps| {
            ps.iter().map(|p| SlicePort { name: Some(p.name.clone().unwrap_or_default()), port: None, protocol: p.protocol.clone(), app_protocol: p.app_protocol.clone() }).collect::<Vec<_>>()
        });
        wanted.push(EndpointSlice {
            metadata: ObjectMeta { namespace: svc.metadata.namespace.clone(), labels: Some(labels.clone()), owner_references: Some(vec![owner.clone()]), ..Default::default() },
            address_type: fam.into(),
            endpoints: Vec::new(),
            ports: ports.filter(|p| !p.is_empty()),
        });
    }
    diff_slices(wanted, existing, &format!("{svc_name}-"))
}

/// Turns desired slices into changes against existing ones, reusing an
/// existing slice of the same family (same ports first) for each desired one.
pub fn diff_slices(wanted: Vec<EndpointSlice>, existing: &[EndpointSlice], generate_name: &str) -> SlicePlan {
    let mut plan = SlicePlan::default();
    let mut unused: Vec<&EndpointSlice> = existing.iter().collect();
    for mut w in wanted {
        let pos = unused
            .iter()
            .position(|e| e.ports == w.ports && e.address_type == w.address_type)
            // addressType is immutable: only a slice of the same family can be reused.
            .or_else(|| unused.iter().position(|e| e.address_type == w.address_type));
        match pos {
            Some(i) => {
                let cur = unused.remove(i);
                w.metadata.name = cur.metadata.name.clone();
                w.metadata.resource_version = cur.metadata.resource_version.clone();
                let same = cur.endpoints == w.endpoints
                    && cur.ports == w.ports
                    && cur.address_type == w.address_type
                    && cur.metadata.labels == w.metadata.labels
                    && cur.metadata.owner_references == w.metadata.owner_references;
                if !same {
                    plan.update.push(w);
                }
            }
            None => {
                w.metadata.generate_name = Some(generate_name.to_owned());
                plan.create.push(w);
            }
        }
    }
    plan.delete = unused.into_iter().filter_map(|e| e.metadata.name.clone()).collect();
    plan
}

/// The manager label value of slices mirrored from user-written Endpoints.
pub const MIRROR_MANAGED_BY: &str = "endpointslicemirroring-controller.k8s.io";

/// Slices mirroring the user-written Endpoints of a selector-less Service
/// (upstream's EndpointSlice mirroring controller); `None` endpoints means
/// none should exist.
pub fn plan_mirrored_slices(svc: &Service, endpoints: Option<&Endpoints>, existing: &[EndpointSlice]) -> SlicePlan {
    let svc_name = svc.metadata.name.clone().unwrap_or_default();
    let skip = endpoints.is_some_and(|e| {
        e.metadata.labels.as_ref().and_then(|l| l.get("endpointslice.kubernetes.io/skip-mirror")).map(String::as_str) == Some("true")
    });
    let Some(ep) = endpoints.filter(|_| !skip) else {
        return diff_slices(Vec::new(), existing, "");
    };
    let mut labels = ep.metadata.labels.clone().unwrap_or_default();
    labels.insert(SERVICE_NAME_LABEL.into(), svc_name.clone());
    labels.insert(MANAGED_BY_LABEL.into(), MIRROR_MANAGED_BY.into());
    let owner = OwnerReference {
        api_version: "v1".into(),
        kind: "Endpoints".into(),
        name: svc_name.clone(),
        uid: ep.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    let mut wanted = Vec::new();
    for subset in ep.subsets.iter().flatten() {
        let ports: Vec<SlicePort> = subset
            .ports
            .iter()
            .flatten()
            .map(|p| SlicePort { name: Some(p.name.clone().unwrap_or_default()), port: Some(p.port), protocol: p.protocol.clone().or(Some("TCP".into())), app_protocol: p.app_protocol.clone() })
            .collect();
        let mut by_family: BTreeMap<&'static str, Vec<Endpoint>> = BTreeMap::new();
        for (ready, list) in [(true, &subset.addresses), (false, &subset.not_ready_addresses)] {
            for a in list.iter().flatten() {
                by_family.entry(family(&a.ip)).or_default().push(Endpoint {
                    addresses: vec![a.ip.clone()],
                    conditions: Some(EndpointConditions { ready: Some(ready), serving: None, terminating: None }),
                    hostname: a.hostname.clone(),
                    node_name: a.node_name.clone(),
                    target_ref: a.target_ref.clone(),
                    ..Default::default()
                });
            }
        }
        for (fam, endpoints) in by_family {
            wanted.extend(pack(svc, &labels, &owner, fam, &endpoints, Some(ports.clone()).filter(|p| !p.is_empty())));
        }
    }
    diff_slices(wanted, existing, &format!("{svc_name}-"))
}

#[cfg(test)]
mod tests;
