//! `portico cni`: a CNI plugin with the reference `bridge` plugin's behaviour and
//! built-in `host-local` IPAM. It creates the bridge (holding the node's pod
//! gateway), a veth per pod with hairpin on, leases addresses in lease files,
//! masquerades traffic that leaves the cluster, and maps host ports to pods
//! (the `portMappings` capability, see [`hostport`]).

use super::hostport;
use super::ipam::{self, IpamConfig};
use super::link;
use super::{AddResult, CniError, IpConfig, Interface, Route, code};
use serde::Deserialize;

/// Default bridge name.
pub const DEFAULT_BRIDGE: &str = "portico0";

/// The plugin's network configuration (the reference bridge fields Portico honours).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    /// Spec version.
    #[serde(default)]
    pub cni_version: String,
    /// Network name.
    #[serde(default)]
    pub name: String,
    /// Bridge to attach pods to.
    #[serde(default)]
    pub bridge: Option<String>,
    /// Give the bridge the gateway address.
    #[serde(default)]
    pub is_gateway: bool,
    /// Also make the gateway the pod's default route.
    #[serde(default)]
    pub is_default_gateway: bool,
    /// Masquerade traffic leaving the network.
    #[serde(default)]
    pub ip_masq: bool,
    /// Hairpin on the pod's bridge port (a pod reaching itself through a Service).
    #[serde(default)]
    pub hairpin_mode: bool,
    /// Interface MTU.
    #[serde(default)]
    pub mtu: Option<u32>,
    /// IPAM configuration (host-local semantics, built in).
    #[serde(default)]
    pub ipam: IpamConfig,
    /// Portico extension: destinations not masqueraded (the cluster's pod range).
    #[serde(default, rename = "clusterCIDR")]
    pub cluster_cidr: Option<String>,
    /// The previous plugin's result (CHECK/DEL).
    #[serde(default)]
    pub prev_result: Option<serde_json::Value>,
    /// Capability arguments from the runtime.
    #[serde(default)]
    pub runtime_config: RuntimeConfig,
}

/// The capability arguments Portico's plugin honours (`runtimeConfig`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeConfig {
    /// Host ports (the `portMappings` capability).
    #[serde(default)]
    pub port_mappings: Vec<hostport::PortMapping>,
}

/// What the runtime passed in the environment.
#[derive(Debug, Clone, Default)]
pub struct Env {
    /// CNI_COMMAND.
    pub command: String,
    /// CNI_CONTAINERID.
    pub container_id: String,
    /// CNI_NETNS.
    pub netns: String,
    /// CNI_IFNAME.
    pub ifname: String,
}

impl Env {
    /// Reads the CNI variables through `get`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        Self {
            command: get("CNI_COMMAND").unwrap_or_default(),
            container_id: get("CNI_CONTAINERID").unwrap_or_default(),
            netns: get("CNI_NETNS").unwrap_or_default(),
            ifname: get("CNI_IFNAME").unwrap_or_default(),
        }
    }

    fn require(&self, names: &[&str]) -> Result<(), CniError> {
        let missing: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| match *n {
                "CNI_CONTAINERID" => self.container_id.is_empty(),
                "CNI_NETNS" => self.netns.is_empty(),
                "CNI_IFNAME" => self.ifname.is_empty(),
                _ => false,
            })
            .collect();
        if !missing.is_empty() {
            return Err(CniError::new(code::INVALID_ENV, format!("required env variables [{}] missing", missing.join(",")), ""));
        }
        if names.contains(&"CNI_CONTAINERID") && !super::valid_container_id(&self.container_id) {
            return Err(CniError::new(code::INVALID_ENV, "invalid characters in containerID", self.container_id.clone()));
        }
        Ok(())
    }
}

/// Runs one plugin invocation; returns (exit code, stdout).
pub fn invoke(env: &Env, stdin: &[u8]) -> (i32, String) {
    let version = serde_json::from_slice::<serde_json::Value>(stdin)
        .ok()
        .and_then(|v| v.get("cniVersion").and_then(|c| c.as_str()).map(str::to_owned))
        .filter(|v| super::SUPPORTED_VERSIONS.contains(&v.as_str()))
        .unwrap_or_else(|| super::CURRENT_VERSION.to_owned());
    match dispatch(env, stdin) {
        Ok(out) => (0, out),
        Err(mut e) => {
            e.cni_version = version;
            (1, serde_json::to_string(&e).unwrap_or_default())
        }
    }
}

