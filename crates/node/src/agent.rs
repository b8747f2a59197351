//! The agent: registers the Node, keeps its Lease fresh, waits for the pod
//! CIDR, cleans up what a previous run left behind, and runs a worker per pod
//! scheduled to this node.

use crate::cni::runtime::{CniRuntime, default_conflist};
use crate::host::Host;
use crate::images::ImageTable;
use crate::worker::{self, Shared};
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the node Lease is renewed (the kubelet's default).
pub const LEASE_RENEW: Duration = Duration::from_secs(10);
/// The node Lease's duration.
pub const LEASE_DURATION_SECONDS: i32 = 40;
/// The annotation carrying the token the API server presents to this agent's server.
pub const KUBELET_TOKEN_ANNOTATION: &str = "portico.dev/kubelet-token";
/// The kubelet API port.
pub const KUBELET_PORT: u16 = 10250;

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("{what}: {source}")]
    Api {
        /// What was being done.
        what: &'static str,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// The kubelet server could not listen.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Agent settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Node name (default: the hostname).
    pub node_name: Option<String>,
    /// Node IP (default: the source address of the default route, else the first global address).
    pub node_ip: Option<IpAddr>,
    /// State directory (sandboxes, logs, CNI cache and leases).
    pub state_dir: PathBuf,
    /// The `portico` binary.
    pub exe: PathBuf,
    /// CNI configuration directory.
    pub cni_conf_dir: PathBuf,
    /// CNI plugin directories.
    pub cni_bin_dirs: Vec<PathBuf>,
    /// Cluster pod ranges, comma-separated, one per family (not masqueraded).
    pub cluster_cidr: String,
    /// Cluster DNS addresses for pods.
    pub cluster_dns: Vec<IpAddr>,
    /// Cluster domain.
    pub cluster_domain: String,
    /// The user's image mapping file.
    pub image_file: PathBuf,
    /// Where the kubelet API listens.
    pub kubelet_addr: SocketAddr,
    /// Prefix for network namespace names.
    pub netns_prefix: String,
}

impl Config {
    /// Defaults under a state directory.
    pub fn new(state_dir: PathBuf, exe: PathBuf) -> Self {
        Self {
            node_name: None,
            node_ip: None,
            image_file: state_dir.join("images.yaml"),
            state_dir,
            exe,
            cni_conf_dir: "/etc/cni/net.d".into(),
            cni_bin_dirs: vec!["/opt/cni/bin".into(), "/usr/lib/cni".into()],
            cluster_cidr: "10.244.0.0/16".into(),
            cluster_dns: vec![IpAddr::from([10, 96, 0, 10])],
            cluster_domain: "cluster.local".into(),
            kubelet_addr: SocketAddr::from(([0, 0, 0, 0], KUBELET_PORT)),
            netns_prefix: "portico-".into(),
        }
    }
}

/// The node's name: the flag, else the kernel hostname in lower case.
pub fn node_name(cfg: &Config) -> String {
    cfg.node_name.clone().unwrap_or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "localhost".into()).trim().to_lowercase())
}

/// Detects the node IP: the default route's source address, else the first global IPv4.
pub fn detect_node_ip() -> Option<IpAddr> {
    let out = std::process::Command::new("ip").args(["-o", "-4", "route", "get", "1.1.1.1"]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        if w == "src"
            && let Some(ip) = words.next().and_then(|s| s.parse().ok()) {
                return Some(ip);
            }
    }
    let out = std::process::Command::new("ip").args(["-o", "-4", "addr", "show", "scope", "global"]).output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.contains(crate::cni::plugin::DEFAULT_BRIDGE))
        .find_map(|l| l.split_whitespace().skip_while(|w| *w != "inet").nth(1).and_then(|a| a.split('/').next()).and_then(|a| a.parse().ok()))
}

/// What the kubelet server needs to find pods by name.
#[derive(Debug, Clone, Default)]
pub struct PodIndex {
    inner: Arc<RwLock<HashMap<(String, String), String>>>,
}

impl PodIndex {
    /// The UID of a pod running here.
    pub fn uid(&self, namespace: &str, name: &str) -> Option<String> {
        self.inner.read().get(&(namespace.to_owned(), name.to_owned())).cloned()
    }
    fn set(&self, namespace: &str, name: &str, uid: &str) {
        self.inner.write().insert((namespace.to_owned(), name.to_owned()), uid.to_owned());
    }
    fn remove(&self, namespace: &str, name: &str) {
        self.inner.write().remove(&(namespace.to_owned(), name.to_owned()));
    }
}

