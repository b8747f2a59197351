//! The DNS server: UDP (one SO_REUSEPORT socket per core) and TCP listeners.
//! Zone answers are computed inline from the current snapshot (no lock: an
//! `ArcSwap` load); forwarded names and ExternalName chases run as tasks.

use crate::forward::Forwarder;
use crate::metrics::{Metrics, Proto};
use crate::wire::{self, ParseError, Query, Response, rcode};
use crate::zone::{Outcome, Zone, ZoneConfig};
use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Shared state of the listeners.
pub struct Server {
    /// The current zone snapshot.
    pub zone: Arc<ArcSwap<Zone>>,
    /// Zone settings.
    pub cfg: ZoneConfig,
    /// The forwarder.
    pub fwd: Arc<Forwarder>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

/// The result of the synchronous part of handling a packet.
pub enum Fast {
    /// Send these bytes (the answer to a query of this type, when it parsed).
    Reply(Vec<u8>, Option<u16>),
    /// Drop the packet.
    Drop,
    /// Needs the forwarder.
    Slow(Query, Outcome),
}

impl Server {
    fn count(&self, proto: Proto, qtype: Option<u16>, reply: &[u8], started: Instant) {
        let rc = reply.get(3).map(|b| b & 0xF).unwrap_or(rcode::SERVFAIL);
        self.metrics.count(proto, qtype, rc, started.elapsed().as_secs_f64());
    }

    /// Handles what can be answered without waiting.
    pub fn fast(&self, buf: &[u8], limit_udp: bool) -> Fast {
        let q = match wire::parse_query(buf) {
            Ok(q) => q,
            // Responses sent to us and garbage without a header are dropped.
            Err(ParseError::NotQuery) if buf.get(2).is_some_and(|b| b & 0x80 != 0) => return Fast::Drop,
            Err(_) => return wire::error_reply(buf, rcode::FORMERR).map(|r| Fast::Reply(r, None)).unwrap_or(Fast::Drop),
        };
        if q.opcode != 0 {
            return Fast::Reply(wire::encode(&q, &Response { rcode: rcode::NOTIMP, ..Default::default() }, 65535), Some(q.qtype));
        }
        if q.qclass != 1 && q.qclass != 255 {
            return Fast::Reply(wire::encode(&q, &Response { rcode: rcode::FORMERR, ..Default::default() }, 65535), Some(q.qtype));
        }
        let zone = self.zone.load();
        match zone.answer(&q.name, q.qtype, &self.cfg) {
            Outcome::Answer(resp) => Fast::Reply(wire::encode(&q, &resp, limit(&q, limit_udp)), Some(q.qtype)),
            Outcome::Forward => match self.fwd.cached(&q) {
                Some(reply) if reply.len() <= limit(&q, limit_udp) => Fast::Reply(reply, Some(q.qtype)),
                _ => Fast::Slow(q, Outcome::Forward),
            },
            other => Fast::Slow(q, other),
        }
    }

    /// Handles what needs the forwarder.
    pub async fn slow(&self, q: Query, outcome: Outcome, limit_udp: bool) -> Vec<u8> {
        let lim = limit(&q, limit_udp);
        match outcome {
            Outcome::Forward => match self.fwd.forward_raw(&q).await {
                Some(reply) if reply.len() <= lim => reply,
                Some(_) => wire::encode(&q, &Response::default(), 0),
                None => wire::encode(&q, &Response { rcode: rcode::SERVFAIL, ..Default::default() }, lim),
            },
            Outcome::Chase { mut response, target } => {
                if let Some((rc, mut records)) = self.fwd.resolve(&target, q.qtype).await.and_then(|r| wire::parse_answers(&r)) {
                    response.answers.append(&mut records);
                    if rc == rcode::NXDOMAIN {
                        response.rcode = rcode::NXDOMAIN;
                    }
                }
                wire::encode(&q, &response, lim)
            }
            Outcome::Answer(resp) => wire::encode(&q, &resp, lim),
        }
    }
}

fn limit(q: &Query, udp: bool) -> usize {
    if udp { usize::from(q.edns.unwrap_or(512)).clamp(512, 4096) } else { 65535 }
}

fn reuseport_udp(addr: SocketAddr) -> std::io::Result<tokio::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(if addr.is_ipv4() { Domain::IPV4 } else { Domain::IPV6 }, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    tokio::net::UdpSocket::from_std(s.into())
}

/// Starts `sockets` UDP sockets and a TCP listener on `addr`.
pub async fn listen(server: Arc<Server>, addr: SocketAddr, sockets: usize) -> std::io::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut tasks = Vec::new();
    for _ in 0..sockets.max(1) {
        let sock = Arc::new(reuseport_udp(addr)?);
        let srv = server.clone();
        tasks.push(tokio::spawn(async move {
            let mut batch = crate::batch::Batch::default();
            let mut replies = Vec::with_capacity(crate::batch::BATCH);
            loop {
                if let Err(e) = batch.recv(&sock).await {
                    tracing::debug!(error = %e, "dns: udp receive");
                    continue;
                }
                let started = Instant::now();
                for i in 0..batch.got.len() {
                    let peer = batch.got[i].1;
                    match srv.fast(batch.datagram(i), true) {
                        Fast::Reply(r, qtype) => {
                            srv.count(Proto::Udp, qtype, &r, started);
                            replies.push((r, peer));
                        }
                        Fast::Drop => {}
                        Fast::Slow(q, outcome) => {
                            let (srv, sock) = (srv.clone(), sock.clone());
                            tokio::spawn(async move {
                                let r = srv.slow(q.clone(), outcome, true).await;
                                srv.count(Proto::Udp, Some(q.qtype), &r, started);
                                let _ = sock.send_to(&r, peer).await;
                            });
                        }
                    }
                }
                if let Err(e) = crate::batch::send_all(&sock, &replies).await {
                    tracing::debug!(error = %e, "dns: udp send");
                }
                replies.clear();
            }
        }));
    }
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let srv = server.clone();
    tasks.push(tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { continue };
            let srv = srv.clone();
            tokio::spawn(async move {
                loop {
                    let mut len = [0u8; 2];
                    match tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut len)).await {
                        Ok(Ok(_)) => {}
                        _ => return,
                    }
                    let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
                    if stream.read_exact(&mut msg).await.is_err() {
                        return;
                    }
                    let started = Instant::now();
                    let (reply, qtype) = match srv.fast(&msg, false) {
                        Fast::Reply(r, qtype) => (r, qtype),
                        Fast::Drop => return,
                        Fast::Slow(q, outcome) => {
                            let qtype = q.qtype;
                            (srv.slow(q, outcome, false).await, Some(qtype))
                        }
                    };
                    srv.count(Proto::Tcp, qtype, &reply, started);
                    let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
                    framed.extend_from_slice(&reply);
                    if stream.write_all(&framed).await.is_err() {
                        return;
                    }
                }
            });
        }
    }));
    Ok(tasks)
}
