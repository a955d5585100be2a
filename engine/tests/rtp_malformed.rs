//! Hostile RTP, RTCP and telephone-event packets: each is an error value,
//! never a panic (str0m's `tests/malformed-packet-injection.rs` in spirit).

use vocelio_engine::rtp::rtcp::{parse_compound, RtcpError, RtcpPacket};
use vocelio_engine::rtp::telephone_event::{TelephoneEvent, TelephoneEventError};
use vocelio_engine::rtp::{looks_like_rtcp, RtpError, RtpPacket};

/// A valid 12-byte PCMU header (seq 1, ts 160, SSRC 0x11223344).
const HEADER: [u8; 12] = [0x80, 0x00, 0, 1, 0, 0, 0, 160, 0x11, 0x22, 0x33, 0x44];

fn rtp(first: u8, rest: &[u8]) -> Vec<u8> {
    let mut b = HEADER.to_vec();
    b[0] = first;
    b.extend_from_slice(rest);
    b
}

#[test]
fn rtp_version_not_2() {
    for (first, version) in [(0x00, 0), (0x40, 1), (0xC0, 3)] {
        assert_eq!(
            RtpPacket::parse(&rtp(first, &[0; 160])),
            Err(RtpError::BadVersion { version })
        );
    }
}

#[test]
fn rtp_truncated_header() {
    for len in 0..12 {
        assert_eq!(
            RtpPacket::parse(&HEADER[..len]),
            Err(RtpError::TooShort { len })
        );
    }
}

#[test]
fn rtp_csrc_count_past_the_end() {
    // CC=15 needs 12 + 60 bytes; give 12 + 59.
    assert_eq!(
        RtpPacket::parse(&rtp(0x8F, &[0; 59])),
        Err(RtpError::CsrcPastEnd {
            csrc_count: 15,
            needed: 72,
            len: 71
        })
    );
    // CC=1 with nothing after the header.
    assert!(matches!(
        RtpPacket::parse(&rtp(0x81, &[])),
        Err(RtpError::CsrcPastEnd { csrc_count: 1, .. })
    ));
}

#[test]
fn rtp_extension_length_past_the_end() {
    // X=1 with a preamble saying 0xFFFF words and two words present.
    assert_eq!(
        RtpPacket::parse(&rtp(
            0x90,
            &[0xBE, 0xDE, 0xFF, 0xFF, 1, 2, 3, 4, 5, 6, 7, 8]
        )),
        Err(RtpError::ExtensionPastEnd {
            needed: 16 + 4 * 0xFFFF,
            len: 24
        })
    );
    // X=1 with the preamble itself cut short.
    assert_eq!(
        RtpPacket::parse(&rtp(0x90, &[0xBE, 0xDE])),
        Err(RtpError::ExtensionPastEnd {
            needed: 16,
            len: 14
        })
    );
    // X=1 and CC=2: the extension starts after the CSRCs.
    assert!(matches!(
        RtpPacket::parse(&rtp(0x92, &[0; 8 + 4])),
        Ok(RtpPacket {
            extension: Some((0, &[])),
            ..
        })
    ));
    assert!(matches!(
        RtpPacket::parse(&rtp(0x92, &[0; 8 + 3])),
        Err(RtpError::ExtensionPastEnd { .. })
    ));
}

#[test]
fn rtp_padding_longer_than_the_packet() {
    // P=1, 3 bytes after the header, padding count 200.
    assert_eq!(
        RtpPacket::parse(&rtp(0xA0, &[1, 2, 200])),
        Err(RtpError::BadPadding {
            padding: 200,
            available: 3
        })
    );
    // Padding may not eat into the CSRC list either.
    assert_eq!(
        RtpPacket::parse(&rtp(0xA1, &[0, 0, 0, 5])),
        Err(RtpError::BadPadding {
            padding: 5,
            available: 0
        })
    );
    // P=1 with no byte after the header at all: the last header byte (0x44)
    // is not padding.
    assert_eq!(
        RtpPacket::parse(&rtp(0xA0, &[])),
        Err(RtpError::BadPadding {
            padding: 0x44,
            available: 0
        })
    );
}

#[test]
fn rtp_padding_bit_with_zero_pad_length() {
    assert_eq!(
        RtpPacket::parse(&rtp(0xA0, &[1, 2, 3, 0])),
        Err(RtpError::BadPadding {
            padding: 0,
            available: 4
        })
    );
}

#[test]
fn rtcp_multiplexed_on_the_rtp_port() {
    // An RR as RTP: an error naming RTCP, and the demux rule agrees.
    let rr = [0x80, 201, 0, 1, 0, 0, 0, 1];
    assert!(looks_like_rtcp(&rr));
    let mut padded = rr.to_vec();
    padded.extend_from_slice(&[0; 4]);
    assert_eq!(
        RtpPacket::parse(&padded),
        Err(RtpError::IsRtcp { packet_type: 201 })
    );
}

