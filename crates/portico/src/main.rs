//! `portico`: Kubernetes Service networking in one binary.
//!
//! Subcommands choose the components: `up` runs everything on one machine,
//! `server` runs the API server (and, later, the controllers). The binary
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
    /// Service ClusterIP range.
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cidr: ipnet_arg::Cidr,
    /// NodePort range, inclusive.
    #[arg(long, default_value = "30000-32767")]
    service_node_port_range: PortRange,
    /// Pod range; each node gets a /24 of it.
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: String,
    /// Dedicated IPv4 range for LoadBalancer Services (default: node IPs, ServiceLB style).
    #[arg(long)]
    lb_pool: Option<String>,
    /// Seconds to let in-flight requests finish on shutdown.
    #[arg(long, default_value_t = 10)]
    drain_seconds: u64,
}

mod ipnet_arg {
    //! A CIDR flag value.
    use std::str::FromStr;

    /// A parsed CIDR.
    #[derive(Debug, Clone)]
    pub struct Cidr(pub String);

    impl FromStr for Cidr {
        type Err = String;
        fn from_str(s: &str) -> Result<Self, Self::Err> {
            let (addr, len) = s.split_once('/').ok_or_else(|| format!("{s:?} is not a CIDR (want e.g. 10.96.0.0/12)"))?;
            addr.parse::<std::net::IpAddr>().map_err(|e| format!("{s:?}: {e}"))?;
            len.parse::<u8>().map_err(|e| format!("{s:?}: {e}"))?;
            Ok(Self(s.to_owned()))
        }
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
        service_cidr: args.service_cidr.0.parse().context("--service-cidr")?,
        node_port_range: (args.service_node_port_range.0, args.service_node_port_range.1),
        drain_timeout: Duration::from_secs(args.drain_seconds),
    };
    let running = portico_apiserver::start(cfg, Arc::new(store)).await?;
    // Controllers are API clients like any other, over loopback HTTPS.
    let kubeconfig = kube::config::Kubeconfig::read_from(&running.kubeconfig).context("reading the admin kubeconfig")?;
    let client_cfg = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.context("admin kubeconfig")?;
    let client = kube::Client::try_from(client_cfg).context("building the API client")?;
    let controllers_cfg = portico_controllers::Config {
        cluster_cidr: args.cluster_cidr.parse().context("--cluster-cidr")?,
        lb_pool: args.lb_pool.as_deref().map(str::parse).transpose().context("--lb-pool")?,
    };
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    // Stable across restarts of this server, so a restart takes its own lease back at once.
    let identity = format!("{}_{}", hostname.trim(), data_dir.display());
    let controllers = tokio::spawn(portico_controllers::run_with_leader_election(client, controllers_cfg, identity));
    if with_node {
        tracing::info!("node components (pods, proxy, DNS) are not part of this build yet; serving the API only");
    }
    println!("Portico API server is up at {}", running.url());
    println!("export KUBECONFIG={}", running.kubeconfig.display());
    wait_for_signal().await?;
    tracing::info!("shutting down");
    controllers.abort();
    running.shutdown().await;
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
        }
    })
}
