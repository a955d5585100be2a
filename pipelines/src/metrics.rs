//! Voice-pipeline metrics: lock-free histograms of turn latencies, rendered
//! as Prometheus text.
//!
//! Recording is a few relaxed atomic adds (no lock, no allocation), so the
//! scheduler can record from the call path. Buckets are fixed, in
//! milliseconds, chosen around the latencies a caller notices.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the histogram buckets, in milliseconds.
pub const BUCKETS_MS: [u64; 16] = [
    10, 25, 50, 80, 100, 150, 200, 250, 350, 500, 750, 1000, 1500, 2000, 3000, 5000,
];

/// A histogram of millisecond latencies with fixed buckets ([`BUCKETS_MS`]).
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS_MS.len()],
    count: AtomicU64,
    /// Sum in microseconds (for a precise `_sum`).
    sum_us: AtomicU64,
}

impl Histogram {
    /// Record one value in milliseconds (fractions kept in the sum).
    pub fn record_ms(&self, ms: f64) {
        let ms = if ms.is_finite() { ms.max(0.0) } else { 0.0 };
        if let Some(i) = BUCKETS_MS.iter().position(|&b| ms <= b as f64) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add((ms * 1000.0).round() as u64, Ordering::Relaxed);
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Mean in milliseconds (0 when empty).
    pub fn mean_ms(&self) -> f64 {
        let n = self.count();
        if n == 0 {
            return 0.0;
        }
        self.sum_us.load(Ordering::Relaxed) as f64 / 1000.0 / n as f64
    }

    /// Upper bound of the bucket holding the `q` quantile (`None` when empty
    /// or above the last bucket).
    pub fn quantile_ms(&self, q: f64) -> Option<u64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= rank {
                return Some(BUCKETS_MS[i]);
            }
        }
        None
    }

    /// Append this histogram in Prometheus text format (times in seconds).
    pub fn write_prometheus(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            cumulative += b.load(Ordering::Relaxed);
            let le = BUCKETS_MS[i] as f64 / 1000.0;
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// Counters and latency histograms for every call a runtime serves.
#[derive(Debug, Default)]
pub struct VoiceMetrics {
    /// Calls currently served.
    pub calls_active: AtomicU64,
    /// Caller turns committed (speech or DTMF).
    pub turns: AtomicU64,
    /// Barge-ins (agent audio flushed because the caller spoke).
    pub barge_ins: AtomicU64,
    /// Events dropped because the runtime's event queue was full.
    pub events_dropped: AtomicU64,
    /// Inference jobs that failed.
    pub inference_errors: AtomicU64,
    /// Caller's last speech -> end-of-turn decision (media clock).
    pub endpoint_delay: Histogram,
    /// Final transcript: job submitted -> text back (wall clock, queueing included).
    pub stt: Histogram,
    /// Brain called -> first complete sentence (wall clock).
    pub brain_first_sentence: Histogram,
    /// First clause submitted to TTS -> its audio back (wall clock, queueing included).
    pub tts_first_audio: Histogram,
    /// Caller's last speech frame in -> agent's first frame out on the wire (media clock).
    pub voice_to_voice: Histogram,
    /// Caller speech onset -> agent audio flushed (media clock).
    pub barge_in_stop: Histogram,
}

impl VoiceMetrics {
    /// Prometheus text exposition of everything here.
    pub fn prometheus(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        for (name, help, v) in [
            (
                "vocelio_voice_calls_active",
                "Calls served by the voice pipeline now.",
                &self.calls_active,
            ),
            (
                "vocelio_voice_turns_total",
                "Caller turns committed.",
                &self.turns,
            ),
            (
                "vocelio_voice_barge_ins_total",
                "Agent replies cut off by the caller.",
                &self.barge_ins,
            ),
            (
                "vocelio_voice_events_dropped_total",
                "Pipeline events dropped (queue full).",
                &self.events_dropped,
            ),
            (
                "vocelio_voice_inference_errors_total",
                "STT or TTS jobs that failed.",
                &self.inference_errors,
            ),
        ] {
            let kind = if name.ends_with("_total") {
                "counter"
            } else {
                "gauge"
            };
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
        }
        for (name, help, h) in [
            (
                "vocelio_voice_endpoint_delay_seconds",
                "Caller's last speech to end-of-turn decision, media clock.",
                &self.endpoint_delay,
            ),
            (
                "vocelio_voice_stt_seconds",
                "Final transcript latency (queue + whisper), wall clock.",
                &self.stt,
            ),
            (
                "vocelio_voice_brain_first_sentence_seconds",
                "Brain call to first complete sentence, wall clock.",
                &self.brain_first_sentence,
            ),
            (
                "vocelio_voice_tts_first_audio_seconds",
                "First clause to its audio (queue + Piper), wall clock.",
                &self.tts_first_audio,
            ),
            (
                "vocelio_voice_voice_to_voice_seconds",
                "Caller's last speech frame in to agent's first frame out, media clock.",
                &self.voice_to_voice,
            ),
            (
                "vocelio_voice_barge_in_stop_seconds",
                "Caller speech onset to agent audio flushed, media clock.",
                &self.barge_in_stop,
            ),
        ] {
            h.write_prometheus(&mut out, name, help);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_quantiles_and_text() {
        let h = Histogram::default();
        assert_eq!(h.quantile_ms(0.5), None);
        for ms in [5.0, 60.0, 90.0, 120.0, 400.0] {
            h.record_ms(ms);
        }
        h.record_ms(99_999.0);
        assert_eq!(h.count(), 6);
        assert_eq!(h.quantile_ms(0.5), Some(100));
        assert_eq!(h.quantile_ms(0.0), Some(10));
        assert_eq!(h.quantile_ms(1.0), None, "above the last bucket");
        let mut s = String::new();
        h.write_prometheus(&mut s, "x_seconds", "test");
        assert!(s.contains("x_seconds_bucket{le=\"0.1\"} 3"), "{s}");
        assert!(s.contains("x_seconds_bucket{le=\"+Inf\"} 6"), "{s}");
        assert!(s.contains("x_seconds_count 6"), "{s}");
        let m = VoiceMetrics::default();
        m.voice_to_voice.record_ms(300.0);
        let text = m.prometheus();
        assert!(text.contains("vocelio_voice_voice_to_voice_seconds_count 1"));
        assert!(text.contains("# TYPE vocelio_voice_turns_total counter"));
    }
}
