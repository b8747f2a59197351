//! Reading from the kernel: the names of a family's tables, by one
//! NFT_MSG_GETTABLE dump. `nft list tables` fetches the whole ruleset into its
//! cache first (~8 s at 30k Services); the dump returns only tables.

use super::msg::encode_dump;
use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType};
use std::os::fd::AsRawFd;

/// `NFT_MSG_GETTABLE`.
const NFT_MSG_GETTABLE: u16 = 1;
/// `NFTA_TABLE_NAME`.
const NFTA_TABLE_NAME: u16 = 1;
/// `NLMSG_ERROR`, `NLMSG_DONE`.
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;

/// The names of the tables of `family` (an NFPROTO_* number) in this network namespace.
pub(super) fn table_names(family: u8) -> Result<Vec<String>, std::io::Error> {
    let fd = socket::socket(AddressFamily::Netlink, SockType::Raw, SockFlag::SOCK_CLOEXEC, SockProtocol::NetlinkNetFilter)?;
    let seq = 1;
    let req = encode_dump(NFT_MSG_GETTABLE, family, seq);
    socket::send(fd.as_raw_fd(), &req, MsgFlags::empty())?;
    let mut names = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match socket::recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            return Err(std::io::Error::other("netlink: the table dump ended early"));
        }
        let mut at = 0;
        while at + 16 <= n {
            let len = u32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]) as usize;
            let ty = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
            if len < 16 || at + len > n {
                return Err(std::io::Error::other("netlink: a malformed answer to the table dump"));
            }
            match ty {
                NLMSG_DONE => return Ok(names),
                NLMSG_ERROR if len >= 20 => {
                    let code = i32::from_ne_bytes([buf[at + 16], buf[at + 17], buf[at + 18], buf[at + 19]]);
                    return Err(Errno::from_raw(-code).into());
                }
                // NFT_MSG_NEWTABLE: nfgenmsg (4 bytes), then attributes.
                _ => names.extend(attr(&buf[at + 20..at + len], NFTA_TABLE_NAME).map(|v| String::from_utf8_lossy(v.split(|b| *b == 0).next().unwrap_or_default()).into_owned())),
            }
            at += (len + 3) & !3;
        }
    }
}

/// The payload of the first attribute of type `ty` in `attrs`.
fn attr(mut attrs: &[u8], ty: u16) -> Option<&[u8]> {
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let t = u16::from_ne_bytes([attrs[2], attrs[3]]) & 0x3fff;
        if len < 4 || len > attrs.len() {
            return None;
        }
        if t == ty {
            return Some(&attrs[4..len]);
        }
        attrs = &attrs[((len + 3) & !3).min(attrs.len())..];
    }
    None
}
