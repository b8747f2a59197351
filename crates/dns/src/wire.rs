//! The DNS wire format, as much as a cluster DNS server needs: parsing a
//! query (header, one question, an EDNS0 OPT record) with every length and
//! pointer checked, and writing responses with the record types Kubernetes
//! DNS serves. Nothing here panics on bad input.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Record types.
pub mod rtype {
    /// IPv4 address.
    pub const A: u16 = 1;
    /// Name server.
    pub const NS: u16 = 2;
    /// Canonical name.
    pub const CNAME: u16 = 5;
    /// Start of authority.
    pub const SOA: u16 = 6;
    /// Pointer.
    pub const PTR: u16 = 12;
    /// Text.
    pub const TXT: u16 = 16;
    /// IPv6 address.
    pub const AAAA: u16 = 28;
    /// Service locator.
    pub const SRV: u16 = 33;
    /// EDNS0 option pseudo-record.
    pub const OPT: u16 = 41;
    /// Zone transfer.
    pub const AXFR: u16 = 252;
    /// Incremental zone transfer.
    pub const IXFR: u16 = 251;
    /// Any type.
    pub const ANY: u16 = 255;
}

/// Response codes.
pub mod rcode {
    /// No error.
    pub const NOERROR: u8 = 0;
    /// Format error.
    pub const FORMERR: u8 = 1;
    /// Server failure.
    pub const SERVFAIL: u8 = 2;
    /// Name does not exist.
    pub const NXDOMAIN: u8 = 3;
    /// Not implemented.
    pub const NOTIMP: u8 = 4;
    /// Refused.
    pub const REFUSED: u8 = 5;
}

/// Why a packet could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Shorter than its header or its fields claim.
    #[error("truncated packet")]
    Truncated,
    /// A name is malformed (label too long, name over 255 bytes, pointer loop or forward pointer).
    #[error("bad name")]
    BadName,
    /// Not a query we answer (QR set, no question, more than one question).
    #[error("not a standard query")]
    NotQuery,
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Message ID.
    pub id: u16,
    /// Opcode.
    pub opcode: u8,
    /// Recursion desired.
    pub rd: bool,
    /// Checking disabled.
    pub cd: bool,
    /// The question name as sent (case kept), without the trailing dot; "" is the root.
    pub name: String,
    /// Question type.
    pub qtype: u16,
    /// Question class.
    pub qclass: u16,
    /// EDNS0 UDP payload size, when an OPT record was present.
    pub edns: Option<u16>,
    /// The raw question section (echoed in responses).
    pub question: Vec<u8>,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Result<u8, ParseError> {
        let b = *self.buf.get(self.pos).ok_or(ParseError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }
    fn u16(&mut self) -> Result<u16, ParseError> {
        Ok(u16::from(self.u8()?) << 8 | u16::from(self.u8()?))
    }
    fn skip(&mut self, n: usize) -> Result<(), ParseError> {
        if self.pos + n > self.buf.len() {
            return Err(ParseError::Truncated);
        }
        self.pos += n;
        Ok(())
    }
    /// Reads a (possibly compressed) name; pointers must point backwards.
    fn name(&mut self) -> Result<String, ParseError> {
        let mut out = String::new();
        let mut pos = self.pos;
        let mut jumped = false;
        let mut total = 0usize;
        let mut hops = 0;
        loop {
            let len = *self.buf.get(pos).ok_or(ParseError::Truncated)? as usize;
            if len & 0xC0 == 0xC0 {
                let lo = *self.buf.get(pos + 1).ok_or(ParseError::Truncated)? as usize;
                let target = ((len & 0x3F) << 8) | lo;
                if target >= pos || hops > 64 {
                    return Err(ParseError::BadName);
                }
                if !jumped {
                    self.pos = pos + 2;
                }
                jumped = true;
                hops += 1;
                pos = target;
                continue;
            }
            if len & 0xC0 != 0 {
                return Err(ParseError::BadName);
            }
            if len == 0 {
                if !jumped {
                    self.pos = pos + 1;
                }
                return Ok(out);
            }
            let label = self.buf.get(pos + 1..pos + 1 + len).ok_or(ParseError::Truncated)?;
            total += len + 1;
            if total > 255 {
                return Err(ParseError::BadName);
            }
            if !out.is_empty() {
                out.push('.');
            }
            for &b in label {
                // Keep names printable and unambiguous; escape dots and oddities.
                if b == b'.' || b == b'\\' || !(0x21..0x7f).contains(&b) {
                    out.push_str(&format!("\\{b:03}"));
                } else {
                    out.push(b as char);
                }
            }
            pos += 1 + len;
        }
    }
}

