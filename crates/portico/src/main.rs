//! `portico`: Kubernetes Service networking in one binary.
//!
//! Subcommands choose the components: `up` runs everything on one machine,
//! `server` runs the API server and controllers, `agent` the node components
//! against a server; `cni` and `netexec` are the CNI plugin and the test
//! servers, and `sandbox-init`/`sandbox-exec` put pod processes into their
//! namespaces. The binary
//! only parses flags, builds the configuration, starts the components and
//! drains them on SIGTERM/SIGINT.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(name = "portico", version, about = "Kubernetes Service networking in one binary")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a single-machine cluster: API server and node components in one process.
    Up(ServerArgs),
    /// Run the API server (state in SQLite under the data dir).
    Server(ServerArgs),
    /// Run the node components (pods) against an API server.
    Agent(AgentCli),
    /// CNI plugin mode (bridge + host-local IPAM), driven by CNI_* variables and stdin.
    Cni,
    /// agnhost-compatible test servers: netexec (default), serve-hostname, porter, pause.
    Netexec {
        /// Subcommand and flags, as agnhost takes them.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// Node agent flags shared by `up` and `agent`.
#[derive(Args, Debug, Clone)]
struct NodeArgs {
    /// Node name [default: the hostname].
    #[arg(long)]
    node_name: Option<String>,
    /// Node IP [default: the default route's source address].
    #[arg(long)]
    node_ip: Option<std::net::IpAddr>,
    /// CNI network configuration directory (the built-in bridge network is used when it has no *.conflist).
    #[arg(long, default_value = "/etc/cni/net.d")]
    cni_conf_dir: PathBuf,
    /// CNI plugin directories (colon-separated).
    #[arg(long, default_value = "/opt/cni/bin:/usr/lib/cni")]
    cni_bin_dir: String,
    /// Where the node's kubelet API listens.
    #[arg(long, default_value = "0.0.0.0:10250")]
    kubelet_address: SocketAddr,
    /// Cluster DNS address written into pods' resolv.conf.
    #[arg(long, default_value = "10.96.0.10")]
    cluster_dns: std::net::IpAddr,
    /// Components not to run on this node (comma-separated: pods, proxy, dns).
    #[arg(long, value_delimiter = ',')]
    disable: Vec<String>,
    /// Port cluster DNS listens on (on the node IP).
    #[arg(long, default_value_t = 53)]
    dns_port: u16,
    /// Upstream resolvers for non-cluster names [default: the host's /etc/resolv.conf].
    #[arg(long, value_delimiter = ',')]
    dns_upstream: Option<Vec<String>>,
    /// Where cluster DNS serves /health, /ready and /metrics.
    #[arg(long, default_value = "0.0.0.0:9153")]
    dns_metrics_address: SocketAddr,
    /// Where the Service proxy serves /healthz, /readyz and /metrics.
    #[arg(long, default_value = "0.0.0.0:10256")]
    proxy_health_address: SocketAddr,
    /// Prefix of the pods' network namespace names under /run/netns.
    #[arg(long, default_value = "portico-", hide = true)]
    netns_prefix: String,
    /// Service ports per nftables table before the proxy opens a shard table (tests set it low).
    #[arg(long, default_value_t = portico_proxy::nft::shards::PORTS_PER_TABLE, hide = true)]
    proxy_ports_per_table: usize,
}

/// `portico agent` flags.
#[derive(Args, Debug, Clone)]
struct AgentCli {
    /// API server URL (https://host:6443).
    #[arg(long, env = "PORTICO_SERVER")]
    server: Option<String>,
    /// Bearer token for the API server.
    #[arg(long, env = "PORTICO_TOKEN")]
    token: Option<String>,
    /// CA certificate of the API server.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Use this kubeconfig instead of --server/--token/--ca-file.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Agent state directory [default: <data dir>/agent].
    #[arg(long, env = "PORTICO_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Remove everything the agent created on this host, then exit.
    #[arg(long)]
    cleanup: bool,
    /// Pod ranges, at most one per family (the proxy treats traffic from outside them as external).
    #[arg(long, default_value = "10.244.0.0/16", value_parser = ipnet_arg::cluster_cidrs)]
    cluster_cidr: ipnet_arg::Cidrs,
    #[command(flatten)]
    node: NodeArgs,
}

#[derive(Args, Debug, Clone)]
struct ServerArgs {
    /// Where the database, CA, token and kubeconfig live
    /// [default: /var/lib/portico as root, ~/.local/share/portico otherwise].
    #[arg(long, env = "PORTICO_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address to serve the Kubernetes API on (HTTPS).
    #[arg(long, default_value = "0.0.0.0:6443")]
    bind: SocketAddr,
    /// Address the `kubernetes` Service sends pods to [default: the node IP when --bind is 0.0.0.0].
    #[arg(long)]
    advertise_address: Option<std::net::IpAddr>,
    /// Service ClusterIP ranges: one, or two of different families for
    /// dual-stack Services (`10.96.0.0/12,fd00:10:96::/112`); the first is the primary family.
    #[arg(long, default_value = "10.96.0.0/12", value_parser = ipnet_arg::service_cidrs)]
    service_cidr: ipnet_arg::Cidrs,
    /// NodePort range, inclusive.
    #[arg(long, default_value = "30000-32767")]
    service_node_port_range: PortRange,
    /// Pod ranges, at most one per family; each node gets a /24 of the IPv4
    /// one, and the proxy treats traffic from outside them as external.
    #[arg(long, default_value = "10.244.0.0/16", value_parser = ipnet_arg::cluster_cidrs)]
    cluster_cidr: ipnet_arg::Cidrs,
    /// Dedicated IPv4 range for LoadBalancer Services (default: node IPs, ServiceLB style).
    #[arg(long)]
    lb_pool: Option<String>,
    /// Seconds a node may go without renewing its Lease before it is marked NotReady.
    #[arg(long, default_value_t = 40)]
    node_monitor_grace_period: u64,
    /// Seconds to let in-flight requests finish on shutdown.
    #[arg(long, default_value_t = 10)]
    drain_seconds: u64,
    #[command(flatten)]
    node: NodeArgs,
}

mod ipnet_arg {
    //! Dual-stack CIDR list flag values (kube-apiserver's checks and messages).
    use portico_apiserver::cidrs::parse_dual_stack;

    /// One or two ranges of different families, primary first.
    #[derive(Debug, Clone)]
    pub struct Cidrs(pub Vec<ipnet::IpNet>);

    impl Cidrs {
        /// The IPv4 range, if any.
        pub fn v4(&self) -> Option<ipnet::Ipv4Net> {
            self.0.iter().find_map(|n| match n {
                ipnet::IpNet::V4(v) => Some(*v),
                ipnet::IpNet::V6(_) => None,
            })
        }

        /// The IPv6 range, if any.
        pub fn v6(&self) -> Option<ipnet::Ipv6Net> {
            self.0.iter().find_map(|n| match n {
                ipnet::IpNet::V6(v) => Some(*v),
                ipnet::IpNet::V4(_) => None,
            })
        }

        /// The list as the flag takes it.
        pub fn joined(&self) -> String {
            self.0.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
        }
    }

    /// `--service-cidr` (at most 20 host bits, as kube-apiserver allows).
    pub fn service_cidrs(s: &str) -> Result<Cidrs, String> {
        parse_dual_stack("--service-cidr", s, Some(20)).map(Cidrs).map_err(|e| e.to_string())
    }

    /// `--cluster-cidr`.
    pub fn cluster_cidrs(s: &str) -> Result<Cidrs, String> {
        parse_dual_stack("--cluster-cidr", s, None).map(Cidrs).map_err(|e| e.to_string())
    }
}

/// An inclusive port range flag value (`30000-32767`).
#[derive(Debug, Clone, Copy)]
struct PortRange(u16, u16);

impl std::str::FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, b) = s.split_once('-').ok_or_else(|| format!("{s:?} is not a port range (want e.g. 30000-32767)"))?;
        let a: u16 = a.trim().parse().map_err(|e| format!("{s:?}: {e}"))?;
        let b: u16 = b.trim().parse().map_err(|e| format!("{s:?}: {e}"))?;
        if a == 0 || a > b {
            return Err(format!("{s:?}: the range must be non-empty and start above 0"));
        }
        Ok(Self(a, b))
    }
}

