//! A planned transaction (the `nft -f` text `plan` writes) turned into
//! nf_tables messages, statement by statement: chains, rules, the verdict
//! maps' and endpoint-slot maps' elements, the hairpin set, and the sets the
//! renderer defines, in `ip` and `ip6` tables alike. Map key layouts follow
//! nft: each component of a concatenation padded to 4 bytes (a 16-byte IPv6
//! address needs none).

use super::expr::{Data, nfproto, put_data};
use super::msg::{Attrs, Msg, MsgType, NLM_F_APPEND, NLM_F_CREATE};
use super::rule::{self, AnonVmap};
use super::{Transaction, Unsupported};
use crate::nft::{ruleset, slots};
use crate::servicemap::Family;

/// Elements per NEWSETELEM message (a nested attribute holds at most 64 KiB).
const ELEMS_PER_MSG: usize = 256;
/// Largest batch sent over netlink: every message gets its own answer in the
/// socket's receive queue; bigger transactions (a re-list touching most
/// Services) go through nft, whose cache cost is small next to theirs.
const MAX_MSGS: usize = 20_000;

/// Set flags (`NFT_SET_*`).
const SET_ANONYMOUS: u32 = 0x1;
const SET_CONSTANT: u32 = 0x2;
const SET_MAP: u32 = 0x8;
const SET_TIMEOUT: u32 = 0x10;
const SET_EVAL: u32 = 0x20;
/// nft datatype ids.
const TYPE_INTEGER: u32 = 4;
const TYPE_IPADDR: u32 = 7;
const TYPE_IP6ADDR: u32 = 8;
const TYPE_INET_SERVICE: u32 = 13;
const TYPE_VERDICT: u32 = 0xffff_ff00;
/// nft's `BYTEORDER_HOST_ENDIAN` / `BYTEORDER_BIG_ENDIAN` in set userdata.
const BYTEORDER_HOST: u32 = 1;
const BYTEORDER_BIG: u32 = 2;

/// One component of a map key or value.
#[derive(Debug, Clone, Copy)]
enum Part {
    /// An address of the table's family (4 or 16 bytes).
    Addr,
    Proto,
    Port,
    /// A host-order integer (`numgen`/`jhash` results).
    Int,
}

/// What the elements of a named map or set look like.
struct Shape {
    key: &'static [Part],
    /// None: a set; Some(&[]): a verdict map; else a data map.
    data: Option<&'static [Part]>,
}

/// The layouts of the maps `ruleset::base` and `slots` define.
fn shape(map: &str) -> Option<Shape> {
    use Part::*;
    match map {
        "service-ips" | "no-endpoint-services" => Some(Shape { key: &[Addr, Proto, Port], data: Some(&[]) }),
        "service-nodeports" | "no-endpoint-nodeports" => Some(Shape { key: &[Proto, Port], data: Some(&[]) }),
        "hairpin" => Some(Shape { key: &[Addr, Addr], data: None }),
        m if slots::shard_of_map(m).is_some() => Some(Shape { key: &[Int], data: Some(&[Addr, Port]) }),
        _ => None,
    }
}

fn encode_parts(family: Family, parts: &[Part], text: &str) -> Option<Vec<u8>> {
    let fields: Vec<&str> = text.split(" . ").map(str::trim).collect();
    if fields.len() != parts.len() {
        return None;
    }
    let mut out = Vec::with_capacity(parts.len() * 16);
    for (p, f) in parts.iter().zip(fields) {
        match p {
            Part::Addr => out.extend_from_slice(&rule::addr_bytes(family, f)?),
            Part::Proto => out.extend_from_slice(&[rule::proto_number(f)?, 0, 0, 0]),
            Part::Port => {
                let [hi, lo] = f.parse::<u16>().ok()?.to_be_bytes();
                out.extend_from_slice(&[hi, lo, 0, 0]);
            }
            Part::Int => out.extend_from_slice(&f.parse::<u32>().ok()?.to_ne_bytes()),
        }
    }
    Some(out)
}

