//! nf_tables expressions as the kernel takes them (`NFTA_EXPR_*`), in the
//! attribute order libnftnl writes them, so a rule sent from here is the
//! same kernel object as one nft sends.

use super::msg::Attrs;
use crate::servicemap::Family;

/// `NFPROTO_IPV4`.
const NFPROTO_IPV4: u8 = 2;
/// `NFPROTO_IPV6`.
const NFPROTO_IPV6: u8 = 10;

/// The `NFPROTO_*` number of a family: of its tables' messages and of `dnat`.
pub(super) fn nfproto(family: Family) -> u8 {
    match family {
        Family::V4 => NFPROTO_IPV4,
        Family::V6 => NFPROTO_IPV6,
    }
}

/// `NFT_REG_VERDICT`.
pub(super) const REG_VERDICT: u32 = 0;
/// `NFT_REG_1` (16 bytes).
pub(super) const REG_1: u32 = 1;
/// `NFT_REG_2`.
pub(super) const REG_2: u32 = 2;
/// `NFT_REG32_01`: the second 32-bit word of `NFT_REG_1` (where a
/// concatenated `ip daddr . port` map value puts the port; after a 16-byte
/// `ip6 daddr` it is in `NFT_REG_2`).
pub(super) const REG32_01: u32 = 9;

/// `NFT_PAYLOAD_NETWORK_HEADER`.
pub(super) const BASE_NETWORK: u32 = 1;
/// `NFT_META_L4PROTO`.
pub(super) const META_L4PROTO: u32 = 16;
/// `NFTA_FIB_F_SADDR`.
pub(super) const FIB_F_SADDR: u32 = 1;
/// `NFT_FIB_RESULT_ADDRTYPE`.
pub(super) const FIB_RESULT_ADDRTYPE: u32 = 3;
/// `NFT_JUMP`.
pub(super) const VERDICT_JUMP: i32 = -3;
/// `NFT_GOTO`.
pub(super) const VERDICT_GOTO: i32 = -4;
/// `NF_DROP`.
pub(super) const VERDICT_DROP: i32 = 0;
/// `NF_ACCEPT`.
pub(super) const VERDICT_ACCEPT: i32 = 1;
/// `NFT_RETURN`.
pub(super) const VERDICT_RETURN: i32 = -5;
/// `NF_NAT_RANGE_PROTO_SPECIFIED`.
pub(super) const NAT_PROTO_SPECIFIED: u32 = 2;

/// A verdict: a code and, for jump/goto, the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Verdict {
    /// `NF_*`/`NFT_*` verdict code.
    pub(super) code: i32,
    /// Target chain of a jump or goto.
    pub(super) chain: Option<String>,
}

/// `NFTA_DATA_*`: a value or a verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Data {
    /// Raw bytes.
    Value(Vec<u8>),
    /// A verdict.
    Verdict(Verdict),
}

/// Comparison operators of `cmp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CmpOp {
    /// `NFT_CMP_EQ`.
    Eq = 0,
    /// `NFT_CMP_NEQ`.
    Neq = 1,
}

/// One expression of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Expr {
    /// `payload load LEN @ BASE + OFFSET => DREG`.
    Payload { dreg: u32, base: u32, offset: u32, len: u32 },
    /// `cmp OP SREG DATA`.
    Cmp { sreg: u32, op: CmpOp, data: Vec<u8> },
    /// `bitwise DREG = (SREG & MASK) ^ XOR`.
    Bitwise { sreg: u32, dreg: u32, mask: Vec<u8>, xor: Vec<u8> },
    /// `meta load KEY => DREG`.
    Meta { key: u32, dreg: u32 },
    /// `fib FLAGS RESULT => DREG`.
    Fib { flags: u32, result: u32, dreg: u32 },
    /// `immediate DREG DATA`.
    Immediate { dreg: u32, data: Data },
    /// `numgen DREG = inc|random mod MODULUS offset OFFSET`.
    Numgen { dreg: u32, modulus: u32, random: bool, offset: u32 },
    /// `hash DREG = jhash(SREG, LEN) % MODULUS offset OFFSET` (seed left to the kernel, as nft does without `seed`).
    Jhash { sreg: u32, dreg: u32, len: u32, modulus: u32, offset: u32 },
    /// `lookup SREG set SET [dreg DREG]` (`set_id` for an anonymous set of the same batch).
    Lookup { set: String, set_id: Option<u32>, sreg: u32, dreg: Option<u32> },
    /// `dynset update SREG set SET`.
    DynsetUpdate { set: String, sreg: u32 },
    /// `nat dnat ip|ip6 addr_min REG proto_min REG [flags]` (`family` is `NFPROTO_*`).
    Dnat { family: u32, addr: u32, proto: u32, flags: Option<u32> },
}

