//! Portico's cluster DNS: an authority for the cluster domain following the
//! Kubernetes DNS-Based Service Discovery specification 1.1.0 and answering
//! as CoreDNS's `kubernetes` plugin does, plus a caching forwarder for every
//! other name. The zone (`zone`) is an immutable snapshot kept current from
//! Service, EndpointSlice and Namespace watches (`index`) and swapped in
//! atomically, so lookups never lock; the wire format (`wire`) is parsed
//! defensively; the listeners (`server`) serve UDP and TCP.

pub mod batch;
pub mod forward;
pub mod index;
pub mod metrics;
pub mod server;
pub mod wire;
pub mod zone;

use arc_swap::ArcSwap;
use k8s_openapi::api::core::v1::{Endpoints, Service};
use kube::api::{Api, Patch, PatchParams};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Why the DNS server stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A listener could not be opened.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// DNS server settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Addresses to serve DNS on (UDP and TCP).
    pub listen: Vec<SocketAddr>,
    /// Cluster domain.
    pub domain: String,
    /// TTL of cluster answers.
    pub ttl: u32,
    /// Upstream resolvers (default: the host's resolv.conf).
    pub upstreams: Option<Vec<SocketAddr>>,
    /// `/health`, `/ready`, `/metrics` address (None: not served).
    pub metrics_addr: Option<SocketAddr>,
    /// UDP sockets per address (default: one per core).
    pub udp_sockets: usize,
}

impl Config {
    /// Defaults serving on `listen`.
    pub fn new(listen: Vec<SocketAddr>) -> Self {
        Self {
            listen,
            domain: "cluster.local".into(),
            ttl: 5,
            upstreams: None,
            metrics_addr: Some(SocketAddr::from(([0, 0, 0, 0], 9153))),
            udp_sockets: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        }
    }
}

/// Runs the DNS server until the task is dropped.
pub async fn run(client: kube::Client, cfg: Config) -> Result<(), Error> {
    let exclude: Vec<IpAddr> = cfg.listen.iter().map(|a| a.ip()).collect();
    let upstreams = cfg.upstreams.clone().unwrap_or_else(|| forward::upstreams_from_resolv_conf(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(), &exclude));
    let fwd = forward::Forwarder::new(upstreams);
    let metrics = metrics::Metrics::new(fwd.hits.clone(), fwd.misses.clone());
    let zone_cfg = zone::ZoneConfig { domain: cfg.domain.trim_end_matches('.').to_lowercase(), ttl: cfg.ttl };
    let zone = Arc::new(ArcSwap::from_pointee(zone::Zone::default()));
    let server = Arc::new(server::Server { zone: zone.clone(), cfg: zone_cfg.clone(), fwd, metrics: metrics.clone() });
    let mut tasks = Vec::new();
    for addr in &cfg.listen {
        tasks.extend(server::listen(server.clone(), *addr, cfg.udp_sockets).await.map_err(|source| Error::Listen { addr: *addr, source })?);
    }
    if let Some(addr) = cfg.metrics_addr {
        tasks.push(metrics::serve(addr, metrics.clone()).await.map_err(|source| Error::Listen { addr, source })?);
    }
    let m = metrics.clone();
    index::run(client, zone_cfg, zone, move || m.ready.store(true, Ordering::Release)).await;
    for t in tasks {
        t.abort();
    }
    Ok(())
}

/// Publishes DNS as the `kube-system/kube-dns` Service at `cluster_ip`, with
/// this server's addresses merged into its Endpoints (other nodes keep theirs).
pub async fn ensure_kube_dns_service(client: &kube::Client, cluster_ip: IpAddr, endpoint_ips: &[IpAddr], port: u16) -> Result<(), kube::Error> {
    let svcs: Api<Service> = Api::namespaced(client.clone(), "kube-system");
    let svc = serde_json::json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kube-dns", "namespace": "kube-system",
        "labels": {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"}},
        "spec": {"clusterIP": cluster_ip.to_string(), "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": port},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": port},
            {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}]}});
    svcs.patch("kube-dns", &PatchParams::apply("portico-dns").force(), &Patch::Apply(&svc)).await?;
    let eps: Api<Endpoints> = Api::namespaced(client.clone(), "kube-system");
    let mut ips: Vec<String> = eps
        .get_opt("kube-dns")
        .await?
        .and_then(|e| e.subsets)
        .unwrap_or_default()
        .iter()
        .flat_map(|s| s.addresses.iter().flatten().map(|a| a.ip.clone()))
        .collect();
    for ip in endpoint_ips {
        let s = ip.to_string();
        if !ips.contains(&s) {
            ips.push(s);
        }
    }
    ips.sort();
    let addresses: Vec<serde_json::Value> = ips.iter().map(|ip| serde_json::json!({"ip": ip})).collect();
    let ep = serde_json::json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
        "subsets": [{"addresses": addresses, "ports": [
            {"name": "dns", "port": port, "protocol": "UDP"}, {"name": "dns-tcp", "port": port, "protocol": "TCP"}, {"name": "metrics", "port": 9153, "protocol": "TCP"}]}]});
    eps.patch("kube-dns", &PatchParams::apply("portico-dns").force(), &Patch::Apply(&ep)).await?;
    Ok(())
}
