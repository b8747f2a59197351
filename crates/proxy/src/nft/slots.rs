//! Endpoint slots: every Service port's endpoints live in a contiguous block
//! of integer slots of a shared map (`endpoint-slots-N : slot → ip . port`),
//! so a Service chain picks an endpoint with one
//! `numgen random mod LEN offset BASE map @endpoint-slots-N` instead of an
//! anonymous map of its own (each anonymous set is a kernel object, and
//! loading 10k of them takes ~20 s).
//!
//! The slots are spread over shards of [`SHARD_SLOTS`] slots, each its own
//! map: the kernel pays (rules bound to a map) × (elements in it) when rules
//! and elements meet in one transaction, and a name lookup over all maps per
//! rule, so neither one huge map nor one map per Service scales.
//!
//! Each transport protocol has its own shards (`endpoint-slots-N` for TCP,
//! `endpoint-slots-udp-N`, `endpoint-slots-sctp-N`): a map's `typeof ... :
//! ip daddr . tcp dport` names a protocol, and nft 1.0.6 refuses a run that
//! defines a TCP-typed map and first uses it from a UDP rule ("conflicting
//! protocols specified: udp vs. tcp"), so a full sync with a multi-endpoint
//! UDP Service failed while one map served every protocol.
//!
//! The allocator is pure: a full sync builds it afresh from the desired state
//! (in key order, so the result is deterministic); incremental syncs place,
//! grow and free blocks. Freed slots become reusable only after [`Slots::settle`],
//! i.e. in the next transaction, so one transaction never deletes and adds the
//! same slot for two different Services.

use std::collections::{BTreeMap, HashMap};

/// Slots per shard map (a block larger than this gets a shard of its own).
pub const SHARD_SLOTS: u32 = 512;

/// The transport protocols with shards of their own, in pool order.
pub const PROTOCOLS: [&str; 3] = ["tcp", "udp", "sctp"];

/// Shard numbers carry their pool above this bit.
const POOL_SHIFT: u32 = 20;

fn pool_of(protocol: &str) -> usize {
    PROTOCOLS.iter().position(|p| *p == protocol).unwrap_or(0)
}

/// A shard number's pool and its index within the pool.
fn split(shard: u32) -> (usize, u32) {
    (((shard >> POOL_SHIFT) as usize).min(PROTOCOLS.len() - 1), shard & ((1 << POOL_SHIFT) - 1))
}

/// The transport protocol whose endpoints shard `shard` holds.
pub fn shard_protocol(shard: u32) -> &'static str {
    PROTOCOLS[split(shard).0]
}

/// The name of shard `n`'s map.
pub fn map_name(shard: u32) -> String {
    match split(shard) {
        (0, index) => format!("endpoint-slots-{index}"),
        (pool, index) => format!("endpoint-slots-{}-{index}", PROTOCOLS[pool]),
    }
}

/// The shard a map name from [`map_name`] stands for.
pub fn shard_of_map(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("endpoint-slots-")?;
    let (pool, index) = PROTOCOLS.iter().enumerate().skip(1).find_map(|(i, p)| Some((i, rest.strip_prefix(p)?.strip_prefix('-')?))).unwrap_or((0, rest));
    let index: u32 = index.parse().ok()?;
    (index < 1 << POOL_SHIFT).then_some(((pool as u32) << POOL_SHIFT) | index)
}

/// A block of slots owned by one endpoint list of one Service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// Shard (map) number.
    pub shard: u32,
    /// First slot.
    pub base: u32,
    /// Slots reserved (at least the number of endpoints).
    pub len: u32,
}

#[derive(Debug, Clone, Default)]
struct Shard {
    capacity: u32,
    /// Free runs below `top`: base → len, coalesced.
    free: BTreeMap<u32, u32>,
    /// Slots from here to `capacity` were never handed out.
    top: u32,
}

/// The slot allocator.
#[derive(Debug, Clone, Default)]
pub struct Slots {
    /// Shards per protocol pool (see [`PROTOCOLS`]).
    shards: [Vec<Shard>; 3],
    owners: HashMap<String, Block>,
    pending: Vec<Block>,
}

