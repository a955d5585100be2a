//! RFC 3550 §5.1 RTP packets, zero-copy.
//!
//! [`RtpPacket::parse`] borrows the caller's datagram: the payload, the CSRC
//! list and the header extension are slices of it, nothing is copied or
//! allocated. [`RtpHeader::write_to`] and [`write_packet`] write into the
//! caller's buffer. Hostile bytes give an [`RtpError`], never a panic.
#![warn(missing_docs)]

use std::fmt;

/// Length of the fixed RTP header (no CSRC, no extension).
pub const HEADER_LEN: usize = 12;

/// The only RTP version there is (RFC 3550 §5.1).
const VERSION: u8 = 2;

/// A synchronisation source identifier (RFC 3550 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Ssrc(pub u32);

impl fmt::Display for Ssrc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010x}", self.0)
    }
}

/// A 7-bit RTP payload type (RFC 3550 §5.1, RFC 3551 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PayloadType(u8);

impl PayloadType {
    /// G.711 mu-law (RFC 3551).
    pub const PCMU: Self = Self(0);
    /// G.711 A-law (RFC 3551).
    pub const PCMA: Self = Self(8);

    /// A payload type, if `value` fits in 7 bits (0..=127).
    pub const fn new(value: u8) -> Option<Self> {
        if value <= 127 {
            Some(Self(value))
        } else {
            None
        }
    }

    /// The numeric value, 0..=127.
    pub const fn get(self) -> u8 {
        self.0
    }
}

impl fmt::Display for PayloadType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Why bytes are not an RTP packet, or a packet does not fit a buffer.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    /// Shorter than the 12-byte fixed header.
    #[error("RTP packet of {len} bytes is shorter than the 12-byte header")]
    TooShort {
        /// Bytes given.
        len: usize,
    },
    /// The version field is not 2.
    #[error("RTP version {version}, expected 2")]
    BadVersion {
        /// The version found.
        version: u8,
    },
    /// The CSRC count says more identifiers than the packet holds.
    #[error("{csrc_count} CSRCs need {needed} bytes, the packet has {len}")]
    CsrcPastEnd {
        /// The CC field.
        csrc_count: u8,
        /// Bytes the header plus CSRC list need.
        needed: usize,
        /// Bytes given.
        len: usize,
    },
    /// The header extension (or its 4-byte preamble) runs past the end.
    #[error("header extension needs {needed} bytes, the packet has {len}")]
    ExtensionPastEnd {
        /// Bytes the header up to the end of the extension need.
        needed: usize,
        /// Bytes given.
        len: usize,
    },
    /// The padding bit is set but the last octet is 0, or counts more bytes
    /// than follow the header.
    #[error("padding of {padding} bytes, {available} bytes follow the header")]
    BadPadding {
        /// The last octet of the packet.
        padding: u8,
        /// Bytes after the header (CSRCs and extension included).
        available: usize,
    },
    /// The second octet is an RTCP packet type (RFC 5761 §4): the datagram
    /// is RTCP multiplexed on the RTP port; hand it to the RTCP parser.
    #[error("RTCP packet type {packet_type} on the RTP port")]
    IsRtcp {
        /// The second octet, 192..=223.
        packet_type: u8,
    },
    /// The output buffer is too small for what is being written.
    #[error("writing needs {needed} bytes, the buffer has {available}")]
    BufferTooSmall {
        /// Bytes the write needs.
        needed: usize,
        /// Bytes in the buffer.
        available: usize,
    },
}

/// RFC 5761 §4 demultiplexing of RTP and RTCP sharing one port: a version-2
/// datagram whose second octet is 192..=223 is RTCP.
///
/// In RTP that octet is the marker bit plus the payload type, so the rule
/// forbids payload types 64..=95 on a multiplexed session. The range covers
/// SR, RR, SDES, BYE and APP (200..=204) as well as the feedback and XR
/// packets (205..=207) peers send.
pub fn looks_like_rtcp(buf: &[u8]) -> bool {
    buf.len() >= 2 && buf[0] >> 6 == VERSION && (192..=223).contains(&buf[1])
}

/// The fixed RTP header fields we send and act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RtpHeader {
    /// The M bit: for audio, the first packet of a talkspurt (RFC 3551 §4.1).
    pub marker: bool,
    /// The payload type.
    pub payload_type: PayloadType,
    /// The sequence number.
    pub sequence: u16,
    /// The media timestamp, in the payload type's clock rate.
    pub timestamp: u32,
    /// The sender.
    pub ssrc: Ssrc,
}

