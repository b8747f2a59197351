//! host-local IPAM: one lease file per address under `<dataDir>/<network>/`,
//! with the same layout as the reference plugin (`<ip>` files holding
//! `<containerID>\r\n<ifname>`, `last_reserved_ip.<n>`, a `lock` file).

use super::{CniError, Route, code};
use ipnet::IpNet;
use serde::Deserialize;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The reference plugin's default lease directory.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

/// One range of a range set.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Range {
    /// The subnet addresses come from.
    pub subnet: IpNet,
    /// First address handed out (default: network + 2... as `.2`).
    #[serde(default)]
    pub range_start: Option<IpAddr>,
    /// Last address handed out (default `.254` for IPv4, last for IPv6).
    #[serde(default)]
    pub range_end: Option<IpAddr>,
    /// Gateway (default network + 1).
    #[serde(default)]
    pub gateway: Option<IpAddr>,
}

/// The `ipam` section for `host-local`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct IpamConfig {
    /// Plugin type (`host-local`).
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Range sets; each outer entry yields one address.
    #[serde(default)]
    pub ranges: Vec<Vec<Range>>,
    /// Deprecated single-range form.
    #[serde(default)]
    pub subnet: Option<IpNet>,
    /// Deprecated single-range form.
    #[serde(default)]
    pub range_start: Option<IpAddr>,
    /// Deprecated single-range form.
    #[serde(default)]
    pub range_end: Option<IpAddr>,
    /// Deprecated single-range form.
    #[serde(default)]
    pub gateway: Option<IpAddr>,
    /// Routes to install in the container.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Lease directory base.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
}

/// An address handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The address with the subnet's prefix length.
    pub address: IpNet,
    /// The range's gateway.
    pub gateway: IpAddr,
}

impl IpamConfig {
    /// The range sets, folding the deprecated top-level form in.
    pub fn range_sets(&self) -> Result<Vec<Vec<Range>>, CniError> {
        let mut sets = self.ranges.clone();
        if let Some(subnet) = self.subnet {
            sets.insert(0, vec![Range { subnet, range_start: self.range_start, range_end: self.range_end, gateway: self.gateway }]);
        }
        if sets.is_empty() || sets.iter().any(Vec::is_empty) {
            return Err(CniError::new(code::INVALID_NETWORK_CONFIG, "invalid IPAM configuration", "no IP ranges specified"));
        }
        Ok(sets)
    }

    fn dir(&self, network: &str) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)).join(network)
    }
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_u128(v: u128, like: IpAddr) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::from(u32::try_from(v).unwrap_or(u32::MAX))),
        IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::from(v)),
    }
}

impl Range {
    /// (first, last, gateway) with the reference plugin's defaults.
    pub fn bounds(&self) -> (IpAddr, IpAddr, IpAddr) {
        let net = to_u128(self.subnet.network());
        let bcast = to_u128(self.subnet.broadcast());
        let like = self.subnet.network();
        let gateway = self.gateway.unwrap_or_else(|| from_u128(net + 1, like));
        let start = self.range_start.unwrap_or_else(|| from_u128(net + 2, like));
        let end = self.range_end.unwrap_or_else(|| if like.is_ipv4() { from_u128(bcast - 1, like) } else { from_u128(bcast, like) });
        (start, end, gateway)
    }
}

/// Locks the network's lease directory for the life of the value.
struct Locked {
    dir: PathBuf,
    _lock: nix::fcntl::Flock<std::fs::File>,
}

fn lock(dir: &Path) -> Result<Locked, CniError> {
    let io = |e: std::io::Error| CniError::new(code::IO_FAILURE, "failed to open the IPAM lease directory", format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join("lock")).map_err(io)?;
    let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| CniError::new(code::IO_FAILURE, "failed to lock the IPAM lease directory", e.to_string()))?;
    Ok(Locked { dir: dir.to_owned(), _lock: lock })
}

