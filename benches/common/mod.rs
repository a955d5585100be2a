//! Shared by the benches: an operation under test, and timing one call at a
//! time for percentiles (criterion reports means and medians, not p99).

use std::time::Instant;

/// One operation under test, run once per call.
pub type Op = Box<dyn FnMut()>;

/// p50 and p99 in nanoseconds of `samples` individually timed calls, after 1000 warm-up calls.
pub fn percentiles(op: &mut Op, samples: usize) -> (u64, u64) {
    for _ in 0..1000 {
        op();
    }
    let mut t = Vec::with_capacity(samples);
    for _ in 0..samples {
        let start = Instant::now();
        op();
        t.push(start.elapsed().as_nanos() as u64);
    }
    t.sort_unstable();
    (t[t.len() / 2].max(1), t[t.len() * 99 / 100].max(1))
}
