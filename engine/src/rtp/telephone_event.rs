//! RFC 4733 telephone-events: the payload format, a DTMF detector for
//! received events and a sender that turns digits into event packets (to
//! navigate IVRs). Both state machines are sans-IO: RTP timestamps and
//! ticks in, digits or payloads out; neither reads a clock.
#![warn(missing_docs)]

/// Length of one event in a telephone-event payload.
pub const EVENT_LEN: usize = 4;
/// Largest volume value (-63 dBm0); the field is 6 bits.
pub const MAX_VOLUME: u8 = 63;
/// Volume [`DtmfSender`] sends: -10 dBm0, a usual DTMF level.
pub const DEFAULT_VOLUME: u8 = 10;
/// How many digits [`DtmfSender::queue`] holds.
pub const SEND_QUEUE_LEN: usize = 64;
/// Timestamps of reported events [`DtmfDetector`] remembers.
const RECENT_LEN: usize = 8;

/// Why a telephone-event payload did not parse or write.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TelephoneEventError {
    /// Shorter than one 4-byte event.
    #[error("telephone-event payload of {len} bytes, at least 4 needed")]
    TooShort {
        /// Bytes given.
        len: usize,
    },
    /// A volume over 63 does not fit the 6-bit field.
    #[error("volume {volume} over 63")]
    VolumeOutOfRange {
        /// The volume given.
        volume: u8,
    },
    /// The output buffer is shorter than 4 bytes.
    #[error("writing needs {needed} bytes, the buffer has {available}")]
    BufferTooSmall {
        /// Bytes the write needs.
        needed: usize,
        /// Bytes in the buffer.
        available: usize,
    },
}

/// One RFC 4733 §2.3 event: code, end bit, volume and duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TelephoneEvent {
    /// The event code; 0..=15 are the DTMF digits ([`event_to_digit`]).
    pub event: u8,
    /// The E bit: this is (a retransmission of) the last packet of the event.
    pub end: bool,
    /// Power level in -dBm0, 0..=63.
    pub volume: u8,
    /// Duration so far, in timestamp units, from the event's RTP timestamp.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Parses the first event of a telephone-event payload.
    ///
    /// A payload may carry several 4-byte events (RFC 4733 §2.5.1.5 packs an
    /// ended event with the next one); only the first is read, and bytes
    /// after it are ignored. The reserved R bit is ignored.
    pub fn parse(payload: &[u8]) -> Result<Self, TelephoneEventError> {
        let Some(b) = payload.get(..EVENT_LEN) else {
            return Err(TelephoneEventError::TooShort { len: payload.len() });
        };
        Ok(TelephoneEvent {
            event: b[0],
            end: b[1] & 0x80 != 0,
            volume: b[1] & 0x3F,
            duration: u16::from_be_bytes([b[2], b[3]]),
        })
    }

    /// Writes the event as a 4-byte payload at the start of `buf`; returns 4.
    pub fn write_to(&self, buf: &mut [u8]) -> Result<usize, TelephoneEventError> {
        if self.volume > MAX_VOLUME {
            return Err(TelephoneEventError::VolumeOutOfRange {
                volume: self.volume,
            });
        }
        let available = buf.len();
        let Some(b) = buf.get_mut(..EVENT_LEN) else {
            return Err(TelephoneEventError::BufferTooSmall {
                needed: EVENT_LEN,
                available,
            });
        };
        b[0] = self.event;
        b[1] = (u8::from(self.end) << 7) | self.volume;
        b[2..4].copy_from_slice(&self.duration.to_be_bytes());
        Ok(EVENT_LEN)
    }
}

/// The DTMF character of an event code: 0-9, `*` (10), `#` (11), A-D (12-15).
pub fn event_to_digit(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}

