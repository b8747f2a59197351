//! Portico's Service proxy: the job kube-proxy does, in the kernel through
//! nftables. Services and EndpointSlices (watched through the API, like any
//! client) become a ServiceMap (`servicemap`, pure), the ServiceMap becomes
//! nftables objects (`nft::ruleset`, pure), and the difference to what is in
//! the kernel goes in as one atomic transaction (`nft::plan`, `nft::apply`:
//! `nft -f` for full syncs, a netlink batch for incremental ones,
//! `nft::netlink`). Rules stay in place when the proxy stops, so traffic keeps
//! flowing through a restart; `cleanup` removes them.

pub mod conntrack;
pub mod metrics;
pub mod nft;
pub mod servicemap;
mod sync;

use std::net::SocketAddr;
use std::time::Duration;

/// The default nftables table name (of both the `ip` and the `ip6` table).
pub const DEFAULT_TABLE: &str = "portico";

/// Why the proxy stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `nft` failed.
    #[error(transparent)]
    Nft(#[from] nft::apply::NftError),
    /// The health/metrics listener could not be opened.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A watch stream ended.
    #[error("a watch stream ended")]
    WatchEnded,
    /// The machine cannot run the proxy.
    #[error("{0}")]
    Preflight(String),
}

/// Proxy settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// This node's name (for Local traffic policies).
    pub node_name: String,
    /// The cluster's pod ranges, comma-separated, at most one per family
    /// (kube-proxy's `--cluster-cidr`).
    pub cluster_cidr: String,
    /// nftables table name (shard tables are named after it, `nft::shards`).
    pub table: String,
    /// Service ports per table before another shard table is opened.
    pub ports_per_table: usize,
    /// Least time between two syncs (bursts of changes batch into one).
    pub min_sync_interval: Duration,
    /// Full resync period (repairs drift).
    pub full_resync_interval: Duration,
    /// `/healthz`, `/readyz` and `/metrics` address (None: not served).
    pub health_addr: Option<SocketAddr>,
}

impl Config {
    /// Defaults for a node.
    pub fn new(node_name: String) -> Self {
        Self {
            node_name,
            cluster_cidr: "10.244.0.0/16".into(),
            table: DEFAULT_TABLE.into(),
            ports_per_table: nft::shards::PORTS_PER_TABLE,
            min_sync_interval: Duration::from_millis(10),
            full_resync_interval: Duration::from_secs(3600),
            health_addr: Some(SocketAddr::from(([0, 0, 0, 0], 10256))),
        }
    }
}

/// Checks that this process can program nftables; the error is one line with the fix.
pub fn preflight() -> Result<(), Error> {
    // `nft list tables` would do, but it fetches the whole ruleset first
    // (seconds at 30k Services when the agent restarts): ask the binary for its
    // version and the kernel for the table names instead.
    let out = std::process::Command::new("nft").arg("--version").output();
    if !out.is_ok_and(|o| o.status.success()) {
        return Err(Error::Preflight("the Service proxy needs the nft binary: apt-get install nftables (or run with --disable proxy)".into()));
    }
    nft::apply::tables("ip").map(drop).map_err(|e| {
        Error::Preflight(format!("the Service proxy cannot use nftables ({e}): run portico as root or with CAP_NET_ADMIN (or run with --disable proxy)"))
    })
}

/// Runs the proxy until the task is dropped (rules stay in place).
pub async fn run(client: kube::Client, cfg: Config) -> Result<(), Error> {
    let metrics = metrics::Metrics::new();
    let _server = match cfg.health_addr {
        Some(addr) => Some(metrics::serve(addr, metrics.clone()).await.map_err(|source| Error::Listen { addr, source })?),
        None => None,
    };
    let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", "1");
    sync::run(client, cfg, metrics).await
}

/// Makes the allocator merge the small chunks a full sync just freed, now
/// rather than in the next (latency-sensitive) sync. glibc keeps freed small
/// chunks in per-arena fast bins and merges them all at the next allocation
/// of 1 KiB or more in that arena; after a full sync of 30k Services that is
/// millions of chunks, ~50 ms. Call it on the thread that dropped them.
pub fn consolidate_heap() {
    drop(std::hint::black_box(Vec::<u8>::with_capacity(16 << 10)));
}

/// Removes Portico's proxy rules (both families' main and shard tables) from this host.
pub fn cleanup(table: &str) -> Result<(), Error> {
    for family in ["ip", "ip6"] {
        // Without IPv6 in the kernel there is no ip6 table to remove.
        if family == "ip6" && !std::path::Path::new("/proc/net/if_inet6").exists() {
            continue;
        }
        let script: String = nft::apply::tables(family)?
            .into_iter()
            .filter(|name| name == table || nft::shards::index_of(table, name).is_some())
            .map(|name| format!("delete table {family} {name}\n"))
            .collect();
        if !script.is_empty() {
            nft::apply::apply(&script)?;
        }
    }
    Ok(())
}
