//! RTP port allocation from the configured range: even ports for RTP (the
//! odd one above for RTCP), handed out round-robin so a port just released is
//! not reused at once (late packets of the old call would land in the new one).

use std::collections::BTreeSet;

/// Errors from the allocator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PortError {
    /// The range has no even port with room for RTCP above it.
    #[error("RTP port range {min}-{max} holds no RTP/RTCP pair")]
    EmptyRange {
        /// Lowest port.
        min: u16,
        /// Highest port.
        max: u16,
    },
}

/// Hands out RTP ports and takes them back on hangup.
#[derive(Debug, Clone)]
pub struct PortAllocator {
    first: u16,
    pairs: u16,
    next: u16,
    in_use: BTreeSet<u16>,
}

impl PortAllocator {
    /// Ports from `min` to `max` inclusive.
    pub fn new(min: u16, max: u16) -> Result<Self, PortError> {
        let first = min
            .checked_add(min % 2)
            .ok_or(PortError::EmptyRange { min, max })?;
        if first >= max {
            return Err(PortError::EmptyRange { min, max });
        }
        let pairs = (max - first).div_ceil(2).max(1);
        Ok(PortAllocator {
            first,
            pairs,
            next: 0,
            in_use: BTreeSet::new(),
        })
    }

    /// An unused RTP port, or `None` when all are taken.
    pub fn allocate(&mut self) -> Option<u16> {
        if self.in_use.len() >= usize::from(self.pairs) {
            return None;
        }
        for _ in 0..self.pairs {
            let port = self.first + 2 * self.next;
            self.next = (self.next + 1) % self.pairs;
            if self.in_use.insert(port) {
                return Some(port);
            }
        }
        None
    }

    /// Give `port` back.
    pub fn release(&mut self, port: u16) {
        self.in_use.remove(&port);
    }

    /// Ports handed out and not yet released.
    pub fn in_use(&self) -> usize {
        self.in_use.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_ports_round_robin_and_exhaustion() {
        let mut p = PortAllocator::new(10_001, 10_008).unwrap();
        let got: Vec<u16> = std::iter::from_fn(|| p.allocate()).collect();
        assert_eq!(got, vec![10_002, 10_004, 10_006]);
        assert_eq!(p.allocate(), None);
        p.release(10_004);
        assert_eq!(p.allocate(), Some(10_004));
        assert_eq!(p.in_use(), 3);
        assert!(PortAllocator::new(20_000, 20_000).is_err());
        assert!(PortAllocator::new(u16::MAX, u16::MAX).is_err());
    }
}
