//! Prometheus metrics (kube-proxy's names where the concept is the same) and
//! the `/healthz`, `/readyz` and `/metrics` endpoints.

use bytes::Bytes;
use http_body_util::Full;
use parking_lot::Mutex;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long changes may wait for a successful sync before `/healthz` fails.
pub const STALL: Duration = Duration::from_secs(60);

/// The proxy's metrics and health state.
pub struct Metrics {
    registry: Mutex<Registry>,
    /// kubeproxy_sync_proxy_rules_duration_seconds.
    pub sync_duration: Histogram,
    /// kubeproxy_network_programming_duration_seconds.
    pub programming: Histogram,
    /// kubeproxy_sync_proxy_rules_last_timestamp_seconds.
    pub last_sync: Gauge<f64, AtomicU64>,
    /// kubeproxy_sync_proxy_rules_nftables_total (rules in Portico's tables).
    pub rules: Gauge,
    /// kubeproxy_sync_proxy_rules_nftables_chains (chains).
    pub chains: Gauge,
    /// kubeproxy_sync_proxy_rules_no_local_endpoints_total style counter of failed syncs.
    pub sync_failures: Counter,
    /// kubeproxy_sync_full_proxy_rules_duration_seconds.
    pub full_sync_duration: Histogram,
    started: Instant,
    /// Millis since `started` of the oldest change not yet programmed (0 = none).
    pending_since: AtomicU64,
    /// Set after the first successful sync.
    ready: std::sync::atomic::AtomicBool,
}

impl Metrics {
    /// Registers the metrics.
    pub fn new() -> Arc<Self> {
        let mut r = Registry::default();
        let sync_duration = Histogram::new(exponential_buckets(0.0001, 2.0, 18));
        let full_sync_duration = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let programming = Histogram::new(exponential_buckets(0.0005, 2.0, 18));
        let last_sync = Gauge::<f64, AtomicU64>::default();
        let rules = Gauge::default();
        let chains = Gauge::default();
        let sync_failures = Counter::default();
        r.register("kubeproxy_sync_proxy_rules_duration_seconds", "SyncProxyRules latency in seconds", sync_duration.clone());
        r.register("kubeproxy_sync_full_proxy_rules_duration_seconds", "Full SyncProxyRules latency in seconds", full_sync_duration.clone());
        r.register("kubeproxy_network_programming_duration_seconds", "In-cluster network programming latency in seconds", programming.clone());
        r.register("kubeproxy_sync_proxy_rules_last_timestamp_seconds", "The last time proxy rules were successfully synced", last_sync.clone());
        r.register("kubeproxy_sync_proxy_rules_nftables_total", "Number of nftables rules owned by the proxy", rules.clone());
        r.register("kubeproxy_sync_proxy_rules_nftables_chains", "Number of nftables chains owned by the proxy", chains.clone());
        r.register("kubeproxy_sync_proxy_rules_failures", "Syncs nft rejected", sync_failures.clone());
        Arc::new(Self {
            registry: Mutex::new(r),
            sync_duration,
            programming,
            last_sync,
            rules,
            chains,
            sync_failures,
            full_sync_duration,
            started: Instant::now(),
            pending_since: AtomicU64::new(0),
            ready: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Notes that a change is waiting to be programmed.
    pub fn pending(&self) {
        let now = self.started.elapsed().as_millis() as u64 + 1;
        let _ = self.pending_since.compare_exchange(0, now, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Notes a successful sync of everything pending.
    pub fn synced(&self) {
        self.pending_since.store(0, Ordering::Release);
        self.ready.store(true, Ordering::Release);
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        self.last_sync.set(secs);
    }

    /// Healthy unless changes have waited longer than [`STALL`].
    pub fn healthy(&self) -> bool {
        let since = self.pending_since.load(Ordering::Acquire);
        since == 0 || self.started.elapsed().as_millis() as u64 + 1 - since < STALL.as_millis() as u64
    }

    /// Ready after the first successful sync.
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    fn render(&self) -> String {
        let mut s = String::new();
        let _ = encode(&mut s, &self.registry.lock());
        s
    }
}

/// Serves `/healthz`, `/readyz` and `/metrics` on `addr` until dropped.
pub async fn serve(addr: SocketAddr, m: Arc<Metrics>) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let m = m.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let m = m.clone();
                    async move {
                        let (code, body) = match req.uri().path() {
                            "/healthz" | "/livez" if m.healthy() => (200, "ok".to_owned()),
                            "/healthz" | "/livez" => (503, "proxy rules have not synced for over a minute".to_owned()),
                            "/readyz" if m.ready() => (200, "ok".to_owned()),
                            "/readyz" => (503, "first sync not done".to_owned()),
                            "/metrics" => (200, m.render()),
                            _ => (404, "404 page not found".to_owned()),
                        };
                        let mut r = hyper::Response::new(Full::new(Bytes::from(body)));
                        *r.status_mut() = http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::OK);
                        Ok::<_, std::convert::Infallible>(r)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), svc).await;
            });
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await.expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).await.expect("read");
        out
    }

    #[tokio::test]
    async fn healthz_fails_while_a_change_waits_longer_than_a_minute_and_recovers_after_a_sync() {
        let mut m = Metrics::new();
        // Pretend the proxy started 61 s ago and a change has waited since its start.
        Arc::get_mut(&mut m).expect("unique").started = Instant::now().checked_sub(Duration::from_secs(61)).expect("uptime");
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let _server = serve(addr, m.clone()).await.expect("serve");
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"), "nothing pending: healthy");
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 503"), "not ready before the first sync");
        m.pending_since.store(1, Ordering::Release);
        let stalled = get(addr, "/healthz").await;
        assert!(stalled.starts_with("HTTP/1.1 503") && stalled.ends_with("proxy rules have not synced for over a minute"), "{stalled}");
        m.synced();
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/readyz").await.ends_with("ok"));
        m.pending();
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"), "a fresh change is not a stall");
    }
}
