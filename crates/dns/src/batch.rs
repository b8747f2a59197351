//! Batched UDP I/O: `recvmmsg`/`sendmmsg` move up to [`BATCH`] datagrams per
//! system call, so a busy socket pays one wake-up and two syscalls for a
//! burst of queries instead of two syscalls per query (Knot and unbound do
//! the same).

use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg};
use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Datagrams moved per system call at most.
pub const BATCH: usize = 32;
/// Room for one datagram (EDNS payloads above 4096 are clamped to it).
pub const DATAGRAM: usize = 4096;

/// Reusable buffers for one socket's receive loop. (The kernel headers are
/// made per call: they hold raw pointers, so they cannot live across an
/// `.await` in a task that may move between threads.)
pub struct Batch {
    bufs: Vec<u8>,
    /// Length and sender of each datagram of the last receive.
    pub got: Vec<(usize, SocketAddr)>,
}

impl Default for Batch {
    fn default() -> Self {
        Self { bufs: vec![0; BATCH * DATAGRAM], got: Vec::with_capacity(BATCH) }
    }
}

impl Batch {
    /// Waits for datagrams and reads as many as are queued (at most [`BATCH`]).
    pub async fn recv(&mut self, sock: &UdpSocket) -> io::Result<()> {
        self.got.clear();
        let fd = sock.as_raw_fd();
        let Self { bufs, got } = self;
        sock.async_io(Interest::READABLE, || {
            let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
            let mut iovs: Vec<[IoSliceMut<'_>; 1]> = bufs.chunks_mut(DATAGRAM).map(|c| [IoSliceMut::new(c)]).collect();
            let msgs = recvmmsg(fd, &mut headers, iovs.iter_mut(), MsgFlags::MSG_DONTWAIT, None).map_err(io::Error::from)?;
            for m in msgs {
                // A datagram from a sender we cannot name (never for UDP/IP) is skipped.
                if let Some(addr) = m.address.and_then(|a| to_std(&a)) {
                    got.push((m.bytes, addr));
                }
            }
            Ok(())
        })
        .await
    }

    /// The `i`th datagram of the last receive.
    pub fn datagram(&self, i: usize) -> &[u8] {
        let (len, _) = self.got[i];
        &self.bufs[i * DATAGRAM..i * DATAGRAM + len.min(DATAGRAM)]
    }
}

fn to_std(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    a.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
}

/// Sends every reply (to its peer), in as few system calls as the kernel allows.
pub async fn send_all(sock: &UdpSocket, replies: &[(Vec<u8>, SocketAddr)]) -> io::Result<()> {
    let fd = sock.as_raw_fd();
    let mut done = 0;
    while done < replies.len() {
        let rest = &replies[done..replies.len().min(done + BATCH)];
        let sent = sock
            .async_io(Interest::WRITABLE, || {
                let iovs: Vec<[IoSlice<'_>; 1]> = rest.iter().map(|(r, _)| [IoSlice::new(r)]).collect();
                let addrs: Vec<Option<SockaddrStorage>> = rest.iter().map(|(_, a)| Some(SockaddrStorage::from(*a))).collect();
                let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(rest.len(), None);
                match sendmmsg(fd, &mut headers, iovs.iter(), addrs, [], MsgFlags::MSG_DONTWAIT) {
                    Ok(res) => Ok(res.count()),
                    Err(nix::errno::Errno::EAGAIN) => Err(io::ErrorKind::WouldBlock.into()),
                    // The first reply failed (say, its peer is unreachable): skip it, keep the rest.
                    Err(_) => Ok(0),
                }
            })
            .await?;
        // A reply the kernel refused outright (sent == 0) is dropped, as a lost datagram would be.
        done += sent.max(1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_burst_arrives_in_one_batch_and_replies_reach_each_peer() {
        let server = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = server.local_addr().expect("addr");
        let clients: Vec<UdpSocket> = futures::future::join_all((0..5).map(|_| UdpSocket::bind("127.0.0.1:0"))).await.into_iter().collect::<Result<_, _>>().expect("clients");
        for (i, c) in clients.iter().enumerate() {
            c.send_to(format!("query {i}").as_bytes(), addr).await.expect("send");
        }
        let mut batch = Batch::default();
        let mut seen = Vec::new();
        while seen.len() < clients.len() {
            batch.recv(&server).await.expect("recv");
            for i in 0..batch.got.len() {
                seen.push((String::from_utf8_lossy(batch.datagram(i)).into_owned(), batch.got[i].1));
            }
        }
        seen.sort();
        assert_eq!(seen.iter().map(|(m, _)| m.as_str()).collect::<Vec<_>>(), ["query 0", "query 1", "query 2", "query 3", "query 4"]);
        let replies: Vec<(Vec<u8>, SocketAddr)> = seen.iter().map(|(m, peer)| (format!("answer to {m}").into_bytes(), *peer)).collect();
        send_all(&server, &replies).await.expect("send");
        for (i, c) in clients.iter().enumerate() {
            let mut buf = [0u8; 64];
            let n = tokio::time::timeout(std::time::Duration::from_secs(2), c.recv(&mut buf)).await.expect("in time").expect("recv");
            assert_eq!(&buf[..n], format!("answer to query {i}").as_bytes());
        }
    }
}