fn random_token() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/uuid").map(|s| s.trim().replace('-', "")).unwrap_or_else(|_| format!("{:x}", std::process::id()))
}

fn now() -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now())
}

fn ts() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn node_status(node_ip: &IpAddr, hostname: &str, port: u16) -> serde_json::Value {
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find(|l| l.starts_with("MemTotal:")).and_then(|l| l.split_whitespace().nth(1)).map(str::to_owned))
        .unwrap_or_else(|| "0".into());
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned();
    let os_image = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_owned())))
        .unwrap_or_else(|| "Linux".into());
    let machine_id = std::fs::read_to_string("/etc/machine-id").unwrap_or_default().trim().to_owned();
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default().trim().to_owned();
    let capacity = serde_json::json!({"cpu": cpus.to_string(), "memory": format!("{mem_kib}Ki"), "pods": "110", "ephemeral-storage": "0"});
    let t = ts();
    let cond = |kind: &str, status: &str, reason: &str, message: &str| {
        serde_json::json!({"type": kind, "status": status, "reason": reason, "message": message, "lastHeartbeatTime": t, "lastTransitionTime": t})
    };
    serde_json::json!({
        "capacity": capacity, "allocatable": capacity,
        "conditions": [
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ],
        "addresses": [{"type": "InternalIP", "address": node_ip.to_string()}, {"type": "Hostname", "address": hostname}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "nodeInfo": {"machineID": machine_id, "systemUUID": machine_id, "bootID": boot_id, "kernelVersion": kernel, "osImage": os_image,
            "containerRuntimeVersion": concat!("portico://", env!("CARGO_PKG_VERSION")), "kubeletVersion": "v1.32.0", "kubeProxyVersion": "v1.32.0",
            "operatingSystem": "linux", "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64")},
    })
}

async fn register(client: &kube::Client, name: &str, node_ip: &IpAddr, port: u16, token: &str) -> Result<Node, Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let arch = std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64");
    let meta = serde_json::json!({"metadata": {"name": name,
        "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": arch, "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": arch},
        "annotations": {KUBELET_TOKEN_ANNOTATION: token, "node.alpha.kubernetes.io/ttl": "0"}}});
    match nodes.get_opt(name).await.map_err(|source| Error::Api { what: "reading the Node", source })? {
        Some(_) => {
            nodes.patch(name, &PatchParams::default(), &Patch::Merge(&meta)).await.map_err(|source| Error::Api { what: "updating the Node", source })?;
        }
        None => {
            let node: Node = serde_json::from_value(meta).map_err(|e| Error::Api { what: "building the Node", source: kube::Error::SerdeError(e) })?;
            nodes.create(&PostParams::default(), &node).await.map_err(|source| Error::Api { what: "registering the Node", source })?;
        }
    }
    let status = serde_json::json!({"status": node_status(node_ip, name, port)});
    nodes.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await.map_err(|source| Error::Api { what: "posting Node status", source })
}

async fn heartbeat(client: kube::Client, name: String, node_ip: IpAddr, port: u16) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let nodes: Api<Node> = Api::all(client);
    let mut ticks: u32 = 0;
    loop {
        let lease = serde_json::json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_DURATION_SECONDS, "renewTime": now()}});
        let r = leases.patch(&name, &PatchParams::apply("portico-agent").force(), &Patch::Apply(&lease)).await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "renewing the node lease failed");
        }
        // Node status: every minute, and at once if something marked us not Ready.
        let not_ready = match nodes.get_opt(&name).await {
            Ok(Some(n)) => !n.status.and_then(|s| s.conditions).unwrap_or_default().iter().any(|c| c.type_ == "Ready" && c.status == "True"),
            _ => false,
        };
        if not_ready || ticks % 6 == 5 {
            let status = serde_json::json!({"status": node_status(&node_ip, &name, port)});
            if let Err(e) = nodes.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status)).await {
                tracing::warn!(error = %e, "posting node status failed");
            }
        }
        ticks = ticks.wrapping_add(1);
        tokio::time::sleep(LEASE_RENEW).await;
    }
}

