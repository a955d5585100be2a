//! RFC 3550 receive statistics, sequence/timestamp unwrapping and an E-model
//! MOS estimate.
//!
//! - [`SeqUnwrapper`] and [`TsUnwrapper`] extend 16-bit sequence numbers and
//!   32-bit timestamps to monotonic 64-bit values for the jitter buffer.
//! - [`ReceiveStats`] is RFC 3550 Appendix A.1 (source validation), A.3
//!   (loss) and A.8 (interarrival jitter), producing the numbers of an RTCP
//!   report block.
//! - [`mos`] is the simplified ITU-T G.107 E-model VoIP monitors use.
//!
//! Sans-IO: arrival time is an argument.

use std::time::Instant;

/// Extends 16-bit RTP sequence numbers to 64 bits.
///
/// Each number is placed in the cycle that puts it nearest (within 32768)
/// to the highest seen so far, so reordering across a wrap lands on the
/// right side of it. The first number goes into cycle 1 (its value plus
/// 65536), so a packet reordered from before it, even across a wrap, still
/// gets a smaller value; only differences between values mean anything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqUnwrapper(Extender<16>);

impl SeqUnwrapper {
    /// An unwrapper that has seen nothing.
    pub const fn new() -> Self {
        SeqUnwrapper(Extender::new())
    }

    /// The extended value of `seq`.
    pub fn unwrap(&mut self, seq: u16) -> u64 {
        self.0.extend(u64::from(seq))
    }

    /// The highest extended value so far.
    pub fn highest(&self) -> Option<u64> {
        self.0.highest
    }

    /// Forget everything (a new SSRC).
    pub fn reset(&mut self) {
        self.0.highest = None;
    }
}

/// Extends 32-bit RTP timestamps to 64 bits; see [`SeqUnwrapper`] (same
/// rule with a half-range of 2^31, and the first value in cycle 1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TsUnwrapper(Extender<32>);

impl TsUnwrapper {
    /// An unwrapper that has seen nothing.
    pub const fn new() -> Self {
        TsUnwrapper(Extender::new())
    }

    /// The extended value of `ts`.
    pub fn unwrap(&mut self, ts: u32) -> u64 {
        self.0.extend(u64::from(ts))
    }

    /// The highest extended value so far.
    pub fn highest(&self) -> Option<u64> {
        self.0.highest
    }

    /// Forget everything (a new SSRC).
    pub fn reset(&mut self) {
        self.0.highest = None;
    }
}

/// The rule both unwrappers share, for a `BITS`-wide wrapping counter: the
/// value closest to the highest so far (within half the range either way),
/// with the first value placed in cycle 1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Extender<const BITS: u32> {
    highest: Option<u64>,
}

impl<const BITS: u32> Extender<BITS> {
    const MASK: u64 = (1 << BITS) - 1;

    const fn new() -> Self {
        Extender { highest: None }
    }

    fn extend(&mut self, value: u64) -> u64 {
        let Some(highest) = self.highest else {
            let first = (1 << BITS) + value;
            self.highest = Some(first);
            return first;
        };
        // The wrapped difference, sign-extended from BITS bits.
        let diff = value.wrapping_sub(highest) & Self::MASK;
        let delta = ((diff << (64 - BITS)) as i64) >> (64 - BITS);
        let ext = highest.saturating_add_signed(delta);
        if ext > highest {
            self.highest = Some(ext);
        }
        ext
    }
}

/// Sequential packets needed before a source is valid (RFC 3550 A.1).
pub const MIN_SEQUENTIAL: u32 = 2;
/// Largest forward jump still taken as the same sequence (A.1).
pub const MAX_DROPOUT: u16 = 3000;
/// Largest backward jump taken as reordering rather than a restart (A.1).
pub const MAX_MISORDER: u16 = 100;
const RTP_SEQ_MOD: u32 = 1 << 16;

/// The numbers of an RTCP reception report block (RFC 3550 6.4.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportNumbers {
    /// Packets lost since the previous report, as a fraction of 256.
    pub fraction_lost: u8,
    /// Packets lost since the start, clamped to 24-bit signed.
    pub cumulative_lost: i32,
    /// Cycles in the top 16 bits, highest sequence number in the low 16.
    pub extended_highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
}

/// Per-source receive statistics (RFC 3550 A.1, A.3, A.8).
#[derive(Debug, Clone)]
pub struct ReceiveStats {
    clock_rate: u32,
    started: bool,
    max_seq: u16,
    cycles: u64,
    base_seq: u64,
    bad_seq: u32,
    probation: u32,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    epoch: Option<Instant>,
    transit: Option<u32>,
    /// Jitter scaled by 16, as in A.8.
    jitter_q4: u32,
}