/// The event code of a DTMF character (A-D in either case).
pub fn digit_to_event(digit: char) -> Option<u8> {
    match digit {
        '0'..='9' => Some(digit as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(digit as u8 - b'A' + 12),
        'a'..='d' => Some(digit as u8 - b'a' + 12),
        _ => None,
    }
}

/// A DTMF digit the far end pressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DetectedDigit {
    /// `0`-`9`, `*`, `#` or `A`-`D`.
    pub digit: char,
    /// How long it was held, from the longest duration received.
    pub duration_ms: u32,
    /// The event's RTP timestamp (its start).
    pub rtp_timestamp: u32,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    timestamp: u32,
    digit: char,
    duration: u16,
    clock_rate: u32,
}

/// Turns received telephone-event packets into digits, each exactly once.
///
/// An event is identified by its RTP timestamp. It is reported on its first
/// end packet; the two retransmissions of the end packet are ignored. If the
/// end packets are lost, the event is reported when a packet of a new event
/// (another timestamp) arrives, or when the session calls
/// [`on_timeout`](Self::on_timeout). The timestamps of the last 8 reported
/// events are remembered, so late duplicates of an already reported event
/// are ignored even after the next event started.
///
/// Event codes over 15 (tones, line events) are ignored. An event longer
/// than the 16-bit duration field (RFC 4733 §2.5.2.3 segments, over 8 s at
/// 8 kHz) is reported once per segment.
#[derive(Debug, Clone, Default)]
pub struct DtmfDetector {
    current: Option<Pending>,
    recent: [Option<u32>; RECENT_LEN],
    next_slot: usize,
}

impl DtmfDetector {
    /// A detector with no event in progress.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one received telephone-event packet: its RTP timestamp and
    /// marker bit, the parsed event and the payload type's clock rate.
    /// Returns a digit when one is complete.
    ///
    /// The marker bit is not relied on (it is lost as often as any packet):
    /// the timestamp alone tells events apart.
    pub fn on_packet(
        &mut self,
        rtp_timestamp: u32,
        marker: bool,
        ev: &TelephoneEvent,
        clock_rate: u32,
    ) -> Option<DetectedDigit> {
        let _ = marker;
        let digit = event_to_digit(ev.event)?;
        if self.recent.contains(&Some(rtp_timestamp)) {
            return None;
        }
        let flushed = match self.current.take() {
            Some(mut c) if c.timestamp == rtp_timestamp => {
                c.duration = c.duration.max(ev.duration);
                c.clock_rate = clock_rate;
                if ev.end {
                    return Some(self.report(c));
                }
                self.current = Some(c);
                return None;
            }
            Some(previous) => Some(self.report(previous)),
            None => None,
        };
        let new = Pending {
            timestamp: rtp_timestamp,
            digit,
            duration: ev.duration,
            clock_rate,
        };
        if ev.end && flushed.is_none() {
            return Some(self.report(new));
        }
        // Either not ended yet, or ended while the previous digit is being
        // reported: then a retransmitted end packet, the next event or
        // `on_timeout` reports this one.
        self.current = Some(new);
        flushed
    }

    /// Reports the event in progress, if any, as ended. The session calls
    /// this when no telephone-event packet arrived for about 200 ms (an
    /// event sends a packet every ptime, so its end packets were lost).
    pub fn on_timeout(&mut self) -> Option<DetectedDigit> {
        let c = self.current.take()?;
        Some(self.report(c))
    }

    /// Whether an event is in progress, i.e. [`on_timeout`](Self::on_timeout)
    /// would report one: the session arms its timeout only then.
    pub fn is_pending(&self) -> bool {
        self.current.is_some()
    }

    fn report(&mut self, c: Pending) -> DetectedDigit {
        self.recent[self.next_slot] = Some(c.timestamp);
        self.next_slot = (self.next_slot + 1) % RECENT_LEN;
        let duration_ms = if c.clock_rate == 0 {
            0
        } else {
            (u64::from(c.duration) * 1000 / u64::from(c.clock_rate)) as u32
        };
        DetectedDigit {
            digit: c.digit,
            duration_ms,
            rtp_timestamp: c.timestamp,
        }
    }
}

