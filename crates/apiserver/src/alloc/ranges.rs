//! ClusterIP and NodePort allocators with upstream's error messages.

use super::bitmap::{Bitmap, random_u64};
use ipnet::IpNet;
use std::net::IpAddr;

/// Why an allocation failed (texts are upstream's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// Taken already.
    #[error("provided {0} is already allocated")]
    Allocated(&'static str),
    /// Outside the range of this allocator.
    #[error("{0}")]
    NotInRange(String),
    /// Nothing left.
    #[error("range is full")]
    Full,
}

/// The service ClusterIP range.
#[derive(Debug, Clone)]
pub struct ClusterIpAllocator {
    cidr: IpNet,
    base: u128,
    bits: Bitmap,
    static_band: u64,
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v) => u32::from(v).into(),
        IpAddr::V6(v) => v.into(),
    }
}

impl ClusterIpAllocator {
    /// All addresses of `cidr` except the network address (and broadcast for IPv4).
    pub fn new(cidr: IpNet) -> Self {
        let host_bits = u32::from(cidr.max_prefix_len() - cidr.prefix_len());
        let total: u128 = if host_bits >= 64 { u128::from(u64::MAX) } else { 1u128 << host_bits };
        let size = match cidr {
            IpNet::V4(_) => total.saturating_sub(2),
            // Upstream caps IPv6 bitmaps; 2^16 addresses are plenty here.
            IpNet::V6(_) => total.saturating_sub(1).min(1 << 16),
        } as u64;
        // Upstream reserves the lower part of the range for static (user-chosen) IPs.
        let static_band = (size / 16).clamp(16, 256).min(size);
        Self { cidr, base: to_u128(cidr.network()) + 1, bits: Bitmap::new(size), static_band }
    }

    /// The range as configured.
    pub fn cidr(&self) -> IpNet {
        self.cidr
    }

    fn offset(&self, ip: IpAddr) -> Option<u64> {
        if !self.cidr.contains(&ip) {
            return None;
        }
        let v = to_u128(ip);
        (v >= self.base).then(|| v - self.base).and_then(|o| u64::try_from(o).ok()).filter(|o| *o < self.bits.size())
    }

    fn addr(&self, offset: u64) -> IpAddr {
        let v = self.base + u128::from(offset);
        match self.cidr {
            IpNet::V4(_) => IpAddr::V4(std::net::Ipv4Addr::from(v as u32)),
            IpNet::V6(_) => IpAddr::V6(std::net::Ipv6Addr::from(v)),
        }
    }

    /// Allocates a specific address.
    pub fn allocate(&mut self, ip: IpAddr) -> Result<(), RangeError> {
        let off = self.offset(ip).ok_or_else(|| {
            RangeError::NotInRange(format!("the provided IP ({ip}) is not in the valid range. The range of valid IPs is {}", self.cidr))
        })?;
        if self.bits.set(off) { Ok(()) } else { Err(RangeError::Allocated("IP")) }
    }

    /// Allocates any free address, preferring the dynamic (upper) band.
    pub fn allocate_next(&mut self) -> Result<IpAddr, RangeError> {
        let size = self.bits.size();
        let off = self
            .bits
            .find_free(self.static_band, size, random_u64())
            .or_else(|| self.bits.find_free(0, self.static_band, random_u64()))
            .ok_or(RangeError::Full)?;
        self.bits.set(off);
        Ok(self.addr(off))
    }

    /// Releases an address (no-op when not allocated or foreign).
    pub fn release(&mut self, ip: IpAddr) {
        if let Some(off) = self.offset(ip) {
            self.bits.clear(off);
        }
    }

    /// Whether an address is allocated.
    pub fn is_allocated(&self, ip: IpAddr) -> bool {
        self.offset(ip).is_some_and(|o| self.bits.test(o))
    }

    /// Number of allocated addresses.
    pub fn used(&self) -> u64 {
        self.bits.used()
    }
}

