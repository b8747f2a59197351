//! Host ports (the `portMappings` capability) for `portico cni`, with the
//! reference `portmap` plugin's behaviour in Portico's own nftables table:
//! traffic to a local address and a pod's `hostPort` is DNATed to the pod
//! (from other machines, from the node itself and from pods), and masqueraded
//! where the reply would otherwise bypass the DNAT: from localhost (with
//! `route_localnet` on the bridge) and from pods on the same bridge (a pod
//! reaching its own host port). Each rule carries its container ID as its
//! comment, so DEL and GC remove exactly what one attachment added.

use super::{CniError, code, link};
use ipnet::IpNet;
use serde::Deserialize;
use std::net::IpAddr;

/// The nftables table holding host-port rules (one per address family).
pub const TABLE: &str = "portico-hostports";

/// The address families the table exists in.
pub const FAMILIES: [&str; 2] = ["ip", "ip6"];

/// One entry of `runtimeConfig.portMappings` (the CNI capability convention).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    /// The port on the node.
    pub host_port: u16,
    /// The port in the pod.
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp` (any case; default `tcp`).
    #[serde(default)]
    pub protocol: String,
    /// The node address the port is bound to; empty or unspecified means every local address.
    #[serde(default, rename = "hostIP")]
    pub host_ip: String,
}

impl PortMapping {
    fn protocol(&self) -> Result<String, CniError> {
        let p = if self.protocol.is_empty() { "tcp".to_owned() } else { self.protocol.to_ascii_lowercase() };
        if matches!(p.as_str(), "tcp" | "udp" | "sctp") {
            Ok(p)
        } else {
            Err(CniError::new(code::INVALID_NETWORK_CONFIG, "invalid port mapping", format!("unknown protocol {:?} for host port {}", self.protocol, self.host_port)))
        }
    }

    /// The host address, `None` for every address.
    fn host_ip(&self) -> Result<Option<IpAddr>, CniError> {
        if self.host_ip.is_empty() {
            return Ok(None);
        }
        let ip: IpAddr = self
            .host_ip
            .parse()
            .map_err(|_| CniError::new(code::INVALID_NETWORK_CONFIG, "invalid port mapping", format!("invalid hostIP {:?} for host port {}", self.host_ip, self.host_port)))?;
        Ok((!ip.is_unspecified()).then_some(ip))
    }
}

/// A rule in the table, as `nft -a list table` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRule {
    /// The chain it is in.
    pub chain: String,
    /// Its handle.
    pub handle: u64,
    /// Its comment (the owning container ID), if any.
    pub owner: Option<String>,
}

fn family_of(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() { "ip" } else { "ip6" }
}

/// The table with its hook chains, created when the first mapping arrives.
/// Priorities run just before the Service proxy's (-100 / 100).
pub fn table_script(family: &str) -> String {
    format!(
        "table {family} {TABLE} {{
  comment \"host ports of Portico's pods\"
  chain prerouting {{ type nat hook prerouting priority -101; policy accept; fib daddr type local jump hostports; }}
  chain output {{ type nat hook output priority -101; policy accept; fib daddr type local jump hostports; }}
  chain hostports {{ }}
  chain postrouting {{ type nat hook postrouting priority 99; policy accept; }}
}}
"
    )
}

/// The rules for one attachment: `pod` is the pod's address with its subnet's
/// prefix. Mappings whose host IP is of the other family are skipped (as
/// portmap does). Returns an empty string when nothing applies.
pub fn rules_script(container_id: &str, pod: &IpNet, mappings: &[PortMapping]) -> Result<String, CniError> {
    let pod_ip = pod.addr();
    let family = family_of(&pod_ip);
    let subnet = pod.trunc();
    let target = if pod_ip.is_ipv4() { format!("{pod_ip}") } else { format!("[{pod_ip}]") };
    // Sources whose replies would not pass back through the node's NAT.
    let sources = if pod_ip.is_ipv4() { format!("{{ 127.0.0.0/8, {subnet} }}") } else { format!("{{ ::1, {subnet} }}") };
    let mut out = String::new();
    for m in mappings {
        let proto = m.protocol()?;
        let host_ip = m.host_ip()?;
        if host_ip.is_some_and(|h| h.is_ipv4() != pod_ip.is_ipv4()) {
            continue;
        }
        let (hp, cp) = (m.host_port, m.container_port);
        let daddr = host_ip.map(|h| format!("{family} daddr {h} ")).unwrap_or_default();
        out.push_str(&format!(
            "add rule {family} {TABLE} hostports {daddr}meta l4proto {proto} th dport {hp} dnat to {target}:{cp} comment \"{container_id}\"\n"
        ));
        out.push_str(&format!(
            "add rule {family} {TABLE} postrouting {family} daddr {pod_ip} meta l4proto {proto} th dport {cp} ct original proto-dst {hp} {family} saddr {sources} masquerade comment \"{container_id}\"\n"
        ));
    }
    Ok(out)
}

/// Parses `nft -a list table FAMILY portico-hostports` into its rules.
pub fn parse_listing(listing: &str) -> Vec<ListedRule> {
    let mut chain = String::new();
    let mut rules = Vec::new();
    for line in listing.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("chain ") {
            chain = rest.split_whitespace().next().unwrap_or("").to_owned();
            continue;
        }
        let Some((body, handle)) = line.rsplit_once("# handle ") else { continue };
        let Ok(handle) = handle.trim().parse() else { continue };
        if body.starts_with("table ") || body.trim().is_empty() {
            continue;
        }
        let owner = body.split_once("comment \"").and_then(|(_, c)| c.split_once('"')).map(|(c, _)| c.to_owned());
        rules.push(ListedRule { chain: chain.clone(), handle, owner });
    }
    rules
}

/// The script removing the owned rules `keep` rejects; the whole table when
/// no owned rule would remain.
pub fn removal_script(family: &str, rules: &[ListedRule], keep: impl Fn(&str) -> bool) -> String {
    let owned: Vec<&ListedRule> = rules.iter().filter(|r| r.owner.is_some()).collect();
    let (kept, gone): (Vec<&ListedRule>, Vec<&ListedRule>) = owned.into_iter().partition(|r| r.owner.as_deref().is_some_and(&keep));
    if kept.is_empty() {
        return if rules.is_empty() { String::new() } else { format!("delete table {family} {TABLE}\n") };
    }
    gone.iter().map(|r| format!("delete rule {family} {TABLE} {} handle {}\n", r.chain, r.handle)).collect()
}

fn listing(family: &str) -> Option<String> {
    link::run("nft", &["-a", "list", "table", family, TABLE]).ok()
}

/// Programs the mappings of one attachment (ADD). Call with the network lock held.
pub fn add(container_id: &str, bridge: &str, pods: &[IpNet], mappings: &[PortMapping]) -> Result<(), CniError> {
    if mappings.is_empty() {
        return Ok(());
    }
    // A repeated ADD replaces what the attachment had.
    remove(container_id)?;
    for pod in pods {
        let rules = rules_script(container_id, pod, mappings)?;
        if rules.is_empty() {
            continue;
        }
        let family = family_of(&pod.addr());
        let mut script = String::new();
        if listing(family).is_none() {
            script.push_str(&table_script(family));
        }
        script.push_str(&rules);
        link::nft_apply(&script).map_err(|e| CniError::new(code::PLUGIN_FAILURE, "failed to set up host ports", e.details))?;
        if pod.addr().is_ipv4() {
            // Lets DNATed traffic from 127.0.0.0/8 leave through the bridge (portmap does the same).
            let _ = std::fs::write(format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet"), "1");
        }
    }
    // A UDP flow to the host port from before the pod existed would keep missing the DNAT.
    for m in mappings.iter().filter(|m| m.protocol().is_ok_and(|p| p == "udp")) {
        let _ = std::process::Command::new("conntrack").args(["-D", "-p", "udp", "--dport", &m.host_port.to_string()]).output();
    }
    Ok(())
}

/// Removes what one attachment added (DEL). Call with the network lock held.
pub fn remove(container_id: &str) -> Result<(), CniError> {
    retain(|owner| owner != container_id)
}

/// Removes the rules of attachments not in `valid` (GC). Call with the network lock held.
pub fn retain(keep: impl Fn(&str) -> bool) -> Result<(), CniError> {
    for family in FAMILIES {
        let Some(text) = listing(family) else { continue };
        let script = removal_script(family, &parse_listing(&text), &keep);
        if !script.is_empty() {
            link::nft_apply(&script).map_err(|e| CniError::new(code::PLUGIN_FAILURE, "failed to remove host ports", e.details))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(host_port: u16, container_port: u16, protocol: &str, host_ip: &str) -> PortMapping {
        PortMapping { host_port, container_port, protocol: protocol.into(), host_ip: host_ip.into() }
    }

    #[test]
    fn mappings_parse_from_the_capability_convention() {
        let v = serde_json::json!([{"hostPort": 54321, "containerPort": 8080, "protocol": "tcp", "hostIP": ""}, {"hostPort": 53, "containerPort": 5353}]);
        let got: Vec<PortMapping> = serde_json::from_value(v).expect("mappings");
        assert_eq!(got, vec![m(54321, 8080, "tcp", ""), m(53, 5353, "", "")]);
    }

    #[test]
    fn rules_dnat_every_local_address_or_the_host_ip_and_masquerade_astray_replies() {
        let pod: IpNet = "10.244.0.5/24".parse().expect("net");
        let got = rules_script("uid-1", &pod, &[m(54321, 8080, "TCP", ""), m(54323, 8080, "udp", "192.168.200.2"), m(80, 8080, "tcp", "0.0.0.0")]).expect("rules");
        let want = "\
add rule ip portico-hostports hostports meta l4proto tcp th dport 54321 dnat to 10.244.0.5:8080 comment \"uid-1\"
add rule ip portico-hostports postrouting ip daddr 10.244.0.5 meta l4proto tcp th dport 8080 ct original proto-dst 54321 ip saddr { 127.0.0.0/8, 10.244.0.0/24 } masquerade comment \"uid-1\"
add rule ip portico-hostports hostports ip daddr 192.168.200.2 meta l4proto udp th dport 54323 dnat to 10.244.0.5:8080 comment \"uid-1\"
add rule ip portico-hostports postrouting ip daddr 10.244.0.5 meta l4proto udp th dport 8080 ct original proto-dst 54323 ip saddr { 127.0.0.0/8, 10.244.0.0/24 } masquerade comment \"uid-1\"
add rule ip portico-hostports hostports meta l4proto tcp th dport 80 dnat to 10.244.0.5:8080 comment \"uid-1\"
add rule ip portico-hostports postrouting ip daddr 10.244.0.5 meta l4proto tcp th dport 8080 ct original proto-dst 80 ip saddr { 127.0.0.0/8, 10.244.0.0/24 } masquerade comment \"uid-1\"
";
        assert_eq!(got, want);
    }

    #[test]
    fn ipv6_pods_get_ip6_rules_and_skip_ipv4_host_ips() {
        let pod: IpNet = "fd00::5/64".parse().expect("net");
        let got = rules_script("u", &pod, &[m(8443, 443, "tcp", "192.168.200.2"), m(8443, 443, "tcp", "")]).expect("rules");
        assert_eq!(got.lines().count(), 2, "{got}");
        assert!(got.starts_with("add rule ip6 portico-hostports hostports meta l4proto tcp th dport 8443 dnat to [fd00::5]:443 comment \"u\"\n"), "{got}");
        assert!(got.contains("ip6 saddr { ::1, fd00::/64 } masquerade"), "{got}");
    }

    #[test]
    fn bad_protocols_and_host_ips_are_config_errors() {
        let pod: IpNet = "10.244.0.5/24".parse().expect("net");
        let e = rules_script("u", &pod, &[m(1, 2, "icmp", "")]).expect_err("protocol");
        assert_eq!((e.code, e.details.as_str()), (7, "unknown protocol \"icmp\" for host port 1"));
        let e = rules_script("u", &pod, &[m(1, 2, "tcp", "nope")]).expect_err("ip");
        assert_eq!(e.details, "invalid hostIP \"nope\" for host port 1");
    }

    const LISTING: &str = "table ip portico-hostports { # handle 1
	comment \"host ports of Portico's pods\"
	chain prerouting { # handle 1
		type nat hook prerouting priority dstnat - 1; policy accept;
		fib daddr type local jump hostports # handle 5
	}
	chain hostports { # handle 3
		tcp dport 54321 dnat to 10.244.0.5:8080 comment \"a\" # handle 7
		ip daddr 127.0.0.1 udp dport 54321 dnat to 10.244.0.6:8080 comment \"b\" # handle 8
	}
	chain postrouting { # handle 4
		type nat hook postrouting priority srcnat - 1; policy accept;
		ip daddr 10.244.0.5 tcp dport 8080 ct original proto-dst 54321 ip saddr { 10.244.0.0/24, 127.0.0.0/8 } masquerade comment \"a\" # handle 10
	}
}
";

    #[test]
    fn listings_parse_into_owned_rules() {
        let rules = parse_listing(LISTING);
        let brief: Vec<(&str, u64, Option<&str>)> = rules.iter().map(|r| (r.chain.as_str(), r.handle, r.owner.as_deref())).collect();
        assert_eq!(brief, vec![("prerouting", 5, None), ("hostports", 7, Some("a")), ("hostports", 8, Some("b")), ("postrouting", 10, Some("a"))]);
    }

    #[test]
    fn removal_deletes_one_owner_by_handle_and_the_table_with_the_last() {
        let rules = parse_listing(LISTING);
        assert_eq!(
            removal_script("ip", &rules, |o| o != "a"),
            "delete rule ip portico-hostports hostports handle 7\ndelete rule ip portico-hostports postrouting handle 10\n"
        );
        assert_eq!(removal_script("ip", &rules, |_| true), "");
        assert_eq!(removal_script("ip", &rules, |_| false), "delete table ip portico-hostports\n");
        assert_eq!(removal_script("ip", &[], |_| false), "");
    }
}