impl ReceiveStats {
    /// Statistics for a stream with RTP clock `clock_rate` (Hz, non-zero).
    pub fn new(clock_rate: u32) -> Self {
        ReceiveStats {
            clock_rate: clock_rate.max(1),
            started: false,
            max_seq: 0,
            cycles: 0,
            base_seq: 0,
            bad_seq: RTP_SEQ_MOD + 1,
            probation: 0,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            epoch: None,
            transit: None,
            jitter_q4: 0,
        }
    }

    fn init_seq(&mut self, seq: u16) {
        self.base_seq = u64::from(seq);
        self.max_seq = seq;
        self.bad_seq = RTP_SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
        self.transit = None;
        self.jitter_q4 = 0;
    }

    /// Account for a packet that arrived at `now`. Returns whether it counts
    /// as valid (false while the source is on probation, and for a big jump
    /// until a second packet confirms it as a restart).
    pub fn on_packet(&mut self, now: Instant, seq: u16, timestamp: u32) -> bool {
        if !self.started {
            self.started = true;
            self.init_seq(seq);
            self.max_seq = seq.wrapping_sub(1);
            self.probation = MIN_SEQUENTIAL;
        }
        if !self.update_seq(seq) {
            return false;
        }
        self.update_jitter(now, timestamp);
        true
    }

    /// RFC 3550 A.1 `update_seq`.
    fn update_seq(&mut self, seq: u16) -> bool {
        let udelta = seq.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.init_seq(seq);
                    self.received += 1;
                    return true;
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = seq;
            }
            return false;
        } else if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles += u64::from(RTP_SEQ_MOD);
            }
            self.max_seq = seq;
        } else if u32::from(udelta) <= RTP_SEQ_MOD - u32::from(MAX_MISORDER) {
            // A very large jump: a restart if the next packet follows it.
            if u32::from(seq) == self.bad_seq {
                self.init_seq(seq);
            } else {
                self.bad_seq = (u32::from(seq) + 1) & (RTP_SEQ_MOD - 1);
                return false;
            }
        }
        // Otherwise a duplicate or reordered packet: counted as received.
        self.received += 1;
        true
    }

    /// RFC 3550 A.8.
    fn update_jitter(&mut self, now: Instant, timestamp: u32) {
        let epoch = *self.epoch.get_or_insert(now);
        let nanos = now.saturating_duration_since(epoch).as_nanos();
        let arrival = (nanos * u128::from(self.clock_rate) / 1_000_000_000) as u32;
        let transit = arrival.wrapping_sub(timestamp);
        if let Some(prev) = self.transit {
            let d = (transit.wrapping_sub(prev) as i32).unsigned_abs();
            let update = d as i64 - i64::from((self.jitter_q4 + 8) >> 4);
            self.jitter_q4 = (i64::from(self.jitter_q4) + update).max(0) as u32;
        }
        self.transit = Some(transit);
    }

    /// Whether the source has passed probation.
    pub fn is_valid(&self) -> bool {
        self.started && self.probation == 0
    }

    fn extended_max(&self) -> u64 {
        self.cycles + u64::from(self.max_seq)
    }

    fn expected(&self) -> u64 {
        if !self.is_valid() {
            return 0;
        }
        (self.extended_max() + 1).saturating_sub(self.base_seq)
    }

    /// Valid packets received since the source was validated (duplicates included, as in A.3).
    pub fn packets_received(&self) -> u64 {
        self.received
    }

    /// Packets lost since the source was validated (negative with duplicates).
    pub fn packets_lost(&self) -> i64 {
        self.expected() as i64 - self.received as i64
    }

    /// Interarrival jitter in timestamp units.
    pub fn jitter(&self) -> u32 {
        self.jitter_q4 >> 4
    }

    /// Interarrival jitter in milliseconds.
    pub fn jitter_ms(&self) -> f64 {
        f64::from(self.jitter_q4) / 16.0 * 1000.0 / f64::from(self.clock_rate)
    }

    /// The numbers for an RTCP report block; starts a new loss interval.
    pub fn report(&mut self) -> ReportNumbers {
        if !self.is_valid() {
            return ReportNumbers::default();
        }
        let expected = self.expected();
        let lost = (expected as i64 - self.received as i64).clamp(-0x80_0000, 0x7F_FFFF) as i32;
        let expected_interval = expected - self.expected_prior;
        self.expected_prior = expected;
        let received_interval = self.received - self.received_prior;
        self.received_prior = self.received;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval as i64).min(255) as u8
        };
        ReportNumbers {
            fraction_lost,
            cumulative_lost: lost,
            extended_highest_seq: self.extended_max() as u32,
            jitter: self.jitter(),
        }
    }
}

