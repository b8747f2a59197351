//! Rendering: the base table (maps, hooks, masquerading) and, per Service
//! port, its chains, affinity sets and map elements. Modelled on kube-proxy's
//! nftables mode: one verdict-map lookup on `daddr . l4proto . dport` whatever
//! the number of Services, a chain per Service port; endpoint choice is a
//! `dnat ip to numgen|jhash ... mod LEN offset BASE map @endpoint-slots-N`
//! over the Service port's block of slots in a shared map (`slots`; no
//! per-endpoint chains, no anonymous set per Service) unless ClientIP affinity
//! needs per-endpoint state. One table per IP family (`ip` and `ip6`, as
//! kube-proxy has): the same shape, rendered from that family's ServiceMap.

use super::slots::{self, Slots};
use crate::servicemap::{Algorithm, Endpoint, Family, ServicePort};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

/// The packet mark that asks for masquerade (kube-proxy's 0x4000).
pub const MASQ_MARK: &str = "0x4000";

/// Node-wide settings the rules of one family's table depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// The nftables table name.
    pub table: String,
    /// The table's family.
    pub family: Family,
    /// The cluster's pod range of this family: traffic from outside it to a
    /// ClusterIP is masqueraded. None: no range of this family is known, so
    /// (as kube-proxy without a local-traffic detector) no such rule.
    pub cluster_cidr: Option<String>,
}

impl NodeConfig {
    /// `ip portico` / `ip6 portico`: the table as nft commands name it.
    pub fn qualified_table(&self) -> String {
        format!("{} {}", self.family.nft(), self.table)
    }
}

impl Family {
    /// The nftables family of the table, also the payload keyword (`ip daddr`, `ip6 daddr`).
    pub fn nft(self) -> &'static str {
        match self {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        }
    }

    /// The nftables address type.
    pub fn addr_type(self) -> &'static str {
        match self {
            Family::V4 => "ipv4_addr",
            Family::V6 => "ipv6_addr",
        }
    }

    /// The match that keeps NodePorts off loopback (kube-proxy's `noLocalhost`).
    fn not_localhost(self) -> &'static str {
        match self {
            Family::V4 => "ip daddr != 127.0.0.0/8",
            Family::V6 => "ip6 daddr != ::1",
        }
    }
}

/// The kernel objects one Service port needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered {
    /// Chains and their rules.
    pub chains: BTreeMap<String, Vec<String>>,
    /// Sets (name → definition body).
    pub sets: BTreeMap<String, String>,
    /// Map elements: (map, key) → value.
    pub elements: BTreeMap<(String, String), String>,
    /// Endpoint addresses (for the hairpin set).
    pub endpoint_ips: BTreeSet<IpAddr>,
    /// Endpoint-slot shard maps the rules use (created on demand, never deleted
    /// by an incremental sync: other Services may share them).
    pub shards: BTreeSet<u32>,
}

/// Which endpoint list of a Service port a slot block holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum List {
    /// Every usable endpoint.
    All,
    /// The endpoints on this node (Local traffic policies).
    Local,
}

impl List {
    const BOTH: [List; 2] = [List::All, List::Local];

    fn owner(self, key: &str) -> String {
        match self {
            List::All => format!("{key}#all"),
            List::Local => format!("{key}#local"),
        }
    }
}

/// Eight stable base32 characters naming a Service port's objects.
pub fn hash8(key: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    const A: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    (0..8).map(|i| A[((h >> (i * 5)) & 31) as usize] as char).collect()
}

fn names(sp: &ServicePort) -> (String, String, String) {
    let h = hash8(&sp.key);
    // A trailing '/' (unnamed port) reads badly; name it by number instead.
    let key = if sp.key.ends_with('/') { format!("{}p{}", sp.key, sp.port) } else { sp.key.clone() };
    (format!("service-{h}-{key}"), format!("external-{h}-{key}"), format!("{h}-{key}"))
}

