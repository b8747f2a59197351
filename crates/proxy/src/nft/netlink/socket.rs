//! The kernel edge: one NETLINK_NETFILTER socket per transaction, one batch
//! sent, every message's answer collected. The kernel processes the batch
//! inside `send` and queues all answers before it returns, so reading until
//! the queue is empty sees them all.

use super::msg::{Msg, encode_batch};
use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, sockopt};
use std::os::fd::AsRawFd;

/// `NLMSG_ERROR`.
const NLMSG_ERROR: u16 = 2;
/// Largest answer: an error echoes the failed message.
const RECV_BUF: usize = 1 << 17;
/// Receive-queue room per expected answer (one skb each).
const ANSWER_ROOM: usize = 2048;

/// What the kernel said about a batch.
#[derive(Debug)]
pub(super) enum Answer {
    /// Every message was acknowledged: the transaction is committed.
    Committed,
    /// The kernel refused messages (index in the batch, or None for the
    /// batch frame itself; errno): nothing was changed.
    Refused(Vec<(Option<usize>, Errno)>),
}

/// Sends `msgs` as one batch and collects the answers.
pub(super) fn transact(msgs: &[Msg]) -> Result<Answer, std::io::Error> {
    let fd = socket::socket(AddressFamily::Netlink, SockType::Raw, SockFlag::SOCK_CLOEXEC, SockProtocol::NetlinkNetFilter)?;
    let seq: u32 = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as u32).unwrap_or(1);
    let batch = encode_batch(msgs, seq);
    let want_rcv = (msgs.len() + 1) * ANSWER_ROOM;
    // Without the room, answers beyond the default buffer would be dropped
    // (ENOBUFS) and the outcome unknown; the *Force variants need CAP_NET_ADMIN,
    // which programming nftables needs anyway.
    if want_rcv > 200_000 {
        socket::setsockopt(&fd, sockopt::RcvBufForce, &want_rcv)?;
    }
    if batch.len() > 200_000 {
        socket::setsockopt(&fd, sockopt::SndBufForce, &(batch.len() * 2))?;
    }
    let sent = socket::send(fd.as_raw_fd(), &batch, MsgFlags::empty())?;
    if sent != batch.len() {
        return Err(std::io::Error::other(format!("netlink sent {sent} of {} bytes", batch.len())));
    }
    let mut acked = vec![false; msgs.len()];
    let mut refused = Vec::new();
    let mut buf = vec![0u8; RECV_BUF];
    loop {
        let n = match socket::recv(fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
            Ok(n) => n,
            Err(Errno::EAGAIN) => break,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut at = 0;
        while at + 16 <= n {
            let len = u32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]) as usize;
            let ty = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
            let mseq = u32::from_ne_bytes([buf[at + 8], buf[at + 9], buf[at + 10], buf[at + 11]]);
            if len < 16 || at + len > n {
                break;
            }
            if ty == NLMSG_ERROR && len >= 20 {
                let code = i32::from_ne_bytes([buf[at + 16], buf[at + 17], buf[at + 18], buf[at + 19]]);
                let index = mseq.checked_sub(seq + 1).map(|i| i as usize).filter(|i| *i < msgs.len());
                match (index, code) {
                    (Some(i), 0) => acked[i] = true,
                    (i, c) => refused.push((i, Errno::from_raw(-c))),
                }
            }
            at += (len + 3) & !3;
        }
    }
    if !refused.is_empty() {
        refused.sort_by_key(|(i, _)| i.map_or(0, |i| i + 1));
        return Ok(Answer::Refused(refused));
    }
    match acked.iter().position(|a| !a) {
        None => Ok(Answer::Committed),
        Some(i) => Err(std::io::Error::other(format!("netlink: no answer to message {i} of {}; the outcome is unknown", msgs.len()))),
    }
}
