//! Rule compilation: the rule texts `ruleset` renders, parsed by a small
//! grammar of exactly those statements and turned into the expressions nft
//! generates for them (checked against `nft --debug=netlink` and, in the
//! tests, against nft's own listing of what we loaded), for the `ip` and the
//! `ip6` family: the same statements with the family's header offsets,
//! address lengths and NAT family. Anything outside the grammar is
//! [`Unsupported`] and the transaction goes through nft.

use super::Unsupported;
use super::expr::*;
use crate::servicemap::Family;
use std::net::{IpAddr, SocketAddr};

/// An anonymous verdict map a rule looks up (`... vmap { 0 : goto a, ... }`):
/// created in the same batch, before the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AnonVmap {
    /// Integer key (host byte order, as `numgen` and `jhash` produce) → verdict.
    pub(super) entries: Vec<(u32, Verdict)>,
}

/// A compiled rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Compiled {
    /// Its expressions, in order.
    pub(super) exprs: Vec<Expr>,
    /// The anonymous map its last lookup uses, if any (the lookup's `set_id`
    /// is filled in by the batch builder).
    pub(super) vmap: Option<AnonVmap>,
}

struct Tokens<'a> {
    toks: Vec<&'a str>,
    at: usize,
    text: &'a str,
    /// The family of the rule's table (which payload keyword it takes).
    family: Family,
}

impl<'a> Tokens<'a> {
    fn peek(&self) -> Option<&'a str> {
        self.toks.get(self.at).copied()
    }

    fn next(&mut self) -> Result<&'a str, Unsupported> {
        let t = self.peek().ok_or_else(|| self.unsupported("ends early"))?;
        self.at += 1;
        Ok(t)
    }

    fn expect(&mut self, word: &str) -> Result<(), Unsupported> {
        match self.next()? {
            t if t == word => Ok(()),
            t => Err(self.unsupported(&format!("expected `{word}`, found `{t}`"))),
        }
    }

    fn number(&mut self) -> Result<u32, Unsupported> {
        let t = self.next()?;
        t.parse().map_err(|_| self.unsupported(&format!("`{t}` is not a number")))
    }

    fn unsupported(&self, why: &str) -> Unsupported {
        Unsupported(format!("rule `{}`: {why}", self.text))
    }
}

/// Length of an address of `family` in bytes (what a payload load of
/// `saddr`/`daddr` takes; a 16-byte IPv6 address fills a whole register).
pub(super) fn addr_len(family: Family) -> u32 {
    match family {
        Family::V4 => 4,
        Family::V6 => 16,
    }
}

/// An address of `family` in network byte order; None for another family's.
pub(super) fn addr_bytes(family: Family, text: &str) -> Option<Vec<u8>> {
    match (family, text.parse::<IpAddr>().ok()?) {
        (Family::V4, IpAddr::V4(a)) => Some(a.octets().to_vec()),
        (Family::V6, IpAddr::V6(a)) => Some(a.octets().to_vec()),
        _ => None,
    }
}

/// Offset of the source address in the family's network header.
fn saddr_offset(family: Family) -> u32 {
    match family {
        Family::V4 => 12,
        Family::V6 => 8,
    }
}

/// `saddr` / `daddr` offsets in the family's network header (IPv4: 12 and
/// 16; IPv6: 8 and 24).
fn addr_field(t: &mut Tokens<'_>) -> Result<u32, Unsupported> {
    let family = t.family;
    match (t.next()?, family) {
        ("saddr", f) => Ok(saddr_offset(f)),
        ("daddr", Family::V4) => Ok(16),
        ("daddr", Family::V6) => Ok(24),
        (other, f) => Err(t.unsupported(&format!("{} field `{other}`", f.nft()))),
    }
}

