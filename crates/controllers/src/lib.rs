//! Portico's controllers, the part of kube-controller-manager that Service
//! networking needs: they make the API objects follow the world.
//!
//! Every controller is a kube-rs client of the API server (watch → reflector
//! store → level-triggered reconcile); the desired state is a pure function
//! of the watched objects (`desired`), unit-tested without a server.

pub mod deployment;
pub mod desired;
pub mod endpoints;
pub mod events;
pub mod fit;
pub mod gc;
pub mod leader;
pub mod loadbalancer;
pub mod nodelifecycle;
pub mod nodes;
pub mod pods;
pub mod replicaset;

/// Controller failures (each reconcile is retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request.
    #[error("API request failed: {0}")]
    Kube(#[from] kube::Error),
    /// An object could not be built.
    #[error("invalid object: {0}")]
    Invalid(String),
    /// A watch cache was shut down.
    #[error("a watch cache shut down")]
    CacheClosed,
}

/// Controller settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The cluster pod range nodes get their `/24`s from.
    pub cluster_cidr: ipnet::Ipv4Net,
    /// The IPv6 pod range of a dual-stack cluster (nodes get a `/64` each).
    pub cluster_cidr_v6: Option<ipnet::Ipv6Net>,
    /// Dedicated LoadBalancer addresses; `None` means ServiceLB style (node IPs).
    pub lb_pool: Option<ipnet::Ipv4Net>,
    /// How long a node may go without renewing its Lease before it is marked NotReady.
    pub node_monitor_grace: std::time::Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self { cluster_cidr: nodes::DEFAULT_POD_CIDR.parse().expect("literal CIDR"), cluster_cidr_v6: None, lb_pool: None, node_monitor_grace: nodelifecycle::DEFAULT_GRACE }
    }
}

/// Runs the controllers while this process holds the controller Lease.
pub async fn run_with_leader_election(client: kube::Client, cfg: Config, identity: String) {
    let c = client.clone();
    leader::run_while_leader(client, identity, move || run(c.clone(), cfg.clone())).await;
}

/// Runs every controller on `client` until the process ends.
pub async fn run(client: kube::Client, cfg: Config) {
    tokio::join!(
        endpoints::run(client.clone()),
        replicaset::run(client.clone()),
        deployment::run(client.clone()),
        gc::run(client.clone()),
        nodes::run(client.clone(), cfg.cluster_cidr, cfg.cluster_cidr_v6),
        loadbalancer::run(client.clone(), cfg.lb_pool),
        nodelifecycle::run(client.clone(), cfg.node_monitor_grace)
    );
}

/// Waits for every cache in one task and broadcasts readiness, so any number
/// of reconciles can wait for it (kube-runtime's `Store::wait_until_ready`
/// wakes only one of several concurrent waiters).
pub(crate) fn caches_ready(
    waits: Vec<futures::future::BoxFuture<'static, Result<(), kube::runtime::reflector::store::WriterDropped>>>,
) -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        for w in waits {
            if w.await.is_err() {
                return;
            }
        }
        let _ = tx.send(true);
        // Keep the sender alive so waiters see `true`, not a closed channel.
        tx.closed().await;
    });
    rx
}

/// A store's readiness as an owned future.
pub(crate) fn ready_of<K>(store: kube::runtime::reflector::Store<K>) -> futures::future::BoxFuture<'static, Result<(), kube::runtime::reflector::store::WriterDropped>>
where
    K: kube::Resource + Clone + Send + Sync + 'static,
    K::DynamicType: std::hash::Hash + Eq + Clone + Send + Sync,
{
    Box::pin(async move { store.wait_until_ready().await })
}