impl RtpHeader {
    /// Writes the 12-byte fixed header (V=2, no padding, no CSRC, no
    /// extension) at the start of `buf`; returns [`HEADER_LEN`].
    ///
    /// A marker bit with payload type 64..=95 writes bytes that
    /// [`looks_like_rtcp`]: do not use those on an `rtcp-mux` session.
    pub fn write_to(&self, buf: &mut [u8]) -> Result<usize, RtpError> {
        let Some(out) = buf.get_mut(..HEADER_LEN) else {
            return Err(RtpError::BufferTooSmall {
                needed: HEADER_LEN,
                available: buf.len(),
            });
        };
        out[0] = VERSION << 6;
        out[1] = (u8::from(self.marker) << 7) | self.payload_type.get();
        out[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        out[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.ssrc.0.to_be_bytes());
        Ok(HEADER_LEN)
    }
}

/// A parsed RTP packet borrowing the datagram it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// The fixed header fields.
    pub header: RtpHeader,
    /// The CC field: number of CSRC identifiers.
    pub csrc_count: u8,
    /// The raw CSRC list, `4 * csrc_count` bytes; see [`RtpPacket::csrcs`].
    pub csrc: &'a [u8],
    /// The header extension (X bit): the 16-bit profile-defined value and
    /// the extension data (without its 4-byte preamble).
    pub extension: Option<(u16, &'a [u8])>,
    /// The payload, without padding.
    pub payload: &'a [u8],
    /// Padding bytes at the end (the last octet), 0 without the P bit.
    pub padding_len: u8,
}

impl<'a> RtpPacket<'a> {
    /// Parses one RTP packet; see [`parse`].
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtpError> {
        parse(buf)
    }

    /// The contributing sources.
    pub fn csrcs(&self) -> impl ExactSizeIterator<Item = Ssrc> + 'a {
        self.csrc
            .chunks_exact(4)
            .map(|c| Ssrc(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
    }
}

/// Parses one RTP packet (RFC 3550 §5.1) without copying.
///
/// Checks, in order: the fixed header is there, V=2, the second octet is not
/// an RTCP packet type ([`looks_like_rtcp`]), the CSRC list and the header
/// extension fit, and with the P bit the padding count is 1..=bytes left.
pub fn parse(buf: &[u8]) -> Result<RtpPacket<'_>, RtpError> {
    let len = buf.len();
    if len < HEADER_LEN {
        return Err(RtpError::TooShort { len });
    }
    let version = buf[0] >> 6;
    if version != VERSION {
        return Err(RtpError::BadVersion { version });
    }
    if looks_like_rtcp(buf) {
        return Err(RtpError::IsRtcp {
            packet_type: buf[1],
        });
    }
    let has_padding = buf[0] & 0x20 != 0;
    let has_extension = buf[0] & 0x10 != 0;
    let csrc_count = buf[0] & 0x0F;
    let header = RtpHeader {
        marker: buf[1] & 0x80 != 0,
        payload_type: PayloadType(buf[1] & 0x7F),
        sequence: u16::from_be_bytes([buf[2], buf[3]]),
        timestamp: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
        ssrc: Ssrc(u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]])),
    };

    let mut pos = HEADER_LEN + 4 * usize::from(csrc_count);
    let Some(csrc) = buf.get(HEADER_LEN..pos) else {
        return Err(RtpError::CsrcPastEnd {
            csrc_count,
            needed: pos,
            len,
        });
    };

    let extension = if has_extension {
        let Some(pre) = buf.get(pos..pos + 4) else {
            return Err(RtpError::ExtensionPastEnd {
                needed: pos + 4,
                len,
            });
        };
        let profile = u16::from_be_bytes([pre[0], pre[1]]);
        let words = usize::from(u16::from_be_bytes([pre[2], pre[3]]));
        let start = pos + 4;
        let end = start + 4 * words;
        let Some(data) = buf.get(start..end) else {
            return Err(RtpError::ExtensionPastEnd { needed: end, len });
        };
        pos = end;
        Some((profile, data))
    } else {
        None
    };

    let mut end = len;
    let mut padding_len = 0;
    if has_padding {
        let padding = buf[len - 1];
        let available = len - pos;
        if padding == 0 || usize::from(padding) > available {
            return Err(RtpError::BadPadding { padding, available });
        }
        padding_len = padding;
        end -= usize::from(padding);
    }

    Ok(RtpPacket {
        header,
        csrc_count,
        csrc,
        extension,
        payload: &buf[pos..end],
        padding_len,
    })
}