/// The block size reserved for `n` endpoints: the next power of two, so a
/// Service that grows by one endpoint usually keeps its block.
fn reserve(n: u32) -> u32 {
    n.max(2).next_power_of_two()
}

impl Shard {
    fn take(&mut self, len: u32) -> Option<u32> {
        if let Some((&base, &run)) = self.free.iter().find(|(_, run)| **run >= len) {
            self.free.remove(&base);
            if run > len {
                self.free.insert(base + len, run - len);
            }
            return Some(base);
        }
        if self.capacity - self.top >= len {
            self.top += len;
            return Some(self.top - len);
        }
        None
    }

    fn give(&mut self, base: u32, len: u32) {
        let (mut base, mut len) = (base, len);
        if let Some((&b, &l)) = self.free.range(..base).next_back() {
            if b + l == base {
                self.free.remove(&b);
                base = b;
                len += l;
            }
        }
        if let Some(l) = self.free.remove(&(base + len)) {
            len += l;
        }
        if base + len == self.top {
            self.top = base;
        } else {
            self.free.insert(base, len);
        }
    }
}

impl Slots {
    /// The block for `owner` holding `n` endpoints of `protocol`: its
    /// current one when it still fits (and is not four times too big), else a
    /// new one; a replaced block is freed at the next [`Slots::settle`].
    pub fn place(&mut self, owner: &str, protocol: &str, n: u32) -> Block {
        let want = reserve(n);
        if let Some(b) = self.owners.get(owner) {
            if n <= b.len && b.len <= want * 4 {
                return *b;
            }
        }
        self.remove(owner);
        let block = self.allocate(pool_of(protocol), want);
        self.owners.insert(owner.to_owned(), block);
        block
    }

    /// Frees `owner`'s block (at the next [`Slots::settle`]).
    pub fn remove(&mut self, owner: &str) {
        if let Some(b) = self.owners.remove(owner) {
            self.pending.push(b);
        }
    }

    /// Makes the blocks freed since the last call reusable (call after the
    /// transaction that stopped using them).
    pub fn settle(&mut self) {
        for b in std::mem::take(&mut self.pending) {
            let (pool, index) = split(b.shard);
            if let Some(s) = self.shards[pool].get_mut(index as usize) {
                s.give(b.base, b.len);
            }
        }
    }

    /// The block `owner` holds, if any.
    pub fn get(&self, owner: &str) -> Option<Block> {
        self.owners.get(owner).copied()
    }

    /// Number of shard maps in use, over all protocols.
    pub fn shard_count(&self) -> u32 {
        self.shards.iter().map(|p| p.len() as u32).sum()
    }

