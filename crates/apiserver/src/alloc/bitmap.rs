//! A fixed-size bitmap of allocated offsets with random-start scanning.

/// Allocated offsets in `0..size`.
#[derive(Debug, Clone)]
pub struct Bitmap {
    size: u64,
    words: Vec<u64>,
    used: u64,
}

impl Bitmap {
    /// An empty bitmap of `size` offsets.
    pub fn new(size: u64) -> Self {
        Self { size, words: vec![0; size.div_ceil(64) as usize], used: 0 }
    }

    /// Number of offsets.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Number of allocated offsets.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// Whether `i` is allocated.
    pub fn test(&self, i: u64) -> bool {
        i < self.size && self.words[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    /// Marks `i`; false if it was already set or out of range.
    pub fn set(&mut self, i: u64) -> bool {
        if i >= self.size || self.test(i) {
            return false;
        }
        self.words[(i / 64) as usize] |= 1 << (i % 64);
        self.used += 1;
        true
    }

    /// Clears `i`; false if it was not set.
    pub fn clear(&mut self, i: u64) -> bool {
        if !self.test(i) {
            return false;
        }
        self.words[(i / 64) as usize] &= !(1 << (i % 64));
        self.used -= 1;
        true
    }

    /// The first free offset in `lo..hi`, scanning from `start` and wrapping.
    pub fn find_free(&self, lo: u64, hi: u64, start: u64) -> Option<u64> {
        let hi = hi.min(self.size);
        if lo >= hi {
            return None;
        }
        let span = hi - lo;
        let start = lo + (start % span);
        (0..span).map(|k| lo + (start - lo + k) % span).find(|i| !self.test(*i))
    }
}

/// A random number for picking a scan start (not security-sensitive).
pub fn random_u64() -> u64 {
    let b = uuid::Uuid::new_v4().into_bytes();
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_clear_and_scan() {
        let mut b = Bitmap::new(130);
        assert!(b.set(0));
        assert!(!b.set(0));
        assert!(b.set(129));
        assert!(!b.set(130));
        assert_eq!(b.used(), 2);
        assert_eq!(b.find_free(0, 130, 129), Some(1));
        assert!(b.clear(0));
        assert_eq!(b.find_free(0, 1, 5), Some(0));
        let mut full = Bitmap::new(3);
        (0..3).for_each(|i| {
            full.set(i);
        });
        assert_eq!(full.find_free(0, 3, 1), None);
    }
}
