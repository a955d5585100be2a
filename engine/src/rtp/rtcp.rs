//! RTCP (RFC 3550 §6): compound packet parsing and the reports we send.
//!
//! [`parse_compound`] walks a compound packet without copying: each
//! [`RtcpPacket`] borrows the datagram, report blocks are decoded lazily by
//! [`ReportBlocks`]. The writers fill the caller's buffer and return the
//! number of bytes written. Hostile bytes give an [`RtcpError`], never a
//! panic.
//!
//! Not checked: RFC 3550 A.2's "the first packet is an SR or RR" rule, since
//! RFC 5506 reduced-size RTCP drops it; profile-specific extensions after
//! the report blocks of an SR/RR are skipped.
#![warn(missing_docs)]

use super::packet::Ssrc;
use std::time::Duration;

/// Length of the common RTCP header (V, P, count, PT, length).
pub const RTCP_HEADER_LEN: usize = 4;
/// Length of one reception report block.
pub const REPORT_BLOCK_LEN: usize = 24;
/// Length of the sender info of an SR.
pub const SENDER_INFO_LEN: usize = 20;
/// Most report blocks (or BYE sources) one packet can carry: the 5-bit count.
pub const MAX_REPORT_BLOCKS: usize = 31;

/// Sender report packet type.
pub const PT_SR: u8 = 200;
/// Receiver report packet type.
pub const PT_RR: u8 = 201;
/// Source description packet type.
pub const PT_SDES: u8 = 202;
/// Goodbye packet type.
pub const PT_BYE: u8 = 203;
/// Application-defined packet type.
pub const PT_APP: u8 = 204;

const VERSION: u8 = 2;
const SDES_CNAME: u8 = 1;

/// Why bytes are not a valid RTCP compound packet, or a report does not fit.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtcpError {
    /// Fewer than 4 bytes left where a packet header should start.
    #[error("{len} bytes left, an RTCP header needs 4")]
    TooShort {
        /// Bytes left.
        len: usize,
    },
    /// The version field is not 2.
    #[error("RTCP version {version}, expected 2")]
    BadVersion {
        /// The version found.
        version: u8,
    },
    /// The length field runs past the end of the datagram.
    #[error("RTCP length field says {length} bytes, {available} left")]
    LengthPastEnd {
        /// Bytes the length field gives, header included.
        length: usize,
        /// Bytes left in the datagram.
        available: usize,
    },
    /// The padding bit is set but the last octet is 0 or counts more than
    /// the packet body.
    #[error("RTCP padding of {padding} bytes, the body has {available}")]
    BadPadding {
        /// The last octet of the packet.
        padding: u8,
        /// Bytes after the 4-byte header.
        available: usize,
    },
    /// An SR, RR or BYE count needs more bytes than the packet has.
    #[error("packet type {packet_type} with count {count} needs {needed} bytes, the body has {available}")]
    CountPastEnd {
        /// The packet type.
        packet_type: u8,
        /// The 5-bit count field.
        count: u8,
        /// Body bytes the count needs.
        needed: usize,
        /// Body bytes there are.
        available: usize,
    },
    /// A fixed part (SSRC, sender info, APP name, BYE reason) is cut short.
    #[error("packet type {packet_type} needs {needed} body bytes, it has {available}")]
    BodyTooShort {
        /// The packet type.
        packet_type: u8,
        /// Body bytes needed.
        needed: usize,
        /// Body bytes there are.
        available: usize,
    },
    /// More report blocks than one packet can carry (31).
    #[error("{count} report blocks, at most 31 fit one packet")]
    TooManyReportBlocks {
        /// Blocks given.
        count: usize,
    },
    /// A CNAME longer than the 255 bytes an SDES item can hold.
    #[error("CNAME of {len} bytes, at most 255")]
    CnameTooLong {
        /// Its length.
        len: usize,
    },
    /// The output buffer is too small.
    #[error("writing needs {needed} bytes, the buffer has {available}")]
    BufferTooSmall {
        /// Bytes the write needs.
        needed: usize,
        /// Bytes in the buffer.
        available: usize,
    },
}