/// `ADDR` or `ADDR/PLEN`, compared as nft does: a byte-aligned prefix loads
/// and compares only its bytes, any other one loads the whole address and is
/// masked with `bitwise` (over 4 or 16 bytes).
fn addr_compare(t: &mut Tokens<'_>, offset: u32, op: CmpOp, out: &mut Vec<Expr>) -> Result<(), Unsupported> {
    let text = t.next()?;
    let bits = addr_len(t.family) * 8;
    let (addr, plen) = match text.split_once('/') {
        Some((a, p)) => (a, p.parse::<u32>().map_err(|_| t.unsupported(&format!("prefix `{text}`")))?),
        None => (text, bits),
    };
    let octets = addr_bytes(t.family, addr).ok_or_else(|| t.unsupported(&format!("address `{text}`")))?;
    if plen > bits {
        return Err(t.unsupported(&format!("prefix `{text}`")));
    }
    if plen > 0 && plen % 8 == 0 {
        let len = plen / 8;
        out.push(Expr::Payload { dreg: REG_1, base: BASE_NETWORK, offset, len });
        out.push(Expr::Cmp { sreg: REG_1, op, data: octets[..len as usize].to_vec() });
    } else {
        // Byte i keeps the bits of the prefix that fall into it.
        let mask: Vec<u8> = (0..octets.len() as u32).map(|i| plen.saturating_sub(i * 8).min(8)).map(|b| if b == 0 { 0 } else { 0xffu8 << (8 - b) }).collect();
        let net: Vec<u8> = octets.iter().zip(&mask).map(|(a, m)| a & m).collect();
        out.push(Expr::Payload { dreg: REG_1, base: BASE_NETWORK, offset, len: octets.len() as u32 });
        out.push(Expr::Bitwise { sreg: REG_1, dreg: REG_1, mask, xor: vec![0; octets.len()] });
        out.push(Expr::Cmp { sreg: REG_1, op, data: net });
    }
    Ok(())
}

/// IP protocol numbers of the names the renderer uses.
pub(super) fn proto_number(name: &str) -> Option<u8> {
    match name {
        "tcp" => Some(6),
        "udp" => Some(17),
        "sctp" => Some(132),
        _ => None,
    }
}

/// `numgen random|inc` or `jhash ip saddr` (`jhash ip6 saddr`) followed by
/// `mod N [offset B]`, leaving the result in reg 1.
fn generator(t: &mut Tokens<'_>, out: &mut Vec<Expr>) -> Result<(), Unsupported> {
    enum Gen {
        Numgen(bool),
        Jhash,
    }
    let g = match t.next()? {
        "numgen" => match t.next()? {
            "random" => Gen::Numgen(true),
            "inc" => Gen::Numgen(false),
            other => return Err(t.unsupported(&format!("numgen `{other}`"))),
        },
        "jhash" => {
            t.expect(t.family.nft())?;
            t.expect("saddr")?;
            Gen::Jhash
        }
        other => return Err(t.unsupported(&format!("`{other}`"))),
    };
    t.expect("mod")?;
    let modulus = t.number()?;
    let offset = if t.peek() == Some("offset") {
        t.next()?;
        t.number()?
    } else {
        0
    };
    match g {
        Gen::Numgen(random) => out.push(Expr::Numgen { dreg: REG_1, modulus, random, offset }),
        Gen::Jhash => {
            let len = addr_len(t.family);
            out.push(Expr::Payload { dreg: REG_2, base: BASE_NETWORK, offset: saddr_offset(t.family), len });
            out.push(Expr::Jhash { sreg: REG_2, dreg: REG_1, len, modulus, offset });
        }
    }
    Ok(())
}

/// `jump X`, `goto X`, `drop`, `accept`, `return`.
pub(super) fn verdict(word: &str, chain: Option<&str>) -> Option<Verdict> {
    let code = match word {
        "jump" => VERDICT_JUMP,
        "goto" => VERDICT_GOTO,
        "drop" => VERDICT_DROP,
        "accept" => VERDICT_ACCEPT,
        "return" => VERDICT_RETURN,
        _ => return None,
    };
    let needs_chain = code == VERDICT_JUMP || code == VERDICT_GOTO;
    match (needs_chain, chain) {
        (true, Some(c)) => Some(Verdict { code, chain: Some(c.to_owned()) }),
        (false, None) => Some(Verdict { code, chain: None }),
        _ => None,
    }
}

fn set_name<'a>(t: &mut Tokens<'a>) -> Result<&'a str, Unsupported> {
    let tok = t.next()?;
    tok.strip_prefix('@').filter(|s| !s.is_empty()).ok_or_else(|| t.unsupported(&format!("`{tok}` is not a named set")))
}

