//! IP and CIDR syntax as upstream checks it (`IsValidIP`, `IsValidCIDR`,
//! `ValidateNonSpecialIP`), with Go's lenient parsing (`netutils.ParseIPSloppy`
//! accepts IPv4 octets with leading zeros).

use crate::status::FieldError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `IsValidIP`'s message.
pub const IP_FORMAT: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";
/// `IsValidCIDR`'s message.
pub const CIDR_FORMAT: &str = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";

fn parse_ipv4_sloppy(s: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = s.split('.');
    for o in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        // Leading zeros are decimal, as in Go before 1.17.
        let n = part.bytes().try_fold(0u32, |n, c| {
            let n = n * 10 + u32::from(c - b'0');
            (n <= 255).then_some(n)
        })?;
        *o = u8::try_from(n).ok()?;
    }
    parts.next().is_none().then_some(Ipv4Addr::from(octets))
}

/// `netutils.ParseIPSloppy`; IPv4-mapped IPv6 addresses come back as IPv4,
/// as Go's `net.IP.To4()` sees them.
pub fn parse_ip_sloppy(s: &str) -> Option<IpAddr> {
    if s.contains(':') {
        let v6: Ipv6Addr = s.parse().ok()?;
        return Some(IpAddr::V6(v6).to_canonical());
    }
    parse_ipv4_sloppy(s).map(IpAddr::V4)
}

/// Whether `s` parses and is IPv6 (`netutils.IsIPv6String`).
pub fn is_ipv6_string(s: &str) -> bool {
    matches!(parse_ip_sloppy(s), Some(IpAddr::V6(_)))
}

/// `netutils.ParseCIDRSloppy`: an address, `/` and a prefix length.
pub fn parse_cidr_sloppy(s: &str) -> Option<(IpAddr, u8)> {
    let (ip, len) = s.split_once('/')?;
    let ip = if ip.contains(':') { IpAddr::V6(ip.parse().ok()?) } else { IpAddr::V4(parse_ipv4_sloppy(ip)?) };
    if len.is_empty() || len.len() > 3 || !len.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let bits: u8 = len.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some((ip, bits))
}

/// `IsValidIP` at `path`.
pub fn validate_ip(path: &str, value: &str) -> Vec<FieldError> {
    match parse_ip_sloppy(value) {
        Some(_) => Vec::new(),
        None => vec![FieldError::invalid(path, value, IP_FORMAT)],
    }
}

/// `IsValidCIDR` at `path`.
pub fn validate_cidr(path: &str, value: &str) -> Vec<FieldError> {
    match parse_cidr_sloppy(value) {
        Some(_) => Vec::new(),
        None => vec![FieldError::invalid(path, value, CIDR_FORMAT)],
    }
}

fn is_link_local_unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

fn is_link_local_multicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.octets()[..3] == [224, 0, 0],
        IpAddr::V6(v6) => (v6.segments()[0] & 0xff0f) == 0xff02,
    }
}

/// `ValidateNonSpecialIP`: Endpoints, EndpointSlices and external IPs may not be
/// unspecified, loopback or link-local.
pub fn validate_non_special_ip(path: &str, value: &str) -> Vec<FieldError> {
    let Some(ip) = parse_ip_sloppy(value) else {
        return vec![FieldError::invalid(path, value, "must be a valid IP address")];
    };
    let mut errs = Vec::new();
    if ip.is_unspecified() {
        errs.push(FieldError::invalid(path, value, format!("may not be unspecified ({value})")));
    }
    if ip.is_loopback() {
        errs.push(FieldError::invalid(path, value, "may not be in the loopback range (127.0.0.0/8, ::1/128)"));
    }
    if is_link_local_unicast(ip) {
        errs.push(FieldError::invalid(path, value, "may not be in the link-local range (169.254.0.0/16, fe80::/10)"));
    }
    if is_link_local_multicast(ip) {
        errs.push(FieldError::invalid(path, value, "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(errs: Vec<FieldError>) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn sloppy_parsing_accepts_leading_zeros_and_maps_v4_in_v6() {
        assert_eq!(parse_ip_sloppy("010.001.0.1"), Some(IpAddr::V4(Ipv4Addr::new(10, 1, 0, 1))));
        assert_eq!(parse_ip_sloppy("::ffff:1.2.3.4"), Some(IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4))));
        assert!(parse_ip_sloppy("256.1.1.1").is_none());
        assert!(parse_ip_sloppy("1.2.3").is_none());
        assert!(parse_ip_sloppy("fe80::1%eth0").is_none());
        assert!(is_ipv6_string("2001:db8::1"));
        assert!(!is_ipv6_string("::ffff:1.2.3.4"));
        assert_eq!(parse_cidr_sloppy("10.0.0.0/8"), Some((IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)), 8)));
        assert!(parse_cidr_sloppy("10.0.0.0/33").is_none());
        assert!(parse_cidr_sloppy("10.0.0.0").is_none());
    }

    #[test]
    fn messages() {
        assert_eq!(texts(validate_ip("spec.clusterIPs[0]", "x")), ["spec.clusterIPs[0]: Invalid value: \"x\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]);
        assert_eq!(texts(validate_cidr("spec.LoadBalancerSourceRanges[0]", "1.2.3.4")), [
            "spec.LoadBalancerSourceRanges[0]: Invalid value: \"1.2.3.4\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
        ]);
        assert_eq!(texts(validate_non_special_ip("spec.externalIPs[0]", "0.0.0.0")), ["spec.externalIPs[0]: Invalid value: \"0.0.0.0\": may not be unspecified (0.0.0.0)"]);
        assert_eq!(texts(validate_non_special_ip("ip", "::1")), ["ip: Invalid value: \"::1\": may not be in the loopback range (127.0.0.0/8, ::1/128)"]);
        assert_eq!(texts(validate_non_special_ip("ip", "169.254.1.1")), ["ip: Invalid value: \"169.254.1.1\": may not be in the link-local range (169.254.0.0/16, fe80::/10)"]);
        assert_eq!(texts(validate_non_special_ip("ip", "224.0.0.5")), [
            "ip: Invalid value: \"224.0.0.5\": may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"
        ]);
        assert!(validate_non_special_ip("ip", "10.1.2.3").is_empty());
    }
}