fn default_data_dir() -> PathBuf {
    // Root keeps cluster state with the system; others in their XDG data dir.
    if nix_is_root() {
        return PathBuf::from("/var/lib/portico");
    }
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("portico")
}

fn nix_is_root() -> bool {
    // /proc/self/status "Uid:" line: real, effective, saved, fs.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

async fn run_server(args: ServerArgs, with_node: bool) -> anyhow::Result<()> {
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    std::fs::create_dir_all(&data_dir).with_context(|| format!("creating data dir {}", data_dir.display()))?;
    // The data dir holds the CA key, the admin token and the database.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {} to its owner", data_dir.display()))?;
    }
    let db = data_dir.join("portico.db");
    let store = portico_store::sqlite::SqliteStore::open(&db).with_context(|| format!("opening {}", db.display()))?;
    let cfg = portico_apiserver::Config {
        data_dir: data_dir.clone(),
        bind: args.bind,
        service_cidrs: args.service_cidr.0.clone(),
        node_port_range: (args.service_node_port_range.0, args.service_node_port_range.1),
        drain_timeout: Duration::from_secs(args.drain_seconds),
        // Pods reach the API through the `kubernetes` Service: advertise the node's address.
        advertise_address: args.advertise_address.or_else(|| args.bind.ip().is_unspecified().then(portico_node::agent::detect_node_ip).flatten()),
    };
    let running = portico_apiserver::start(cfg, Arc::new(store)).await?;
    // Controllers are API clients like any other, over loopback HTTPS.
    let kubeconfig = kube::config::Kubeconfig::read_from(&running.kubeconfig).context("reading the admin kubeconfig")?;
    let client_cfg = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.context("admin kubeconfig")?;
    let client = kube::Client::try_from(client_cfg).context("building the API client")?;
    let controllers_cfg = portico_controllers::Config {
        // Node IPAM hands out IPv4 pod ranges only.
        cluster_cidr: args.cluster_cidr.v4().context("--cluster-cidr needs an IPv4 range for node IPAM")?,
        cluster_cidr_v6: args.cluster_cidr.v6(),
        lb_pool: args.lb_pool.as_deref().map(str::parse).transpose().context("--lb-pool")?,
        node_monitor_grace: Duration::from_secs(args.node_monitor_grace_period),
    };
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    // Stable across restarts of this server, so a restart takes its own lease back at once.
    let identity = format!("{}_{}", hostname.trim(), data_dir.display());
    let controllers = tokio::spawn(portico_controllers::run_with_leader_election(client.clone(), controllers_cfg, identity));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut node_tasks = Vec::new();
    // Rules stay in the kernel when the proxy stops: traffic flows through a restart.
    let proxy = if with_node { start_proxy(&args.node, client.clone(), &args.cluster_cidr)? } else { None };
    let dns = if with_node { start_dns(&args.node, client.clone()).await? } else { None };
    if with_node && !args.node.disable.iter().any(|d| d == "pods") {
        let cfg = agent_config(&args.node, data_dir.join("agent"), &args.cluster_cidr.joined())?;
        let mut rx = stop_rx.clone();
        let c = client.clone();
        node_tasks.push(tokio::spawn(async move {
            let stop = async move {
                let _ = rx.wait_for(|v| *v).await;
            };
            if let Err(e) = portico_node::agent::run(c, cfg, stop).await {
                tracing::error!(error = %e, "node agent stopped");
            }
        }));
    }
    println!("Portico API server is up at {}", running.url());
    println!("export KUBECONFIG={}", running.kubeconfig.display());
    wait_for_signal().await?;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    for t in node_tasks {
        let _ = tokio::time::timeout(Duration::from_secs(20), t).await;
    }
    if let Some(p) = proxy {
        p.abort();
    }
    if let Some(d) = dns {
        d.abort();
    }
    controllers.abort();
    running.shutdown().await;
    Ok(())
}