/// The NodePort range.
#[derive(Debug, Clone)]
pub struct NodePortAllocator {
    first: u16,
    last: u16,
    bits: Bitmap,
}

impl NodePortAllocator {
    /// Ports `first..=last`.
    pub fn new(first: u16, last: u16) -> Self {
        Self { first, last, bits: Bitmap::new(u64::from(last.saturating_sub(first)) + 1) }
    }

    /// The range as `first-last`.
    pub fn range(&self) -> String {
        format!("{}-{}", self.first, self.last)
    }

    fn offset(&self, port: i64) -> Option<u64> {
        (port >= i64::from(self.first) && port <= i64::from(self.last)).then(|| (port - i64::from(self.first)) as u64)
    }

    /// Allocates a specific port.
    pub fn allocate(&mut self, port: i64) -> Result<(), RangeError> {
        let off = self.offset(port).ok_or_else(|| {
            RangeError::NotInRange(format!("provided port is not in the valid range. The range of valid ports is {}", self.range()))
        })?;
        if self.bits.set(off) { Ok(()) } else { Err(RangeError::Allocated("port")) }
    }

    /// Allocates any free port.
    pub fn allocate_next(&mut self) -> Result<i64, RangeError> {
        let off = self.bits.find_free(0, self.bits.size(), random_u64()).ok_or(RangeError::Full)?;
        self.bits.set(off);
        Ok(i64::from(self.first) + off as i64)
    }

    /// Releases a port.
    pub fn release(&mut self, port: i64) {
        if let Some(off) = self.offset(port) {
            self.bits.clear(off);
        }
    }

    /// Whether a port is allocated.
    pub fn is_allocated(&self, port: i64) -> bool {
        self.offset(port).is_some_and(|o| self.bits.test(o))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ip_messages_and_bands() {
        let mut a = ClusterIpAllocator::new("10.96.0.0/12".parse().expect("cidr"));
        a.allocate("10.96.0.1".parse().expect("ip")).expect("first");
        assert_eq!(a.allocate("10.96.0.1".parse().expect("ip")).expect_err("dup").to_string(), "provided IP is already allocated");
        assert_eq!(
            a.allocate("1.1.1.1".parse().expect("ip")).expect_err("range").to_string(),
            "the provided IP (1.1.1.1) is not in the valid range. The range of valid IPs is 10.96.0.0/12"
        );
        assert!(a.allocate("10.96.0.0".parse().expect("ip")).is_err(), "network address is not allocatable");
        assert!(a.allocate("10.111.255.255".parse().expect("ip")).is_err(), "broadcast is not allocatable");
        for _ in 0..50 {
            let ip = a.allocate_next().expect("dynamic");
            // Dynamic addresses avoid the static band (the first 256 here).
            assert!(to_u128(ip) > to_u128("10.96.1.0".parse().expect("ip")), "{ip}");
        }
    }

    #[test]
    fn small_range_fills_up() {
        let mut a = ClusterIpAllocator::new("10.0.0.0/29".parse().expect("cidr"));
        let mut got = Vec::new();
        while let Ok(ip) = a.allocate_next() {
            got.push(ip);
        }
        assert_eq!(got.len(), 6);
        assert_eq!(a.allocate_next(), Err(RangeError::Full));
        a.release(got[0]);
        assert_eq!(a.allocate_next(), Ok(got[0]));
    }

    #[test]
    fn node_port_messages() {
        let mut p = NodePortAllocator::new(30000, 32767);
        assert_eq!(
            p.allocate(80).expect_err("range").to_string(),
            "provided port is not in the valid range. The range of valid ports is 30000-32767"
        );
        p.allocate(30080).expect("first");
        assert_eq!(p.allocate(30080).expect_err("dup").to_string(), "provided port is already allocated");
        let n = p.allocate_next().expect("next");
        assert!((30000..=32767).contains(&n) && n != 30080);
    }
}
