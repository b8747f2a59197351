//! ClusterIP and NodePort allocators with upstream's error messages.

use super::bitmap::{Bitmap, random_u64};
use ipnet::IpNet;
use std::net::IpAddr;
use std::ops::RangeInclusive;

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

/// Upstream `calculateRangeOffset`: the size of the lower band kept for
/// user-chosen values, `min(max(min, size/step), max)`, none for tiny ranges.
fn static_band(size: u64, min: u64, step: u64, max: u64) -> u64 {
    if size <= min { 0 } else { (size / step).clamp(min, max) }
}

/// Upstream's `randomScanStrategyWithOffset`: a random free offset in the
/// upper band `band..size`, else one in the lower band.
fn pick(bits: &Bitmap, band: u64) -> Option<u64> {
    bits.find_free(band, bits.size(), random_u64()).or_else(|| bits.find_free(0, band, random_u64()))
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v) => u32::from(v).into(),
        IpAddr::V6(v) => v.into(),
    }
}

impl ClusterIpAllocator {
    /// All addresses of `cidr` except the network address (and broadcast
    /// for IPv4); IPv6 ranges are capped at 65536 addresses as upstream.
    pub fn new(cidr: IpNet) -> Self {
        let host_bits = u32::from(cidr.max_prefix_len() - cidr.prefix_len());
        let range_size: u128 = if host_bits >= 64 { u128::from(u64::MAX) } else { 1u128 << host_bits };
        let size = match cidr {
            IpNet::V4(_) => range_size.saturating_sub(2),
            IpNet::V6(_) => range_size.min(1 << 16).saturating_sub(1),
        } as u64;
        let static_band = static_band(range_size.min(u128::from(u64::MAX)) as u64, 16, 16, 256).min(size);
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
        let off = pick(&self.bits, self.static_band).ok_or(RangeError::Full)?;
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

/// The ClusterIP ranges of the cluster: one per configured family, the
/// primary (default) family first, as kube-apiserver's
/// `--service-cluster-ip-range` gives them.
#[derive(Debug, Clone)]
pub struct ServiceIpRanges {
    ranges: Vec<ClusterIpAllocator>,
}

impl ServiceIpRanges {
    /// Empty allocators over `cidrs` (primary first; at most one per family,
    /// as [`crate::cidrs::parse_dual_stack`] ensures).
    pub fn new(cidrs: &[IpNet]) -> Self {
        Self { ranges: cidrs.iter().map(|c| ClusterIpAllocator::new(*c)).collect() }
    }

    /// The configured families (`IPv4`/`IPv6`), primary first.
    pub fn families(&self) -> Vec<&'static str> {
        self.ranges.iter().map(|r| family_name(r.cidr().addr())).collect()
    }

    /// The range of a family, if configured.
    pub fn range(&self, family: &str) -> Option<&ClusterIpAllocator> {
        self.ranges.iter().find(|r| family_name(r.cidr().addr()) == family)
    }

    fn range_mut(&mut self, family: &str) -> Option<&mut ClusterIpAllocator> {
        self.ranges.iter_mut().find(|r| family_name(r.cidr().addr()) == family)
    }

    /// The primary range (the first configured).
    pub fn primary(&self) -> Option<&ClusterIpAllocator> {
        self.ranges.first()
    }

    /// Allocates a specific address in the range of its family (an address of
    /// an unconfigured family is out of the primary range).
    pub fn allocate(&mut self, ip: IpAddr) -> Result<(), RangeError> {
        let primary = self.ranges.first().map(|r| r.cidr().to_string()).unwrap_or_default();
        match self.range_mut(family_name(ip)) {
            Some(r) => r.allocate(ip),
            None => Err(RangeError::NotInRange(format!("the provided IP ({ip}) is not in the valid range. The range of valid IPs is {primary}"))),
        }
    }

    /// Allocates any free address of `family`; `None` when the family is not configured.
    pub fn allocate_next(&mut self, family: &str) -> Option<Result<IpAddr, RangeError>> {
        self.range_mut(family).map(ClusterIpAllocator::allocate_next)
    }

    /// Releases an address (no-op when not allocated or foreign).
    pub fn release(&mut self, ip: IpAddr) {
        if let Some(r) = self.range_mut(family_name(ip)) {
            r.release(ip);
        }
    }

    /// Whether an address is allocated.
    pub fn is_allocated(&self, ip: IpAddr) -> bool {
        self.range(family_name(ip)).is_some_and(|r| r.is_allocated(ip))
    }

    /// Number of allocated addresses over all families.
    pub fn used(&self) -> u64 {
        self.ranges.iter().map(ClusterIpAllocator::used).sum()
    }
}

/// `IPv4` or `IPv6`.
fn family_name(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() { "IPv4" } else { "IPv6" }
}

/// The NodePort range.
#[derive(Debug, Clone)]
pub struct NodePortAllocator {
    first: u16,
    last: u16,
    bits: Bitmap,
    static_band: u64,
}

impl NodePortAllocator {
    /// The ports of `range` (kube-apiserver's default is `30000..=32767`).
    pub fn new(range: RangeInclusive<u16>) -> Self {
        let (first, last) = (*range.start(), *range.end());
        let size = if last < first { 0 } else { u64::from(last - first) + 1 };
        // Upstream reserves the lower band (min 16, size/32, max 128) for user-chosen ports.
        Self { first, last, bits: Bitmap::new(size), static_band: static_band(size, 16, 32, 128) }
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

    /// Allocates any free port, preferring the dynamic (upper) band.
    pub fn allocate_next(&mut self) -> Result<i64, RangeError> {
        let off = pick(&self.bits, self.static_band).ok_or(RangeError::Full)?;
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

    /// Number of allocated ports.
    pub fn used(&self) -> u64 {
        self.bits.used()
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
        let mut p = NodePortAllocator::new(30000..=32767);
        assert_eq!(
            p.allocate(80).expect_err("range").to_string(),
            "provided port is not in the valid range. The range of valid ports is 30000-32767"
        );
        p.allocate(30080).expect("first");
        assert_eq!(p.allocate(30080).expect_err("dup").to_string(), "provided port is already allocated");
        let n = p.allocate_next().expect("next");
        assert!((30000..=32767).contains(&n) && n != 30080);
    }

    #[test]
    fn node_ports_prefer_the_upper_band_then_fill_the_lower() {
        // 2768 ports: the lower 86 (2768/32) are kept for user-chosen ports.
        let mut p = NodePortAllocator::new(30000..=32767);
        for _ in 0..200 {
            assert!(p.allocate_next().expect("dynamic") >= 30086);
        }
        // A small range fills both bands; a full one says so.
        let mut small = NodePortAllocator::new(100..=131);
        let mut got: Vec<i64> = (0..32).map(|_| small.allocate_next().expect("port")).collect();
        got.sort_unstable();
        assert_eq!(got, (100..=131).collect::<Vec<i64>>());
        assert_eq!(small.allocate_next(), Err(RangeError::Full));
        assert_eq!(small.used(), 32);
        small.release(117);
        assert_eq!(small.allocate_next(), Ok(117));
    }

    #[test]
    fn static_band_is_upstream_calculate_range_offset() {
        assert_eq!(static_band(16, 16, 16, 256), 0);
        assert_eq!(static_band(32, 16, 16, 256), 16);
        assert_eq!(static_band(1 << 20, 16, 16, 256), 256);
        assert_eq!(static_band(4096, 16, 16, 256), 256);
        assert_eq!(static_band(2048, 16, 16, 256), 128);
        assert_eq!(static_band(2768, 16, 32, 128), 86);
        assert_eq!(static_band(65536, 16, 32, 128), 128);
    }

    #[test]
    fn ipv6_ranges_exclude_only_the_network_address() {
        let mut a = ClusterIpAllocator::new("fd00::/120".parse().expect("cidr"));
        assert!(a.allocate("fd00::".parse().expect("ip")).is_err());
        a.allocate("fd00::ff".parse().expect("ip")).expect("last address is usable");
        let big = ClusterIpAllocator::new("fd00::/64".parse().expect("cidr"));
        assert_eq!(big.bits.size(), 65535);
    }
}