/// Codec assumptions for [`mos`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MosCodec {
    /// G.711 with packet-loss concealment: Ie = 0, Bpl = 25.1 (G.113 Appendix I).
    G711,
    /// Opus. No narrowband Ie/Bpl for Opus is published in G.113 (its Opus
    /// values are for the wideband E-model, on another scale), so this uses
    /// G.711's Ie = 0, Bpl = 25.1: a conservative figure for Opus at VoIP
    /// bitrates, whose PLC and FEC do at least as well as G.711 PLC.
    Opus,
}

impl MosCodec {
    /// Equipment impairment factor Ie.
    pub const fn ie(self) -> f64 {
        match self {
            MosCodec::G711 | MosCodec::Opus => 0.0,
        }
    }

    /// Packet-loss robustness factor Bpl.
    pub const fn bpl(self) -> f64 {
        match self {
            MosCodec::G711 | MosCodec::Opus => 25.1,
        }
    }
}

/// The E-model transmission rating R (simplified ITU-T G.107).
///
/// `R = 93.2 - Id - Ie_eff` with
/// `Id = 0.024 d + 0.11 (d - 177.3) H(d - 177.3)` and
/// `Ie_eff = Ie + (95 - Ie) Ppl / (Ppl + Bpl)` (random loss, BurstR = 1).
/// Negative inputs count as zero.
pub fn r_factor(codec: MosCodec, loss_percent: f64, one_way_delay_ms: f64) -> f64 {
    let d = one_way_delay_ms.max(0.0);
    let ppl = loss_percent.clamp(0.0, 100.0);
    let id = 0.024 * d + if d > 177.3 { 0.11 * (d - 177.3) } else { 0.0 };
    let ie = codec.ie();
    let ie_eff = ie + (95.0 - ie) * ppl / (ppl + codec.bpl());
    93.2 - id - ie_eff
}