/// One telephone-event packet to send in place of an audio packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DtmfOut {
    /// The payload (write it with [`TelephoneEvent::write_to`]).
    pub event: TelephoneEvent,
    /// The RTP marker bit: set on the first packet of an event.
    pub marker: bool,
    /// The RTP timestamp: the event's start, the same for all its packets.
    pub timestamp: u32,
}

#[derive(Debug, Clone, Copy)]
enum SendState {
    /// No event on the wire; `gap` more ticks of audio before the next one.
    Idle { gap: u32 },
    Sending {
        event: u8,
        timestamp: u32,
        /// Packets sent so far.
        sent: u32,
        /// Packets until (and including) the first end packet.
        packets: u32,
        /// Final duration, in timestamp units.
        total: u16,
        /// Ticks of audio after the event.
        gap: u32,
    },
}

/// Sends queued DTMF digits as RFC 4733 events, one packet per ptime tick.
///
/// Each digit: a first packet with the marker bit, the duration growing by
/// one ptime per packet, the end packet sent three times with the same
/// duration, then `duration_ms` of audio before the next digit.
#[derive(Debug, Clone)]
pub struct DtmfSender {
    ptime_ms: u32,
    ptime_samples: u32,
    clock_rate: u32,
    queue: [(u8, u32); SEND_QUEUE_LEN],
    head: usize,
    len: usize,
    state: SendState,
}

impl DtmfSender {
    /// A sender for a telephone-event payload type at `clock_rate` Hz
    /// (normally 8000) on a stream sending a packet every `ptime_ms`.
    pub fn new(clock_rate: u32, ptime_ms: u32) -> Self {
        let ptime_ms = ptime_ms.max(1);
        let ptime_samples = (u64::from(clock_rate) * u64::from(ptime_ms) / 1000)
            .clamp(1, u64::from(u16::MAX)) as u32;
        DtmfSender {
            ptime_ms,
            ptime_samples,
            clock_rate,
            queue: [(0, 0); SEND_QUEUE_LEN],
            head: 0,
            len: 0,
            state: SendState::Idle { gap: 0 },
        }
    }

    /// Queues `digits`, each held `duration_ms` and followed by as much
    /// silence. Characters that are not DTMF digits are skipped, as are
    /// digits past the 64 the queue holds. Returns how many were queued.
    pub fn queue(&mut self, digits: &str, duration_ms: u32) -> usize {
        let mut queued = 0;
        for event in digits.chars().filter_map(digit_to_event) {
            if self.len == SEND_QUEUE_LEN {
                break;
            }
            self.queue[(self.head + self.len) % SEND_QUEUE_LEN] = (event, duration_ms);
            self.len += 1;
            queued += 1;
        }
        queued
    }

    /// Whether digits are being sent or wait in the queue. While it is,
    /// call [`next`](Self::next) every ptime tick instead of sending audio.
    pub fn is_active(&self) -> bool {
        self.len > 0 || matches!(self.state, SendState::Sending { .. })
    }

    /// The telephone-event packet to send at this ptime tick, or `None` to
    /// send audio. `audio_timestamp` is the RTP timestamp the audio packet
    /// would carry; an event's timestamp is the one of its first packet.
    pub fn next(&mut self, audio_timestamp: u32) -> Option<DtmfOut> {
        if let SendState::Idle { gap } = self.state {
            if gap > 0 {
                self.state = SendState::Idle { gap: gap - 1 };
                return None;
            }
            let (event, duration_ms) = self.pop()?;
            let total = (u64::from(self.clock_rate) * u64::from(duration_ms) / 1000)
                .clamp(u64::from(self.ptime_samples), u64::from(u16::MAX))
                as u32;
            self.state = SendState::Sending {
                event,
                timestamp: audio_timestamp,
                sent: 0,
                packets: total.div_ceil(self.ptime_samples),
                total: total as u16,
                gap: duration_ms.div_ceil(self.ptime_ms),
            };
        }
        let SendState::Sending {
            event,
            timestamp,
            sent,
            packets,
            total,
            gap,
        } = &mut self.state
        else {
            return None;
        };
        *sent += 1;
        let end = *sent >= *packets;
        let duration = if end {
            *total
        } else {
            (*sent * self.ptime_samples) as u16
        };
        let out = DtmfOut {
            event: TelephoneEvent {
                event: *event,
                end,
                volume: DEFAULT_VOLUME,
                duration,
            },
            marker: *sent == 1,
            timestamp: *timestamp,
        };
        if *sent >= *packets + 2 {
            self.state = SendState::Idle { gap: *gap };
        }
        Some(out)
    }

