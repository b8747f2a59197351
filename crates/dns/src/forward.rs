//! The forwarder: names outside the cluster go to the upstream resolvers,
//! over UDP with a TCP retry when the answer is truncated, with a bounded
//! TTL-respecting cache (positive and negative) and a cap on concurrent
//! upstream queries. An upstream that fails or is slow becomes SERVFAIL
//! within the timeout, never a hang.

use crate::wire;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

/// How long one upstream exchange may take.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_millis(1500);
/// Entries kept in the cache.
pub const CACHE_CAPACITY: usize = 10_000;
/// Longest time an answer is cached (CoreDNS's cache default).
pub const MAX_TTL: u32 = 3600;
/// Longest time a negative answer is cached.
pub const MAX_NEGATIVE_TTL: u32 = 1800;
/// Upstream queries in flight at once.
pub const MAX_CONCURRENT: usize = 1000;

struct Entry {
    reply: Vec<u8>,
    expires: Instant,
}

/// A caching forwarder.
pub struct Forwarder {
    upstreams: Vec<SocketAddr>,
    cache: Mutex<HashMap<(String, u16), Entry>>,
    limit: Semaphore,
    /// Cache hits.
    pub hits: prometheus_client::metrics::counter::Counter,
    /// Cache misses.
    pub misses: prometheus_client::metrics::counter::Counter,
}

impl Forwarder {
    /// A forwarder to `upstreams` (tried in order).
    pub fn new(upstreams: Vec<SocketAddr>) -> Arc<Self> {
        Arc::new(Self {
            upstreams,
            cache: Mutex::new(HashMap::new()),
            limit: Semaphore::new(MAX_CONCURRENT),
            hits: Default::default(),
            misses: Default::default(),
        })
    }

    /// Resolves `name`/`qtype` and returns the upstream's reply (ID 0), or `None` on failure.
    pub async fn resolve(&self, name: &str, qtype: u16) -> Option<Vec<u8>> {
        let key = (name.to_ascii_lowercase(), qtype);
        if let Some(e) = self.cache.lock().get(&key) {
            if e.expires > Instant::now() {
                self.hits.inc();
                return Some(e.reply.clone());
            }
        }
        self.misses.inc();
        let _permit = self.limit.try_acquire().ok()?;
        let query = wire::build_query(0, name, qtype, Some(1232));
        let reply = self.exchange(&query).await?;
        if let Some((rc, ttl)) = wire::response_ttl(&reply) {
            let ttl = match rc {
                wire::rcode::NOERROR | wire::rcode::NXDOMAIN => {
                    let cap = if rc == wire::rcode::NXDOMAIN || ttl == 0 { MAX_NEGATIVE_TTL } else { MAX_TTL };
                    ttl.min(cap)
                }
                _ => 0,
            };
            if ttl > 0 {
                let mut c = self.cache.lock();
                if c.len() >= CACHE_CAPACITY {
                    let now = Instant::now();
                    c.retain(|_, e| e.expires > now);
                    if c.len() >= CACHE_CAPACITY {
                        // Still full: drop an arbitrary tenth.
                        let drop: Vec<_> = c.keys().take(CACHE_CAPACITY / 10).cloned().collect();
                        for k in drop {
                            c.remove(&k);
                        }
                    }
                }
                c.insert(key, Entry { reply: reply.clone(), expires: Instant::now() + Duration::from_secs(u64::from(ttl)) });
            }
        }
        Some(reply)
    }

    /// Forwards a client's raw query (any type, any flags), returning the reply with the client's ID.
    pub async fn forward_raw(&self, q: &wire::Query) -> Option<Vec<u8>> {
        let mut reply = self.resolve(&q.name, q.qtype).await?;
        if reply.len() >= 2 {
            reply[..2].copy_from_slice(&q.id.to_be_bytes());
        }
        Some(reply)
    }

    async fn exchange(&self, query: &[u8]) -> Option<Vec<u8>> {
        // Every upstream together gets one timeout: a dead upstream becomes SERVFAIL, not a hang.
        tokio::time::timeout(UPSTREAM_TIMEOUT, self.exchange_all(query)).await.ok().flatten()
    }

    async fn exchange_all(&self, query: &[u8]) -> Option<Vec<u8>> {
        for up in &self.upstreams {
            let r = tokio::time::timeout(UPSTREAM_TIMEOUT / 2, async {
                let bind = if up.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
                let sock = tokio::net::UdpSocket::bind(bind).await.ok()?;
                sock.connect(up).await.ok()?;
                let id: u16 = rand_id();
                let mut q = query.to_vec();
                q[..2].copy_from_slice(&id.to_be_bytes());
                sock.send(&q).await.ok()?;
                let mut buf = vec![0u8; 4096];
                loop {
                    let n = sock.recv(&mut buf).await.ok()?;
                    if n >= 12 && buf[..2] == id.to_be_bytes() {
                        buf.truncate(n);
                        break;
                    }
                }
                if buf[2] & 0x02 != 0 {
                    // Truncated: ask again over TCP.
                    let mut s = tokio::net::TcpStream::connect(up).await.ok()?;
                    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
                    framed.extend_from_slice(&q);
                    s.write_all(&framed).await.ok()?;
                    let mut len = [0u8; 2];
                    s.read_exact(&mut len).await.ok()?;
                    let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
                    s.read_exact(&mut msg).await.ok()?;
                    return Some(msg);
                }
                Some(buf)
            })
            .await;
            if let Ok(Some(mut reply)) = r {
                reply[..2].copy_from_slice(&[0, 0]);
                return Some(reply);
            }
        }
        None
    }
}

fn rand_id() -> u16 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    (t ^ (t >> 16)) as u16
}

/// The nameservers of a resolv.conf, as socket addresses on port 53, minus `exclude`.
pub fn upstreams_from_resolv_conf(text: &str, exclude: &[std::net::IpAddr]) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|ip| ip.trim().parse::<std::net::IpAddr>().ok())
        .filter(|ip| !exclude.contains(ip))
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}