/// Compiles one rule of a `family` table (`ip` or `ip6`).
pub(super) fn compile(text: &str, family: Family) -> Result<Compiled, Unsupported> {
    let mut t = Tokens { toks: text.split_whitespace().collect(), at: 0, text, family };
    let mut exprs = Vec::new();
    let mut vmap = None;
    while let Some(word) = t.peek() {
        match word {
            w if w == family.nft() => {
                t.next()?;
                let offset = addr_field(&mut t)?;
                match t.peek() {
                    Some("!=") => {
                        t.next()?;
                        addr_compare(&mut t, offset, CmpOp::Neq, &mut exprs)?;
                    }
                    Some(s) if s.starts_with('@') => {
                        let set = set_name(&mut t)?.to_owned();
                        exprs.push(Expr::Payload { dreg: REG_1, base: BASE_NETWORK, offset, len: addr_len(family) });
                        exprs.push(Expr::Lookup { set, set_id: None, sreg: REG_1, dreg: None });
                    }
                    _ => addr_compare(&mut t, offset, CmpOp::Eq, &mut exprs)?,
                }
            }
            "meta" => {
                t.next()?;
                t.expect("l4proto")?;
                let name = t.next()?;
                let p = proto_number(name).ok_or_else(|| t.unsupported(&format!("protocol `{name}`")))?;
                exprs.push(Expr::Meta { key: META_L4PROTO, dreg: REG_1 });
                exprs.push(Expr::Cmp { sreg: REG_1, op: CmpOp::Eq, data: vec![p] });
            }
            "fib" => {
                t.next()?;
                t.expect("saddr")?;
                t.expect("type")?;
                t.expect("local")?;
                exprs.push(Expr::Fib { flags: FIB_F_SADDR, result: FIB_RESULT_ADDRTYPE, dreg: REG_1 });
                // RTN_LOCAL, a host-order u32.
                exprs.push(Expr::Cmp { sreg: REG_1, op: CmpOp::Eq, data: 2u32.to_ne_bytes().to_vec() });
            }
            "dnat" => {
                t.next()?;
                t.expect(family.nft())?;
                t.expect("to")?;
                dnat(&mut t, &mut exprs)?;
                break;
            }
            "update" => {
                t.next()?;
                let set = set_name(&mut t)?.to_owned();
                for w in ["{", family.nft(), "saddr", "}"] {
                    t.expect(w)?;
                }
                exprs.push(Expr::Payload { dreg: REG_1, base: BASE_NETWORK, offset: saddr_offset(family), len: addr_len(family) });
                exprs.push(Expr::DynsetUpdate { set, sreg: REG_1 });
                break;
            }
            "numgen" | "jhash" => {
                generator(&mut t, &mut exprs)?;
                t.expect("vmap")?;
                vmap = Some(anon_vmap(&mut t)?);
                exprs.push(Expr::Lookup { set: "__map%d".into(), set_id: None, sreg: REG_1, dreg: Some(REG_VERDICT) });
                break;
            }
            w => {
                t.next()?;
                let chain = if matches!(w, "jump" | "goto") { Some(t.next()?) } else { None };
                let v = verdict(w, chain).ok_or_else(|| t.unsupported(&format!("`{w}`")))?;
                exprs.push(Expr::Immediate { dreg: REG_VERDICT, data: Data::Verdict(v) });
                break;
            }
        }
    }
    if let Some(rest) = t.peek() {
        return Err(t.unsupported(&format!("`{rest}` after the verdict")));
    }
    if !matches!(exprs.last(), Some(Expr::Immediate { dreg: REG_VERDICT, .. } | Expr::Dnat { .. } | Expr::DynsetUpdate { .. } | Expr::Lookup { dreg: Some(REG_VERDICT), .. })) {
        return Err(t.unsupported("no statement at the end"));
    }
    Ok(Compiled { exprs, vmap })
}

/// `ADDR:PORT` (`[ADDR]:PORT` for IPv6) or `GEN mod N offset B map @MAP`
/// (the map's value is `addr . port`: the port follows the address padded
/// to 4 bytes, so it lands in the second 32-bit word of reg 1 after an IPv4
/// address and in reg 2 after a 16-byte IPv6 one).
fn dnat(t: &mut Tokens<'_>, out: &mut Vec<Expr>) -> Result<(), Unsupported> {
    let first = t.peek().ok_or_else(|| t.unsupported("dnat without a target"))?;
    let nat_family = u32::from(nfproto(t.family));
    if !matches!(first, "numgen" | "jhash") {
        t.next()?;
        let target: SocketAddr = first.parse().map_err(|_| t.unsupported(&format!("target `{first}`")))?;
        let addr = match (t.family, target) {
            (Family::V4, SocketAddr::V4(a)) => a.ip().octets().to_vec(),
            (Family::V6, SocketAddr::V6(a)) if a.scope_id() == 0 && a.flowinfo() == 0 => a.ip().octets().to_vec(),
            _ => return Err(t.unsupported(&format!("target `{first}`"))),
        };
        out.push(Expr::Immediate { dreg: REG_1, data: Data::Value(addr) });
        out.push(Expr::Immediate { dreg: REG_2, data: Data::Value(target.port().to_be_bytes().to_vec()) });
        out.push(Expr::Dnat { family: nat_family, addr: REG_1, proto: REG_2, flags: Some(NAT_PROTO_SPECIFIED) });
        return Ok(());
    }
    generator(t, out)?;
    t.expect("map")?;
    let set = set_name(t)?.to_owned();
    let proto = match t.family {
        Family::V4 => REG32_01,
        Family::V6 => REG_2,
    };
    out.push(Expr::Lookup { set, set_id: None, sreg: REG_1, dreg: Some(REG_1) });
    out.push(Expr::Dnat { family: nat_family, addr: REG_1, proto, flags: None });
    Ok(())
}