/// The sender info of an SR (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SenderInfo {
    /// NTP timestamp (seconds since 1900 in the high 32 bits, fraction low).
    pub ntp: u64,
    /// The same instant in the RTP timestamp units of the stream.
    pub rtp_timestamp: u32,
    /// Packets sent since the start.
    pub packet_count: u32,
    /// Payload octets sent since the start.
    pub octet_count: u32,
}

/// One reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ReportBlock {
    /// The source this block reports on.
    pub ssrc: Ssrc,
    /// Fraction lost since the last report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost, a 24-bit signed value (duplicates can make
    /// it negative). Writers clamp it to -0x80_0000..=0x7F_FFFF.
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub highest_seq: u32,
    /// Interarrival jitter, in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR ([`ntp_middle_32`]).
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub delay_since_last_sr: u32,
}

impl ReportBlock {
    fn read(b: &[u8]) -> Self {
        let lost = u32::from_be_bytes([0, b[5], b[6], b[7]]);
        // Sign-extend the 24-bit value.
        let cumulative_lost = ((lost << 8) as i32) >> 8;
        ReportBlock {
            ssrc: Ssrc(be32(&b[0..4])),
            fraction_lost: b[4],
            cumulative_lost,
            highest_seq: be32(&b[8..12]),
            jitter: be32(&b[12..16]),
            last_sr: be32(&b[16..20]),
            delay_since_last_sr: be32(&b[20..24]),
        }
    }

    fn write(&self, b: &mut [u8]) {
        let lost = self.cumulative_lost.clamp(-0x80_0000, 0x7F_FFFF) as u32;
        b[0..4].copy_from_slice(&self.ssrc.0.to_be_bytes());
        b[4] = self.fraction_lost;
        b[5..8].copy_from_slice(&lost.to_be_bytes()[1..]);
        b[8..12].copy_from_slice(&self.highest_seq.to_be_bytes());
        b[12..16].copy_from_slice(&self.jitter.to_be_bytes());
        b[16..20].copy_from_slice(&self.last_sr.to_be_bytes());
        b[20..24].copy_from_slice(&self.delay_since_last_sr.to_be_bytes());
    }
}

/// The report blocks of an SR or RR, decoded as iterated. Zero-copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlocks<'a> {
    raw: &'a [u8],
}

impl<'a> ReportBlocks<'a> {
    /// The raw blocks, 24 bytes each.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }
}

impl Iterator for ReportBlocks<'_> {
    type Item = ReportBlock;

    fn next(&mut self) -> Option<ReportBlock> {
        let (block, rest) = self.raw.split_at_checked(REPORT_BLOCK_LEN)?;
        self.raw = rest;
        Some(ReportBlock::read(block))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.raw.len() / REPORT_BLOCK_LEN;
        (n, Some(n))
    }
}

impl ExactSizeIterator for ReportBlocks<'_> {}

/// The sources leaving in a BYE, decoded as iterated. Zero-copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SsrcList<'a> {
    raw: &'a [u8],
}

impl Iterator for SsrcList<'_> {
    type Item = Ssrc;

    fn next(&mut self) -> Option<Ssrc> {
        let (id, rest) = self.raw.split_at_checked(4)?;
        self.raw = rest;
        Some(Ssrc(be32(id)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.raw.len() / 4;
        (n, Some(n))
    }
}

impl ExactSizeIterator for SsrcList<'_> {}

/// One packet of a compound RTCP packet, borrowing the datagram.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtcpPacket<'a> {
    /// SR (200).
    SenderReport {
        /// The sender.
        ssrc: Ssrc,
        /// Its sending clock and counters.
        info: SenderInfo,
        /// Its reception reports.
        reports: ReportBlocks<'a>,
    },
    /// RR (201).
    ReceiverReport {
        /// The reporter.
        ssrc: Ssrc,
        /// Its reception reports.
        reports: ReportBlocks<'a>,
    },
    /// SDES (202): the chunks, unparsed (padding removed).
    SourceDescription(&'a [u8]),
    /// BYE (203).
    Bye {
        /// The sources leaving.
        ssrcs: SsrcList<'a>,
        /// The optional reason text (should be UTF-8, not checked).
        reason: Option<&'a [u8]>,
    },
    /// APP (204).
    App {
        /// The 5-bit subtype (the count field).
        subtype: u8,
        /// The sender.
        ssrc: Ssrc,
        /// The four ASCII name bytes.
        name: [u8; 4],
        /// Application data.
        data: &'a [u8],
    },
    /// Any other type (feedback, XR, ...): type, count field and body.
    Other {
        /// The packet type.
        packet_type: u8,
        /// The 5-bit count / format field.
        count: u8,
        /// The body after the 4-byte header, padding removed.
        body: &'a [u8],
    },
}

/// Iterator over the packets of a compound RTCP packet; see
/// [`parse_compound`]. Yields at most one error, then stops.
#[derive(Debug, Clone)]
pub struct RtcpIter<'a> {
    rest: &'a [u8],
}