/// Parses a query. Only the first question is looked at; more than one is refused as upstream servers do.
pub fn parse_query(buf: &[u8]) -> Result<Query, ParseError> {
    let mut r = Reader { buf, pos: 0 };
    let id = r.u16()?;
    let flags = r.u16()?;
    let (qd, an, ns, ar) = (r.u16()?, r.u16()?, r.u16()?, r.u16()?);
    if flags & 0x8000 != 0 || qd != 1 {
        return Err(ParseError::NotQuery);
    }
    let qstart = r.pos;
    let name = r.name()?;
    let qtype = r.u16()?;
    let qclass = r.u16()?;
    let question = buf[qstart..r.pos].to_vec();
    // Skip answer and authority records (a query should have none), then look for OPT.
    let mut edns = None;
    for i in 0..(u32::from(an) + u32::from(ns) + u32::from(ar)) {
        let _ = r.name()?;
        let t = r.u16()?;
        let class = r.u16()?;
        r.skip(4)?;
        let rdlen = r.u16()? as usize;
        r.skip(rdlen)?;
        if t == rtype::OPT && i >= u32::from(an) + u32::from(ns) {
            edns = Some(class.max(512));
        }
    }
    Ok(Query { id, opcode: ((flags >> 11) & 0xF) as u8, rd: flags & 0x0100 != 0, cd: flags & 0x0010 != 0, name, qtype, qclass, edns, question })
}

/// The header ID of a packet, if it has one (for FORMERR replies to unparsable queries).
pub fn packet_id(buf: &[u8]) -> Option<u16> {
    Some(u16::from(*buf.first()?) << 8 | u16::from(*buf.get(1)?))
}

/// Record data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RData {
    /// IPv4 address.
    A(Ipv4Addr),
    /// IPv6 address.
    Aaaa(Ipv6Addr),
    /// Canonical name.
    Cname(String),
    /// Pointer.
    Ptr(String),
    /// Name server.
    Ns(String),
    /// Text.
    Txt(String),
    /// Service locator.
    Srv {
        /// Priority.
        priority: u16,
        /// Weight.
        weight: u16,
        /// Port.
        port: u16,
        /// Target.
        target: String,
    },
    /// Start of authority.
    Soa {
        /// Primary name server.
        mname: String,
        /// Responsible mailbox.
        rname: String,
        /// Serial.
        serial: u32,
        /// Refresh.
        refresh: u32,
        /// Retry.
        retry: u32,
        /// Expire.
        expire: u32,
        /// Minimum (negative-caching TTL).
        minimum: u32,
    },
}

impl RData {
    /// The record type.
    pub fn rtype(&self) -> u16 {
        match self {
            Self::A(_) => rtype::A,
            Self::Aaaa(_) => rtype::AAAA,
            Self::Cname(_) => rtype::CNAME,
            Self::Ptr(_) => rtype::PTR,
            Self::Ns(_) => rtype::NS,
            Self::Txt(_) => rtype::TXT,
            Self::Srv { .. } => rtype::SRV,
            Self::Soa { .. } => rtype::SOA,
        }
    }

    /// An address record for `ip`.
    pub fn addr(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::A(v4),
            IpAddr::V6(v6) => Self::Aaaa(v6),
        }
    }
}

/// A resource record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Owner name (no trailing dot).
    pub name: String,
    /// Time to live.
    pub ttl: u32,
    /// Data.
    pub data: RData,
}

/// A response to build.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    /// Response code.
    pub rcode: u8,
    /// Authoritative answer.
    pub aa: bool,
    /// Answer section.
    pub answers: Vec<Record>,
    /// Authority section.
    pub authority: Vec<Record>,
    /// Additional section.
    pub additional: Vec<Record>,
}

fn put_name(out: &mut Vec<u8>, name: &str) {
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let bytes = unescape(label);
        let len = bytes.len().min(63);
        out.push(len as u8);
        out.extend_from_slice(&bytes[..len]);
    }
    out.push(0);
}

