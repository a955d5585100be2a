//! The load's bookkeeping, sans-IO: when each stream's packets are due,
//! what each packet carries, and what the receiving legs saw. Time and
//! bytes come in as arguments.
//!
//! Each packet's payload starts with the time it was sent (nanoseconds
//! since the grid's origin, 8 bytes big-endian) over the tone: a relay does
//! not decode it, and the receiver gets the relay's transit time without our
//! own sender's lateness in it.

use std::ops::Range;
use std::time::{Duration, Instant};
use vocelio_engine::media::metrics::Histogram;
use vocelio_engine::rtp::packet::{self, PayloadType, RtpHeader, Ssrc};

/// 20 ms of 8 kHz G.711.
pub const PAYLOAD: usize = 160;
/// The packet time.
pub const PTIME: Duration = Duration::from_millis(20);
/// A packet is late when it lands more than this after it was sent.
pub const LATE_AFTER: Duration = Duration::from_millis(20);
/// A sender this far behind a packet's slot skips it rather than sending a
/// burst (a phone does not catch up either).
pub const MAX_BEHIND: Duration = Duration::from_millis(60);

/// Every stream sends one packet per 20 ms slot; stream `j` of `n` is
/// offset `20 ms * j / n` into each slot, so sends spread evenly.
#[derive(Debug, Clone, Copy)]
pub struct Grid {
    origin: Instant,
    streams: u64,
}

impl Grid {
    pub fn new(origin: Instant, streams: usize) -> Grid {
        Grid {
            origin,
            streams: streams.max(1) as u64,
        }
    }

    /// When stream `j` sends the packet of `slot`.
    pub fn due(&self, j: usize, slot: u64) -> Instant {
        let ptime = PTIME.as_nanos() as u64;
        let phase = ptime * (j as u64 % self.streams) / self.streams;
        self.origin + Duration::from_nanos(slot * ptime + phase)
    }

    /// `t` as time since the origin (zero before it).
    pub fn since_origin(&self, t: Instant) -> Duration {
        t.saturating_duration_since(self.origin)
    }
}

/// One RTP stream: its SSRC and where its sequence numbers and
/// timestamps start (different for every stream, as real ones are).
#[derive(Debug, Clone, Copy)]
pub struct Stream {
    ssrc: Ssrc,
    seq0: u16,
    ts0: u32,
}

impl Stream {
    pub fn new(j: usize) -> Stream {
        let j = j as u32;
        Stream {
            ssrc: Ssrc(0x5643_0000 ^ j.wrapping_mul(0x9E37_79B9)),
            seq0: (j.wrapping_mul(7919) & 0xFFFF) as u16,
            ts0: j.wrapping_mul(1_000_003),
        }
    }

    /// Write the packet of `slot`, sent at `sent` (since the grid's
    /// origin), into `buf`; its length.
    pub fn write(
        &self,
        slot: u64,
        sent: Duration,
        payload: &[u8; PAYLOAD],
        buf: &mut [u8],
    ) -> Result<usize, packet::RtpError> {
        let header = RtpHeader {
            marker: slot == 0,
            payload_type: PayloadType::PCMU,
            sequence: self.seq0.wrapping_add(slot as u16),
            timestamp: self
                .ts0
                .wrapping_add((slot as u32).wrapping_mul(PAYLOAD as u32)),
            ssrc: self.ssrc,
        };
        let n = packet::write_packet(&header, payload, buf)?;
        let nanos = u64::try_from(sent.as_nanos()).unwrap_or(u64::MAX);
        buf[packet::HEADER_LEN..packet::HEADER_LEN + 8].copy_from_slice(&nanos.to_be_bytes());
        Ok(n)
    }

    /// The slot a received packet of this stream was sent in (from its
    /// timestamp) and when it was sent; `None` for anything that is not one
    /// of ours.
    pub fn read(&self, datagram: &[u8]) -> Option<(u64, Duration)> {
        let p = packet::parse(datagram).ok()?;
        let h = p.header;
        if h.ssrc != self.ssrc || h.payload_type != PayloadType::PCMU || p.payload.len() != PAYLOAD
        {
            return None;
        }
        let ticks = h.timestamp.wrapping_sub(self.ts0);
        if ticks % PAYLOAD as u32 != 0 {
            return None;
        }
        let slot = ticks / PAYLOAD as u32;
        // The sequence number must agree with the timestamp.
        if h.sequence != self.seq0.wrapping_add(slot as u16) {
            return None;
        }
        let stamp: [u8; 8] = p.payload.get(..8)?.try_into().ok()?;
        Some((
            u64::from(slot),
            Duration::from_nanos(u64::from_be_bytes(stamp)),
        ))
    }
}

