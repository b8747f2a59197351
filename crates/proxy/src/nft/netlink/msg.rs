//! Wire encoding of nf_tables netlink messages: nlattr TLVs, the message
//! header with its `nfgenmsg`, and a batch framed by NFNL_MSG_BATCH_BEGIN/END.

/// `NLA_F_NESTED`: set on every nested attribute, as libnftnl does.
const NLA_F_NESTED: u16 = 0x8000;
/// `NLM_F_REQUEST`.
const NLM_F_REQUEST: u16 = 0x1;
/// `NLM_F_ACK`: every message of a batch asks for its own answer.
const NLM_F_ACK: u16 = 0x4;
/// `NLM_F_APPEND` (a rule goes at the end of its chain).
pub(super) const NLM_F_APPEND: u16 = 0x800;
/// `NLM_F_CREATE` (what nft's `add` sends; without `NLM_F_EXCL` an existing object is fine).
pub(super) const NLM_F_CREATE: u16 = 0x400;
/// `NFNL_SUBSYS_NFTABLES`.
const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// `NFNL_MSG_BATCH_BEGIN`.
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
/// `NFNL_MSG_BATCH_END`.
const NFNL_MSG_BATCH_END: u16 = 0x11;

/// The nf_tables message types Portico sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub(super) enum MsgType {
    /// `NFT_MSG_NEWCHAIN`.
    NewChain = 3,
    /// `NFT_MSG_DELCHAIN`.
    DelChain = 5,
    /// `NFT_MSG_NEWRULE`.
    NewRule = 6,
    /// `NFT_MSG_DELRULE` (with only table and chain: flush the chain).
    DelRule = 8,
    /// `NFT_MSG_NEWSET`.
    NewSet = 9,
    /// `NFT_MSG_DELSET`.
    DelSet = 11,
    /// `NFT_MSG_NEWSETELEM`.
    NewSetElem = 12,
    /// `NFT_MSG_DELSETELEM`.
    DelSetElem = 14,
}

/// A growing buffer of netlink attributes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Attrs {
    buf: Vec<u8>,
}

fn pad(buf: &mut Vec<u8>) {
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

impl Attrs {
    /// One attribute with raw payload.
    pub(super) fn bytes(&mut self, ty: u16, data: &[u8]) -> &mut Self {
        let len = (4 + data.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        pad(&mut self.buf);
        self
    }

    /// A big-endian u32 (nf_tables' integers on the wire).
    pub(super) fn be32(&mut self, ty: u16, v: u32) -> &mut Self {
        self.bytes(ty, &v.to_be_bytes())
    }

    /// A big-endian u64.
    pub(super) fn be64(&mut self, ty: u16, v: u64) -> &mut Self {
        self.bytes(ty, &v.to_be_bytes())
    }

    /// A NUL-terminated string.
    pub(super) fn str(&mut self, ty: u16, s: &str) -> &mut Self {
        let mut v = Vec::with_capacity(s.len() + 1);
        v.extend_from_slice(s.as_bytes());
        v.push(0);
        self.bytes(ty, &v)
    }

    /// A nested attribute whose contents `f` writes.
    pub(super) fn nest(&mut self, ty: u16, f: impl FnOnce(&mut Attrs)) -> &mut Self {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        self.buf.extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        f(self);
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        self
    }

    /// The encoded attributes.
    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.buf
    }
}

/// One nf_tables message of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Msg {
    /// The message type.
    pub(super) ty: MsgType,
    /// `NLM_F_*` flags besides REQUEST and ACK.
    pub(super) flags: u16,
    /// `NFPROTO_*` family of the table.
    pub(super) family: u8,
    /// The attributes.
    pub(super) attrs: Attrs,
}

/// The first sequence number of a batch's messages (BATCH_BEGIN takes `seq`,
/// message `i` takes `seq + 1 + i`).
pub(super) fn encode_batch(msgs: &[Msg], seq: u32) -> Vec<u8> {
    let mut out = Vec::new();
    header(&mut out, NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, seq, 0, NFNL_SUBSYS_NFTABLES, &[]);
    for (i, m) in msgs.iter().enumerate() {
        let ty = (NFNL_SUBSYS_NFTABLES << 8) | m.ty as u16;
        header(&mut out, ty, NLM_F_REQUEST | NLM_F_ACK | m.flags, seq + 1 + i as u32, m.family, 0, m.attrs.as_bytes());
    }
    header(&mut out, NFNL_MSG_BATCH_END, NLM_F_REQUEST, seq + 1 + msgs.len() as u32, 0, NFNL_SUBSYS_NFTABLES, &[]);
    out
}

/// A dump request for every object of nf_tables message type `ty` (a GET type) of `family`.
pub(super) fn encode_dump(ty: u16, family: u8, seq: u32) -> Vec<u8> {
    /// `NLM_F_DUMP` (`NLM_F_ROOT | NLM_F_MATCH`).
    const NLM_F_DUMP: u16 = 0x300;
    let mut out = Vec::new();
    header(&mut out, (NFNL_SUBSYS_NFTABLES << 8) | ty, NLM_F_REQUEST | NLM_F_DUMP, seq, family, 0, &[]);
    out
}

/// `nlmsghdr` + `nfgenmsg` (family, version 0, res_id big-endian) + attributes.
fn header(out: &mut Vec<u8>, ty: u16, flags: u16, seq: u32, family: u8, res_id: u16, attrs: &[u8]) {
    let len = (16 + 4 + attrs.len()) as u32;
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.push(family);
    out.push(0);
    out.extend_from_slice(&res_id.to_be_bytes());
    out.extend_from_slice(attrs);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_attributes_carry_their_length_and_the_nested_flag() {
        let mut a = Attrs::default();
        a.str(1, "portico").nest(4, |n| {
            n.be32(1, 6);
        });
        assert_eq!(
            a.as_bytes(),
            [12, 0, 1, 0, b'p', b'o', b'r', b't', b'i', b'c', b'o', 0, 12, 0, 4, 0x80, 8, 0, 1, 0, 0, 0, 0, 6]
        );
    }

    #[test]
    fn a_batch_is_framed_and_numbered() {
        let m = Msg { ty: MsgType::NewChain, flags: NLM_F_CREATE, family: 2, attrs: Attrs::default() };
        let b = encode_batch(&[m], 100);
        assert_eq!(b.len(), 60);
        assert_eq!(&b[4..6], &0x10u16.to_ne_bytes(), "batch begin");
        assert_eq!(&b[18..20], &10u16.to_be_bytes(), "res_id is the nftables subsystem");
        assert_eq!(&b[24..26], &0x0a03u16.to_ne_bytes(), "NEWCHAIN of subsystem 10");
        assert_eq!(&b[26..28], &(0x405u16).to_ne_bytes(), "request, ack, create");
        assert_eq!(&b[28..32], &101u32.to_ne_bytes());
        assert_eq!(b[36], 2, "NFPROTO_IPV4");
        assert_eq!(&b[44..46], &0x11u16.to_ne_bytes(), "batch end");
    }
}