    fn allocate(&mut self, pool: usize, len: u32) -> Block {
        let tag = (pool as u32) << POOL_SHIFT;
        let shards = &mut self.shards[pool];
        for (i, s) in shards.iter_mut().enumerate() {
            if let Some(base) = s.take(len) {
                return Block { shard: tag | i as u32, base, len };
            }
        }
        let mut s = Shard { capacity: SHARD_SLOTS.max(len), ..Shard::default() };
        let base = s.take(len).unwrap_or(0);
        shards.push(s);
        Block { shard: tag | (shards.len() as u32 - 1), base, len }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlaps(a: Block, b: Block) -> bool {
        a.shard == b.shard && a.base < b.base + b.len && b.base < a.base + a.len
    }

    #[test]
    fn blocks_are_contiguous_disjoint_and_packed_into_shards() {
        let mut s = Slots::default();
        let blocks: Vec<Block> = (0..100).map(|i| s.place(&format!("svc-{i}"), "tcp", 10)).collect();
        for (i, a) in blocks.iter().enumerate() {
            assert_eq!(a.len, 16, "10 endpoints reserve 16 slots");
            assert!(a.base + a.len <= SHARD_SLOTS);
            for b in &blocks[i + 1..] {
                assert!(!overlaps(*a, *b), "{a:?} overlaps {b:?}");
            }
        }
        assert_eq!(s.shard_count(), 4, "32 blocks of 16 per 512-slot shard");
        assert_eq!(blocks[32], Block { shard: 1, base: 0, len: 16 });
    }

    #[test]
    fn growth_keeps_the_block_while_it_fits_and_moves_when_it_does_not() {
        let mut s = Slots::default();
        let a = s.place("a", "tcp", 3);
        let b = s.place("b", "tcp", 3);
        assert_eq!((a.base, a.len, b.base), (0, 4, 4));
        assert_eq!(s.place("a", "tcp", 4), a, "4 endpoints still fit in 4 slots");
        let grown = s.place("a", "tcp", 5);
        assert_eq!((grown.base, grown.len), (8, 8), "grown past b, not over it");
        s.settle();
        assert_eq!(s.place("c", "tcp", 2).base, 0, "a's old block is reused after settle");
    }

    #[test]
    fn freed_slots_are_not_reused_before_settle() {
        let mut s = Slots::default();
        let a = s.place("a", "tcp", 10);
        s.remove("a");
        let b = s.place("b", "tcp", 10);
        assert!(!overlaps(a, b), "same transaction: a's slots are still being deleted");
        s.settle();
        assert_eq!(s.place("c", "tcp", 10), a);
    }

    #[test]
    fn shrinking_far_below_the_block_reallocates() {
        let mut s = Slots::default();
        let big = s.place("a", "tcp", 100);
        assert_eq!(big.len, 128);
        assert_eq!(s.place("a", "tcp", 40), big, "40 of 128 is kept");
        let small = s.place("a", "tcp", 2);
        assert_eq!(small.len, 2);
        assert_ne!(small.base, big.base);
    }

    #[test]
    fn fragmentation_coalesces_neighbouring_free_runs() {
        let mut s = Slots::default();
        let blocks: Vec<Block> = (0..32).map(|i| s.place(&format!("s{i}"), "tcp", 16)).collect();
        assert_eq!(s.shard_count(), 1);
        // Free every other block: 16 holes of 16, none fits 32.
        for i in (0..32).step_by(2) {
            s.remove(&format!("s{i}"));
        }
        s.settle();
        let wide = s.place("wide", "tcp", 32);
        assert_eq!(wide.shard, 1, "no run of 32 free in shard 0");
        // Free s1 too: s0, s1, s2 now form one run of 48 at 0.
        s.remove("s1");
        s.settle();
        assert_eq!(s.place("wide2", "tcp", 32), Block { shard: 0, base: 0, len: 32 }, "the coalesced run takes 32");
        assert_eq!(s.place("rest", "tcp", 16), Block { shard: 0, base: 32, len: 16 }, "its remainder is still free");
        assert_eq!(blocks[3].base, 48, "s3 was not touched");
    }

    #[test]
    fn a_block_larger_than_a_shard_gets_its_own_map() {
        let mut s = Slots::default();
        s.place("small", "tcp", 2);
        let huge = s.place("huge", "tcp", 1000);
        assert_eq!(huge, Block { shard: 1, base: 0, len: 1024 });
        s.remove("huge");
        s.settle();
        assert_eq!(s.place("next", "tcp", 700), Block { shard: 1, base: 0, len: 1024 }, "the freed big shard is reused");
    }

    #[test]
    fn each_protocol_has_shards_of_its_own() {
        let mut s = Slots::default();
        let t = s.place("t", "tcp", 2);
        let u = s.place("u", "udp", 2);
        let x = s.place("x", "sctp", 2);
        assert_eq!((map_name(t.shard), map_name(u.shard), map_name(x.shard)), ("endpoint-slots-0".into(), "endpoint-slots-udp-0".into(), "endpoint-slots-sctp-0".into()));
        assert_eq!((shard_protocol(t.shard), shard_protocol(u.shard), shard_protocol(x.shard)), ("tcp", "udp", "sctp"));
        assert_eq!([t, u, x].map(|b| shard_of_map(&map_name(b.shard))), [t, u, x].map(|b| Some(b.shard)), "names map back to shards");
        assert_eq!(shard_of_map("endpoint-slots-tcp-0"), None);
        assert_eq!((t.base, u.base, x.base), (0, 0, 0), "pools do not share slots");
        s.remove("u");
        s.settle();
        assert_eq!(s.place("u2", "udp", 2), u, "a freed UDP block is reused by UDP");
        assert_eq!(s.shard_count(), 3);
    }
}
