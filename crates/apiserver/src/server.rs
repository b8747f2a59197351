//! Starting, serving and draining the API server.

use crate::handler::Api;
use crate::registry::Registry;
use crate::tls::{self, ClusterCa};
use base64::Engine;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::graceful::GracefulShutdown;
use portico_store::SharedStore;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// API server settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the CA, token and kubeconfig live.
    pub data_dir: PathBuf,
    /// Listen address (port 0 picks a free port).
    pub bind: SocketAddr,
    /// Service ClusterIP ranges, primary family first, at most one per
    /// family (see [`crate::cidrs::parse_dual_stack`]).
    pub service_cidrs: Vec<ipnet::IpNet>,
    /// NodePort range (inclusive).
    pub node_port_range: (u16, u16),
    /// How long in-flight requests may take to finish on shutdown.
    pub drain_timeout: Duration,
    /// The address the `kubernetes` Service's endpoints point at (default: the bind address, loopback if unspecified).
    pub advertise_address: Option<IpAddr>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("/var/lib/portico"),
            bind: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 6443)),
            service_cidrs: vec!["10.96.0.0/12".parse().expect("literal CIDR")],
            node_port_range: (30000, 32767),
            drain_timeout: Duration::from_secs(10),
            advertise_address: None,
        }
    }
}

/// Start-up failures.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Data dir, CA or kubeconfig IO.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// A file in the data dir.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Bootstrapping the default objects failed.
    #[error("bootstrap: {0}")]
    Bootstrap(#[from] portico_api::status::ApiError),
}

/// A running API server.
pub struct Running {
    /// The address it listens on.
    pub local_addr: SocketAddr,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// The admin bearer token.
    pub token: String,
    /// The cluster CA in PEM form.
    pub ca_pem: String,
    api: Arc<Api>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Running {
    /// Stops accepting, drains in-flight requests (bounded) and returns.
    pub async fn shutdown(self) {
        self.api.draining.store(true, Ordering::Release);
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }

    /// The https URL of the server.
    pub fn url(&self) -> String {
        format!("https://{}", client_addr(self.local_addr))
    }
}

fn client_addr(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        ip if ip.is_unspecified() => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port()),
        _ => addr,
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ServerError + '_ {
    move |source| ServerError::Io { path: path.to_owned(), source }
}

/// Loads the admin token, generating it on first start.
fn load_or_create_token(dir: &Path) -> Result<String, ServerError> {
    let path = dir.join("token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim().to_owned();
        if !t.is_empty() {
            return Ok(t);
        }
    }
    let token = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    tls::write_private(&path, token.as_bytes())?;
    Ok(token)
}

/// Renders an admin kubeconfig.
pub fn kubeconfig(server: &str, ca_pem: &str, token: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: portico\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: admin\n  user:\n    token: {token}\ncontexts:\n- name: portico\n  context:\n    cluster: portico\n    user: admin\n    namespace: default\ncurrent-context: portico\n"
    )
}

/// Starts the API server over `store`: TLS material, bootstrap objects, listener.
pub async fn start(cfg: Config, store: SharedStore) -> Result<Running, ServerError> {
    std::fs::create_dir_all(&cfg.data_dir).map_err(io_err(&cfg.data_dir))?;
    let ca = ClusterCa::load_or_create(&cfg.data_dir)?;
    let token = load_or_create_token(&cfg.data_dir)?;
    let listener = TcpListener::bind(cfg.bind).await.map_err(|source| ServerError::Bind { addr: cfg.bind, source })?;
    let local_addr = listener.local_addr().map_err(|source| ServerError::Bind { addr: cfg.bind, source })?;
    let first_service_ip = crate::bootstrap::first_service_ip(&cfg.service_cidrs);
    let mut sans: Vec<String> = vec![
        "localhost".into(),
        "127.0.0.1".into(),
        "::1".into(),
        "kubernetes".into(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        "kubernetes.default.svc.cluster.local".into(),
        first_service_ip.to_string(),
    ];
    if !local_addr.ip().is_unspecified() {
        sans.push(local_addr.ip().to_string());
    }
    if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let host = host.trim();
        if !host.is_empty() && !sans.iter().any(|s| s == host) {
            sans.push(host.to_owned());
        }
    }
    let (chain, key) = ca.issue_serving(&sans)?;
    let tls_cfg = tls::server_config(chain, key)?;
    let server_url = format!("https://{}", client_addr(local_addr));
    let kubeconfig_path = cfg.data_dir.join("kubeconfig");
    tls::write_private(&kubeconfig_path, kubeconfig(&server_url, &ca.cert_pem, &token).as_bytes())?;

    let registry = Registry::new(store, cfg.service_cidrs.clone(), cfg.node_port_range);
    registry.repair_allocations().await?;
    let advertise = cfg.advertise_address.map(|ip| SocketAddr::new(ip, local_addr.port())).unwrap_or_else(|| client_addr(local_addr));
    crate::bootstrap::ensure_defaults(&registry, &cfg, advertise).await?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let api = Arc::new(Api {
        registry,
        tokens: vec![token.clone()],
        ready: false.into(),
        draining: false.into(),
        metrics: crate::metrics::Metrics::default(),
        shutdown: shutdown_rx.clone(),
    });
    api.ready.store(true, Ordering::Release);
    let task = tokio::spawn(serve(listener, tokio_rustls::TlsAcceptor::from(tls_cfg), api.clone(), shutdown_rx, cfg.drain_timeout));
    let _namespace_task = tokio::spawn(crate::bootstrap::namespace_finalizer(api.clone()));
    tracing::info!(%local_addr, kubeconfig = %kubeconfig_path.display(), "API server listening");
    Ok(Running { local_addr, kubeconfig: kubeconfig_path, token, ca_pem: ca.cert_pem, api, shutdown: shutdown_tx, task })
}

async fn serve(listener: TcpListener, acceptor: tokio_rustls::TlsAcceptor, api: Arc<Api>, mut shutdown: watch::Receiver<bool>, drain: Duration) {
    let graceful = GracefulShutdown::new();
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let api = api.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let service = hyper::service::service_fn(move |req| api.clone().handle(req));
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
        tracing::warn!("drain timed out; closing remaining connections");
    }
}