/// Starts the Service proxy unless disabled; fails with one line naming the fix
/// when this machine cannot run it.
fn start_proxy(node: &NodeArgs, client: kube::Client, cluster_cidr: &ipnet_arg::Cidrs) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    if node.disable.iter().any(|d| d == "proxy") {
        return Ok(None);
    }
    portico_proxy::preflight()?;
    let name = portico_node::agent::node_name(&agent_config(node, PathBuf::new(), "")?);
    let mut cfg = portico_proxy::Config::new(name);
    cfg.cluster_cidr = cluster_cidr.joined();
    cfg.health_addr = Some(node.proxy_health_address);
    cfg.ports_per_table = node.proxy_ports_per_table;
    Ok(Some(tokio::spawn(async move {
        if let Err(e) = portico_proxy::run(client, cfg).await {
            tracing::error!(error = %e, "service proxy stopped");
        }
    })))
}

/// Starts cluster DNS on the node's address (port 53) and publishes it as the
/// `kube-dns` Service at the cluster DNS address, unless disabled.
async fn start_dns(node: &NodeArgs, client: kube::Client) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    if node.disable.iter().any(|d| d == "dns") {
        return Ok(None);
    }
    let ip = node.node_ip.or_else(portico_node::agent::detect_node_ip).unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
    let mut cfg = portico_dns::Config::new(vec![SocketAddr::new(ip, node.dns_port)]);
    cfg.metrics_addr = Some(node.dns_metrics_address);
    if let Some(up) = &node.dns_upstream {
        cfg.upstreams = Some(up.iter().map(|a| if a.contains(':') { a.parse() } else { format!("{a}:53").parse() }).collect::<Result<_, _>>().context("--dns-upstream")?);
    }
    let (cluster_dns, port) = (node.cluster_dns, node.dns_port);
    Ok(Some(tokio::spawn(async move {
        let c = client.clone();
        tokio::spawn(async move {
            // The API may still be starting: retry until the Service is published.
            for _ in 0..60 {
                match portico_dns::ensure_kube_dns_service(&c, cluster_dns, &[ip], port).await {
                    Ok(()) => return,
                    Err(e) => tracing::debug!(error = %e, "publishing kube-dns; retrying"),
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            tracing::error!("could not publish the kube-dns Service");
        });
        if let Err(e) = portico_dns::run(client, cfg).await {
            tracing::error!(error = %e, "cluster DNS stopped");
        }
    })))
}

fn agent_config(node: &NodeArgs, state_dir: PathBuf, cluster_cidr: &str) -> anyhow::Result<portico_node::agent::Config> {
    let exe = std::env::current_exe().context("finding the portico binary")?;
    let mut cfg = portico_node::agent::Config::new(state_dir, exe);
    cfg.node_name = node.node_name.clone();
    cfg.node_ip = node.node_ip;
    cfg.cni_conf_dir = node.cni_conf_dir.clone();
    cfg.cni_bin_dirs = node.cni_bin_dir.split(':').filter(|s| !s.is_empty()).map(PathBuf::from).collect();
    cfg.kubelet_addr = node.kubelet_address;
    cfg.cluster_dns = vec![node.cluster_dns];
    cfg.cluster_cidr = cluster_cidr.to_owned();
    cfg.netns_prefix = node.netns_prefix.clone();
    Ok(cfg)
}

async fn run_agent(args: AgentCli) -> anyhow::Result<()> {
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    let cfg = agent_config(&args.node, data_dir.join("agent"), &args.cluster_cidr.joined())?;
    if args.cleanup {
        portico_node::agent::cleanup(&cfg).await;
        let _ = portico_proxy::cleanup(portico_proxy::DEFAULT_TABLE);
        println!("removed Portico's pods, network namespaces, leases, bridge, masquerade and Service proxy rules");
        return Ok(());
    }
    let client_cfg = match (&args.kubeconfig, &args.server) {
        (Some(path), _) => {
            let kc = kube::config::Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.context("kubeconfig")?
        }
        (None, Some(server)) => {
            let mut c = kube::Config::new(server.parse().context("--server")?);
            if let Some(t) = &args.token {
                c.auth_info.token = Some(t.clone().into());
            }
            if let Some(ca) = &args.ca_file {
                let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
                let certs: Vec<Vec<u8>> = rustls_pemfile::certs(&mut pem.as_slice()).filter_map(Result::ok).map(|d| d.to_vec()).collect();
                anyhow::ensure!(!certs.is_empty(), "--ca-file {} holds no certificate", ca.display());
                c.root_cert = Some(certs);
            }
            c
        }
        (None, None) => anyhow::bail!("portico agent needs --server URL --token TOKEN [--ca-file CA] or --kubeconfig PATH"),
    };
    let client = kube::Client::try_from(client_cfg).context("building the API client")?;
    let proxy = start_proxy(&args.node, client.clone(), &args.cluster_cidr)?;
    let dns = start_dns(&args.node, client.clone()).await?;
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let agent = tokio::spawn(portico_node::agent::run(client, cfg, async move {
        let _ = stop_rx.wait_for(|v| *v).await;
    }));
    wait_for_signal().await?;
    let _ = stop_tx.send(true);
    agent.await.context("agent task")?.context("node agent")?;
    if let Some(p) = proxy {
        p.abort();
    }
    if let Some(d) = dns {
        d.abort();
    }
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // Namespace entry points run before any thread exists (setns into a mount
    // namespace is refused to multi-threaded processes), so before clap and tokio.
    let argv: Vec<String> = std::env::args().collect();
    match argv.get(1).map(String::as_str) {
        Some("sandbox-init") => exit_with(portico_node::nsexec::sandbox_init(&argv[2..])),
        Some("sandbox-exec") => exit_with(portico_node::nsexec::sandbox_exec(&argv[2..])),
        Some("cni") => std::process::exit(portico_node::cni::plugin::main()),
        Some("netexec") => match portico_netexec::main(argv[2..].to_vec()) {
            Ok(code) => std::process::exit(code),
            Err(portico_netexec::Error::Flags(e)) => e.exit(),
            Err(e) => {
                eprintln!("netexec: {e}");
                std::process::exit(1)
            }
        },
        _ => {}
    }
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    rt.block_on(async {
        match cli.command {
            Command::Up(args) => run_server(args, true).await,
            Command::Server(args) => run_server(args, false).await,
            Command::Agent(args) => run_agent(args).await,
            Command::Cni | Command::Netexec { .. } => unreachable_subcommand(),
        }
    })
}

fn exit_with(r: Result<i32, portico_node::nsexec::NsError>) -> ! {
    match r {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("portico: {e}");
            // 127: like a shell whose command could not be run.
            std::process::exit(127)
        }
    }
}

fn unreachable_subcommand() -> anyhow::Result<()> {
    // `cni` and `netexec` are dispatched in `main` before clap runs.
    anyhow::bail!("this subcommand is handled before argument parsing")
}