    fn pop(&mut self) -> Option<(u8, u32)> {
        if self.len == 0 {
            return None;
        }
        let d = self.queue[self.head];
        self.head = (self.head + 1) % SEND_QUEUE_LEN;
        self.len -= 1;
        Some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ev(event: u8, end: bool, duration: u16) -> TelephoneEvent {
        TelephoneEvent {
            event,
            end,
            volume: 10,
            duration,
        }
    }

    #[test]
    fn rfc4733_payload_bytes() {
        // Digit 5, end, volume 10, duration 800 (100 ms at 8 kHz).
        let e = TelephoneEvent::parse(&[5, 0x8A, 0x03, 0x20]).unwrap();
        assert_eq!(e, ev(5, true, 800));
        let mut buf = [0u8; 4];
        assert_eq!(e.write_to(&mut buf), Ok(4));
        assert_eq!(buf, [5, 0x8A, 0x03, 0x20]);
        // R bit ignored; a second event in the payload is ignored.
        let e = TelephoneEvent::parse(&[11, 0x4A, 0, 160, 1, 0, 0, 160]).unwrap();
        assert_eq!(e, ev(11, false, 160));
        assert_eq!(
            TelephoneEvent::parse(&[1, 2, 3]),
            Err(TelephoneEventError::TooShort { len: 3 })
        );
        assert_eq!(
            TelephoneEvent { volume: 64, ..e }.write_to(&mut buf),
            Err(TelephoneEventError::VolumeOutOfRange { volume: 64 })
        );
        assert_eq!(
            e.write_to(&mut [0u8; 3]),
            Err(TelephoneEventError::BufferTooSmall {
                needed: 4,
                available: 3
            })
        );
    }

    #[test]
    fn digits_map_both_ways() {
        let all = "0123456789*#ABCD";
        for (code, c) in all.chars().enumerate() {
            assert_eq!(event_to_digit(code as u8), Some(c));
            assert_eq!(digit_to_event(c), Some(code as u8));
        }
        assert_eq!(digit_to_event('b'), Some(13));
        assert_eq!(event_to_digit(16), None);
        assert_eq!(digit_to_event('E'), None);
        assert_eq!(digit_to_event(' '), None);
    }

    /// Feeds the packets of one event: `n` updates then three end packets.
    fn press(
        d: &mut DtmfDetector,
        ts: u32,
        code: u8,
        updates: u16,
        ends: usize,
    ) -> Vec<DetectedDigit> {
        let mut out = Vec::new();
        for k in 1..=updates {
            out.extend(d.on_packet(ts, k == 1, &ev(code, false, k * 160), 8000));
        }
        for _ in 0..ends {
            out.extend(d.on_packet(ts, false, &ev(code, true, (updates + 1) * 160), 8000));
        }
        out
    }

    #[test]
    fn triple_end_packet_gives_one_digit() {
        let mut d = DtmfDetector::new();
        let got = press(&mut d, 1000, 5, 4, 3);
        assert_eq!(
            got,
            [DetectedDigit {
                digit: '5',
                duration_ms: 100,
                rtp_timestamp: 1000
            }]
        );
        assert!(!d.is_pending());
        assert_eq!(d.on_timeout(), None);
    }

    #[test]
    fn lost_end_packets_reported_on_the_next_event() {
        let mut d = DtmfDetector::new();
        assert!(press(&mut d, 1000, 1, 4, 0).is_empty());
        assert!(d.is_pending());
        // The next digit's first packet flushes the first one.
        let got = d.on_packet(3000, true, &ev(2, false, 160), 8000);
        assert_eq!(
            got,
            Some(DetectedDigit {
                digit: '1',
                duration_ms: 80,
                rtp_timestamp: 1000
            })
        );
        // A late end packet of digit 1 is ignored, digit 2 ends normally.
        assert_eq!(d.on_packet(1000, false, &ev(1, true, 800), 8000), None);
        let got = press(&mut d, 3000, 2, 0, 3);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].digit, '2');
    }

    #[test]
    fn lost_end_packets_reported_on_timeout() {
        let mut d = DtmfDetector::new();
        assert!(press(&mut d, 500, 10, 3, 0).is_empty());
        let got = d.on_timeout().unwrap();
        assert_eq!((got.digit, got.duration_ms), ('*', 60));
        assert_eq!(d.on_timeout(), None);
        // Its end packets arriving after all: still one digit.
        assert!(press(&mut d, 500, 10, 0, 3).is_empty());
    }

    #[test]
    fn end_of_new_event_while_previous_unreported() {
        let mut d = DtmfDetector::new();
        assert!(press(&mut d, 100, 7, 2, 0).is_empty());
        // All of digit 8's updates lost; its first end packet flushes 7 ...
        let got = press(&mut d, 2000, 8, 0, 3);
        assert_eq!(
            got.iter().map(|g| g.digit).collect::<String>(),
            "78",
            "... and a retransmitted end reports 8"
        );
    }

    #[test]
    fn same_digit_twice_is_two_events() {
        let mut d = DtmfDetector::new();
        let mut got = press(&mut d, 0, 1, 5, 3);
        got.extend(press(&mut d, 1760, 1, 5, 3));
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].rtp_timestamp, 1760);
    }

    #[test]
    fn unknown_events_are_ignored() {
        let mut d = DtmfDetector::new();
        assert!(press(&mut d, 10, 16, 3, 3).is_empty());
        assert!(press(&mut d, 10, 200, 3, 3).is_empty());
        assert!(!d.is_pending());
    }

    #[test]
    fn memory_of_reported_events_is_bounded_but_covers_recent_ones() {
        let mut d = DtmfDetector::new();
        for i in 0..20u32 {
            assert_eq!(press(&mut d, i * 2000, 3, 2, 3).len(), 1);
            // Late duplicate of the previous event.
            if i > 0 {
                assert!(press(&mut d, (i - 1) * 2000, 3, 0, 1).is_empty());
            }
        }
    }

    /// Runs the sender until idle; returns (tick, packet) pairs.
    fn drain(s: &mut DtmfSender, ticks: u32) -> Vec<(u32, Option<DtmfOut>)> {
        (0..ticks).map(|t| (t, s.next(t * 160))).collect()
    }

    #[test]
    fn sender_sequence_shape() {
        let mut s = DtmfSender::new(8000, 20);
        assert!(!s.is_active());
        assert_eq!(s.queue("1x#", 100), 2, "x is skipped");
        assert!(s.is_active());
        let out = drain(&mut s, 40);
        let sent: Vec<_> = out.iter().filter_map(|(t, o)| o.map(|o| (*t, o))).collect();
        assert_eq!(sent.len(), 14, "5 + 2 retransmits per digit");
        // Digit 1: ticks 0..7, timestamp of tick 0.
        let first = &sent[..7];
        assert!(first
            .iter()
            .all(|(_, o)| o.timestamp == 0 && o.event.event == 1));
        assert_eq!(
            first
                .iter()
                .map(|(_, o)| o.event.duration)
                .collect::<Vec<_>>(),
            [160, 320, 480, 640, 800, 800, 800]
        );
        assert_eq!(
            first.iter().map(|(_, o)| o.event.end).collect::<Vec<_>>(),
            [false, false, false, false, true, true, true]
        );
        assert_eq!(
            first.iter().map(|(_, o)| o.marker).collect::<Vec<_>>(),
            [true, false, false, false, false, false, false]
        );
        // A 100 ms gap (5 ticks of audio), then '#' from tick 12.
        assert!(out[7..12].iter().all(|(_, o)| o.is_none()));
        let (t, second) = sent[7];
        assert_eq!(t, 12);
        assert_eq!(
            (second.event.event, second.marker, second.timestamp),
            (11, true, 12 * 160)
        );
        assert!(sent[7..].iter().all(|(_, o)| o.timestamp == 12 * 160));
        assert!(!s.is_active());
        // Sent packets decode back into exactly the two digits.
        let mut d = DtmfDetector::new();
        let digits: String = sent
            .iter()
            .filter_map(|(_, o)| d.on_packet(o.timestamp, o.marker, &o.event, 8000))
            .map(|g| g.digit)
            .collect();
        assert_eq!(digits, "1#");
    }

    #[test]
    fn sender_bounds_queue_and_duration() {
        let mut s = DtmfSender::new(8000, 20);
        assert_eq!(s.queue(&"5".repeat(100), 50), SEND_QUEUE_LEN);
        assert_eq!(s.queue("1", 50), 0);
        // 50 ms at 20 ms ptime: 3 packets, the last clamped to 400 samples.
        let d: Vec<_> = (0..5).map(|t| s.next(t).unwrap().event.duration).collect();
        assert_eq!(d, [160, 320, 400, 400, 400]);
        // A 20 s digit is capped at the 16-bit duration.
        let mut s = DtmfSender::new(8000, 20);
        s.queue("9", 20_000);
        let last = (0..1000).filter_map(|t| s.next(t)).last().unwrap();
        assert_eq!(last.event.duration, u16::MAX);
        // A zero-length digit still sends one ptime.
        let mut s = DtmfSender::new(8000, 20);
        s.queue("0", 0);
        let all: Vec<_> = (0..5).filter_map(|t| s.next(t)).collect();
        assert_eq!(all.len(), 3);
        assert!(all.iter().all(|o| o.event.end && o.event.duration == 160));
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..12)) {
            if let Ok(e) = TelephoneEvent::parse(&bytes) {
                let mut buf = [0u8; 4];
                e.write_to(&mut buf).unwrap();
                prop_assert_eq!(TelephoneEvent::parse(&buf), Ok(e));
                prop_assert_eq!(buf[0], bytes[0]);
                prop_assert_eq!(&buf[2..], &bytes[2..4]);
            }
        }

        #[test]
        fn detector_never_panics_and_reports_each_timestamp_at_most_once(
            packets in proptest::collection::vec((0u32..6, any::<bool>(), 0u8..20, any::<bool>(), any::<u16>()), 0..60),
        ) {
            let mut d = DtmfDetector::new();
            let mut seen = Vec::new();
            for (ts, marker, code, end, duration) in packets {
                if let Some(g) = d.on_packet(ts * 1000, marker, &ev(code, end, duration), 8000) {
                    prop_assert!(!seen.contains(&g.rtp_timestamp));
                    seen.push(g.rtp_timestamp);
                }
            }
            if let Some(g) = d.on_timeout() {
                prop_assert!(!seen.contains(&g.rtp_timestamp));
            }
        }

        #[test]
        fn sender_output_decodes_to_the_queued_digits(
            digits in "[0-9*#A-D]{0,10}",
            duration_ms in 0u32..400,
            ptime_ms in prop::sample::select(vec![10u32, 20, 30, 40]),
        ) {
            let mut s = DtmfSender::new(8000, ptime_ms);
            s.queue(&digits, duration_ms);
            let mut d = DtmfDetector::new();
            let mut got = String::new();
            let step = 8 * ptime_ms;
            for tick in 0..10_000u32 {
                if !s.is_active() {
                    break;
                }
                if let Some(o) = s.next(tick.wrapping_mul(step)) {
                    got.extend(d.on_packet(o.timestamp, o.marker, &o.event, 8000).map(|g| g.digit));
                }
            }
            prop_assert!(!s.is_active());
            prop_assert_eq!(got, digits);
        }
    }
}