/// The base ruleset (without the table line): maps, sets and hook chains.
pub fn base(cfg: &NodeConfig) -> String {
    let t = cfg.qualified_table();
    let (ip, addr, local) = (cfg.family.nft(), cfg.family.addr_type(), cfg.family.not_localhost());
    format!(
        "table {t} {{
  comment \"rules for Portico's Service proxy\"
  map service-ips {{ type {addr} . inet_proto . inet_service : verdict ; comment \"ClusterIP, ExternalIP and LoadBalancer IP traffic\" ; }}
  map service-nodeports {{ type inet_proto . inet_service : verdict ; comment \"NodePort traffic\" ; }}
  map no-endpoint-services {{ type {addr} . inet_proto . inet_service : verdict ; comment \"vmap to drop or reject packets to services with no endpoints\" ; }}
  map no-endpoint-nodeports {{ type inet_proto . inet_service : verdict ; comment \"vmap to drop or reject packets to service nodeports with no endpoints\" ; }}
  set hairpin {{ type {addr} . {addr} ; comment \"endpoints reaching themselves through a Service\" ; }}
  chain mark-for-masquerade {{ meta mark set meta mark | {MASQ_MARK} ; }}
  chain masquerading {{
    ct status dnat {ip} saddr . {ip} daddr @hairpin masquerade
    meta mark & {MASQ_MARK} == 0 return
    meta mark set meta mark ^ {MASQ_MARK}
    masquerade fully-random
  }}
  chain services {{
    {ip} daddr . meta l4proto . th dport vmap @service-ips
    fib daddr type local {local} meta l4proto . th dport vmap @service-nodeports
  }}
  chain reject-chain {{ meta l4proto tcp reject with tcp reset ; reject ; }}
  chain service-endpoints-check {{ {ip} daddr . meta l4proto . th dport vmap @no-endpoint-services ; }}
  chain nodeport-endpoints-check {{ fib daddr type local {local} meta l4proto . th dport vmap @no-endpoint-nodeports ; }}
  chain nat-prerouting {{ type nat hook prerouting priority -100 ; jump services ; }}
  chain nat-output {{ type nat hook output priority -100 ; jump services ; }}
  chain nat-postrouting {{ type nat hook postrouting priority 100 ; jump masquerading ; }}
  chain filter-forward {{ type filter hook forward priority 0 ; ct state new jump service-endpoints-check ; }}
  chain filter-input {{ type filter hook input priority 0 ; ct state new jump service-endpoints-check ; ct state new jump nodeport-endpoints-check ; }}
  chain filter-output {{ type filter hook output priority 0 ; ct state new jump service-endpoints-check ; ct state new jump nodeport-endpoints-check ; }}
}}
"
    )
}

/// The base of a shard table (`nft::shards`): only what its Service chains
/// need, the `service-ips` dispatch from both NAT hooks and the masquerade
/// mark. NodePorts, the no-endpoint checks, the hairpin set and masquerading
/// itself stay in the main table.
pub fn shard_base(cfg: &NodeConfig) -> String {
    let t = cfg.qualified_table();
    let (ip, addr) = (cfg.family.nft(), cfg.family.addr_type());
    format!(
        "table {t} {{
  comment \"rules for Portico's Service proxy: a shard of the Service ports\"
  map service-ips {{ type {addr} . inet_proto . inet_service : verdict ; comment \"ClusterIP, ExternalIP and LoadBalancer IP traffic\" ; }}
  chain mark-for-masquerade {{ meta mark set meta mark | {MASQ_MARK} ; }}
  chain services {{ {ip} daddr . meta l4proto . th dport vmap @service-ips ; }}
  chain nat-prerouting {{ type nat hook prerouting priority -100 ; jump services ; }}
  chain nat-output {{ type nat hook output priority -100 ; jump services ; }}
}}
"
    )
}

fn choose(alg: Algorithm, family: Family) -> String {
    match alg {
        Algorithm::Random => "numgen random".into(),
        Algorithm::RoundRobin => "numgen inc".into(),
        Algorithm::SourceHash => format!("jhash {} saddr", family.nft()),
    }
}

/// The definition of an endpoint-slot shard map of `family`'s table for
/// `protocol`'s endpoints (`typeof numgen` gives the plain integer key the
/// `numgen`/`jhash` expressions produce).
pub fn slot_map_definition(family: Family, protocol: &str) -> String {
    format!("typeof numgen inc mod 2 : {} daddr . {protocol} dport ; comment \"endpoints by slot; each Service port owns a block of slots\" ;", family.nft())
}

/// `ip:port` or `[ip6]:port`, as `dnat ... to` takes them.
fn socket(e: &Endpoint) -> SocketAddr {
    SocketAddr::new(e.ip, e.port)
}

/// An endpoint as part of an object name (nft names cannot hold ':').
fn name_part(e: &Endpoint) -> String {
    format!("{}/{}", e.ip.to_string().replace(':', "."), e.port)
}

/// Rules that pick one of `eps` (the `list` of `sp`) and DNAT to it
/// (affinity: per-endpoint chains and sets).
fn selection(sp: &ServicePort, cfg: &NodeConfig, eps: &[Endpoint], list: List, out: &mut Rendered, slots: &mut Slots, used: &mut Vec<List>) -> Vec<String> {
    let proto = sp.protocol;
    let suffix = names(sp).2;
    let ip = cfg.family.nft();
    let Some(timeout) = sp.affinity else {
        return match eps {
            [one] => vec![format!("meta l4proto {proto} dnat {ip} to {}", socket(one))],
            _ => {
                let block = slots.place(&list.owner(&sp.key), proto, eps.len() as u32);
                used.push(list);
                let map = slots::map_name(block.shard);
                out.shards.insert(block.shard);
                for (i, e) in (block.base..).zip(eps) {
                    out.elements.insert((map.clone(), i.to_string()), format!("{} . {}", e.ip, e.port));
                }
                vec![format!("meta l4proto {proto} dnat {ip} to {} mod {} offset {} map @{map}", choose(sp.algorithm, cfg.family), eps.len(), block.base)]
            }
        };
    };
    let mut rules = Vec::new();
    let mut targets = Vec::new();
    for e in eps {
        let set = format!("affinity-{suffix}__{}", name_part(e));
        let chain = format!("endpoint-{suffix}__{}", name_part(e));
        out.sets.insert(set.clone(), format!("type {} ; flags dynamic,timeout ; timeout {timeout}s ;", cfg.family.addr_type()));
        out.chains.insert(chain.clone(), vec![format!("update @{set} {{ {ip} saddr }}"), format!("meta l4proto {proto} dnat {ip} to {}", socket(e))]);
        rules.push(format!("{ip} saddr @{set} goto {chain}"));
        targets.push(chain);
    }
    let vmap: Vec<String> = targets.iter().enumerate().map(|(i, c)| format!("{i} : goto {c}")).collect();
    rules.push(format!("{} mod {} vmap {{ {} }}", choose(sp.algorithm, cfg.family), targets.len(), vmap.join(", ")));
    rules
}

/// The verdict for traffic that finds no endpoint: `drop` when only a Local
/// policy leaves it without one, else reject.
fn no_endpoint_verdict(local_policy: bool, any_endpoint: bool) -> String {
    if local_policy && any_endpoint { "drop".into() } else { "goto reject-chain".into() }
}

/// Frees the endpoint slots of a Service port that is gone.
pub fn release(key: &str, slots: &mut Slots) {
    for list in List::BOTH {
        slots.remove(&list.owner(key));
    }
}

/// Renders one Service port, placing its endpoints in `slots`.
pub fn render(sp: &ServicePort, cfg: &NodeConfig, slots: &mut Slots) -> Rendered {
    let mut out = Rendered::default();
    let mut used = Vec::new();
    let internal_list = if sp.internal_local { List::Local } else { List::All };
    let external_list = if sp.external_local { List::Local } else { List::All };
    let (svc_chain, ext_chain, _) = names(sp);
    let proto = sp.protocol;
    let ip = cfg.family.nft();
    out.endpoint_ips = sp.endpoints.iter().map(|e| e.ip).collect();
    let internal = sp.internal();
    if let Some(cip) = sp.cluster_ip {
        let key = format!("{cip} . {proto} . {}", sp.port);
        if internal.is_empty() {
            out.elements.insert(("no-endpoint-services".into(), key), no_endpoint_verdict(sp.internal_local, !sp.endpoints.is_empty()));
        } else {
            let mut rules: Vec<String> = cfg.cluster_cidr.iter().map(|cidr| format!("{ip} daddr {cip} {ip} saddr != {cidr} jump mark-for-masquerade")).collect();
            rules.extend(selection(sp, cfg, internal, internal_list, &mut out, slots, &mut used));
            out.chains.insert(svc_chain.clone(), rules);
            out.elements.insert(("service-ips".into(), key), format!("goto {svc_chain}"));
        }
    }
    if sp.has_external() {
        let external = sp.external();
        let verdict = if external.is_empty() {
            no_endpoint_verdict(sp.external_local, !sp.endpoints.is_empty())
        } else {
            let mut rules = Vec::new();
            if sp.external_local {
                // Pods and the node itself still reach every endpoint (kube-proxy's
                // short-circuits); other clients keep their source IP and only reach local endpoints.
                let everywhere = selection(sp, cfg, &sp.endpoints, List::All, &mut out, slots, &mut used);
                if let Some(cidr) = &cfg.cluster_cidr {
                    rules.extend(everywhere.iter().map(|r| format!("{ip} saddr {cidr} {r}")));
                }
                rules.push("fib saddr type local jump mark-for-masquerade".into());
                rules.extend(everywhere.iter().map(|r| format!("fib saddr type local {r}")));
                rules.extend(selection(sp, cfg, external, external_list, &mut out, slots, &mut used));
            } else {
                rules.push("jump mark-for-masquerade".into());
                rules.extend(selection(sp, cfg, external, external_list, &mut out, slots, &mut used));
            }
            out.chains.insert(ext_chain.clone(), rules);
            format!("goto {ext_chain}")
        };
        let empty = external.is_empty();
        for addr in &sp.external_ips {
            let key = format!("{addr} . {proto} . {}", sp.port);
            let map = if empty { "no-endpoint-services" } else { "service-ips" };
            out.elements.insert((map.into(), key), verdict.clone());
        }
        if let Some(np) = sp.node_port {
            let map = if empty { "no-endpoint-nodeports" } else { "service-nodeports" };
            out.elements.insert((map.into(), format!("{proto} . {np}")), verdict.clone());
        }
    }
    for list in List::BOTH.into_iter().filter(|l| !used.contains(l)) {
        slots.remove(&list.owner(&sp.key));
    }
    out
}