/// `{ 0 : goto a, 1 : goto b }`.
fn anon_vmap(t: &mut Tokens<'_>) -> Result<AnonVmap, Unsupported> {
    t.expect("{")?;
    let mut entries = Vec::new();
    loop {
        let key = t.next()?;
        let key: u32 = key.parse().map_err(|_| t.unsupported(&format!("vmap key `{key}`")))?;
        t.expect(":")?;
        let word = t.next()?;
        let chain = t.next()?;
        let (chain, more) = match chain.strip_suffix(',') {
            Some(c) => (c, true),
            None => (chain, false),
        };
        let v = verdict(word, Some(chain)).ok_or_else(|| t.unsupported(&format!("vmap verdict `{word}`")))?;
        entries.push((key, v));
        if !more {
            break;
        }
    }
    t.expect("}")?;
    Ok(AnonVmap { entries })
}

#[cfg(test)]
mod tests {
    use super::*;
    use Family::{V4, V6};

    #[test]
    fn a_prefix_on_byte_boundaries_compares_only_its_bytes() {
        let c = compile("ip daddr 10.96.0.5 ip saddr != 10.244.0.0/16 jump mark-for-masquerade", V4).expect("compiles");
        assert_eq!(
            c.exprs,
            vec![
                Expr::Payload { dreg: 1, base: 1, offset: 16, len: 4 },
                Expr::Cmp { sreg: 1, op: CmpOp::Eq, data: vec![10, 96, 0, 5] },
                Expr::Payload { dreg: 1, base: 1, offset: 12, len: 2 },
                Expr::Cmp { sreg: 1, op: CmpOp::Neq, data: vec![10, 244] },
                Expr::Immediate { dreg: 0, data: Data::Verdict(Verdict { code: VERDICT_JUMP, chain: Some("mark-for-masquerade".into()) }) },
            ]
        );
    }

    #[test]
    fn other_prefixes_are_masked() {
        let c = compile("ip saddr 10.240.0.0/12 drop", V4).expect("compiles");
        assert_eq!(c.exprs[1], Expr::Bitwise { sreg: 1, dreg: 1, mask: vec![255, 240, 0, 0], xor: vec![0; 4] });
        assert_eq!(c.exprs[2], Expr::Cmp { sreg: 1, op: CmpOp::Eq, data: vec![10, 240, 0, 0] });
    }

    #[test]
    fn a_slot_map_dnat_finds_the_port_after_the_address() {
        // (family, source offset, address length, NAT family, port register):
        // after 4 bytes the port is the second word of reg 1, after 16 it is reg 2.
        for (family, saddr, len, nat, port) in [(V4, 12, 4, 2, 9), (V6, 8, 16, 10, 2)] {
            let ip = family.nft();
            let c = compile(&format!("meta l4proto udp dnat {ip} to jhash {ip} saddr mod 3 offset 5 map @endpoint-slots-0"), family).expect("compiles");
            assert_eq!(
                &c.exprs[2..],
                &[
                    Expr::Payload { dreg: 2, base: 1, offset: saddr, len },
                    Expr::Jhash { sreg: 2, dreg: 1, len, modulus: 3, offset: 5 },
                    Expr::Lookup { set: "endpoint-slots-0".into(), set_id: None, sreg: 1, dreg: Some(1) },
                    Expr::Dnat { family: nat, addr: 1, proto: port, flags: None },
                ],
                "{ip}"
            );
        }
    }

