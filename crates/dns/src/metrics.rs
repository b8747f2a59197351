//! Metrics with CoreDNS's names, and the `/health`, `/ready`, `/metrics` endpoints.

use bytes::Bytes;
use http_body_util::Full;
use parking_lot::Mutex;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

type Labels = Vec<(String, String)>;

/// Query types with their own label value (the rest count as "other").
const TYPES: [&str; 10] = ["A", "NS", "CNAME", "SOA", "PTR", "TXT", "AAAA", "SRV", "ANY", "other"];
/// Rcodes with their own label value.
const RCODES: [&str; 7] = ["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "OTHER"];

/// Which listener a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
}

/// The DNS server's metrics.
pub struct Metrics {
    registry: Mutex<Registry>,
    /// coredns_dns_requests_total{proto,type}.
    pub requests: Family<Labels, Counter>,
    /// coredns_dns_responses_total{rcode}.
    pub responses: Family<Labels, Counter>,
    /// coredns_dns_request_duration_seconds.
    pub duration: Histogram,
    /// Set after the first full sync.
    pub ready: AtomicBool,
    /// The request counters by [proto][type index], created up front so that
    /// counting a request is one atomic add, not a label lookup.
    by_type: [[Counter; TYPES.len()]; 2],
    /// The response counters by rcode index.
    by_rcode: [Counter; RCODES.len()],
}

impl Metrics {
    /// Registers the metrics, with the forwarder's cache counters.
    pub fn new(hits: Counter, misses: Counter) -> Arc<Self> {
        let mut r = Registry::default();
        let requests = Family::<Labels, Counter>::default();
        let responses = Family::<Labels, Counter>::default();
        let duration = Histogram::new(exponential_buckets(0.00025, 2.0, 16));
        r.register("coredns_dns_requests", "Counter of DNS requests made per zone, protocol and family.", requests.clone());
        r.register("coredns_dns_responses", "Counter of response status codes.", responses.clone());
        r.register("coredns_dns_request_duration_seconds", "Histogram of the time (in seconds) each request took.", duration.clone());
        r.register("coredns_cache_hits", "The count of cache hits.", hits);
        r.register("coredns_cache_misses", "The count of cache misses.", misses);
        let by_type = [Proto::Udp, Proto::Tcp].map(|p| {
            TYPES.map(|t| requests.get_or_create(&vec![("proto".into(), proto_name(p).into()), ("type".into(), t.into())]).clone())
        });
        let by_rcode = RCODES.map(|rc| responses.get_or_create(&vec![("rcode".into(), rc.into())]).clone());
        Arc::new(Self { registry: Mutex::new(r), requests, responses, duration, ready: AtomicBool::new(false), by_type, by_rcode })
    }

    /// Counts one answered request.
    pub fn count(&self, proto: Proto, qtype: Option<u16>, rcode: u8, seconds: f64) {
        let t = qtype.map_or(TYPES.len() - 1, type_index);
        self.by_type[proto as usize][t].inc();
        self.by_rcode[usize::from(rcode).min(RCODES.len() - 1)].inc();
        self.duration.observe(seconds);
    }

    fn render(&self) -> String {
        let mut s = String::new();
        let _ = encode(&mut s, &self.registry.lock());
        s
    }
}

fn proto_name(p: Proto) -> &'static str {
    match p {
        Proto::Udp => "udp",
        Proto::Tcp => "tcp",
    }
}

/// Index into [`TYPES`] of a query type.
fn type_index(t: u16) -> usize {
    match t {
        1 => 0,
        2 => 1,
        5 => 2,
        6 => 3,
        12 => 4,
        16 => 5,
        28 => 6,
        33 => 7,
        255 => 8,
        _ => 9,
    }
}

/// Serves `/health`, `/ready` and `/metrics` on `addr`.
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
                            "/health" => (200, "OK".to_owned()),
                            "/ready" if m.ready.load(Ordering::Acquire) => (200, "OK".to_owned()),
                            "/ready" => (503, "kubernetes".to_owned()),
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