fn rtcp_errors(buf: &[u8]) -> Vec<Result<RtcpPacket<'_>, RtcpError>> {
    parse_compound(buf).collect()
}

#[test]
fn rtcp_length_field_past_the_buffer() {
    // RR claiming 7 words (32 bytes) in a 12-byte datagram.
    let b = [0x80, 201, 0, 7, 0, 0, 0, 1, 0, 0, 0, 0];
    assert_eq!(
        rtcp_errors(&b),
        [Err(RtcpError::LengthPastEnd {
            length: 32,
            available: 12
        })]
    );
    // Largest length field in a short buffer.
    let b = [0x80, 200, 0xFF, 0xFF];
    assert_eq!(
        rtcp_errors(&b),
        [Err(RtcpError::LengthPastEnd {
            length: 0x1_0000 * 4,
            available: 4
        })]
    );
}

#[test]
fn rtcp_report_count_past_the_end() {
    // RR with RC=2 but a length for the SSRC and one block.
    let mut b = vec![0x82, 201, 0, 7, 0, 0, 0, 1];
    b.extend_from_slice(&[0; 24]);
    assert_eq!(
        rtcp_errors(&b),
        [Err(RtcpError::CountPastEnd {
            packet_type: 201,
            count: 2,
            needed: 52,
            available: 28
        })]
    );
    // SR with RC=31 and no blocks.
    let mut b = vec![0x9F, 200, 0, 6];
    b.extend_from_slice(&[0; 24]);
    assert!(matches!(
        rtcp_errors(&b)[..],
        [Err(RtcpError::CountPastEnd { count: 31, .. })]
    ));
    // BYE with SC=3 and one SSRC.
    let b = [0x83, 203, 0, 1, 0, 0, 0, 1];
    assert!(matches!(
        rtcp_errors(&b)[..],
        [Err(RtcpError::CountPastEnd {
            packet_type: 203,
            count: 3,
            ..
        })]
    ));
}

#[test]
fn rtcp_other_hostile_shapes() {
    // Version 1, then anything: one error, nothing after it.
    let b = [0x40, 201, 0, 1, 0, 0, 0, 1, 0x80, 203, 0, 1, 0, 0, 0, 1];
    assert_eq!(rtcp_errors(&b), [Err(RtcpError::BadVersion { version: 1 })]);
    // A valid BYE followed by 3 stray bytes.
    let b = [0x81, 203, 0, 1, 0, 0, 0, 1, 0x80, 201, 0];
    let got = rtcp_errors(&b);
    assert!(got[0].is_ok());
    assert_eq!(got[1], Err(RtcpError::TooShort { len: 3 }));
    // Padding bit with zero and with oversized padding counts.
    let b = [0xA0, 201, 0, 1, 0, 0, 0, 0];
    assert_eq!(
        rtcp_errors(&b),
        [Err(RtcpError::BadPadding {
            padding: 0,
            available: 4
        })]
    );
    let b = [0xA0, 201, 0, 1, 0, 0, 0, 9];
    assert!(matches!(
        rtcp_errors(&b)[..],
        [Err(RtcpError::BadPadding { padding: 9, .. })]
    ));
    // SR too short for its sender info; RR with no SSRC; APP with no name.
    assert!(matches!(
        rtcp_errors(&[0x80, 200, 0, 1, 0, 0, 0, 1])[..],
        [Err(RtcpError::BodyTooShort {
            packet_type: 200,
            ..
        })]
    ));
    assert!(matches!(
        rtcp_errors(&[0x80, 201, 0, 0])[..],
        [Err(RtcpError::BodyTooShort {
            packet_type: 201,
            ..
        })]
    ));
    assert!(matches!(
        rtcp_errors(&[0x80, 204, 0, 1, 0, 0, 0, 1])[..],
        [Err(RtcpError::BodyTooShort {
            packet_type: 204,
            ..
        })]
    ));
    // BYE reason length past the packet.
    assert!(matches!(
        rtcp_errors(&[0x81, 203, 0, 2, 0, 0, 0, 1, 9, b'b', b'y', b'e'])[..],
        [Err(RtcpError::BodyTooShort {
            packet_type: 203,
            ..
        })]
    ));
}

#[test]
fn telephone_event_too_short() {
    for len in 0..4 {
        assert_eq!(
            TelephoneEvent::parse(&[0xFF; 4][..len]),
            Err(TelephoneEventError::TooShort { len })
        );
    }
}