/// The network's lease-directory lock, held for the life of the value; the
/// plugin changes the network's other host state (host-port rules) under it too.
pub struct NetworkLock {
    _locked: Locked,
}

/// Takes the network's lock (blocks until other plugin invocations let go).
pub fn lock_network(cfg: &IpamConfig, network: &str) -> Result<NetworkLock, CniError> {
    Ok(NetworkLock { _locked: lock(&cfg.dir(network))? })
}

fn lease_owner(dir: &Path, name: &str) -> Option<(String, String)> {
    let text = std::fs::read_to_string(dir.join(name)).ok()?;
    let mut lines = text.split("\r\n");
    let id = lines.next()?.trim().to_owned();
    let ifname = lines.next().unwrap_or("").trim().to_owned();
    Some((id, ifname))
}

fn leases(dir: &Path) -> Vec<(String, String, String)> {
    let Ok(rd) = std::fs::read_dir(dir) else { return vec![] };
    rd.flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.parse::<IpAddr>().is_ok())
        .filter_map(|n| lease_owner(dir, &n).map(|(id, ifn)| (n, id, ifn)))
        .collect()
}

/// Allocates one address per range set for `(container_id, ifname)`.
pub fn allocate(cfg: &IpamConfig, network: &str, container_id: &str, ifname: &str) -> Result<Vec<Lease>, CniError> {
    let sets = cfg.range_sets()?;
    let locked = lock(&cfg.dir(network))?;
    if let Some((ip, _, _)) = leases(&locked.dir).into_iter().find(|(_, id, ifn)| id == container_id && ifn == ifname) {
        return Err(CniError::new(
            code::PLUGIN_FAILURE,
            format!("failed to allocate for range 0: {ip} has been allocated to {container_id}, duplicate allocation is not allowed"),
            "",
        ));
    }
    let mut out = Vec::new();
    for (i, set) in sets.iter().enumerate() {
        match allocate_in_set(&locked.dir, i, set, container_id, ifname) {
            Ok(l) => out.push(l),
            Err(e) => {
                for l in &out {
                    let _ = std::fs::remove_file(locked.dir.join(l.address.addr().to_string()));
                }
                return Err(e);
            }
        }
    }
    Ok(out)
}

fn allocate_in_set(dir: &Path, index: usize, set: &[Range], container_id: &str, ifname: &str) -> Result<Lease, CniError> {
    let last_file = dir.join(format!("last_reserved_ip.{index}"));
    let last: Option<IpAddr> = std::fs::read_to_string(&last_file).ok().and_then(|s| s.trim().parse().ok());
    for range in set {
        let (start, end, gateway) = range.bounds();
        let (s, e) = (to_u128(start), to_u128(end));
        if e < s {
            continue;
        }
        let span = e - s + 1;
        // Round robin: start after the last address handed out, as host-local does.
        let first = match last.map(to_u128) {
            Some(l) if l >= s && l < e => l + 1 - s,
            _ => 0,
        };
        // Large IPv6 ranges: try a bounded number of candidates.
        for k in 0..span.min(1 << 16) {
            let v = s + (first + k) % span;
            let ip = from_u128(v, start);
            if ip == gateway {
                continue;
            }
            let path = dir.join(ip.to_string());
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    f.write_all(format!("{container_id}\r\n{ifname}").as_bytes())
                        .map_err(|e| CniError::new(code::IO_FAILURE, "failed to write a lease", e.to_string()))?;
                    let _ = std::fs::write(&last_file, ip.to_string());
                    let address = IpNet::new(ip, range.subnet.prefix_len()).map_err(|e| CniError::new(code::INVALID_NETWORK_CONFIG, "bad subnet", e.to_string()))?;
                    return Ok(Lease { address, gateway });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(CniError::new(code::IO_FAILURE, "failed to write a lease", format!("{}: {e}", path.display()))),
            }
        }
    }
    let subnets: Vec<String> = set.iter().map(|r| r.subnet.to_string()).collect();
    Err(CniError::new(code::PLUGIN_FAILURE, format!("failed to allocate for range {index}: no IP addresses available in range set: {}", subnets.join(",")), ""))
}