    #[test]
    fn an_anonymous_vmap_is_collected() {
        let c = compile("numgen random mod 2 vmap { 0 : goto a, 1 : goto b }", V4).expect("compiles");
        assert_eq!(c.vmap.map(|v| v.entries.len()), Some(2));
    }

    #[test]
    fn statements_outside_the_grammar_are_unsupported() {
        for rule in [
            "meta l4proto tcp reject with tcp reset",
            "ip daddr . meta l4proto . th dport vmap @service-ips",
            "ip saddr 10.0.0.0/33 drop",
            "masquerade fully-random",
            "jump a b",
            "ip daddr 10.0.0.1",
            "counter drop",
            "ip6 daddr fd00::1 drop",
        ] {
            assert!(compile(rule, V4).is_err(), "{rule} should fall back to nft");
        }
        for rule in [
            "ip daddr 10.0.0.1 drop",
            "ip6 daddr 10.0.0.1 drop",
            "ip6 saddr fd00::/129 drop",
            "meta l4proto tcp dnat ip6 to 10.244.0.2:80",
            "meta l4proto tcp dnat ip to [fd00::2]:80",
            "meta l4proto tcp dnat ip6 to [fe80::2%3]:80",
            "jhash ip saddr mod 2 vmap { 0 : goto a, 1 : goto b }",
            "update @s { ip saddr }",
        ] {
            assert!(compile(rule, V6).is_err(), "{rule} should fall back to nft");
        }
    }

    #[test]
    fn ipv6_addresses_are_sixteen_bytes_at_their_own_offsets() {
        let c = compile("ip6 daddr fd00:10:96::8 ip6 saddr != fd00:10:244::/56 jump mark-for-masquerade", V6).expect("compiles");
        assert_eq!(
            &c.exprs[..4],
            &[
                Expr::Payload { dreg: 1, base: 1, offset: 24, len: 16 },
                Expr::Cmp { sreg: 1, op: CmpOp::Eq, data: vec![0xfd, 0, 0, 0x10, 0, 0x96, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8] },
                Expr::Payload { dreg: 1, base: 1, offset: 8, len: 7 },
                Expr::Cmp { sreg: 1, op: CmpOp::Neq, data: vec![0xfd, 0, 0, 0x10, 0x02, 0x44, 0] },
            ]
        );
    }

    #[test]
    fn other_ipv6_prefixes_mask_all_sixteen_bytes() {
        let c = compile("ip6 saddr fd00:10:240::/44 drop", V6).expect("compiles");
        assert_eq!(c.exprs[0], Expr::Payload { dreg: 1, base: 1, offset: 8, len: 16 });
        let mut mask = vec![0xff; 5];
        mask.push(0xf0);
        mask.resize(16, 0);
        assert_eq!(c.exprs[1], Expr::Bitwise { sreg: 1, dreg: 1, mask, xor: vec![0; 16] });
        let mut net = vec![0xfd, 0, 0, 0x10, 0x02, 0x40];
        net.resize(16, 0);
        assert_eq!(c.exprs[2], Expr::Cmp { sreg: 1, op: CmpOp::Eq, data: net });
    }

    #[test]
    fn an_ipv6_dnat_to_one_endpoint_takes_the_ipv6_nat_family() {
        let c = compile("meta l4proto tcp dnat ip6 to [fd00:10:244::2]:8080", V6).expect("compiles");
        assert_eq!(
            &c.exprs[2..],
            &[
                Expr::Immediate { dreg: 1, data: Data::Value(vec![0xfd, 0, 0, 0x10, 0x02, 0x44, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]) },
                Expr::Immediate { dreg: 2, data: Data::Value(vec![0x1f, 0x90]) },
                Expr::Dnat { family: 10, addr: 1, proto: 2, flags: Some(2) },
            ]
        );
    }

    #[test]
    fn ipv6_affinity_sets_are_updated_and_looked_up_with_the_whole_source_address() {
        let c = compile("update @aff { ip6 saddr }", V6).expect("compiles");
        assert_eq!(c.exprs, vec![Expr::Payload { dreg: 1, base: 1, offset: 8, len: 16 }, Expr::DynsetUpdate { set: "aff".into(), sreg: 1 }]);
        let c = compile("ip6 saddr @aff goto endpoint-x", V6).expect("compiles");
        assert_eq!(&c.exprs[..2], &[Expr::Payload { dreg: 1, base: 1, offset: 8, len: 16 }, Expr::Lookup { set: "aff".into(), set_id: None, sreg: 1, dreg: None }]);
    }
}
