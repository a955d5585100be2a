//! A deadline queue with lazy deletion, shared by the transaction layer and
//! the 2xx retransmitter.
//!
//! Owners keep the authoritative deadline of each entry themselves and push a
//! new heap entry whenever it changes; an entry whose deadline no longer
//! matches is stale and skipped (`prune`). `poll_timeout` is then a peek.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

#[derive(Debug)]
struct Entry<K> {
    at: Instant,
    seq: u64,
    key: K,
}

impl<K> PartialEq for Entry<K> {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at && self.seq == other.seq
    }
}

impl<K> Eq for Entry<K> {}

impl<K> PartialOrd for Entry<K> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<K> Ord for Entry<K> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Min-heap of `(deadline, key)`; ties fire in push order.
#[derive(Debug)]
pub(super) struct TimerQueue<K> {
    heap: BinaryHeap<Reverse<Entry<K>>>,
    seq: u64,
}

impl<K> Default for TimerQueue<K> {
    fn default() -> Self {
        TimerQueue {
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }
}

impl<K> TimerQueue<K> {
    pub(super) fn push(&mut self, at: Instant, key: K) {
        self.seq = self.seq.wrapping_add(1);
        self.heap.push(Reverse(Entry {
            at,
            seq: self.seq,
            key,
        }));
    }

    pub(super) fn peek(&self) -> Option<(Instant, &K)> {
        self.heap.peek().map(|Reverse(e)| (e.at, &e.key))
    }

    pub(super) fn pop(&mut self) -> Option<(Instant, K)> {
        self.heap.pop().map(|Reverse(e)| (e.at, e.key))
    }

    /// Pops stale entries off the top, and rebuilds the heap without stale
    /// entries once they outnumber the live ones (so deadline churn cannot
    /// grow it without bound).
    pub(super) fn prune(
        &mut self,
        live_entries: usize,
        mut is_live: impl FnMut(Instant, &K) -> bool,
    ) {
        while let Some((at, key)) = self.peek() {
            if is_live(at, key) {
                break;
            }
            self.heap.pop();
        }
        if self.heap.len() > 2 * live_entries + 64 {
            self.heap.retain(|Reverse(e)| is_live(e.at, &e.key));
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.heap.len()
    }
}

/// `t + d`, saturating at `t` on overflow (unreachable with a validated
/// config; a panic on a far-future `Instant` would be worse).
pub(super) fn after(t: Instant, d: Duration) -> Instant {
    t.checked_add(d).unwrap_or(t)
}