/// nftnl's set userdata: `type u8, len u8, value` records.
#[derive(Default)]
struct Udata(Vec<u8>);

impl Udata {
    fn put(&mut self, ty: u8, value: &[u8]) -> &mut Self {
        self.0.push(ty);
        self.0.push(value.len() as u8);
        self.0.extend_from_slice(value);
        self
    }
    fn u32(&mut self, ty: u8, v: u32) -> &mut Self {
        self.put(ty, &v.to_ne_bytes())
    }
    fn nest(&mut self, ty: u8, f: impl FnOnce(&mut Udata)) -> &mut Self {
        let mut inner = Udata::default();
        f(&mut inner);
        self.put(ty, &inner.0)
    }
}

struct Builder {
    msgs: Vec<Msg>,
    statements: Vec<String>,
    next_set_id: u32,
}

/// Splits `ip|ip6 TABLE REST` and checks the family (`inet`, `arp`, …
/// tables are not Portico's).
fn family_table(rest: &str) -> Result<(Family, &str, &str), Unsupported> {
    let mut it = rest.splitn(3, ' ');
    let family = it.next().unwrap_or_default();
    let table = it.next().unwrap_or_default();
    let tail = it.next().unwrap_or_default();
    match Family::BOTH.into_iter().find(|f| f.nft() == family) {
        Some(f) => Ok((f, table, tail)),
        None => Err(Unsupported(format!("family `{family}` goes through nft"))),
    }
}

/// `NAME { BODY }` of a set or element statement.
fn name_and_body(tail: &str) -> Option<(&str, &str)> {
    let (name, body) = tail.split_once(' ')?;
    let body = body.trim().strip_prefix('{')?.strip_suffix('}')?.trim();
    Some((name, body))
}

impl Builder {
    fn push(&mut self, family: Family, ty: MsgType, flags: u16, statement: &str, attrs: Attrs) {
        self.msgs.push(Msg { ty, flags, family: nfproto(family), attrs });
        self.statements.push(statement.to_owned());
    }

