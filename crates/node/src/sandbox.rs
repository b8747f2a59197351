//! Pod sandboxes: a pinned network namespace wired by CNI, and a pause
//! process (`portico sandbox-init`) holding the pod's UTS and mount namespaces
//! with its hostname, `/etc/hosts` and `/etc/resolv.conf`. Containers join
//! the pause process's namespaces. A record on disk lets a restarted agent
//! find and remove sandboxes it no longer runs.

use crate::cni::runtime::{Attachment, RuntimeError};
use crate::dns_files;
use crate::host::Host;
use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

/// Why a sandbox could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// Creating the network namespace failed.
    #[error("creating network namespace {name}: {reason}")]
    Netns {
        /// Namespace name.
        name: String,
        /// What `ip netns` said.
        reason: String,
    },
    /// CNI failed.
    #[error(transparent)]
    Cni(#[from] RuntimeError),
    /// The pause process failed.
    #[error("starting the pod's pause process: {0}")]
    Pause(String),
    /// A file could not be written.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// What is on disk about a sandbox (`<pod dir>/sandbox.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    /// Pod UID (also the CNI container ID).
    pub uid: String,
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Network namespace name under /run/netns (empty for hostNetwork pods).
    pub netns: String,
    /// The pause process.
    pub pause_pid: u32,
    /// The pod's IPs.
    pub ips: Vec<IpAddr>,
}

/// A running sandbox.
#[derive(Debug)]
pub struct Sandbox {
    /// What is recorded on disk.
    pub record: Record,
    pause: tokio::process::Child,
}

impl Sandbox {
    /// The pause process ID (containers join its namespaces).
    pub fn pause_pid(&self) -> u32 {
        self.record.pause_pid
    }

    /// Whether the pause process has exited.
    pub fn pause_exited(&mut self) -> bool {
        !matches!(self.pause.try_wait(), Ok(None))
    }
}

async fn ip_netns(args: &[&str]) -> Result<(), String> {
    let out = tokio::process::Command::new("ip").arg("netns").args(args).output().await.map_err(|e| format!("running ip: {e}"))?;
    if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).trim().to_owned()) }
}

fn write(path: PathBuf, text: &str) -> Result<PathBuf, SandboxError> {
    std::fs::write(&path, text).map_err(|source| SandboxError::Io { path: path.clone(), source })?;
    Ok(path)
}

fn attachment(record: &Record) -> Attachment {
    Attachment {
        container_id: record.uid.clone(),
        netns: format!("/run/netns/{}", record.netns),
        ifname: "eth0".into(),
        args: vec![
            ("IgnoreUnknown".into(), "1".into()),
            ("K8S_POD_NAMESPACE".into(), record.namespace.clone()),
            ("K8S_POD_NAME".into(), record.name.clone()),
            ("K8S_POD_INFRA_CONTAINER_ID".into(), record.uid.clone()),
            ("K8S_POD_UID".into(), record.uid.clone()),
        ],
        port_mappings: vec![],
    }
}

/// Port mappings (hostPort) of a pod, in the CNI `portMappings` shape.
pub fn port_mappings(pod: &Pod) -> Vec<serde_json::Value> {
    let spec = pod.spec.clone().unwrap_or_default();
    spec.containers
        .iter()
        .flat_map(|c| c.ports.clone().unwrap_or_default())
        .filter(|p| p.host_port.is_some_and(|h| h > 0))
        .map(|p| {
            serde_json::json!({"hostPort": p.host_port, "containerPort": p.container_port,
                "protocol": p.protocol.clone().unwrap_or_else(|| "TCP".into()).to_lowercase(), "hostIP": p.host_ip.clone().unwrap_or_default()})
        })
        .collect()
}