/// Releases every address held by `(container_id, ifname)`. Idempotent.
pub fn release(cfg: &IpamConfig, network: &str, container_id: &str, ifname: &str) -> Result<(), CniError> {
    let locked = lock(&cfg.dir(network))?;
    for (ip, id, ifn) in leases(&locked.dir) {
        if id == container_id && ifn == ifname {
            let _ = std::fs::remove_file(locked.dir.join(ip));
        }
    }
    Ok(())
}

/// The addresses held by `(container_id, ifname)`.
pub fn held(cfg: &IpamConfig, network: &str, container_id: &str, ifname: &str) -> Vec<IpAddr> {
    leases(&cfg.dir(network)).into_iter().filter(|(_, id, ifn)| id == container_id && ifn == ifname).filter_map(|(ip, _, _)| ip.parse().ok()).collect()
}

/// Removes leases whose attachment is not in `valid` (CNI GC).
pub fn gc(cfg: &IpamConfig, network: &str, valid: &[(String, String)]) -> Result<usize, CniError> {
    let locked = lock(&cfg.dir(network))?;
    let mut removed = 0;
    for (ip, id, ifn) in leases(&locked.dir) {
        if !valid.iter().any(|(v_id, v_if)| *v_id == id && *v_if == ifn) {
            let _ = std::fs::remove_file(locked.dir.join(ip));
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &Path, subnet: &str) -> IpamConfig {
        serde_json::from_value(serde_json::json!({"type": "host-local", "ranges": [[{"subnet": subnet}]], "dataDir": dir})).expect("cfg")
    }

    #[test]
    fn hands_out_addresses_round_robin_with_reference_layout() {
        let d = tempfile::tempdir().expect("tmp");
        let c = cfg(d.path(), "10.244.7.0/24");
        let a = allocate(&c, "net", "abc123", "eth0").expect("a");
        assert_eq!(a, vec![Lease { address: "10.244.7.2/24".parse().expect("net"), gateway: "10.244.7.1".parse().expect("ip") }]);
        assert_eq!(std::fs::read_to_string(d.path().join("net/10.244.7.2")).expect("lease"), "abc123\r\neth0");
        assert_eq!(std::fs::read_to_string(d.path().join("net/last_reserved_ip.0")).expect("last"), "10.244.7.2");
        let b = allocate(&c, "net", "def", "eth0").expect("b");
        assert_eq!(b[0].address.to_string(), "10.244.7.3/24");
        // Released addresses are not reused at once (round robin).
        release(&c, "net", "abc123", "eth0").expect("release");
        release(&c, "net", "abc123", "eth0").expect("release is idempotent");
        let c3 = allocate(&c, "net", "ghi", "eth0").expect("c");
        assert_eq!(c3[0].address.to_string(), "10.244.7.4/24");
    }

    #[test]
    fn duplicate_allocation_is_refused() {
        let d = tempfile::tempdir().expect("tmp");
        let c = cfg(d.path(), "10.244.7.0/24");
        allocate(&c, "net", "abc", "eth0").expect("a");
        let e = allocate(&c, "net", "abc", "eth0").expect_err("dup");
        assert!(e.msg.contains("duplicate allocation is not allowed"), "{}", e.msg);
    }

    #[test]
    fn exhaustion_and_gc() {
        let d = tempfile::tempdir().expect("tmp");
        let c = cfg(d.path(), "10.0.0.0/30");
        // /30: .1 gateway, .2 the only address (.3 is broadcast).
        allocate(&c, "n", "a", "eth0").expect("first");
        let e = allocate(&c, "n", "b", "eth0").expect_err("full");
        assert!(e.msg.contains("no IP addresses available in range set: 10.0.0.0/30"), "{}", e.msg);
        assert_eq!(gc(&c, "n", &[]).expect("gc"), 1);
        allocate(&c, "n", "b", "eth0").expect("after gc");
    }
}