    fn statement(&mut self, line: &str) -> Result<(), Unsupported> {
        let unsupported = || Unsupported(format!("statement `{line}`"));
        let (verb, rest) = line.split_once(' ').ok_or_else(unsupported)?;
        let (object, rest) = rest.split_once(' ').ok_or_else(unsupported)?;
        let (family, table, tail) = family_table(rest)?;
        let mut a = Attrs::default();
        a.str(1, table);
        match (verb, object) {
            ("add", "chain") if !tail.contains(' ') => {
                a.str(3, tail);
                self.push(family, MsgType::NewChain, NLM_F_CREATE, line, a);
            }
            ("delete", "chain") if !tail.contains(' ') => {
                a.str(3, tail);
                self.push(family, MsgType::DelChain, 0, line, a);
            }
            ("flush", "chain") if !tail.contains(' ') => {
                a.str(2, tail);
                self.push(family, MsgType::DelRule, 0, line, a);
            }
            ("add", "rule") => {
                let (chain, text) = tail.split_once(' ').ok_or_else(unsupported)?;
                let mut compiled = rule::compile(text, family)?;
                if let Some(vmap) = compiled.vmap.take() {
                    let id = self.anon_vmap(family, table, &vmap, line);
                    for e in &mut compiled.exprs {
                        if let super::expr::Expr::Lookup { set, set_id, .. } = e
                            && set == "__map%d"
                        {
                            *set_id = Some(id);
                        }
                    }
                }
                a.str(2, chain).nest(4, |l| {
                    for e in &compiled.exprs {
                        e.encode(l);
                    }
                });
                self.push(family, MsgType::NewRule, NLM_F_CREATE | NLM_F_APPEND, line, a);
            }
            ("add" | "delete", "element") => {
                let (set, body) = name_and_body(tail).ok_or_else(unsupported)?;
                let shape = shape(set).ok_or_else(|| Unsupported(format!("elements of `{set}`")))?;
                let add = verb == "add";
                let mut elems = Vec::new();
                for e in body.split(", ") {
                    let (k, v) = match e.split_once(" : ") {
                        Some((k, v)) if add => (k, Some(v)),
                        None => (e, None),
                        Some(_) => return Err(unsupported()),
                    };
                    let key = encode_parts(family, shape.key, k).ok_or_else(unsupported)?;
                    let data = match (shape.data, v) {
                        (Some([]), Some(v)) => {
                            let (word, chain) = match v.split_once(' ') {
                                Some((w, c)) => (w, Some(c)),
                                None => (v, None),
                            };
                            Some(Data::Verdict(rule::verdict(word, chain).ok_or_else(unsupported)?))
                        }
                        (Some(parts), Some(v)) => Some(Data::Value(encode_parts(family, parts, v).ok_or_else(unsupported)?)),
                        (None, None) => None,
                        (Some(_), None) if !add => None,
                        _ => return Err(unsupported()),
                    };
                    elems.push((key, data));
                }
                let ty = if add { MsgType::NewSetElem } else { MsgType::DelSetElem };
                for chunk in elems.chunks(ELEMS_PER_MSG) {
                    let mut a = Attrs::default();
                    a.str(1, table).str(2, set);
                    put_elements(&mut a, chunk);
                    self.push(family, ty, if add { NLM_F_CREATE } else { 0 }, line, a);
                }
            }
            ("add", "map" | "set") => {
                let (name, body) = name_and_body(tail).ok_or_else(unsupported)?;
                a.str(2, name);
                self.set_definition(family, &mut a, body).ok_or_else(|| Unsupported(format!("set definition `{body}`")))?;
                self.push(family, MsgType::NewSet, NLM_F_CREATE, line, a);
            }
            ("delete", "set" | "map") if !tail.contains(' ') => {
                a.str(2, tail);
                self.push(family, MsgType::DelSet, 0, line, a);
            }
            _ => return Err(unsupported()),
        }
        Ok(())
    }

    fn set_id(&mut self) -> u32 {
        self.next_set_id += 1;
        self.next_set_id
    }

    /// The two set definitions the renderer writes: the endpoint-slot shard
    /// maps and the ClientIP affinity sets.
    fn set_definition(&mut self, family: Family, a: &mut Attrs, body: &str) -> Option<()> {
        // nft's payload protocol description ids (proto.h): udp 6, tcp 8, sctp 10.
        let desc = slots::PROTOCOLS.into_iter().find(|p| body == ruleset::slot_map_definition(family, p)).map(|p| match p {
            "udp" => 6u32,
            "sctp" => 10,
            _ => 8,
        });
        if let Some(l4) = desc {
            let comment = body.split_once("comment \"")?.1.split_once('"')?.0;
            // nft's ids of the address payload: ip (12) field daddr (12), ip6 (13) field daddr (9).
            let (addr_type, l3, daddr) = match family {
                Family::V4 => (TYPE_IPADDR, 12u32, 12u32),
                Family::V6 => (TYPE_IP6ADDR, 13, 9),
            };
            let id = self.set_id();
            let data_len = rule::addr_len(family) + 4;
            a.be32(3, SET_MAP).be32(4, TYPE_INTEGER).be32(5, 4).be32(6, (addr_type << 6) | TYPE_INET_SERVICE).be32(7, data_len).be32(10, id);
            // `typeof numgen inc mod 2 : ip daddr . tcp dport`, as nftnl records it
            // (payload descriptions: the address as above, tcp (8) field dport;
            // udp and sctp name their dport field 2 as well).
            let mut u = Udata::default();
            u.u32(0, BYTEORDER_HOST).u32(1, 0);
            u.nest(3, |k| {
                k.u32(0, 23).nest(1, |n| {
                    n.u32(0, 0).u32(1, 2).u32(2, 0);
                });
            });
            u.nest(4, |d| {
                d.u32(0, 13).nest(1, |c| {
                    for (i, (proto, field)) in [(l3, daddr), (l4, 2)].into_iter().enumerate() {
                        c.nest(i as u8, |p| {
                            p.u32(0, 7).nest(1, |f| {
                                f.u32(0, proto).u32(1, field);
                            });
                        });
                    }
                });
            });
            u.u32(6, 0);
            let mut c = comment.as_bytes().to_vec();
            c.push(0);
            u.put(7, &c);
            a.bytes(13, &u.0);
            return Some(());
        }
        let timeout = body.strip_prefix(&format!("type {} ; flags dynamic,timeout ; timeout ", family.addr_type()))?.strip_suffix("s ;")?.parse::<u64>().ok()?;
        let key_type = match family {
            Family::V4 => TYPE_IPADDR,
            Family::V6 => TYPE_IP6ADDR,
        };
        let id = self.set_id();
        a.be32(3, SET_TIMEOUT | SET_EVAL).be32(4, key_type).be32(5, rule::addr_len(family)).be32(10, id).be64(11, timeout.checked_mul(1000)?);
        let mut u = Udata::default();
        u.u32(0, BYTEORDER_BIG);
        a.bytes(13, &u.0);
        Some(())
    }