/// Creates the sandbox for `pod`: netns, CNI ADD, files, pause process.
pub async fn create(host: &Host, pod: &Pod) -> Result<Sandbox, SandboxError> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let dir = host.pod_dir(&uid);
    std::fs::create_dir_all(&dir).map_err(|source| SandboxError::Io { path: dir.clone(), source })?;
    let spec = pod.spec.clone().unwrap_or_default();
    let host_network = spec.host_network == Some(true);
    let mut record = Record {
        uid: uid.clone(),
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        netns: String::new(),
        pause_pid: 0,
        ips: vec![],
    };
    let netns_path;
    if host_network {
        record.ips = host.node_ips.clone();
        netns_path = format!("/proc/{}/ns/net", std::process::id());
    } else {
        let name = host.netns_name(&uid);
        if std::path::Path::new("/run/netns").join(&name).exists() {
            let _ = ip_netns(&["delete", &name]).await;
        }
        ip_netns(&["add", &name]).await.map_err(|reason| SandboxError::Netns { name: name.clone(), reason })?;
        record.netns = name.clone();
        // Written before CNI ADD so a crash in between still leaves a record to clean up.
        let _ = write(dir.join("sandbox.json"), &serde_json::to_string(&record).unwrap_or_default());
        let mut att = attachment(&record);
        att.port_mappings = port_mappings(pod);
        let result = match host.cni.add(&att).await {
            Ok(r) => r,
            Err(e) => {
                let _ = ip_netns(&["delete", &name]).await;
                return Err(e.into());
            }
        };
        record.ips = result["ips"]
            .as_array()
            .map(|a| a.iter().filter_map(|ip| ip["address"].as_str()?.split('/').next()?.parse().ok()).collect())
            .unwrap_or_default();
        netns_path = format!("/run/netns/{name}");
    }
    let host_resolv = dns_files::ResolvConf::parse(&std::fs::read_to_string(&host.host_resolv_conf).unwrap_or_default());
    let resolv = dns_files::resolv_conf(pod, &host.cluster_dns, &host.cluster_domain, &host_resolv);
    let resolv_path = write(dir.join("resolv.conf"), &resolv.render())?;
    let hosts_path = write(dir.join("hosts"), &dns_files::hosts_file(pod, &record.ips, &host.cluster_domain))?;
    let hostname = if host_network { std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_owned() } else { dns_files::pod_hostname(pod) };
    let hostname_path = write(dir.join("hostname"), &format!("{hostname}\n"))?;
    let mut cmd = tokio::process::Command::new(&host.exe);
    cmd.arg("sandbox-init").arg("--netns").arg(&netns_path).arg("--hostname").arg(&hostname);
    cmd.arg("--hosts").arg(&hosts_path).arg("--resolv").arg(&resolv_path).arg("--hostname-file").arg(&hostname_path);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let mut pause = match cmd.spawn() {
        Ok(p) => p,
        Err(e) => {
            destroy_record(host, &record).await;
            return Err(SandboxError::Pause(e.to_string()));
        }
    };
    let ready = async {
        let mut lines = tokio::io::BufReader::new(pause.stdout.take()?).lines();
        lines.next_line().await.ok().flatten()
    };
    match tokio::time::timeout(Duration::from_secs(10), ready).await {
        Ok(Some(line)) if line == "ready" => {}
        other => {
            let _ = pause.start_kill();
            let out = pause.wait_with_output().await.map(|o| String::from_utf8_lossy(&o.stderr).trim().to_owned()).unwrap_or_default();
            destroy_record(host, &record).await;
            return Err(SandboxError::Pause(if out.is_empty() { format!("no ready line ({other:?})") } else { out }));
        }
    }
    record.pause_pid = pause.id().unwrap_or(0);
    write(dir.join("sandbox.json"), &serde_json::to_string(&record).unwrap_or_default())?;
    Ok(Sandbox { record, pause })
}

/// Tears a sandbox down: pause process, CNI DEL, network namespace.
pub async fn destroy(host: &Host, mut sandbox: Sandbox) {
    let _ = sandbox.pause.start_kill();
    let _ = sandbox.pause.wait().await;
    destroy_record(host, &sandbox.record).await;
}

/// Removes what a record describes (for sandboxes of a previous agent run too).
pub async fn destroy_record(host: &Host, record: &Record) {
    if record.pause_pid > 0 && pid_is_pause(record.pause_pid) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(record.pause_pid as i32), nix::sys::signal::Signal::SIGKILL);
    }
    if !record.netns.is_empty() {
        if let Err(e) = host.cni.del(&attachment(record)).await {
            tracing::warn!(pod = %record.name, error = %e, "CNI DEL failed");
        }
        let _ = ip_netns(&["delete", &record.netns]).await;
    }
}

/// Whether `pid` is still one of our pause processes (PIDs are reused).
pub fn pid_is_pause(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).map(|c| c.split(|b| *b == 0).any(|a| a == b"sandbox-init")).unwrap_or(false)
}

/// The sandbox records left on disk (by this or a previous agent run).
pub fn records(host: &Host) -> Vec<Record> {
    let Ok(rd) = std::fs::read_dir(host.state_dir.join("pods")) else { return vec![] };
    rd.flatten().filter_map(|e| std::fs::read(e.path().join("sandbox.json")).ok()).filter_map(|b| serde_json::from_slice(&b).ok()).collect()
}