fn parse(stdin: &[u8]) -> Result<NetConf, CniError> {
    let conf: NetConf = serde_json::from_slice(stdin).map_err(|e| CniError::new(code::DECODING_FAILURE, "failed to load netconf", e.to_string()))?;
    super::check_version(&conf.cni_version)?;
    if conf.ipam.kind.is_empty() {
        return Err(CniError::new(code::INVALID_NETWORK_CONFIG, "invalid network config", "ipam.type is required (Portico's plugin implements \"host-local\")"));
    }
    if conf.ipam.kind != "host-local" {
        return Err(CniError::new(
            code::UNSUPPORTED_FIELD,
            format!("unsupported field ipam.type = {:?}", conf.ipam.kind),
            "Portico's plugin has host-local IPAM built in; use \"host-local\"",
        ));
    }
    if !super::valid_container_id(&conf.name) {
        return Err(CniError::new(code::INVALID_NETWORK_CONFIG, "invalid network config", format!("invalid network name {:?}", conf.name)));
    }
    Ok(conf)
}

fn dispatch(env: &Env, stdin: &[u8]) -> Result<String, CniError> {
    match env.command.as_str() {
        "VERSION" => Ok(serde_json::json!({"cniVersion": super::CURRENT_VERSION, "supportedVersions": super::SUPPORTED_VERSIONS}).to_string()),
        "ADD" => {
            env.require(&["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"])?;
            let conf = parse(stdin)?;
            add(env, &conf).map(|r| result_json(&r, &conf.cni_version))
        }
        "DEL" => {
            env.require(&["CNI_CONTAINERID", "CNI_IFNAME"])?;
            let conf = parse(stdin)?;
            del(env, &conf).map(|()| String::new())
        }
        "CHECK" => {
            env.require(&["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"])?;
            let conf = parse(stdin)?;
            check(env, &conf).map(|()| String::new())
        }
        "GC" => {
            let conf = parse(stdin)?;
            let raw: serde_json::Value = serde_json::from_slice(stdin).unwrap_or_default();
            let valid: Vec<(String, String)> = raw
                .get("cni.dev/valid-attachments")
                .and_then(|v| v.as_array())
                .map(|a| {
                    a.iter()
                        .map(|x| (x["containerID"].as_str().unwrap_or("").to_owned(), x["ifname"].as_str().unwrap_or("").to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            ipam::gc(&conf.ipam, &conf.name, &valid)?;
            let _lock = ipam::lock_network(&conf.ipam, &conf.name)?;
            hostport::retain(|owner| valid.iter().any(|(id, _)| id == owner)).map(|()| String::new())
        }
        "STATUS" => {
            let conf = parse(stdin)?;
            let dir = conf.ipam.data_dir.clone().unwrap_or_else(|| ipam::DEFAULT_DATA_DIR.into());
            std::fs::create_dir_all(&dir).map_err(|e| CniError::new(50, "plugin not available", format!("{}: {e}", dir.display())))?;
            Ok(String::new())
        }
        "" => Err(CniError::new(code::INVALID_ENV, "required env variables [CNI_COMMAND] missing", "")),
        other => Err(CniError::new(code::INVALID_ENV, format!("unknown CNI_COMMAND: {other}"), "")),
    }
}

fn result_json(r: &AddResult, version: &str) -> String {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    if version.starts_with("0.") {
        // 0.3.x/0.4.0 results carry the address family in each IP.
        if let Some(ips) = v.get_mut("ips").and_then(|i| i.as_array_mut()) {
            for ip in ips {
                let fam = if ip["address"].as_str().unwrap_or("").contains(':') { "6" } else { "4" };
                ip["version"] = fam.into();
            }
        }
    }
    v.to_string()
}

fn add(env: &Env, conf: &NetConf) -> Result<AddResult, CniError> {
    if !std::path::Path::new(&env.netns).exists() {
        return Err(CniError::new(code::UNKNOWN_CONTAINER, format!("failed to open netns {:?}", env.netns), "no such file or directory"));
    }
    if link::link_exists(Some(&env.netns), &env.ifname) {
        return Err(CniError::new(code::PLUGIN_FAILURE, format!("container veth name provided ({}) already exists", env.ifname), ""));
    }
    let bridge = conf.bridge.clone().unwrap_or_else(|| DEFAULT_BRIDGE.to_owned());
    let leases = ipam::allocate(&conf.ipam, &conf.name, &env.container_id, &env.ifname)?;
    let wired = wire(env, conf, &bridge, &leases).and_then(|r| {
        let _lock = ipam::lock_network(&conf.ipam, &conf.name)?;
        let pods: Vec<_> = leases.iter().map(|l| l.address).collect();
        hostport::add(&env.container_id, &bridge, &pods, &conf.runtime_config.port_mappings)?;
        Ok(r)
    });
    match wired {
        Ok(r) => Ok(r),
        Err(e) => {
            // Undo what was done; the runtime may not call DEL after a failed ADD.
            let _ = del(env, conf);
            Err(e)
        }
    }
}

fn wire(env: &Env, conf: &NetConf, bridge: &str, leases: &[ipam::Lease]) -> Result<AddResult, CniError> {
    let gateway = conf.is_gateway || conf.is_default_gateway;
    let first = leases.first().ok_or_else(|| CniError::new(code::PLUGIN_FAILURE, "IPAM returned no address", ""))?;
    let gw_cidr = format!("{}/{}", first.gateway, first.address.prefix_len());
    link::ensure_bridge(bridge, gateway.then_some(gw_cidr.as_str()), conf.mtu)?;
    for l in leases.iter().skip(1) {
        if gateway {
            link::ensure_bridge(bridge, Some(&format!("{}/{}", l.gateway, l.address.prefix_len())), None)?;
        }
    }
    link::enable_forwarding(leases.iter().any(|l| l.address.addr().is_ipv6()));
    let host = link::host_veth_name(&env.container_id, &env.ifname);
    if link::link_exists(None, &host) {
        let _ = link::ip(&["link", "del", "dev", &host]);
    }
    let mut add = vec!["link", "add", "name", host.as_str()];
    let mtu = conf.mtu.map(|m| m.to_string());
    if let Some(m) = &mtu {
        add.extend_from_slice(&["mtu", m]);
    }
    add.extend_from_slice(&["type", "veth", "peer", "name", &env.ifname, "netns", &env.netns]);
    link::ip(&add)?;
    link::ip(&["link", "set", "dev", &host, "master", bridge, "up"])?;
    if conf.hairpin_mode {
        link::ip(&["link", "set", "dev", &host, "type", "bridge_slave", "hairpin", "on"])?;
    }
    let ns = env.netns.as_str();
    link::ip_in(ns, &["link", "set", "dev", "lo", "up"])?;
    for l in leases {
        // No duplicate address detection: the range is ours, and a tentative address could not be used for seconds.
        let nodad: &[&str] = if l.address.addr().is_ipv6() { &["nodad"] } else { &[] };
        link::ip_in(ns, &[&["addr", "add", &l.address.to_string(), "dev", &env.ifname][..], nodad].concat())?;
    }
    link::ip_in(ns, &["link", "set", "dev", &env.ifname, "up"])?;
    let mut routes = conf.ipam.routes.clone();
    // A default route per family the pod has an address of, as the reference bridge plugin.
    for (v6, dst) in [(false, "0.0.0.0/0"), (true, "::/0")] {
        if conf.is_default_gateway && leases.iter().any(|l| l.address.addr().is_ipv6() == v6) && !routes.iter().any(|r| r.dst == dst) {
            routes.push(Route { dst: dst.into(), gw: String::new() });
        }
    }
    for r in &routes {
        let v6 = r.dst.contains(':');
        let Some(lease) = leases.iter().find(|l| l.address.addr().is_ipv6() == v6) else { continue };
        let via = if r.gw.is_empty() { lease.gateway.to_string() } else { r.gw.clone() };
        let dst = if r.dst == "0.0.0.0/0" || r.dst == "::/0" { "default".to_owned() } else { r.dst.clone() };
        link::ip_in(ns, &["route", "replace", &dst, "via", &via, "dev", &env.ifname])?;
    }
    if conf.ip_masq {
        for l in leases {
            let subnet = l.address.trunc().to_string();
            // clusterCIDR may list one range per family; each family excludes its own.
            let v6 = l.address.addr().is_ipv6();
            let exclude = conf.cluster_cidr.as_deref().and_then(|list| list.split(',').map(str::trim).find(|c| !c.is_empty() && c.contains(':') == v6)).map_or_else(|| subnet.clone(), str::to_owned);
            link::ensure_masquerade(&conf.name, &subnet, &exclude)?;
        }
    }
    Ok(AddResult {
        cni_version: conf.cni_version.clone(),
        interfaces: vec![
            Interface { name: bridge.to_owned(), mac: link::mac(None, bridge), sandbox: String::new() },
            Interface { name: host.clone(), mac: link::mac(None, &host), sandbox: String::new() },
            Interface { name: env.ifname.clone(), mac: link::mac(Some(ns), &env.ifname), sandbox: env.netns.clone() },
        ],
        ips: leases.iter().map(|l| IpConfig { address: l.address.to_string(), gateway: l.gateway.to_string(), interface: Some(2) }).collect(),
        routes,
        dns: serde_json::json!({}),
    })
}

fn del(env: &Env, conf: &NetConf) -> Result<(), CniError> {
    ipam::release(&conf.ipam, &conf.name, &env.container_id, &env.ifname)?;
    {
        let _lock = ipam::lock_network(&conf.ipam, &conf.name)?;
        hostport::remove(&env.container_id)?;
    }
    if !env.netns.is_empty() && std::path::Path::new(&env.netns).exists() && link::link_exists(Some(&env.netns), &env.ifname) {
        let _ = link::ip_in(&env.netns, &["link", "del", "dev", &env.ifname]);
    }
    let host = link::host_veth_name(&env.container_id, &env.ifname);
    if link::link_exists(None, &host) {
        let _ = link::ip(&["link", "del", "dev", &host]);
    }
    Ok(())
}

fn check(env: &Env, conf: &NetConf) -> Result<(), CniError> {
    let prev: AddResult = conf
        .prev_result
        .clone()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| CniError::new(code::DECODING_FAILURE, "failed to parse prevResult", e.to_string()))?
        .ok_or_else(|| CniError::new(code::INVALID_NETWORK_CONFIG, "Required prevResult missing", ""))?;
    if !link::link_exists(Some(&env.netns), &env.ifname) {
        return Err(CniError::new(code::PLUGIN_FAILURE, format!("failed to find container interface {} in netns {}", env.ifname, env.netns), ""));
    }
    let addrs = link::ip_in(&env.netns, &["-o", "addr", "show", "dev", &env.ifname])?;
    for ip in &prev.ips {
        if !addrs.contains(&format!(" {} ", ip.address)) {
            return Err(CniError::new(code::PLUGIN_FAILURE, format!("Failed to match addr {} on interface {}", ip.address, env.ifname), ""));
        }
    }
    let held = ipam::held(&conf.ipam, &conf.name, &env.container_id, &env.ifname);
    for ip in &prev.ips {
        let addr = ip.address.split('/').next().unwrap_or("");
        if !held.iter().any(|h| h.to_string() == addr) {
            return Err(CniError::new(code::PLUGIN_FAILURE, format!("host-local: Failed to find address added by container {}", env.container_id), ""));
        }
    }
    let bridge = conf.bridge.clone().unwrap_or_else(|| DEFAULT_BRIDGE.to_owned());
    if !link::link_exists(None, &bridge) {
        return Err(CniError::new(code::PLUGIN_FAILURE, format!("failed to find bridge {bridge}"), ""));
    }
    Ok(())
}

/// The `portico cni` entry point: reads the environment and stdin, prints the
/// result or error JSON, returns the exit code.
pub fn main() -> i32 {
    use std::io::{Read, Write};
    let env = Env::from_lookup(|k| std::env::var(k).ok());
    let mut stdin = Vec::new();
    if (env.command != "VERSION" || !atty_stdin())
        && let Err(e) = std::io::stdin().read_to_end(&mut stdin) {
            let err = CniError::new(code::IO_FAILURE, "error reading from stdin", e.to_string());
            println!("{}", serde_json::to_string(&err).unwrap_or_default());
            return 1;
        }
    let (rc, out) = invoke(&env, &stdin);
    let mut so = std::io::stdout();
    let _ = so.write_all(out.as_bytes());
    let _ = so.flush();
    rc
}

fn atty_stdin() -> bool {
    nix::unistd::isatty(std::io::stdin()).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(cmd: &str) -> Env {
        Env { command: cmd.into(), container_id: "abc".into(), netns: "/run/netns/x".into(), ifname: "eth0".into() }
    }

    #[test]
    fn version_lists_supported_versions() {
        let (rc, out) = invoke(&env("VERSION"), br#"{"cniVersion":"1.1.0"}"#);
        assert_eq!(rc, 0);
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(v["cniVersion"], "1.1.0");
        assert_eq!(v["supportedVersions"], serde_json::json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]));
    }

    #[test]
    fn bad_config_and_env_give_spec_errors() {
        let (rc, out) = invoke(&env("ADD"), b"{not json");
        assert_eq!(rc, 1);
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(v["code"], 6);
        let (_, out) = invoke(&env("ADD"), br#"{"cniVersion":"9.9.9","name":"n","type":"portico","ipam":{"type":"host-local"}}"#);
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(v["code"], 1);
        assert_eq!(v["msg"], "incompatible CNI versions");
        let mut e = env("ADD");
        e.netns.clear();
        e.ifname.clear();
        let (_, out) = invoke(&e, br#"{"cniVersion":"1.0.0","name":"n","type":"portico","ipam":{"type":"host-local"}}"#);
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(v["code"], 4);
        assert_eq!(v["msg"], "required env variables [CNI_NETNS,CNI_IFNAME] missing");
        assert_eq!(v["cniVersion"], "1.0.0");
        let (_, out) = invoke(&env("ADD"), br#"{"cniVersion":"1.0.0","name":"n","type":"portico","ipam":{"type":"dhcp"}}"#);
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(v["code"], 2);
    }
}