/// Writes `NFTA_DATA_*` contents.
pub(super) fn put_data(a: &mut Attrs, d: &Data) {
    match d {
        Data::Value(v) => {
            a.bytes(1, v);
        }
        Data::Verdict(v) => {
            a.nest(2, |n| {
                n.be32(1, v.code as u32);
                if let Some(c) = &v.chain {
                    n.str(2, c);
                }
            });
        }
    }
}

impl Expr {
    fn name(&self) -> &'static str {
        match self {
            Expr::Payload { .. } => "payload",
            Expr::Cmp { .. } => "cmp",
            Expr::Bitwise { .. } => "bitwise",
            Expr::Meta { .. } => "meta",
            Expr::Fib { .. } => "fib",
            Expr::Immediate { .. } => "immediate",
            Expr::Numgen { .. } => "numgen",
            Expr::Jhash { .. } => "hash",
            Expr::Lookup { .. } => "lookup",
            Expr::DynsetUpdate { .. } => "dynset",
            Expr::Dnat { .. } => "nat",
        }
    }

    /// Writes this expression as one `NFTA_LIST_ELEM`.
    pub(super) fn encode(&self, a: &mut Attrs) {
        a.nest(1, |e| {
            e.str(1, self.name());
            e.nest(2, |d| self.encode_data(d));
        });
    }

    fn encode_data(&self, d: &mut Attrs) {
        match self {
            Expr::Payload { dreg, base, offset, len } => {
                d.be32(1, *dreg).be32(2, *base).be32(3, *offset).be32(4, *len);
            }
            Expr::Cmp { sreg, op, data } => {
                d.be32(1, *sreg).be32(2, *op as u32).nest(3, |v| {
                    v.bytes(1, data);
                });
            }
            Expr::Bitwise { sreg, dreg, mask, xor } => {
                d.be32(1, *sreg).be32(2, *dreg).be32(3, mask.len() as u32);
                d.nest(4, |v| {
                    v.bytes(1, mask);
                });
                d.nest(5, |v| {
                    v.bytes(1, xor);
                });
            }
            Expr::Meta { key, dreg } => {
                d.be32(2, *key).be32(1, *dreg);
            }
            Expr::Fib { flags, result, dreg } => {
                d.be32(3, *flags).be32(2, *result).be32(1, *dreg);
            }
            Expr::Immediate { dreg, data } => {
                d.be32(1, *dreg).nest(2, |v| put_data(v, data));
            }
            Expr::Numgen { dreg, modulus, random, offset } => {
                d.be32(1, *dreg).be32(2, *modulus).be32(3, u32::from(*random)).be32(4, *offset);
            }
            Expr::Jhash { sreg, dreg, len, modulus, offset } => {
                d.be32(1, *sreg).be32(2, *dreg).be32(3, *len).be32(4, *modulus).be32(6, *offset).be32(7, 0);
            }
            Expr::Lookup { set, set_id, sreg, dreg } => {
                d.be32(2, *sreg);
                if let Some(r) = dreg {
                    d.be32(3, *r);
                }
                d.str(1, set);
                if let Some(id) = set_id {
                    d.be32(4, *id);
                }
            }
            Expr::DynsetUpdate { set, sreg } => {
                // NFT_DYNSET_OP_UPDATE
                d.be32(4, *sreg).be32(3, 1).str(1, set);
            }
            Expr::Dnat { family, addr, proto, flags } => {
                // NFT_NAT_DNAT
                d.be32(1, 1).be32(2, *family).be32(3, *addr).be32(5, *proto);
                if let Some(f) = flags {
                    d.be32(7, *f);
                }
            }
        }
    }
}