/// Writes a header (as [`RtpHeader::write_to`]) followed by `payload` into
/// `buf`; returns the packet length.
pub fn write_packet(header: &RtpHeader, payload: &[u8], buf: &mut [u8]) -> Result<usize, RtpError> {
    let needed = HEADER_LEN + payload.len();
    if buf.len() < needed {
        return Err(RtpError::BufferTooSmall {
            needed,
            available: buf.len(),
        });
    }
    header.write_to(buf)?;
    buf[HEADER_LEN..needed].copy_from_slice(payload);
    Ok(needed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pcmu(seq: u16, ts: u32) -> RtpHeader {
        RtpHeader {
            marker: false,
            payload_type: PayloadType::PCMU,
            sequence: seq,
            timestamp: ts,
            ssrc: Ssrc(0xDEAD_BEEF),
        }
    }

    #[test]
    fn payload_type_is_seven_bits() {
        assert_eq!(PayloadType::new(127).map(PayloadType::get), Some(127));
        assert_eq!(PayloadType::new(128), None);
        assert_eq!(PayloadType::new(101).unwrap().to_string(), "101");
        assert_eq!(Ssrc(0x1234).to_string(), "0x00001234");
    }

    #[test]
    fn writes_the_fixed_header_bytes() {
        let h = RtpHeader {
            marker: true,
            payload_type: PayloadType::new(101).unwrap(),
            sequence: 0x0102,
            timestamp: 0x0304_0506,
            ssrc: Ssrc(0x0708_090A),
        };
        let mut buf = [0u8; 12];
        assert_eq!(h.write_to(&mut buf), Ok(12));
        assert_eq!(
            buf,
            [0x80, 0x80 | 101, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
            "V=2, M=1, PT=101, then big-endian fields"
        );
        assert_eq!(
            h.write_to(&mut [0u8; 11]),
            Err(RtpError::BufferTooSmall {
                needed: 12,
                available: 11
            })
        );
    }

    #[test]
    fn g711_packet_round_trips() {
        let payload = [0x55u8; 160];
        let mut buf = [0u8; 200];
        let n = write_packet(&pcmu(7, 160), &payload, &mut buf).unwrap();
        assert_eq!(n, 172);
        let p = parse(&buf[..n]).unwrap();
        assert_eq!(p.header, pcmu(7, 160));
        assert_eq!(p.payload, &payload[..]);
        assert_eq!((p.csrc_count, p.extension, p.padding_len), (0, None, 0));
        assert_eq!(
            write_packet(&pcmu(7, 160), &payload, &mut buf[..171]),
            Err(RtpError::BufferTooSmall {
                needed: 172,
                available: 171
            })
        );
    }

    #[test]
    fn csrc_extension_and_padding() {
        // V=2 P=1 X=1 CC=2, PT 0, CSRCs 1 and 2, a one-word extension,
        // 3 payload bytes, 3 bytes of padding.
        let mut b = vec![0xB2, 0x00, 0, 1, 0, 0, 0, 160, 0, 0, 0, 9];
        b.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2]);
        b.extend_from_slice(&[0xBE, 0xDE, 0, 1, 0x10, 0xAA, 0, 0]);
        b.extend_from_slice(&[1, 2, 3]);
        b.extend_from_slice(&[0, 0, 3]);
        let p = parse(&b).unwrap();
        assert_eq!(p.csrc_count, 2);
        assert_eq!(p.csrcs().collect::<Vec<_>>(), [Ssrc(1), Ssrc(2)]);
        assert_eq!(p.extension, Some((0xBEDE, &[0x10, 0xAA, 0, 0][..])));
        assert_eq!(p.payload, &[1, 2, 3]);
        assert_eq!(p.padding_len, 3);
        assert_eq!(p.header.ssrc, Ssrc(9));
    }

    #[test]
    fn padding_may_eat_the_whole_payload_but_not_the_header() {
        let mut b = vec![0xA0, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 4];
        let p = parse(&b).unwrap();
        assert_eq!((p.payload.len(), p.padding_len), (0, 4));
        *b.last_mut().unwrap() = 5;
        assert_eq!(
            parse(&b),
            Err(RtpError::BadPadding {
                padding: 5,
                available: 4
            })
        );
    }

    #[test]
    fn rtcp_on_the_rtp_port_is_recognised() {
        for pt in [200u8, 201, 202, 203, 204, 205, 206] {
            let b = [0x81, pt, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
            assert!(looks_like_rtcp(&b));
            assert_eq!(parse(&b), Err(RtpError::IsRtcp { packet_type: pt }));
        }
        // PT 0 with the marker (0x80) and PT 101 with it (0xE5) are RTP.
        assert!(!looks_like_rtcp(&[0x80, 0x80]));
        assert!(!looks_like_rtcp(&[0x80, 0xE5]));
        assert!(!looks_like_rtcp(&[0x80]));
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(p) = parse(&bytes) {
                prop_assert!(p.payload.len() + HEADER_LEN <= bytes.len());
            }
        }

        #[test]
        fn write_then_parse_round_trips(
            marker in any::<bool>(),
            pt in 0u8..=127,
            sequence in any::<u16>(),
            timestamp in any::<u32>(),
            ssrc in any::<u32>(),
            payload in proptest::collection::vec(any::<u8>(), 0..1500),
        ) {
            // RFC 5761: marker + PT 64..=95 is the RTCP range.
            prop_assume!(!(marker && (64..=95).contains(&pt)));
            let header = RtpHeader {
                marker,
                payload_type: PayloadType::new(pt).unwrap(),
                sequence,
                timestamp,
                ssrc: Ssrc(ssrc),
            };
            let mut buf = [0u8; 1600];
            let n = write_packet(&header, &payload, &mut buf).unwrap();
            let p = parse(&buf[..n]).unwrap();
            prop_assert_eq!(p.header, header);
            prop_assert_eq!(p.payload, &payload[..]);
        }
    }
}
