//! Media-plane metrics shared by every call task: lock-free counters and a
//! log-linear latency histogram (no locks, no allocation when recording).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Sub-buckets per power of two (12.5 % resolution).
const SUB: u32 = 8;
/// Smallest tracked value: 2^6 ns = 64 ns; everything below lands in bucket 0.
const MIN_POW: u32 = 6;
/// Powers of two tracked: 64 ns .. 2^(6+26) ns (~4 s).
const POWS: u32 = 26;
const BUCKETS: usize = (POWS * SUB) as usize + 1;

/// A histogram of durations with ~12 % resolution from 64 ns to ~4 s.
#[derive(Debug)]
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_ns: AtomicU64,
    max_ns: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
            max_ns: AtomicU64::new(0),
        }
    }
}

fn bucket_of(ns: u64) -> usize {
    if ns < (1 << MIN_POW) {
        return 0;
    }
    let pow = 63 - ns.leading_zeros();
    let sub = ((ns >> (pow - 3)) & u64::from(SUB - 1)) as u32;
    let idx = (pow - MIN_POW) * SUB + sub + 1;
    (idx as usize).min(BUCKETS - 1)
}

/// Upper bound (ns) of a bucket.
fn bucket_upper(idx: usize) -> u64 {
    if idx == 0 {
        return 1 << MIN_POW;
    }
    let i = idx as u32 - 1;
    let pow = i / SUB + MIN_POW;
    let sub = u64::from(i % SUB);
    (1u64 << pow) + ((sub + 1) << (pow - 3))
}

impl Histogram {
    /// Record one duration.
    pub fn record(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(ns)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
        self.max_ns.fetch_max(ns, Ordering::Relaxed);
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The `q` quantile (0.0-1.0), as the upper bound of its bucket.
    pub fn quantile(&self, q: f64) -> Duration {
        let total = self.count();
        if total == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= rank {
                let max = self.max_ns.load(Ordering::Relaxed);
                return Duration::from_nanos(bucket_upper(i).min(max));
            }
        }
        Duration::from_nanos(self.max_ns.load(Ordering::Relaxed))
    }

    /// Largest value recorded.
    pub fn max(&self) -> Duration {
        Duration::from_nanos(self.max_ns.load(Ordering::Relaxed))
    }

    /// Mean of the values recorded.
    pub fn mean(&self) -> Duration {
        let sum = self.sum_ns.load(Ordering::Relaxed);
        Duration::from_nanos(sum.checked_div(self.count()).unwrap_or(0))
    }

    /// Forget everything (between benchmark phases).
    pub fn reset(&self) {
        for b in self.buckets.iter() {
            b.store(0, Ordering::Relaxed);
        }
        self.count.store(0, Ordering::Relaxed);
        self.sum_ns.store(0, Ordering::Relaxed);
        self.max_ns.store(0, Ordering::Relaxed);
    }
}

/// Counters and histograms for the whole media plane.
#[derive(Debug, Default)]
pub struct MediaMetrics {
    /// Calls with media running now.
    pub calls_active: AtomicI64,
    /// Calls whose media ever started.
    pub calls_total: AtomicU64,
    /// Per-call tick work: jitter pull, decode, port, encode (no syscalls).
    pub frame_time: Histogram,
    /// Per-call send of the tick's packets (the `sendto` system calls).
    pub send_time: Histogram,
    /// How late a call's tick ran after the clock's deadline.
    pub tick_lateness: Histogram,
    /// Ticks that ran more than one frame (20 ms) late.
    pub late_frames: AtomicU64,
    /// Ticks skipped because a call fell more than a few frames behind.
    pub skipped_ticks: AtomicU64,
    /// RTP packets received and accepted.
    pub packets_in: AtomicU64,
    /// RTP packets sent.
    pub packets_out: AtomicU64,
    /// Datagrams dropped for coming from the wrong source (RTP bleed).
    pub wrong_source: AtomicU64,
    /// Malformed datagrams.
    pub malformed: AtomicU64,
    /// Sends that failed or would have blocked (dropped, never awaited).
    pub send_errors: AtomicU64,
    /// DTMF digits received (RTP and SIP INFO).
    pub dtmf_in: AtomicU64,
}

impl MediaMetrics {
    /// Add to a counter.
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// Read a counter.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    /// Zero the histograms and the lateness counters (between benchmark phases).
    pub fn reset(&self) {
        self.frame_time.reset();
        self.send_time.reset();
        self.tick_lateness.reset();
        for c in [
            &self.late_frames,
            &self.skipped_ticks,
            &self.packets_in,
            &self.packets_out,
            &self.send_errors,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }

    /// Prometheus text exposition of these metrics.
    pub fn prometheus(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        counter(
            "vocelio_media_calls_total",
            "Calls whose media started.",
            Self::get(&self.calls_total),
        );
        counter(
            "vocelio_media_late_frames_total",
            "Media ticks that ran more than 20 ms late.",
            Self::get(&self.late_frames),
        );
        counter(
            "vocelio_media_packets_in_total",
            "RTP packets accepted.",
            Self::get(&self.packets_in),
        );
        counter(
            "vocelio_media_packets_out_total",
            "RTP packets sent.",
            Self::get(&self.packets_out),
        );
        counter(
            "vocelio_media_wrong_source_total",
            "Datagrams dropped from a source other than the call's peer.",
            Self::get(&self.wrong_source),
        );
        counter(
            "vocelio_media_malformed_total",
            "Malformed RTP/RTCP datagrams.",
            Self::get(&self.malformed),
        );
        counter(
            "vocelio_media_send_errors_total",
            "RTP/RTCP sends that failed.",
            Self::get(&self.send_errors),
        );
        let _ = writeln!(
            s,
            "# HELP vocelio_media_calls_active Calls with media running.\n# TYPE vocelio_media_calls_active gauge\nvocelio_media_calls_active {}",
            self.calls_active.load(Ordering::Relaxed)
        );
        for (name, h) in [
            ("vocelio_media_frame_seconds", &self.frame_time),
            ("vocelio_media_send_seconds", &self.send_time),
            ("vocelio_media_tick_lateness_seconds", &self.tick_lateness),
        ] {
            let _ = writeln!(s, "# TYPE {name} summary");
            for q in [0.5, 0.9, 0.99] {
                let _ = writeln!(
                    s,
                    "{name}{{quantile=\"{q}\"}} {:.9}",
                    h.quantile(q).as_secs_f64()
                );
            }
            let _ = writeln!(
                s,
                "{name}_sum {:.9}\n{name}_count {}",
                h.mean().as_secs_f64() * h.count() as f64,
                h.count()
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut last = 0;
        for ns in [
            0u64,
            63,
            64,
            65,
            100,
            1_000,
            1_234,
            9_999,
            20_000_000,
            1 << 40,
        ] {
            let b = bucket_of(ns);
            assert!(b >= last, "{ns}");
            last = b;
            if (64..(1 << 31)).contains(&ns) {
                let up = bucket_upper(b);
                assert!(up >= ns, "{ns} -> upper {up}");
                assert!(up as f64 <= ns as f64 * 1.13 + 1.0, "{ns} -> upper {up}");
            }
        }
    }

    #[test]
    fn quantiles() {
        let h = Histogram::default();
        for i in 1..=1000u64 {
            h.record(Duration::from_micros(i));
        }
        let p50 = h.quantile(0.5).as_micros();
        let p99 = h.quantile(0.99).as_micros();
        assert!((500..=570).contains(&p50), "{p50}");
        assert!((990..=1000).contains(&p99), "{p99}");
        assert_eq!(h.max(), Duration::from_micros(1000));
    }
}