    /// An anonymous constant verdict map and its elements; returns its set id.
    fn anon_vmap(&mut self, family: Family, table: &str, vmap: &AnonVmap, line: &str) -> u32 {
        let id = self.set_id();
        let mut a = Attrs::default();
        a.str(1, table).str(2, "__map%d");
        a.be32(3, SET_ANONYMOUS | SET_CONSTANT | SET_MAP).be32(4, TYPE_INTEGER).be32(5, 4).be32(6, TYPE_VERDICT).be32(7, 0).be32(10, id);
        a.nest(9, |d| {
            d.be32(1, vmap.entries.len() as u32);
        });
        let mut u = Udata::default();
        u.u32(0, BYTEORDER_HOST).u32(1, 0).nest(4, |d| {
            d.u32(0, 1).put(1, &[]);
        });
        u.u32(6, 0);
        a.bytes(13, &u.0);
        self.push(family, MsgType::NewSet, NLM_F_CREATE, line, a);
        let elems: Vec<(Vec<u8>, Option<Data>)> = vmap.entries.iter().map(|(k, v)| (k.to_ne_bytes().to_vec(), Some(Data::Verdict(v.clone())))).collect();
        for chunk in elems.chunks(ELEMS_PER_MSG) {
            let mut a = Attrs::default();
            a.str(1, table).str(2, "__map%d").be32(4, id);
            put_elements(&mut a, chunk);
            self.push(family, MsgType::NewSetElem, NLM_F_CREATE, line, a);
        }
        id
    }
}

/// `NFTA_SET_ELEM_LIST_ELEMENTS`; the elements numbered 1, 2, … as libnftnl
/// numbers them (the kernel does not read the numbers).
fn put_elements(a: &mut Attrs, elems: &[(Vec<u8>, Option<Data>)]) {
    a.nest(3, |l| {
        for (i, (key, data)) in (1u16..).zip(elems) {
            l.nest(i, |e| {
                e.nest(1, |k| {
                    k.bytes(1, key);
                });
                if let Some(d) = data {
                    e.nest(2, |v| put_data(v, d));
                }
            });
        }
    });
}

