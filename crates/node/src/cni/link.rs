//! Links, addresses and routes through iproute2 (`ip`), inside a network
//! namespace through `nsenter --net=PATH`. The plugin is a short-lived process,
//! so shelling out costs little and keeps the kernel interface the well-known one.

use super::{CniError, code};
use std::process::Command;

/// Runs a command, turning a failure into a plugin error naming the command.
pub fn run(program: &str, args: &[&str]) -> Result<String, CniError> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| CniError::new(code::PLUGIN_FAILURE, format!("failed to run {program}"), e.to_string()))?;
    if !out.status.success() {
        return Err(CniError::new(
            code::PLUGIN_FAILURE,
            format!("{program} {} failed", args.join(" ")),
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `ip ARGS` in the host namespace.
pub fn ip(args: &[&str]) -> Result<String, CniError> {
    run("ip", args)
}

/// Runs `ip ARGS` inside the network namespace at `netns`.
pub fn ip_in(netns: &str, args: &[&str]) -> Result<String, CniError> {
    let net = format!("--net={netns}");
    let mut full = vec![net.as_str(), "ip"];
    full.extend_from_slice(args);
    run("nsenter", &full)
}

/// Whether a link exists (in the host namespace, or in `netns`).
pub fn link_exists(netns: Option<&str>, name: &str) -> bool {
    let r = match netns {
        Some(ns) => ip_in(ns, &["link", "show", "dev", name]),
        None => ip(&["link", "show", "dev", name]),
    };
    r.is_ok()
}

/// The MAC address of a link (in the host namespace, or in `netns`).
pub fn mac(netns: Option<&str>, name: &str) -> String {
    let args = ["-o", "link", "show", "dev", name];
    let out = match netns {
        Some(ns) => ip_in(ns, &args),
        None => ip(&args),
    };
    out.ok().and_then(|l| l.split("link/ether ").nth(1).and_then(|r| r.split_whitespace().next()).map(str::to_owned)).unwrap_or_default()
}

/// Creates the bridge if missing and brings it up; adds `gateway` when given.
pub fn ensure_bridge(name: &str, gateway: Option<&str>, mtu: Option<u32>) -> Result<(), CniError> {
    if !link_exists(None, name)
        && let Err(e) = ip(&["link", "add", "name", name, "type", "bridge"]) {
            // Another ADD may have created it at the same moment.
            if !link_exists(None, name) {
                return Err(e);
            }
        }
    if let Some(mtu) = mtu {
        ip(&["link", "set", "dev", name, "mtu", &mtu.to_string()])?;
    }
    ip(&["link", "set", "dev", name, "up"])?;
    if let Some(gw) = gateway {
        let addrs = ip(&["-o", "addr", "show", "dev", name])?;
        let gw_ip = gw.split('/').next().unwrap_or(gw);
        if !addrs.split_whitespace().any(|w| w.split('/').next() == Some(gw_ip))
            && let Err(e) = ip(&[&["addr", "add", gw, "dev", name][..], if gw.contains(':') { &["nodad"] } else { &[] }].concat())
                && !e.details.contains("File exists") {
                    return Err(e);
                }
    }
    Ok(())
}

/// A host-side veth name derived from the attachment, stable so DEL finds it.
pub fn host_veth_name(container_id: &str, ifname: &str) -> String {
    // FNV-1a: short, stable, no extra dependency.
    let mut h: u32 = 0x811c_9dc5;
    for b in container_id.bytes().chain([0]).chain(ifname.bytes()) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("veth{h:08x}")
}

/// Turns on forwarding for IPv4 (and IPv6 when asked) in the host namespace.
pub fn enable_forwarding(v6: bool) {
    let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", "1");
    if v6 {
        let _ = std::fs::write("/proc/sys/net/ipv6/conf/all/forwarding", "1");
    }
}

/// Name of the nftables table holding the plugin's masquerade rules.
pub const MASQ_TABLE: &str = "portico-cni";

/// Ensures traffic from `subnet` to anywhere outside `exclude` is masqueraded.
pub fn ensure_masquerade(network: &str, subnet: &str, exclude: &str) -> Result<(), CniError> {
    let family = if subnet.contains(':') { "ip6" } else { "ip" };
    let comment = format!("portico-cni {network} {subnet}");
    let listing = run("nft", &["list", "table", family, MASQ_TABLE]).unwrap_or_default();
    if listing.contains(&comment) {
        return Ok(());
    }
    let script = format!(
        "table {family} {MASQ_TABLE} {{\n  chain postrouting {{ type nat hook postrouting priority 100; }}\n}}\nadd rule {family} {MASQ_TABLE} postrouting {family} saddr {subnet} {family} daddr != {exclude} masquerade comment \"{comment}\"\n"
    );
    nft_apply(&script).map_err(|e| if e.msg == NFT_MISSING { CniError::new(code::PLUGIN_FAILURE, "ipMasq needs the nft binary (apt-get install nftables)", e.details) } else { CniError::new(code::PLUGIN_FAILURE, "failed to set up masquerade", e.details) })
}

const NFT_MISSING: &str = "failed to run nft";

/// Runs an nftables script (`nft -f -`) as one transaction.
pub fn nft_apply(script: &str) -> Result<(), CniError> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| CniError::new(code::PLUGIN_FAILURE, NFT_MISSING, e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        let _ = stdin.write_all(script.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| CniError::new(code::PLUGIN_FAILURE, "nft failed", e.to_string()))?;
    if !out.status.success() {
        return Err(CniError::new(code::PLUGIN_FAILURE, "nft -f failed", String::from_utf8_lossy(&out.stderr).trim().to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_names_are_stable_and_short() {
        let a = host_veth_name("abc", "eth0");
        assert_eq!(a, host_veth_name("abc", "eth0"));
        assert_ne!(a, host_veth_name("abc", "eth1"));
        assert!(a.len() <= 15, "{a}");
    }
}
