//! What the agent knows about the machine it runs pods on: paths, the
//! `portico` binary, the CNI runtime, the image table, cluster DNS settings.

use crate::cni::runtime::CniRuntime;
use crate::images::ImageTable;
use std::net::IpAddr;
use std::path::PathBuf;

/// The machine-level settings every pod worker shares.
#[derive(Debug, Clone)]
pub struct Host {
    /// Node name.
    pub node_name: String,
    /// The node's addresses (InternalIP first).
    pub node_ips: Vec<IpAddr>,
    /// The agent's state directory (sandboxes, logs, CNI cache and leases).
    pub state_dir: PathBuf,
    /// The `portico` binary (for `sandbox-init`, `sandbox-exec`, `cni`, `netexec`).
    pub exe: PathBuf,
    /// The CNI runtime.
    pub cni: CniRuntime,
    /// The image table.
    pub images: ImageTable,
    /// Cluster DNS server addresses written into pods' resolv.conf.
    pub cluster_dns: Vec<IpAddr>,
    /// Cluster domain (`cluster.local`).
    pub cluster_domain: String,
    /// The host's resolv.conf (for dnsPolicy Default and the search path).
    pub host_resolv_conf: PathBuf,
    /// A prefix for network namespace names, so agents in tests never collide.
    pub netns_prefix: String,
    /// The running containers started with stdin or a tty (`kubectl attach`).
    pub attach: crate::attach::Registry,
}

impl Host {
    /// The directory of one pod's sandbox files and logs.
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.state_dir.join("pods").join(uid)
    }

    /// The pinned network namespace name for a pod.
    pub fn netns_name(&self, uid: &str) -> String {
        format!("{}{uid}", self.netns_prefix)
    }
}