/// Compiles a whole script; any statement outside the grammar makes the
/// whole transaction [`Unsupported`].
pub(super) fn compile(script: &str) -> Result<Transaction, Unsupported> {
    let mut b = Builder { msgs: Vec::new(), statements: Vec::new(), next_set_id: 0 };
    for line in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
        b.statement(line)?;
        if b.msgs.len() > MAX_MSGS {
            return Err(Unsupported(format!("more than {MAX_MSGS} messages")));
        }
    }
    Ok(Transaction { msgs: b.msgs, statements: b.statements })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concatenated_keys_pad_every_component_to_four_bytes() {
        use Part::*;
        use Family::{V4, V6};
        assert_eq!(encode_parts(V4, &[Addr, Proto, Port], "10.96.0.5 . tcp . 80"), Some(vec![10, 96, 0, 5, 6, 0, 0, 0, 0, 80, 0, 0]));
        assert_eq!(encode_parts(V4, &[Int], "1"), Some(1u32.to_ne_bytes().to_vec()));
        assert_eq!(encode_parts(V4, &[Addr, Port], "10.244.0.2 . 8080"), Some(vec![10, 244, 0, 2, 0x1f, 0x90, 0, 0]));
        assert_eq!(encode_parts(V4, &[Proto, Port], "icmp . 80"), None);
        let v6 = [0xfd, 0, 0, 0x10, 0, 0x96, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8];
        assert_eq!(encode_parts(V6, &[Addr, Proto, Port], "fd00:10:96::8 . udp . 53"), Some([&v6[..], &[17, 0, 0, 0, 0, 53, 0, 0]].concat()));
        assert_eq!(encode_parts(V6, &[Addr, Addr], "fd00:10:96::8 . fd00:10:96::8"), Some([v6, v6].concat()));
        assert_eq!(encode_parts(V6, &[Addr, Port], "10.244.0.2 . 8080"), None, "an IPv4 address in the ip6 table");
        assert_eq!(encode_parts(V4, &[Addr, Port], "fd00::2 . 8080"), None);
    }

    #[test]
    fn whole_table_statements_and_other_families_go_through_nft() {
        for script in [
            "add table ip portico\n",
            "add chain inet portico service-x\n",
            "add table ip6 portico\n",
            "add set ip6 portico s { type ipv4_addr ; flags dynamic,timeout ; timeout 3s ; }\n",
            "add element ip portico somebody-elses-map { 1 : 2 }\n",
            "add set ip portico s { type ipv4_addr ; flags interval ; }\n",
            "add chain ip portico a\nadd rule ip portico a meta l4proto tcp reject with tcp reset\n",
        ] {
            assert!(compile(script).is_err(), "{script}");
        }
    }

    #[test]
    fn elements_are_numbered_as_libnftnl_numbers_them() {
        let tx = compile("add element ip6 portico hairpin { fd00::2 . fd00::2, fd00::3 . fd00::3 }\n").expect("compiles");
        assert_eq!(tx.msgs[0].family, 10, "NFPROTO_IPV6");
        let a = tx.msgs[0].attrs.as_bytes();
        // table (12 bytes), set name (12), then the element list: its header, element 1, element 2.
        let list = &a[24..];
        assert_eq!(&list[2..4], &(3u16 | 0x8000).to_ne_bytes());
        let first_len = u16::from_ne_bytes([list[4], list[5]]) as usize;
        assert_eq!(first_len, 4 + 4 + 4 + 32, "an element holding a 32-byte key");
        assert_eq!(&list[6..8], &(1u16 | 0x8000).to_ne_bytes());
        assert_eq!(&list[4 + first_len + 2..4 + first_len + 4], &(2u16 | 0x8000).to_ne_bytes());
    }

    #[test]
    fn large_element_statements_are_split_into_several_messages() {
        let elems: Vec<String> = (0..600).map(|i| format!("{i} : 10.244.0.2 . 8080")).collect();
        let tx = compile(&format!("add element ip portico endpoint-slots-3 {{ {} }}\n", elems.join(", "))).expect("compiles");
        assert_eq!(tx.msgs.len(), 3);
        let chains: String = (0..MAX_MSGS + 1).map(|i| format!("add chain ip portico c{i}\n")).collect();
        assert!(compile(&chains).is_err(), "a huge transaction goes through nft");
    }
}