/// Walks a compound RTCP packet (RFC 3550 §6.1). Each item is one packet or
/// the error that stopped the walk; nothing follows an error.
///
/// Each packet is checked for V=2, a length field inside the datagram,
/// padding of 1..=body bytes, and counts (SR/RR blocks, BYE sources) that
/// fit the length.
pub fn parse_compound(buf: &[u8]) -> RtcpIter<'_> {
    RtcpIter { rest: buf }
}

impl<'a> Iterator for RtcpIter<'a> {
    type Item = Result<RtcpPacket<'a>, RtcpError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let r = next_packet(self.rest);
        match r {
            Ok((p, rest)) => {
                self.rest = rest;
                Some(Ok(p))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

impl std::iter::FusedIterator for RtcpIter<'_> {}

fn next_packet(buf: &[u8]) -> Result<(RtcpPacket<'_>, &[u8]), RtcpError> {
    if buf.len() < RTCP_HEADER_LEN {
        return Err(RtcpError::TooShort { len: buf.len() });
    }
    let version = buf[0] >> 6;
    if version != VERSION {
        return Err(RtcpError::BadVersion { version });
    }
    let has_padding = buf[0] & 0x20 != 0;
    let count = buf[0] & 0x1F;
    let packet_type = buf[1];
    let length = (usize::from(u16::from_be_bytes([buf[2], buf[3]])) + 1) * 4;
    let Some((packet, rest)) = buf.split_at_checked(length) else {
        return Err(RtcpError::LengthPastEnd {
            length,
            available: buf.len(),
        });
    };
    let mut body = &packet[RTCP_HEADER_LEN..];
    if has_padding {
        let padding = packet[length - 1];
        if padding == 0 || usize::from(padding) > body.len() {
            return Err(RtcpError::BadPadding {
                padding,
                available: body.len(),
            });
        }
        body = &body[..body.len() - usize::from(padding)];
    }
    let too_short = |needed: usize| RtcpError::BodyTooShort {
        packet_type,
        needed,
        available: body.len(),
    };
    let past_end = |needed: usize| RtcpError::CountPastEnd {
        packet_type,
        count,
        needed,
        available: body.len(),
    };
    let blocks_len = usize::from(count) * REPORT_BLOCK_LEN;
    let p = match packet_type {
        PT_SR => {
            let fixed = 4 + SENDER_INFO_LEN;
            if body.len() < fixed {
                return Err(too_short(fixed));
            }
            let Some(raw) = body.get(fixed..fixed + blocks_len) else {
                return Err(past_end(fixed + blocks_len));
            };
            RtcpPacket::SenderReport {
                ssrc: Ssrc(be32(&body[0..4])),
                info: SenderInfo {
                    ntp: (u64::from(be32(&body[4..8])) << 32) | u64::from(be32(&body[8..12])),
                    rtp_timestamp: be32(&body[12..16]),
                    packet_count: be32(&body[16..20]),
                    octet_count: be32(&body[20..24]),
                },
                reports: ReportBlocks { raw },
            }
        }
        PT_RR => {
            if body.len() < 4 {
                return Err(too_short(4));
            }
            let Some(raw) = body.get(4..4 + blocks_len) else {
                return Err(past_end(4 + blocks_len));
            };
            RtcpPacket::ReceiverReport {
                ssrc: Ssrc(be32(&body[0..4])),
                reports: ReportBlocks { raw },
            }
        }
        PT_SDES => RtcpPacket::SourceDescription(body),
        PT_BYE => {
            let ids_len = 4 * usize::from(count);
            let Some((ids, after)) = body.split_at_checked(ids_len) else {
                return Err(past_end(ids_len));
            };
            let reason = match after.split_first() {
                None => None,
                // A zero length octet is the null padding of a reason-less BYE.
                Some((0, _)) => None,
                Some((&n, text)) => match text.get(..usize::from(n)) {
                    Some(t) => Some(t),
                    None => return Err(too_short(ids_len + 1 + usize::from(n))),
                },
            };
            RtcpPacket::Bye {
                ssrcs: SsrcList { raw: ids },
                reason,
            }
        }
        PT_APP => {
            if body.len() < 8 {
                return Err(too_short(8));
            }
            RtcpPacket::App {
                subtype: count,
                ssrc: Ssrc(be32(&body[0..4])),
                name: [body[4], body[5], body[6], body[7]],
                data: &body[8..],
            }
        }
        _ => RtcpPacket::Other {
            packet_type,
            count,
            body,
        },
    };
    Ok((p, rest))
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// The middle 32 bits of a 64-bit NTP timestamp: the LSR value a report
/// block echoes (RFC 3550 §6.4.1).
pub fn ntp_middle_32(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// The 64-bit NTP timestamp of an instant given as time since the Unix
/// epoch (the caller reads the clock; this module does not).
pub fn ntp_from_unix(since_epoch: Duration) -> u64 {
    let secs = since_epoch.as_secs().wrapping_add(NTP_UNIX_OFFSET);
    let frac = (u64::from(since_epoch.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

fn check_room(buf: &[u8], needed: usize) -> Result<(), RtcpError> {
    if buf.len() < needed {
        Err(RtcpError::BufferTooSmall {
            needed,
            available: buf.len(),
        })
    } else {
        Ok(())
    }
}

fn write_header(buf: &mut [u8], count: u8, packet_type: u8, len: usize) {
    buf[0] = (VERSION << 6) | count;
    buf[1] = packet_type;
    // len is a multiple of 4, at most a few kilobytes: fits the field.
    buf[2..4].copy_from_slice(&((len / 4 - 1) as u16).to_be_bytes());
}

fn check_blocks(blocks: &[ReportBlock]) -> Result<u8, RtcpError> {
    if blocks.len() > MAX_REPORT_BLOCKS {
        return Err(RtcpError::TooManyReportBlocks {
            count: blocks.len(),
        });
    }
    Ok(blocks.len() as u8)
}

/// Writes an SR with up to 31 report blocks; returns the bytes written.
pub fn write_sender_report(
    buf: &mut [u8],
    ssrc: Ssrc,
    info: &SenderInfo,
    blocks: &[ReportBlock],
) -> Result<usize, RtcpError> {
    let count = check_blocks(blocks)?;
    let len = RTCP_HEADER_LEN + 4 + SENDER_INFO_LEN + blocks.len() * REPORT_BLOCK_LEN;
    check_room(buf, len)?;
    write_header(buf, count, PT_SR, len);
    buf[4..8].copy_from_slice(&ssrc.0.to_be_bytes());
    buf[8..16].copy_from_slice(&info.ntp.to_be_bytes());
    buf[16..20].copy_from_slice(&info.rtp_timestamp.to_be_bytes());
    buf[20..24].copy_from_slice(&info.packet_count.to_be_bytes());
    buf[24..28].copy_from_slice(&info.octet_count.to_be_bytes());
    for (b, out) in blocks
        .iter()
        .zip(buf[28..len].chunks_exact_mut(REPORT_BLOCK_LEN))
    {
        b.write(out);
    }
    Ok(len)
}

/// Writes an RR with up to 31 report blocks; returns the bytes written.
pub fn write_receiver_report(
    buf: &mut [u8],
    ssrc: Ssrc,
    blocks: &[ReportBlock],
) -> Result<usize, RtcpError> {
    let count = check_blocks(blocks)?;
    let len = RTCP_HEADER_LEN + 4 + blocks.len() * REPORT_BLOCK_LEN;
    check_room(buf, len)?;
    write_header(buf, count, PT_RR, len);
    buf[4..8].copy_from_slice(&ssrc.0.to_be_bytes());
    for (b, out) in blocks
        .iter()
        .zip(buf[8..len].chunks_exact_mut(REPORT_BLOCK_LEN))
    {
        b.write(out);
    }
    Ok(len)
}

/// Writes an SDES with one chunk holding one CNAME item; returns the bytes
/// written. The item list ends with a null octet and is zero-padded to a
/// 32-bit boundary (RFC 3550 §6.5).
pub fn write_sdes_cname(buf: &mut [u8], ssrc: Ssrc, cname: &str) -> Result<usize, RtcpError> {
    let name = cname.as_bytes();
    if name.len() > 255 {
        return Err(RtcpError::CnameTooLong { len: name.len() });
    }
    // SSRC, type, length, text, at least one null octet; rounded up to 4.
    let chunk = (4 + 2 + name.len() + 1).div_ceil(4) * 4;
    let len = RTCP_HEADER_LEN + chunk;
    check_room(buf, len)?;
    write_header(buf, 1, PT_SDES, len);
    buf[4..8].copy_from_slice(&ssrc.0.to_be_bytes());
    buf[8] = SDES_CNAME;
    buf[9] = name.len() as u8;
    buf[10..10 + name.len()].copy_from_slice(name);
    buf[10 + name.len()..len].fill(0);
    Ok(len)
}

/// Writes a BYE for one source, without a reason; returns the bytes written.
pub fn write_bye(buf: &mut [u8], ssrc: Ssrc) -> Result<usize, RtcpError> {
    let len = RTCP_HEADER_LEN + 4;
    check_room(buf, len)?;
    write_header(buf, 1, PT_BYE, len);
    buf[4..8].copy_from_slice(&ssrc.0.to_be_bytes());
    Ok(len)
}

/// Writes the compound packet a session sends each report interval: an SR
/// (when `sender` is given, i.e. we sent media since the last report) or an
/// RR, then an SDES with our CNAME (RFC 3550 §6.1). Returns the bytes
/// written. At most 31 blocks: a call has one remote source.
pub fn write_report(
    buf: &mut [u8],
    ssrc: Ssrc,
    sender: Option<&SenderInfo>,
    blocks: &[ReportBlock],
    cname: &str,
) -> Result<usize, RtcpError> {
    let n = match sender {
        Some(info) => write_sender_report(buf, ssrc, info, blocks)?,
        None => write_receiver_report(buf, ssrc, blocks)?,
    };
    let m = match write_sdes_cname(&mut buf[n..], ssrc, cname) {
        Ok(m) => m,
        Err(RtcpError::BufferTooSmall { needed, .. }) => {
            return Err(RtcpError::BufferTooSmall {
                needed: n + needed,
                available: buf.len(),
            })
        }
        Err(e) => return Err(e),
    };
    Ok(n + m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn block(n: u32) -> ReportBlock {
        ReportBlock {
            ssrc: Ssrc(0x1000 + n),
            fraction_lost: 25,
            cumulative_lost: -3,
            highest_seq: 0x0001_0203 + n,
            jitter: 17,
            last_sr: 0xAABB_CCDD,
            delay_since_last_sr: 65536,
        }
    }

    #[test]
    fn sr_sdes_compound_round_trips() {
        let info = SenderInfo {
            ntp: 0xE8F1_2345_8000_0000,
            rtp_timestamp: 160_000,
            packet_count: 1000,
            octet_count: 160_000,
        };
        let mut buf = [0u8; 256];
        let n = write_report(
            &mut buf,
            Ssrc(7),
            Some(&info),
            &[block(1), block(2)],
            "vocelio@host",
        )
        .unwrap();
        let sr_len = 28 + 48;
        // SDES: 4 header, then 4 SSRC + 2 + 12 text + 1 null = 19, padded to 20.
        assert_eq!(n, sr_len + 4 + 20);
        assert_eq!(n % 4, 0);
        let mut it = parse_compound(&buf[..n]);
        match it.next() {
            Some(Ok(RtcpPacket::SenderReport {
                ssrc,
                info: got,
                reports,
            })) => {
                assert_eq!(ssrc, Ssrc(7));
                assert_eq!(got, info);
                assert_eq!(reports.len(), 2);
                assert_eq!(reports.collect::<Vec<_>>(), [block(1), block(2)]);
            }
            other => panic!("expected an SR, got {other:?}"),
        }
        match it.next() {
            Some(Ok(RtcpPacket::SourceDescription(chunks))) => {
                assert_eq!(&chunks[..4], &7u32.to_be_bytes());
                assert_eq!(chunks[4], SDES_CNAME);
                assert_eq!(chunks[5], 12);
                assert_eq!(&chunks[6..18], b"vocelio@host");
                assert!(chunks[18..].iter().all(|&b| b == 0));
                assert!(!chunks[18..].is_empty(), "null terminator");
            }
            other => panic!("expected SDES, got {other:?}"),
        }
        assert!(it.next().is_none());
    }

    #[test]
    fn rr_and_bye() {
        let mut buf = [0u8; 64];
        let n = write_report(&mut buf, Ssrc(9), None, &[block(0)], "a").unwrap();
        let m = write_bye(&mut buf[n..], Ssrc(9)).unwrap();
        let got: Vec<_> = parse_compound(&buf[..n + m]).collect();
        assert_eq!(got.len(), 3);
        assert!(matches!(
            got[0],
            Ok(RtcpPacket::ReceiverReport { ssrc: Ssrc(9), reports }) if reports.len() == 1
        ));
        match got[2] {
            Ok(RtcpPacket::Bye { ssrcs, reason }) => {
                assert_eq!(ssrcs.collect::<Vec<_>>(), [Ssrc(9)]);
                assert_eq!(reason, None);
            }
            ref other => panic!("expected BYE, got {other:?}"),
        }
    }

    #[test]
    fn cname_padding_always_has_a_null() {
        for len in 0..=12 {
            let name = "x".repeat(len);
            let mut buf = [0xFFu8; 64];
            let n = write_sdes_cname(&mut buf, Ssrc(1), &name).unwrap();
            assert_eq!(n % 4, 0);
            assert!(n > 4 + 4 + 2 + len);
            assert_eq!(buf[10 + len], 0);
            assert_eq!(u16::from_be_bytes([buf[2], buf[3]]) as usize, n / 4 - 1);
        }
        assert_eq!(
            write_sdes_cname(&mut [0u8; 600], Ssrc(1), &"x".repeat(256)),
            Err(RtcpError::CnameTooLong { len: 256 })
        );
    }

    #[test]
    fn cumulative_lost_is_24_bit_signed_and_clamped() {
        let mut buf = [0u8; 64];
        for (given, read) in [
            (-1, -1),
            (0x7F_FFFF, 0x7F_FFFF),
            (-0x80_0000, -0x80_0000),
            (i32::MAX, 0x7F_FFFF),
            (i32::MIN, -0x80_0000),
        ] {
            let b = ReportBlock {
                cumulative_lost: given,
                ..block(0)
            };
            let n = write_receiver_report(&mut buf, Ssrc(1), &[b]).unwrap();
            let Some(Ok(RtcpPacket::ReceiverReport { mut reports, .. })) =
                parse_compound(&buf[..n]).next()
            else {
                panic!("RR expected");
            };
            assert_eq!(reports.next().unwrap().cumulative_lost, read);
        }
    }

    #[test]
    fn bye_with_reason_and_app_and_other() {
        // BYE, 1 source, reason "hangup" (6) + 1 null pad -> 4+4+1+6+1 = 16.
        let mut b = vec![0x81, PT_BYE, 0, 3, 0, 0, 0, 5, 6];
        b.extend_from_slice(b"hangup");
        b.push(0);
        // APP subtype 3, name "VOCE", 4 bytes of data.
        b.extend_from_slice(&[0x83, PT_APP, 0, 3, 0, 0, 0, 5]);
        b.extend_from_slice(b"VOCE\x01\x02\x03\x04");
        // Generic NACK (RTPFB 205, FMT 1) with padding bit and 4 pad bytes.
        b.extend_from_slice(&[0xA1, 205, 0, 3, 1, 1, 1, 1, 0, 0, 0, 4]);
        b.extend_from_slice(&[0, 0, 0, 4]);
        let got: Vec<_> = parse_compound(&b).collect();
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(matches!(
            got[0],
            Ok(RtcpPacket::Bye {
                reason: Some(b"hangup"),
                ..
            })
        ));
        assert_eq!(
            got[1],
            Ok(RtcpPacket::App {
                subtype: 3,
                ssrc: Ssrc(5),
                name: *b"VOCE",
                data: &[1, 2, 3, 4],
            })
        );
        assert_eq!(
            got[2],
            Ok(RtcpPacket::Other {
                packet_type: 205,
                count: 1,
                body: &[1, 1, 1, 1, 0, 0, 0, 4],
            })
        );
    }

    #[test]
    fn iteration_stops_after_the_first_error() {
        let mut buf = [0u8; 64];
        let n = write_bye(&mut buf, Ssrc(1)).unwrap();
        buf[n] = 0x40; // version 1
        let got: Vec<_> = parse_compound(&buf[..n + 8]).collect();
        assert_eq!(
            got,
            [
                Ok(RtcpPacket::Bye {
                    ssrcs: SsrcList {
                        raw: &1u32.to_be_bytes()
                    },
                    reason: None
                }),
                Err(RtcpError::BadVersion { version: 1 })
            ]
        );
    }

    #[test]
    fn writers_check_the_buffer_and_block_count() {
        assert_eq!(
            write_bye(&mut [0u8; 7], Ssrc(1)),
            Err(RtcpError::BufferTooSmall {
                needed: 8,
                available: 7
            })
        );
        assert_eq!(
            write_receiver_report(&mut [0u8; 2048], Ssrc(1), &[block(0); 32]),
            Err(RtcpError::TooManyReportBlocks { count: 32 })
        );
        assert_eq!(
            write_report(&mut [0u8; 40], Ssrc(1), None, &[block(0)], "abc"),
            Err(RtcpError::BufferTooSmall {
                needed: 48,
                available: 40
            })
        );
    }

    #[test]
    fn ntp_helpers() {
        assert_eq!(ntp_middle_32(0x1122_3344_5566_7788), 0x3344_5566);
        let t = ntp_from_unix(Duration::from_millis(1_500));
        assert_eq!(t >> 32, NTP_UNIX_OFFSET + 1);
        assert_eq!(t as u32, 0x8000_0000);
    }

    proptest! {
        #[test]
        fn compound_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut items = 0;
            for item in parse_compound(&bytes) {
                items += 1;
                if let Ok(RtcpPacket::SenderReport { reports, .. } | RtcpPacket::ReceiverReport { reports, .. }) = item {
                    prop_assert!(reports.count() <= MAX_REPORT_BLOCKS);
                }
            }
            prop_assert!(items <= bytes.len() / 4 + 1);
        }

        #[test]
        fn report_round_trips(
            ssrc in any::<u32>(),
            sender in proptest::option::of((any::<u64>(), any::<u32>(), any::<u32>(), any::<u32>())),
            raw in proptest::collection::vec((any::<u32>(), any::<u8>(), -0x80_0000i32..=0x7F_FFFF, any::<[u32; 4]>()), 0..=31),
            cname in "[a-z0-9@.]{0,40}",
        ) {
            let info = sender.map(|(ntp, rtp_timestamp, packet_count, octet_count)| SenderInfo {
                ntp, rtp_timestamp, packet_count, octet_count,
            });
            let blocks: Vec<ReportBlock> = raw.iter().map(|&(s, f, l, [h, j, lsr, dlsr])| ReportBlock {
                ssrc: Ssrc(s), fraction_lost: f, cumulative_lost: l,
                highest_seq: h, jitter: j, last_sr: lsr, delay_since_last_sr: dlsr,
            }).collect();
            let mut buf = [0u8; 1024];
            let n = write_report(&mut buf, Ssrc(ssrc), info.as_ref(), &blocks, &cname).unwrap();
            let got: Vec<_> = parse_compound(&buf[..n]).collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(got.len(), 2);
            let reports = match (got[0], info) {
                (RtcpPacket::SenderReport { ssrc: s, info: i, reports }, Some(want)) => {
                    prop_assert_eq!(s, Ssrc(ssrc));
                    prop_assert_eq!(i, want);
                    reports
                }
                (RtcpPacket::ReceiverReport { ssrc: s, reports }, None) => {
                    prop_assert_eq!(s, Ssrc(ssrc));
                    reports
                }
                (other, _) => return Err(TestCaseError::fail(format!("{other:?}"))),
            };
            prop_assert_eq!(reports.collect::<Vec<_>>(), blocks);
            prop_assert!(matches!(got[1], RtcpPacket::SourceDescription(c) if &c[6..6 + cname.len()] == cname.as_bytes()));
        }
    }
}