/// Mean opinion score (1.0 ..= 4.5) from loss (percent) and one-way mouth-to-ear delay (ms).
///
/// `MOS = 1 + 0.035 R + R (R - 60) (100 - R) 7e-6`, 1 for R < 0, 4.5 for R > 100.
pub fn mos(codec: MosCodec, loss_percent: f64, one_way_delay_ms: f64) -> f64 {
    let r = r_factor(codec, loss_percent, one_way_delay_ms);
    if r.is_nan() || r <= 0.0 {
        return 1.0;
    }
    if r >= 100.0 {
        return 4.5;
    }
    (1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6).clamp(1.0, 4.5)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    #[test]
    fn seq_unwrap_across_the_wrap_with_reordering() {
        let mut u = SeqUnwrapper::new();
        let base = u.unwrap(65533);
        let seqs = [65534u16, 65535, 1, 0, 2, 65535, 3];
        let ext: Vec<i64> = seqs
            .iter()
            .map(|&s| u.unwrap(s) as i64 - base as i64)
            .collect();
        assert_eq!(ext, [1, 2, 4, 3, 5, 2, 6]);
        assert_eq!(u.highest(), Some(base + 6));
        // Reordered from before the very first packet.
        let mut u = SeqUnwrapper::new();
        let a = u.unwrap(0);
        assert_eq!(u.unwrap(65535), a - 1);
    }

    #[test]
    fn ts_unwrap_across_u32_max() {
        let mut u = TsUnwrapper::new();
        let base = u.unwrap(u32::MAX - 159);
        assert_eq!(u.unwrap(0), base + 160);
        assert_eq!(u.unwrap(160), base + 320);
        assert_eq!(u.unwrap(u32::MAX - 159), base);
        u.reset();
        assert_eq!(u.highest(), None);
    }

    proptest! {
        #[test]
        fn seq_unwrapper_recovers_any_walk(start in any::<u16>(), steps in proptest::collection::vec(-100i64..3000, 1..300)) {
            let mut u = SeqUnwrapper::new();
            let mut truth = i64::from(start);
            let first = u.unwrap(start) as i64;
            let mut highest = truth;
            for step in steps {
                truth += step;
                // Stay within half a cycle of the highest seen.
                prop_assume!(highest - truth < 32_768);
                highest = highest.max(truth);
                let got = u.unwrap(truth.rem_euclid(65_536) as u16) as i64 - first;
                prop_assert_eq!(got, truth - i64::from(start));
            }
        }
    }

    fn feed(stats: &mut ReceiveStats, t0: Instant, seqs: impl IntoIterator<Item = u16>) {
        for (i, s) in seqs.into_iter().enumerate() {
            let now = t0 + Duration::from_millis(20 * i as u64);
            stats.on_packet(now, s, u32::from(s) * 160);
        }
    }

    #[test]
    fn probation_then_loss_and_fraction() {
        let t0 = Instant::now();
        let mut st = ReceiveStats::new(8000);
        assert!(!st.on_packet(t0, 100, 0));
        assert!(!st.is_valid());
        assert_eq!(st.report(), ReportNumbers::default());
        assert!(st.on_packet(t0, 101, 160));
        assert!(st.is_valid());
        // 102..=201 with every tenth lost.
        feed(&mut st, t0, (102u16..=201).filter(|s| s % 10 != 0));
        assert_eq!(st.packets_lost(), 10);
        let r = st.report();
        assert_eq!(r.cumulative_lost, 10);
        assert_eq!(r.extended_highest_seq, 201);
        // 10 of 101 expected in the interval: 25/256.
        assert_eq!(r.fraction_lost, (10 * 256 / 101) as u8);
        // A clean interval reports no fraction but keeps the total.
        feed(&mut st, t0, 202u16..=251);
        let r = st.report();
        assert_eq!(r.fraction_lost, 0);
        assert_eq!(r.cumulative_lost, 10);
        assert_eq!(st.packets_received(), 1 + 90 + 50);
    }

    #[test]
    fn cycles_count_in_the_extended_highest() {
        let t0 = Instant::now();
        let mut st = ReceiveStats::new(8000);
        feed(&mut st, t0, (65530u16..=65535).chain(0..=5));
        let r = st.report();
        assert_eq!(r.extended_highest_seq, (1 << 16) + 5);
        assert_eq!(r.cumulative_lost, 0);
    }

    #[test]
    fn big_jump_needs_two_sequential_packets_to_restart() {
        let t0 = Instant::now();
        let mut st = ReceiveStats::new(8000);
        feed(&mut st, t0, 10u16..20);
        assert!(!st.on_packet(t0, 40_000, 0));
        assert!(st.on_packet(t0, 40_001, 160));
        assert_eq!(st.report().extended_highest_seq, 40_001);
        assert_eq!(st.packets_received(), 1);
        // Reordering within MAX_MISORDER is counted, not a restart.
        assert!(st.on_packet(t0, 39_950, 0));
    }

    #[test]
    fn jitter_matches_rfc_3550() {
        let t0 = Instant::now();
        let mut st = ReceiveStats::new(8000);
        // Constant delay: no jitter.
        feed(&mut st, t0, 0u16..100);
        assert_eq!(st.jitter(), 0);
        // Alternating 0/10 ms late: |D| = 80 samples each packet, J -> 80.
        for i in 100u16..1100 {
            let wobble = if i % 2 == 0 { 10 } else { 0 };
            let now = t0 + Duration::from_millis(20 * u64::from(i) + wobble);
            st.on_packet(now, i, u32::from(i) * 160);
        }
        assert!((78..=80).contains(&st.jitter()), "{}", st.jitter());
        assert!((st.jitter_ms() - 10.0).abs() < 0.3);
        assert_eq!(st.report().jitter, st.jitter());
    }

    #[test]
    fn mos_known_values() {
        let m = mos(MosCodec::G711, 0.0, 0.0);
        assert!((m - 4.41).abs() < 0.01, "{m}");
        assert!((r_factor(MosCodec::G711, 0.0, 0.0) - 93.2).abs() < 1e-9);
        // 1 % loss: Ie_eff = 95 / 26.1 = 3.64 -> R 89.56 -> MOS ~4.33.
        let m1 = mos(MosCodec::G711, 1.0, 0.0);
        assert!((m1 - 4.33).abs() < 0.01, "{m1}");
        // 150 ms one way: Id = 3.6.
        assert!((r_factor(MosCodec::G711, 0.0, 150.0) - 89.6).abs() < 1e-9);
        // 300 ms: Id = 7.2 + 13.497.
        assert!((r_factor(MosCodec::G711, 0.0, 300.0) - (93.2 - 7.2 - 13.497)).abs() < 1e-9);
        assert_eq!(mos(MosCodec::G711, 100.0, 1000.0), 1.0);
        assert_eq!(mos(MosCodec::Opus, 0.0, 0.0), m);
    }

    #[test]
    fn mos_is_monotonic() {
        let mut prev = 5.0;
        for loss in 0..=50 {
            let m = mos(MosCodec::G711, f64::from(loss), 40.0);
            assert!(m <= prev && (1.0..=4.5).contains(&m));
            prev = m;
        }
        let mut prev = 5.0;
        for d in (0..=800).step_by(10) {
            let m = mos(MosCodec::G711, 1.0, f64::from(d));
            assert!(m <= prev && (1.0..=4.5).contains(&m));
            prev = m;
        }
    }
}