/// Packets sent and received in the window's slots, and how late.
#[derive(Debug)]
pub struct Tally {
    window: Range<u64>,
    pub sent: u64,
    pub received: u64,
    pub late: u64,
    /// Slots the sender skipped, being more than [`MAX_BEHIND`] late.
    pub skipped: u64,
    /// Datagrams that were not one of the expected stream's packets.
    pub stray: u64,
    /// Arrival minus send time, for the window's packets.
    pub transit: Histogram,
}

impl Tally {
    pub fn new(window: Range<u64>) -> Tally {
        Tally {
            window,
            sent: 0,
            received: 0,
            late: 0,
            skipped: 0,
            stray: 0,
            transit: Histogram::default(),
        }
    }

    pub fn on_sent(&mut self, slot: u64) {
        if self.window.contains(&slot) {
            self.sent += 1;
        }
    }

    pub fn on_skipped(&mut self, slot: u64) {
        if self.window.contains(&slot) {
            self.skipped += 1;
        }
    }

    /// A packet of `slot` arrived `transit` after it was sent.
    pub fn on_received(&mut self, slot: u64, transit: Duration) {
        if !self.window.contains(&slot) {
            return;
        }
        self.received += 1;
        self.transit.record(transit);
        if transit > LATE_AFTER {
            self.late += 1;
        }
    }

    pub fn loss_percent(&self) -> f64 {
        if self.sent == 0 {
            return 0.0;
        }
        100.0 * self.sent.saturating_sub(self.received) as f64 / self.sent as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_spread_across_the_slot() {
        let t = Instant::now();
        let g = Grid::new(t, 4);
        assert_eq!(g.due(0, 0), t);
        assert_eq!(g.due(1, 0), t + Duration::from_millis(5));
        assert_eq!(g.due(3, 2), t + Duration::from_millis(55));
        // Grid order is slot, then stream.
        assert!(g.due(3, 0) < g.due(0, 1));
        let later = t + Duration::from_millis(7);
        assert_eq!(g.since_origin(later), Duration::from_millis(7));
        assert_eq!(Grid::new(later, 1).since_origin(t), Duration::ZERO);
    }

    #[test]
    fn packets_carry_their_slot_and_send_time() {
        let payload = [0xFF; PAYLOAD];
        let mut buf = [0u8; 512];
        for j in [0, 1, 999, 3999] {
            let s = Stream::new(j);
            for slot in [0u64, 1, 49, 65_535, 65_536, 200_000] {
                let sent = Duration::from_micros(20_000 * slot + 123);
                let n = s.write(slot, sent, &payload, &mut buf).unwrap();
                assert_eq!(n, 12 + PAYLOAD);
                assert_eq!(
                    s.read(&buf[..n]),
                    Some((slot, sent)),
                    "stream {j} slot {slot}"
                );
                // The rest of the payload is the tone.
                assert_eq!(buf[12 + 8..n], payload[8..]);
                // Another stream's packet is not ours.
                assert_eq!(Stream::new(j + 1).read(&buf[..n]), None);
            }
        }
        assert_eq!(Stream::new(0).read(&[0x80, 0, 1]), None);
        // A sequence number that disagrees with the timestamp is not ours.
        let s = Stream::new(5);
        let n = s.write(3, Duration::ZERO, &payload, &mut buf).unwrap();
        buf[3] ^= 1;
        assert_eq!(s.read(&buf[..n]), None);
    }

    #[test]
    fn tally_counts_only_the_window_and_late_packets() {
        let mut t = Tally::new(10..20);
        for slot in 0..30 {
            t.on_sent(slot);
        }
        t.on_skipped(9);
        t.on_skipped(10);
        assert_eq!((t.sent, t.skipped), (10, 1));
        t.on_received(9, Duration::from_millis(1));
        t.on_received(10, Duration::from_millis(1));
        t.on_received(11, Duration::from_millis(21));
        t.on_received(20, Duration::from_millis(50));
        assert_eq!((t.received, t.late), (2, 1));
        assert!((t.loss_percent() - 80.0).abs() < 1e-9);
    }
}