/// The node's pod CIDRs (`podCIDRs`, one per family; `podCIDR` when only that is set).
async fn wait_pod_cidrs(client: &kube::Client, name: &str) -> Vec<String> {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut logged = false;
    loop {
        if let Ok(Some(n)) = nodes.get_opt(name).await
            && let Some(spec) = n.spec
            && let Some(cidr) = spec.pod_cidr.filter(|c| !c.is_empty())
        {
            let listed = spec.pod_cidrs.unwrap_or_default();
            return if listed.is_empty() { vec![cidr] } else { listed };
        }
        if !logged {
            tracing::info!(node = name, "waiting for the node's pod CIDR (node IPAM)");
            logged = true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Kills processes left in a sandbox's network namespace and removes it.
/// The processes that share the network namespace of a leftover pod's pause
/// process (its containers and the pause process itself), found through
/// `/proc` so that it works even when the `/run/netns` mount is gone — as it
/// is when the agent ran in a mount namespace of its own that died with it.
fn pod_processes(record: &crate::sandbox::Record) -> Vec<i32> {
    if record.netns.is_empty() || record.pause_pid == 0 {
        return Vec::new();
    }
    let pause = format!("/proc/{}", record.pause_pid);
    // A recycled PID must not take a stranger's namespace down with it.
    let is_pause = crate::sandbox::pid_is_pause(record.pause_pid);
    let Ok(target) = std::fs::read_link(format!("{pause}/ns/net")) else { return Vec::new() };
    let Ok(host) = std::fs::read_link("/proc/self/ns/net") else { return Vec::new() };
    if !is_pause || target == host {
        return Vec::new();
    }
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/ns/net")).is_ok_and(|ns| ns == target))
        .collect()
}

async fn remove_leftover(host: &Host, record: &crate::sandbox::Record) {
    for pid in pod_processes(record) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
    if !record.netns.is_empty()
        && let Ok(out) = tokio::process::Command::new("ip").args(["netns", "pids", &record.netns]).output().await {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
        }
    crate::sandbox::destroy_record(host, record).await;
    let _ = std::fs::remove_dir_all(host.pod_dir(&record.uid));
}

/// Builds the machine settings for the node's pod CIDRs (one per family).
pub fn host_for(cfg: &Config, node_name: &str, node_ip: IpAddr, pod_cidrs: &[String]) -> Host {
    let lease_dir = cfg.state_dir.join("cni").join("networks");
    Host {
        node_name: node_name.to_owned(),
        node_ips: vec![node_ip],
        state_dir: cfg.state_dir.clone(),
        exe: cfg.exe.clone(),
        cni: CniRuntime {
            conf_dir: cfg.cni_conf_dir.clone(),
            bin_dirs: cfg.cni_bin_dirs.clone(),
            cache_dir: cfg.state_dir.join("cni"),
            self_exe: cfg.exe.clone(),
            default_conflist: default_conflist(pod_cidrs, &cfg.cluster_cidr, &lease_dir),
        },
        images: ImageTable::new(cfg.exe.clone(), cfg.image_file.clone()),
        cluster_dns: cfg.cluster_dns.clone(),
        cluster_domain: cfg.cluster_domain.clone(),
        host_resolv_conf: "/etc/resolv.conf".into(),
        netns_prefix: cfg.netns_prefix.clone(),
        attach: crate::attach::Registry::default(),
    }
}

type Workers = HashMap<String, (watch::Sender<Option<Arc<Pod>>>, tokio::task::JoinHandle<()>)>;

/// Runs the agent until `shutdown` resolves; then stops every pod it runs
/// and returns.
pub async fn run(client: kube::Client, cfg: Config, shutdown: impl std::future::Future<Output = ()>) -> Result<(), Error> {
    let name = node_name(&cfg);
    let node_ip = cfg.node_ip.or_else(detect_node_ip).unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let token = random_token();
    std::fs::create_dir_all(&cfg.state_dir).ok();
    register(&client, &name, &node_ip, cfg.kubelet_addr.port(), &token).await?;
    tracing::info!(node = %name, ip = %node_ip, "node registered");
    let hb = tokio::spawn(heartbeat(client.clone(), name.clone(), node_ip, cfg.kubelet_addr.port()));
    let pod_cidrs = wait_pod_cidrs(&client, &name).await;
    let host = Arc::new(host_for(&cfg, &name, node_ip, &pod_cidrs));
    for record in crate::sandbox::records(&host) {
        tracing::info!(pod = %record.name, namespace = %record.namespace, "removing a sandbox left by a previous run");
        remove_leftover(&host, &record).await;
    }
    if let Err(e) = host.cni.gc(&[]).await {
        tracing::warn!(error = %e, "CNI garbage collection failed");
    }
    let index = PodIndex::default();
    let server = crate::server::serve(cfg.kubelet_addr, token.clone(), host.clone(), index.clone()).await?;

    let (svc_store, svc_writer) = reflector::store::<Service>();
    let svc_stream = reflector::reflector(svc_writer, watcher(Api::<Service>::all(client.clone()), watcher::Config::default())).default_backoff().touched_objects();
    let services = tokio::spawn(async move {
        futures::pin_mut!(svc_stream);
        while svc_stream.next().await.is_some() {}
    });
    let shared = Shared { host: host.clone(), client: client.clone(), services: svc_store };
    let pods: Api<Pod> = Api::all(client.clone());
    let wc = watcher::Config::default().fields(&format!("spec.nodeName={name}"));
    let stream = watcher(pods, wc).default_backoff();
    futures::pin_mut!(stream);
    let mut workers: Workers = HashMap::new();
    let mut listed: Vec<String> = Vec::new();
    futures::pin_mut!(shutdown);
    loop {
        let ev = tokio::select! {
            _ = &mut shutdown => break,
            ev = stream.next() => ev,
        };
        let Some(ev) = ev else { break };
        match ev {
            Ok(watcher::Event::Init) => listed.clear(),
            Ok(watcher::Event::InitApply(p)) => {
                listed.push(p.metadata.uid.clone().unwrap_or_default());
                apply(&shared, &index, &mut workers, p);
            }
            Ok(watcher::Event::InitDone) => {
                // Pods that vanished while the watch was down.
                for (uid, (tx, _)) in workers.iter() {
                    if !listed.contains(uid) {
                        let _ = tx.send(None);
                    }
                }
            }
            Ok(watcher::Event::Apply(p)) => apply(&shared, &index, &mut workers, p),
            Ok(watcher::Event::Delete(p)) => {
                let uid = p.metadata.uid.clone().unwrap_or_default();
                index.remove(p.metadata.namespace.as_deref().unwrap_or(""), p.metadata.name.as_deref().unwrap_or(""));
                if let Some((tx, _)) = workers.get(&uid) {
                    let _ = tx.send(None);
                }
            }
            Err(e) => tracing::warn!(error = %e, "pod watch failed; retrying"),
        }
        workers.retain(|_, (_, h)| !h.is_finished());
    }
    // Shutting down: stop every pod quickly and remove its sandbox.
    for (_, (tx, _)) in workers.iter() {
        let _ = tx.send(None);
    }
    for (_, (_, h)) in workers.drain() {
        let _ = tokio::time::timeout(Duration::from_secs(10), h).await;
    }
    hb.abort();
    services.abort();
    server.abort();
    Ok(())
}

fn apply(shared: &Shared, index: &PodIndex, workers: &mut Workers, pod: Pod) {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let (ns, name) = (pod.metadata.namespace.clone().unwrap_or_default(), pod.metadata.name.clone().unwrap_or_default());
    index.set(&ns, &name, &uid);
    let pod = Arc::new(pod);
    if let Some((tx, h)) = workers.get(&uid)
        && !h.is_finished() {
            let _ = tx.send(Some(pod));
            return;
        }
    // Finished pods (Succeeded/Failed with no restart) keep their worker until deleted.
    let (tx, rx) = watch::channel(Some(pod));
    let h = tokio::spawn(worker::run(shared.clone(), rx));
    workers.insert(uid, (tx, h));
}

/// Removes everything the agent created on this host: pod processes, sandboxes,
/// network namespaces, lease files, the bridge, the masquerade and host-port tables.
pub async fn cleanup(cfg: &Config) {
    let host = host_for(cfg, &node_name(cfg), IpAddr::from([127, 0, 0, 1]), &["10.244.0.0/24".to_owned()]);
    for record in crate::sandbox::records(&host) {
        remove_leftover(&host, &record).await;
    }
    let _ = std::fs::remove_dir_all(cfg.state_dir.join("cni"));
    let _ = std::fs::remove_dir_all(cfg.state_dir.join("pods"));
    let _ = tokio::process::Command::new("ip").args(["link", "del", "dev", crate::cni::plugin::DEFAULT_BRIDGE]).output().await;
    for fam in ["ip", "ip6"] {
        for table in [crate::cni::link::MASQ_TABLE, crate::cni::hostport::TABLE] {
            let _ = tokio::process::Command::new("nft").args(["delete", "table", fam, table]).output().await;
        }
    }
}
