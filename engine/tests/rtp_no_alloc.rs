//! The RTP packet paths allocate nothing: a counting global allocator (the
//! pattern of `codecs/tests/no_alloc.rs`) watches this thread while 10 000
//! packets go through RTP parse + write, RTCP compound parse + write, and
//! telephone-event parse + the DTMF detector and sender.

use std::hint::black_box;
use vocelio_engine::rtp::rtcp::{
    parse_compound, write_report, ReportBlock, RtcpPacket, SenderInfo,
};
use vocelio_engine::rtp::telephone_event::{DtmfDetector, DtmfSender, TelephoneEvent};
use vocelio_engine::rtp::{write_packet, PayloadType, RtpHeader, RtpPacket, Ssrc};
use vocelio_testkit::counted;

#[global_allocator]
static GLOBAL: vocelio_testkit::Counting = vocelio_testkit::Counting;

const PACKETS: u32 = 10_000;

#[test]
fn counter_sees_allocations() {
    let (_, n) = counted(|| black_box(vec![0u8; 64]));
    assert!(n >= 1, "counting allocator sees nothing");
}

#[test]
fn rtp_parse_and_write_allocate_nothing() {
    let payload = [0x55u8; 160];
    let mut buf = [0u8; 1500];
    let (bytes, allocs) = counted(|| {
        let mut total = 0usize;
        for n in 0..PACKETS {
            let header = RtpHeader {
                marker: n == 0,
                payload_type: PayloadType::PCMU,
                sequence: n as u16,
                timestamp: n.wrapping_mul(160),
                ssrc: Ssrc(0x1234_5678),
            };
            let len = write_packet(&header, &payload, &mut buf).unwrap();
            let p = RtpPacket::parse(black_box(&buf[..len])).unwrap();
            assert_eq!(p.header.sequence, n as u16);
            total += p.payload.len();
            // A hostile one: the error path allocates nothing either.
            assert!(RtpPacket::parse(black_box(&buf[..len - 160 - 1])).is_err());
        }
        total
    });
    assert_eq!(bytes, 160 * PACKETS as usize);
    assert_eq!(
        allocs, 0,
        "RTP write + parse allocated {allocs} times in {PACKETS} packets"
    );
}

#[test]
fn rtcp_compound_parse_and_write_allocate_nothing() {
    let info = SenderInfo {
        ntp: 0xE8F1_0000_8000_0000,
        rtp_timestamp: 160,
        packet_count: 1,
        octet_count: 160,
    };
    let blocks = [ReportBlock {
        ssrc: Ssrc(2),
        fraction_lost: 3,
        cumulative_lost: -1,
        highest_seq: 70_000,
        jitter: 12,
        last_sr: 0xAABB_CCDD,
        delay_since_last_sr: 1 << 16,
    }; 2];
    let mut buf = [0u8; 512];
    let (seen, allocs) = counted(|| {
        let mut seen = 0u64;
        for n in 0..PACKETS {
            let sender = if n % 2 == 0 { Some(&info) } else { None };
            let len = write_report(&mut buf, Ssrc(1), sender, &blocks, "vocelio@example").unwrap();
            for p in parse_compound(black_box(&buf[..len])) {
                match p.unwrap() {
                    RtcpPacket::SenderReport { reports, .. }
                    | RtcpPacket::ReceiverReport { reports, .. } => {
                        seen += reports.map(|r| u64::from(r.jitter)).sum::<u64>();
                    }
                    _ => seen += 1,
                }
            }
            // Cut short: the error path.
            assert!(parse_compound(black_box(&buf[..len - 2])).any(|r| r.is_err()));
        }
        seen
    });
    assert_eq!(seen, u64::from(PACKETS) * 25);
    assert_eq!(
        allocs, 0,
        "RTCP write + compound parse allocated {allocs} times in {PACKETS} reports"
    );
}

#[test]
fn telephone_events_and_dtmf_allocate_nothing() {
    let mut detector = DtmfDetector::new();
    let mut sender = DtmfSender::new(8000, 20);
    let mut payload = [0u8; 4];
    let (digits, allocs) = counted(|| {
        let mut digits = 0u32;
        for tick in 0..PACKETS {
            if !sender.is_active() {
                sender.queue("0123456789*#ABCD", 60);
            }
            let Some(out) = sender.next(tick.wrapping_mul(160)) else {
                continue;
            };
            let n = out.event.write_to(&mut payload).unwrap();
            let ev = TelephoneEvent::parse(black_box(&payload[..n])).unwrap();
            if detector
                .on_packet(out.timestamp, out.marker, &ev, 8000)
                .is_some()
            {
                digits += 1;
            }
        }
        digits += u32::from(detector.on_timeout().is_some());
        digits
    });
    // 60 ms digits at 20 ms: 3 + 2 packets, then 3 ticks of gap.
    assert_eq!(digits, PACKETS / 8);
    assert_eq!(
        allocs, 0,
        "telephone-event write + parse + DTMF allocated {allocs} times in {PACKETS} ticks"
    );
}
