//! One UDP datagram from the media port: RTP parse (and, if it parses,
//! write + re-parse of the header and payload), RTCP compound iteration to
//! the end, and the payload as a telephone-event fed to a DTMF detector.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vocelio_engine::rtp::rtcp::{parse_compound, RtcpPacket};
use vocelio_engine::rtp::telephone_event::{DtmfDetector, TelephoneEvent};
use vocelio_engine::rtp::{write_packet, RtpPacket};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = RtpPacket::parse(data) {
        assert!(p.payload.len() + 12 + p.csrc.len() <= data.len());
        let mut buf = [0u8; 2048];
        if let Ok(n) = write_packet(&p.header, p.payload, &mut buf) {
            let again = RtpPacket::parse(&buf[..n]).expect("written RTP must re-parse");
            assert_eq!(again.header, p.header, "write + parse changed the header");
            assert_eq!(
                again.payload, p.payload,
                "write + parse changed the payload"
            );
        }
        // Every 4-byte slice of the payload as an event, into one detector.
        let mut detector = DtmfDetector::new();
        let mut reported = 0usize;
        for (i, chunk) in p.payload.chunks(4).enumerate() {
            if let Ok(ev) = TelephoneEvent::parse(chunk) {
                let ts = p.header.timestamp.wrapping_add((i as u32 / 3) * 160);
                reported += usize::from(detector.on_packet(ts, i == 0, &ev, 8000).is_some());
            }
        }
        reported += usize::from(detector.on_timeout().is_some());
        assert!(reported <= p.payload.len() / 4);
    }

    let mut items = 0usize;
    let mut errors = 0usize;
    for item in parse_compound(data) {
        items += 1;
        match item {
            Ok(
                RtcpPacket::SenderReport { reports, .. }
                | RtcpPacket::ReceiverReport { reports, .. },
            ) => {
                assert!(reports.len() <= 31);
                for block in reports {
                    assert!((-0x80_0000..=0x7F_FFFF).contains(&block.cumulative_lost));
                }
            }
            Ok(RtcpPacket::Bye { ssrcs, .. }) => {
                let _ = ssrcs.count();
            }
            Ok(_) => {}
            Err(_) => errors += 1,
        }
    }
    assert!(errors <= 1, "RTCP iteration must stop after an error");
    assert!(items <= data.len() / 4 + 1);

    let _ = TelephoneEvent::parse(data);
});