fn unescape(label: &str) -> Vec<u8> {
    let b = label.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1..i + 4).is_some_and(|d| d.iter().all(u8::is_ascii_digit)) {
            let v: u32 = std::str::from_utf8(&b[i + 1..i + 4]).ok().and_then(|s| s.parse().ok()).unwrap_or(0);
            out.push(v.min(255) as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_record(out: &mut Vec<u8>, r: &Record, qname_lower: &str) {
    // The owner is usually the question name: point at it (offset 12).
    if r.name.eq_ignore_ascii_case(qname_lower) {
        out.extend_from_slice(&[0xC0, 12]);
    } else {
        put_name(out, &r.name);
    }
    put_u16(out, r.data.rtype());
    put_u16(out, 1);
    out.extend_from_slice(&r.ttl.to_be_bytes());
    let len_at = out.len();
    put_u16(out, 0);
    match &r.data {
        RData::A(ip) => out.extend_from_slice(&ip.octets()),
        RData::Aaaa(ip) => out.extend_from_slice(&ip.octets()),
        RData::Cname(n) | RData::Ptr(n) | RData::Ns(n) => put_name(out, n),
        RData::Txt(t) => {
            for chunk in t.as_bytes().chunks(255) {
                out.push(chunk.len() as u8);
                out.extend_from_slice(chunk);
            }
        }
        RData::Srv { priority, weight, port, target } => {
            put_u16(out, *priority);
            put_u16(out, *weight);
            put_u16(out, *port);
            put_name(out, target);
        }
        RData::Soa { mname, rname, serial, refresh, retry, expire, minimum } => {
            put_name(out, mname);
            put_name(out, rname);
            for v in [serial, refresh, retry, expire, minimum] {
                out.extend_from_slice(&v.to_be_bytes());
            }
        }
    }
    let len = (out.len() - len_at - 2) as u16;
    out[len_at..len_at + 2].copy_from_slice(&len.to_be_bytes());
}

/// Encodes a response to `q`, truncating (TC) when it exceeds `limit` bytes.
pub fn encode(q: &Query, resp: &Response, limit: usize) -> Vec<u8> {
    let full = encode_sections(q, resp, false);
    if full.len() <= limit {
        return full;
    }
    encode_sections(q, resp, true)
}

fn encode_sections(q: &Query, resp: &Response, truncated: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    put_u16(&mut out, q.id);
    let mut flags: u16 = 0x8000 | (u16::from(q.opcode & 0xF) << 11);
    if resp.aa {
        flags |= 0x0400;
    }
    if truncated {
        flags |= 0x0200;
    }
    if q.rd {
        flags |= 0x0100;
    }
    flags |= 0x0080; // RA: we recurse through the forwarder.
    if q.cd {
        flags |= 0x0010;
    }
    flags |= u16::from(resp.rcode & 0xF);
    put_u16(&mut out, flags);
    put_u16(&mut out, 1);
    let (an, ns, ar) = if truncated { (0, 0, 0) } else { (resp.answers.len(), resp.authority.len(), resp.additional.len()) };
    let opt = q.edns.is_some();
    put_u16(&mut out, an as u16);
    put_u16(&mut out, ns as u16);
    put_u16(&mut out, (ar + usize::from(opt)) as u16);
    out.extend_from_slice(&q.question);
    if !truncated {
        for r in resp.answers.iter().chain(&resp.authority).chain(&resp.additional) {
            put_record(&mut out, r, &q.name);
        }
    }
    if opt {
        // OPT: root name, type 41, our payload size 1232, no options.
        out.extend_from_slice(&[0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0]);
    }
    out
}

/// A bare response with an rcode (FORMERR, SERVFAIL, REFUSED, NOTIMP) echoing the question if any.
pub fn error_reply(buf: &[u8], rcode: u8) -> Option<Vec<u8>> {
    let id = packet_id(buf)?;
    match parse_query(buf) {
        Ok(q) => Some(encode(&q, &Response { rcode, ..Default::default() }, 65535)),
        Err(_) => {
            let opcode = buf.get(2).map(|b| (b >> 3) & 0xF).unwrap_or(0);
            let mut out = Vec::with_capacity(12);
            put_u16(&mut out, id);
            put_u16(&mut out, 0x8000 | (u16::from(opcode) << 11) | u16::from(rcode));
            out.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
            Some(out)
        }
    }
}

/// Builds a query packet (for the forwarder and tests).
pub fn build_query(id: u16, name: &str, qtype: u16, edns: Option<u16>) -> Vec<u8> {
    let mut out = Vec::new();
    put_u16(&mut out, id);
    put_u16(&mut out, 0x0100);
    put_u16(&mut out, 1);
    put_u16(&mut out, 0);
    put_u16(&mut out, 0);
    put_u16(&mut out, u16::from(edns.is_some()));
    put_name(&mut out, name);
    put_u16(&mut out, qtype);
    put_u16(&mut out, 1);
    if let Some(size) = edns {
        out.push(0);
        put_u16(&mut out, rtype::OPT);
        put_u16(&mut out, size);
        out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    }
    out
}

/// The smallest TTL in a response's answer (or, for a negative answer, the
/// SOA minimum), read from raw bytes; `None` when unparsable.
pub fn response_ttl(buf: &[u8]) -> Option<(u8, u32)> {
    let mut r = Reader { buf, pos: 0 };
    r.skip(2).ok()?;
    let flags = r.u16().ok()?;
    let rc = (flags & 0xF) as u8;
    let (qd, an, ns, _ar) = (r.u16().ok()?, r.u16().ok()?, r.u16().ok()?, r.u16().ok()?);
    for _ in 0..qd {
        r.name().ok()?;
        r.skip(4).ok()?;
    }
    let mut min: Option<u32> = None;
    for i in 0..(u32::from(an) + u32::from(ns)) {
        r.name().ok()?;
        let t = r.u16().ok()?;
        r.skip(2).ok()?;
        let ttl = u32::from(r.u16().ok()?) << 16 | u32::from(r.u16().ok()?);
        let rdlen = r.u16().ok()? as usize;
        let start = r.pos;
        let mut ttl = ttl;
        if t == rtype::SOA && i >= u32::from(an) {
            // Negative caching: min(SOA TTL, SOA minimum).
            r.name().ok()?;
            r.name().ok()?;
            r.skip(16).ok()?;
            let minimum = u32::from(r.u16().ok()?) << 16 | u32::from(r.u16().ok()?);
            ttl = ttl.min(minimum);
        }
        r.pos = start;
        r.skip(rdlen).ok()?;
        if i < u32::from(an) || an == 0 {
            min = Some(min.map_or(ttl, |m| m.min(ttl)));
        }
    }
    Some((rc, min.unwrap_or(0)))
}

/// Lowers every TTL of a response's answer, authority and additional
/// records by `elapsed` seconds (not below 0; OPT's "TTL" holds flags and is
/// left alone), as a cache does when it serves a stored answer later.
/// Returns `None` and changes nothing when the message does not parse.
pub fn age_ttls(buf: &mut [u8], elapsed: u32) -> Option<()> {
    let mut offsets = Vec::new();
    {
        let mut r = Reader { buf, pos: 0 };
        r.skip(4).ok()?;
        let (qd, an, ns, ar) = (r.u16().ok()?, r.u16().ok()?, r.u16().ok()?, r.u16().ok()?);
        for _ in 0..qd {
            r.name().ok()?;
            r.skip(4).ok()?;
        }
        for _ in 0..(u32::from(an) + u32::from(ns) + u32::from(ar)) {
            r.name().ok()?;
            let t = r.u16().ok()?;
            r.skip(2).ok()?;
            if t != rtype::OPT {
                offsets.push(r.pos);
            }
            r.skip(4).ok()?;
            let rdlen = r.u16().ok()? as usize;
            r.skip(rdlen).ok()?;
        }
    }
    for at in offsets {
        let field = buf.get_mut(at..at + 4)?;
        let ttl = u32::from_be_bytes([field[0], field[1], field[2], field[3]]);
        field.copy_from_slice(&ttl.saturating_sub(elapsed).to_be_bytes());
    }
    Some(())
}

/// The rcode and the A/AAAA/CNAME answer records of a reply (names decompressed).
pub fn parse_answers(buf: &[u8]) -> Option<(u8, Vec<Record>)> {
    let mut r = Reader { buf, pos: 0 };
    r.skip(2).ok()?;
    let flags = r.u16().ok()?;
    let (qd, an) = (r.u16().ok()?, r.u16().ok()?);
    r.skip(4).ok()?;
    for _ in 0..qd {
        r.name().ok()?;
        r.skip(4).ok()?;
    }
    let mut out = Vec::new();
    for _ in 0..an {
        let name = r.name().ok()?;
        let t = r.u16().ok()?;
        r.skip(2).ok()?;
        let ttl = u32::from(r.u16().ok()?) << 16 | u32::from(r.u16().ok()?);
        let rdlen = r.u16().ok()? as usize;
        let start = r.pos;
        let data = match t {
            rtype::A if rdlen == 4 => Some(RData::A(Ipv4Addr::new(buf[start], buf[start + 1], buf[start + 2], buf[start + 3]))),
            rtype::AAAA if rdlen == 16 => {
                let mut b = [0u8; 16];
                b.copy_from_slice(buf.get(start..start + 16)?);
                Some(RData::Aaaa(Ipv6Addr::from(b)))
            }
            rtype::CNAME => Some(RData::Cname(r.name().ok()?)),
            _ => None,
        };
        r.pos = start;
        r.skip(rdlen).ok()?;
        if let Some(data) = data {
            out.push(Record { name, ttl, data });
        }
    }
    Some(((flags & 0xF) as u8, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_answers_age() {
        let q = parse_query(&build_query(7, "example.org", rtype::A, Some(1232))).expect("query");
        let resp = Response { answers: vec![Record { name: q.name.clone(), ttl: 30, data: RData::A(Ipv4Addr::new(192, 0, 2, 1)) }], ..Default::default() };
        let mut bytes = encode(&q, &resp, 512);
        age_ttls(&mut bytes, 12).expect("parses");
        assert_eq!(response_ttl(&bytes), Some((0, 18)));
        age_ttls(&mut bytes, 100).expect("parses");
        assert_eq!(response_ttl(&bytes), Some((0, 0)), "never below zero");
        let (_, recs) = parse_answers(&bytes).expect("answers");
        assert_eq!(recs[0].data, RData::A(Ipv4Addr::new(192, 0, 2, 1)), "data untouched");
        assert!(age_ttls(&mut bytes[..20], 1).is_none(), "a cut message is refused");
    }

    #[test]
    fn parses_and_answers_a_query() {
        let q = parse_query(&build_query(7, "My-Nginx.default.svc.cluster.local", rtype::A, Some(1232))).expect("query");
        assert_eq!((q.id, q.name.as_str(), q.qtype, q.edns), (7, "My-Nginx.default.svc.cluster.local", rtype::A, Some(1232)));
        let resp = Response { aa: true, answers: vec![Record { name: q.name.clone(), ttl: 5, data: RData::A(Ipv4Addr::new(10, 96, 0, 7)) }], ..Default::default() };
        let bytes = encode(&q, &resp, 512);
        assert_eq!(response_ttl(&bytes), Some((0, 5)));
        assert_eq!(bytes[3] & 0x0F, 0);
        assert_ne!(bytes[2] & 0x04, 0, "authoritative");
    }

    #[test]
    fn rejects_malformed_packets_without_panicking() {
        assert_eq!(parse_query(&[0, 1, 0]), Err(ParseError::Truncated));
        // A pointer to itself.
        let mut p = build_query(1, "a", rtype::A, None);
        p.truncate(12);
        p.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
        assert_eq!(parse_query(&p), Err(ParseError::BadName));
        // A label longer than the packet.
        let mut p = build_query(1, "a", rtype::A, None);
        p.truncate(12);
        p.extend_from_slice(&[60, b'a']);
        assert_eq!(parse_query(&p), Err(ParseError::Truncated));
        // A name over 255 bytes.
        let mut p = build_query(1, "a", rtype::A, None);
        p.truncate(12);
        for _ in 0..5 {
            p.push(63);
            p.extend_from_slice(&[b'x'; 63]);
        }
        p.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert_eq!(parse_query(&p), Err(ParseError::BadName));
        // Wrong counts: two questions.
        let mut p = build_query(1, "a", rtype::A, None);
        p[5] = 2;
        assert_eq!(parse_query(&p), Err(ParseError::NotQuery));
        // A FORMERR reply keeps the ID.
        let reply = error_reply(&[0xAB, 0xCD, 0, 0, 0, 2], rcode::FORMERR).expect("reply");
        assert_eq!((&reply[..2], reply[3] & 0xF), (&[0xAB, 0xCD][..], rcode::FORMERR));
    }

    #[test]
    fn random_packets_never_panic() {
        // xorshift: deterministic noise plus mutations of a valid query.
        let mut s: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let base = build_query(9, "web.default.svc.cluster.local", rtype::SRV, Some(4096));
        for i in 0..20000 {
            let mut p = if i % 2 == 0 { base.clone() } else { (0..(next() % 80) as usize).map(|_| next() as u8).collect() };
            for _ in 0..(next() % 6) {
                if !p.is_empty() {
                    let at = (next() as usize) % p.len();
                    p[at] = next() as u8;
                }
            }
            let _ = parse_query(&p);
            let _ = error_reply(&p, rcode::FORMERR);
            let _ = response_ttl(&p);
        }
    }

    #[test]
    fn truncates_over_the_limit() {
        let q = parse_query(&build_query(1, "h.default.svc.cluster.local", rtype::A, None)).expect("q");
        let answers = (0..100).map(|i| Record { name: q.name.clone(), ttl: 5, data: RData::A(Ipv4Addr::new(10, 0, 0, i)) }).collect();
        let bytes = encode(&q, &Response { answers, ..Default::default() }, 512);
        assert!(bytes.len() <= 512);
        assert_ne!(bytes[2] & 0x02, 0, "TC set");
    }
}
