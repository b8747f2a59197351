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
    stored: Instant,
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
        if let Some(reply) = self.lookup(&key) {
            return Some(reply);
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
                let stored = Instant::now();
                c.insert(key, Entry { reply: reply.clone(), stored, expires: stored + Duration::from_secs(u64::from(ttl)) });
            }
        }
        Some(reply)
    }

    /// A fresh cached reply for `key` (ID 0), counting the hit.
    fn lookup(&self, key: &(String, u16)) -> Option<Vec<u8>> {
        let cache = self.cache.lock();
        let now = Instant::now();
        let e = cache.get(key).filter(|e| e.expires > now)?;
        self.hits.inc();
        let mut reply = e.reply.clone();
        let age = u32::try_from(now.duration_since(e.stored).as_secs()).unwrap_or(u32::MAX);
        drop(cache);
        // Clients see the time left, as from CoreDNS's cache.
        if age > 0 {
            wire::age_ttls(&mut reply, age);
        }
        Some(reply)
    }

    /// The cached reply to a client's query with the client's ID, without
    /// waiting: the server answers cache hits inline instead of spawning a task.
    pub fn cached(&self, q: &wire::Query) -> Option<Vec<u8>> {
        let mut reply = self.lookup(&(q.name.to_ascii_lowercase(), q.qtype))?;
        if reply.len() >= 2 {
            reply[..2].copy_from_slice(&q.id.to_be_bytes());
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

/// An unpredictable query ID (with the OS's random source port, the defence
/// against off-path spoofing): std's `RandomState` is seeded from the OS and
/// gives different keys each time.
fn rand_id() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new().build_hasher().finish() as u16
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{RData, Record, Response, rtype};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A one-record upstream on loopback that counts the queries it gets.
    async fn upstream(ttl: u32) -> (SocketAddr, Arc<AtomicUsize>) {
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = sock.local_addr().expect("addr");
        let seen = Arc::new(AtomicUsize::new(0));
        let count = seen.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, peer)) = sock.recv_from(&mut buf).await {
                count.fetch_add(1, Ordering::SeqCst);
                let Ok(q) = wire::parse_query(&buf[..n]) else { continue };
                let a = Record { name: q.name.clone(), ttl, data: RData::A(std::net::Ipv4Addr::new(192, 0, 2, 7)) };
                let _ = sock.send_to(&wire::encode(&q, &Response { answers: vec![a], ..Default::default() }, 512), peer).await;
            }
        });
        (addr, seen)
    }

    #[tokio::test]
    async fn cache_hits_skip_the_upstream_and_keep_the_clients_id() {
        let (addr, seen) = upstream(300).await;
        let fwd = Forwarder::new(vec![addr]);
        let q = wire::parse_query(&wire::build_query(4242, "WWW.Example.org", rtype::A, None)).expect("query");
        assert!(fwd.cached(&q).is_none(), "nothing cached yet");
        let first = fwd.forward_raw(&q).await.expect("upstream answers");
        assert_eq!(wire::packet_id(&first), Some(4242));
        let again = wire::parse_query(&wire::build_query(7, "www.example.org", rtype::A, None)).expect("query");
        let hit = fwd.cached(&again).expect("served from the cache, case-insensitively");
        assert_eq!(wire::packet_id(&hit), Some(7));
        assert_eq!(wire::parse_answers(&hit).map(|(rc, r)| (rc, r[0].data.clone())), Some((0, RData::A(std::net::Ipv4Addr::new(192, 0, 2, 7)))));
        assert_eq!(seen.load(Ordering::SeqCst), 1, "one upstream query for two lookups");
        assert_eq!((fwd.hits.get(), fwd.misses.get()), (1, 1));
    }

    #[tokio::test]
    async fn a_dead_upstream_fails_within_the_timeout() {
        // A bound socket that never answers.
        let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let fwd = Forwarder::new(vec![silent.local_addr().expect("addr")]);
        let q = wire::parse_query(&wire::build_query(1, "example.net", rtype::A, None)).expect("query");
        let t = Instant::now();
        assert!(fwd.forward_raw(&q).await.is_none());
        assert!(t.elapsed() <= UPSTREAM_TIMEOUT + Duration::from_millis(500), "took {:?}", t.elapsed());
    }
}
