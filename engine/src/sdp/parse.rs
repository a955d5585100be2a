//! Parsing (RFC 4566 §5, §9 grammar), with hard limits so that hostile
//! input costs at most a bounded, input-proportional amount of memory.
//!
//! Accepted leniencies, all seen from real peers: LF-only line ends, empty
//! lines, session-level lines in any order after `v=` (and media-level
//! lines in any order after their `m=`), runs of spaces between fields,
//! no `t=` line, an empty format list on a rejected (`port 0`) `m=` line,
//! a host name in `c=`. Everything else that is not the grammar is an
//! [`SdpError`]; nothing panics.

use std::net::IpAddr;

use super::types::{
    AddrType, Attribute, Bandwidth, Connection, ConnectionAddress, Direction, Fmtp, Formats,
    MediaDescription, MediaKind, Origin, PayloadType, Protocol, Rtcp, RtpMap, SessionDescription,
    Timing,
};

/// Largest description accepted, in bytes.
pub const MAX_SDP_LEN: usize = 64 * 1024;
/// Longest line accepted, in bytes, without its line end.
pub const MAX_LINE_LEN: usize = 4096;
/// Most `m=` sections accepted.
pub const MAX_MEDIA: usize = 32;
/// Most `a=` lines accepted at session level, and per media section.
pub const MAX_ATTRIBUTES: usize = 256;
/// Most `b=`, `e=`, `p=`, `t=` or `r=` lines of one kind accepted per level.
pub const MAX_REPEATED_LINES: usize = 32;

/// Why bytes are not an acceptable session description. `line` fields are
/// 1-based physical line numbers.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// The whole description is over [`MAX_SDP_LEN`].
    #[error("session description is {len} bytes, more than {max}")]
    TooLarge {
        /// Bytes given.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A line is over [`MAX_LINE_LEN`].
    #[error("line {line} is {len} bytes, more than {max}")]
    LineTooLong {
        /// Which line.
        line: usize,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A control character (NUL, bare CR, TAB, DEL...) inside a line.
    #[error("control character {byte:#04x} in line {line}, column {column}")]
    ControlChar {
        /// Which line.
        line: usize,
        /// 1-based byte column.
        column: usize,
        /// The byte.
        byte: u8,
    },
    /// A line that is not UTF-8.
    #[error("line {line} is not UTF-8")]
    NotUtf8 {
        /// Which line.
        line: usize,
    },
    /// A line that is not `<letter>=<value>`.
    #[error("line {line} is not <type>=<value>")]
    MalformedLine {
        /// Which line.
        line: usize,
    },
    /// A type letter RFC 4566 does not define (§5: the whole description
    /// must then be ignored).
    #[error("unknown line type {letter:?} in line {line}")]
    UnknownType {
        /// Which line.
        line: usize,
        /// The letter.
        letter: char,
    },
    /// No input, or the first line is not `v=`.
    #[error("session description does not start with v=")]
    MissingVersion,
    /// `v=` other than `0`.
    #[error("unsupported SDP version {found:?}")]
    UnsupportedVersion {
        /// As written (truncated).
        found: String,
    },
    /// A mandatory line is absent.
    #[error("missing {what} line")]
    Missing {
        /// `o=` or `s=`.
        what: &'static str,
    },
    /// A line allowed once per level appears again.
    #[error("second {what} line at line {line}")]
    Duplicate {
        /// Which line.
        line: usize,
        /// `o=`, `c=`...
        what: &'static str,
    },
    /// A line where the grammar does not allow it (a session-only line
    /// after the first `m=`, `r=` before any `t=`).
    #[error("{what} line not allowed at line {line}")]
    OutOfPlace {
        /// Which line.
        line: usize,
        /// `o=`, `r=`...
        what: &'static str,
    },
    /// A field that does not parse.
    #[error("invalid {field} {found:?} in line {line}")]
    InvalidField {
        /// Which line.
        line: usize,
        /// What the field is.
        field: &'static str,
        /// As written (truncated).
        found: String,
    },
    /// A payload type that is not a number in 0..=127.
    #[error("invalid payload type {found:?} in line {line}")]
    InvalidPayloadType {
        /// Which line.
        line: usize,
        /// As written (truncated).
        found: String,
    },
    /// A port that is not a number in 0..=65535.
    #[error("invalid port {found:?} in line {line}")]
    InvalidPort {
        /// Which line.
        line: usize,
        /// As written (truncated).
        found: String,
    },
    /// More `m=` lines than [`MAX_MEDIA`].
    #[error("more than {max} media sections (line {line})")]
    TooManyMedia {
        /// The first line over the limit.
        line: usize,
        /// The limit.
        max: usize,
    },
    /// More `a=` lines in one section than [`MAX_ATTRIBUTES`].
    #[error("more than {max} attributes in one section (line {line})")]
    TooManyAttributes {
        /// The first line over the limit.
        line: usize,
        /// The limit.
        max: usize,
    },
    /// More lines of one repeatable kind than [`MAX_REPEATED_LINES`].
    #[error("more than {max} {what} lines in one section (line {line})")]
    TooManyLines {
        /// The first line over the limit.
        line: usize,
        /// `b=`, `t=`...
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// An active audio stream with no `c=` at media or session level.
    #[error("audio media section {media} has no connection address")]
    MissingConnection {
        /// 0-based index of the media section.
        media: usize,
    },
    /// [`SessionDescription::validate`]: the description writes to bytes that
    /// parse to something else (e.g. a space in a token field).
    #[error("description does not survive write and parse unchanged")]
    NotCanonical,
}

fn truncated(s: &str) -> String {
    s.chars().take(32).collect()
}

/// RFC 4566 §9 `token-char`.
pub(crate) fn is_token_byte(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x27 | 0x2A..=0x2B | 0x2D..=0x2E | 0x30..=0x39 | 0x41..=0x5A | 0x5E..=0x7E)
}

pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_byte)
}

/// `1*DIGIT` as a number no larger than `max`; `None` on anything else
/// (sign, space, overflow).
fn digits(s: &str, max: u64) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u64>().ok().filter(|v| *v <= max)
}

/// The fields of one line.
#[derive(Clone, Copy)]
struct Line<'a> {
    no: usize,
    value: &'a str,
}

impl<'a> Line<'a> {
    fn invalid(&self, field: &'static str, found: &str) -> SdpError {
        SdpError::InvalidField {
            line: self.no,
            field,
            found: truncated(found),
        }
    }

    fn fields(&self) -> std::str::SplitAsciiWhitespace<'a> {
        self.value.split_ascii_whitespace()
    }

    fn number(&self, field: &'static str, s: &str, max: u64) -> Result<u64, SdpError> {
        digits(s, max).ok_or_else(|| self.invalid(field, s))
    }

    fn port(&self, s: &str) -> Result<u16, SdpError> {
        digits(s, u64::from(u16::MAX))
            .and_then(|v| u16::try_from(v).ok())
            .ok_or_else(|| SdpError::InvalidPort {
                line: self.no,
                found: truncated(s),
            })
    }

    fn payload_type(&self, s: &str) -> Result<PayloadType, SdpError> {
        digits(s, u64::from(PayloadType::MAX))
            .and_then(|v| u8::try_from(v).ok())
            .and_then(PayloadType::new)
            .ok_or_else(|| SdpError::InvalidPayloadType {
                line: self.no,
                found: truncated(s),
            })
    }
}

fn push_limited<T>(
    v: &mut Vec<T>,
    item: T,
    line: usize,
    what: &'static str,
) -> Result<(), SdpError> {
    if v.len() >= MAX_REPEATED_LINES {
        return Err(SdpError::TooManyLines {
            line,
            what,
            max: MAX_REPEATED_LINES,
        });
    }
    v.push(item);
    Ok(())
}

fn set_once<T>(
    slot: &mut Option<T>,
    item: T,
    line: usize,
    what: &'static str,
) -> Result<(), SdpError> {
    if slot.is_some() {
        return Err(SdpError::Duplicate { line, what });
    }
    *slot = Some(item);
    Ok(())
}

fn parse_origin(l: Line<'_>) -> Result<Origin, SdpError> {
    let mut f = l.fields();
    let (Some(username), Some(id), Some(version), Some(net), Some(addr_type), Some(address)) =
        (f.next(), f.next(), f.next(), f.next(), f.next(), f.next())
    else {
        return Err(l.invalid("o= line", l.value));
    };
    if f.next().is_some() {
        return Err(l.invalid("o= line", l.value));
    }
    if net != "IN" {
        return Err(l.invalid("network type", net));
    }
    Ok(Origin {
        username: username.to_owned(),
        session_id: l.number("session id", id, u64::MAX)?,
        session_version: l.number("session version", version, u64::MAX)?,
        addr_type: parse_addr_type(l, addr_type)?,
        address: address.to_owned(),
    })
}

fn parse_addr_type(l: Line<'_>, s: &str) -> Result<AddrType, SdpError> {
    match s {
        "IP4" => Ok(AddrType::Ip4),
        "IP6" => Ok(AddrType::Ip6),
        _ => Err(l.invalid("address type", s)),
    }
}

/// A host name: dot-separated labels of letters, digits and hyphens, the
/// last one not all digits (so `999.1.1.1` is not taken for a name).
fn is_fqdn(s: &str) -> bool {
    if s.is_empty() || s.len() > 253 {
        return false;
    }
    let s = s.strip_suffix('.').unwrap_or(s);
    let labels_ok = s.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    });
    labels_ok
        && s.rsplit('.')
            .next()
            .is_some_and(|tld| !tld.bytes().all(|b| b.is_ascii_digit()))
}

/// `IN <addrtype> <address>` (fields already split off the line).
fn parse_connection_fields(
    l: Line<'_>,
    net: &str,
    addr_type: &str,
    address: &str,
) -> Result<Connection, SdpError> {
    if net != "IN" {
        return Err(l.invalid("network type", net));
    }
    let addr_type = parse_addr_type(l, addr_type)?;
    let mut parts = address.split('/');
    let host = parts.next().unwrap_or_default();
    let first = parts.next();
    let second = parts.next();
    if parts.next().is_some() {
        return Err(l.invalid("connection address", address));
    }
    let (ttl, count) = match (addr_type, first, second) {
        (_, None, _) => (None, None),
        (AddrType::Ip4, Some(ttl), count) => {
            let ttl = l.number("multicast TTL", ttl, u64::from(u8::MAX))?;
            let count = match count {
                Some(c) => Some(l.number("address count", c, u64::from(u32::MAX))?),
                None => None,
            };
            (
                u8::try_from(ttl).ok(),
                count.and_then(|c| u32::try_from(c).ok()),
            )
        }
        (AddrType::Ip6, Some(count), None) => {
            let count = l.number("address count", count, u64::from(u32::MAX))?;
            (None, u32::try_from(count).ok())
        }
        (AddrType::Ip6, Some(_), Some(_)) => return Err(l.invalid("connection address", address)),
    };
    let address = match host.parse::<IpAddr>() {
        Ok(ip) if AddrType::of(ip) == addr_type => ConnectionAddress::Ip(ip),
        Ok(_) => return Err(l.invalid("connection address for its type", host)),
        Err(_) if is_fqdn(host) => ConnectionAddress::Fqdn(host.to_owned()),
        Err(_) => return Err(l.invalid("connection address", host)),
    };
    Ok(Connection {
        addr_type,
        address,
        ttl,
        count,
    })
}

fn parse_connection(l: Line<'_>) -> Result<Connection, SdpError> {
    let mut f = l.fields();
    match (f.next(), f.next(), f.next(), f.next()) {
        (Some(net), Some(at), Some(addr), None) => parse_connection_fields(l, net, at, addr),
        _ => Err(l.invalid("c= line", l.value)),
    }
}

fn parse_timing(l: Line<'_>) -> Result<Timing, SdpError> {
    let mut f = l.fields();
    match (f.next(), f.next(), f.next()) {
        (Some(start), Some(stop), None) => Ok(Timing {
            start: l.number("start time", start, u64::MAX)?,
            stop: l.number("stop time", stop, u64::MAX)?,
            repeats: Vec::new(),
        }),
        _ => Err(l.invalid("t= line", l.value)),
    }
}

fn parse_bandwidth(l: Line<'_>) -> Result<Bandwidth, SdpError> {
    let Some((bwtype, value)) = l.value.split_once(':') else {
        return Err(l.invalid("b= line", l.value));
    };
    if !is_token(bwtype) {
        return Err(l.invalid("bandwidth type", bwtype));
    }
    Ok(Bandwidth {
        bwtype: bwtype.to_owned(),
        bandwidth: l.number("bandwidth", value, u64::MAX)?,
    })
}

fn parse_media(l: Line<'_>) -> Result<MediaDescription, SdpError> {
    let mut f = l.fields();
    let (Some(kind), Some(port), Some(proto)) = (f.next(), f.next(), f.next()) else {
        return Err(l.invalid("m= line", l.value));
    };
    if !is_token(kind) {
        return Err(l.invalid("media type", kind));
    }
    if !proto.split('/').all(is_token) {
        return Err(l.invalid("transport protocol", proto));
    }
    let (port, port_count) = match port.split_once('/') {
        Some((p, c)) => (
            l.port(p)?,
            Some(
                u16::try_from(l.number("port count", c, u64::from(u16::MAX))?)
                    .map_err(|_| l.invalid("port count", c))?,
            ),
        ),
        None => (l.port(port)?, None),
    };
    let protocol = Protocol::from_token(proto);
    let formats = if protocol.is_rtp() {
        Formats::Rtp(f.map(|s| l.payload_type(s)).collect::<Result<_, _>>()?)
    } else {
        Formats::Other(
            f.map(|s| {
                if is_token(s) {
                    Ok(s.to_owned())
                } else {
                    Err(l.invalid("media format", s))
                }
            })
            .collect::<Result<_, _>>()?,
        )
    };
    if formats.is_empty() && port != 0 {
        return Err(l.invalid("m= line without formats", l.value));
    }
    let mut m = MediaDescription::new(MediaKind::from_token(kind), port, protocol, formats);
    m.port_count = port_count;
    Ok(m)
}

fn parse_rtpmap(l: Line<'_>, value: &str) -> Result<RtpMap, SdpError> {
    let Some((pt, rest)) = value.split_once(' ') else {
        return Err(l.invalid("rtpmap", value));
    };
    let payload_type = l.payload_type(pt)?;
    let rest = rest.trim_matches(' ');
    let mut parts = rest.split('/');
    let encoding = parts.next().unwrap_or_default();
    let clock = parts.next();
    let channels = parts.next();
    if parts.next().is_some() || !is_token(encoding) {
        return Err(l.invalid("rtpmap encoding", rest));
    }
    let Some(clock) = clock else {
        return Err(l.invalid("rtpmap encoding", rest));
    };
    let clock_rate = l.number("clock rate", clock, u64::from(u32::MAX))?;
    if clock_rate == 0 {
        return Err(l.invalid("clock rate", clock));
    }
    let channels = match channels {
        Some(c) => Some(l.number("channel count", c, u64::from(u16::MAX))?),
        None => None,
    };
    Ok(RtpMap {
        payload_type,
        encoding: encoding.to_owned(),
        clock_rate: u32::try_from(clock_rate).map_err(|_| l.invalid("clock rate", clock))?,
        channels: channels.and_then(|c| u16::try_from(c).ok()),
    })
}

fn parse_rtcp(l: Line<'_>, value: &str) -> Result<Rtcp, SdpError> {
    let mut f = value.split_ascii_whitespace();
    let Some(port) = f.next() else {
        return Err(l.invalid("rtcp", value));
    };
    let port = l.port(port)?;
    let connection = match (f.next(), f.next(), f.next(), f.next()) {
        (None, ..) => None,
        (Some(net), Some(at), Some(addr), None) => Some(parse_connection_fields(l, net, at, addr)?),
        _ => return Err(l.invalid("rtcp", value)),
    };
    Ok(Rtcp { port, connection })
}

fn parse_attribute(l: Line<'_>) -> Result<Attribute, SdpError> {
    let (name, value) = match l.value.split_once(':') {
        Some((n, v)) => (n, Some(v)),
        None => (l.value, None),
    };
    if !is_token(name) {
        return Err(l.invalid("attribute name", name));
    }
    let other = || Attribute::Other {
        name: name.to_owned(),
        value: value.map(str::to_owned),
    };
    Ok(match (name, value) {
        ("rtpmap", Some(v)) => Attribute::RtpMap(parse_rtpmap(l, v)?),
        ("rtpmap", None) => return Err(l.invalid("rtpmap", "")),
        ("fmtp", Some(v)) => {
            let (fmt, params) = v.split_once(' ').unwrap_or((v, ""));
            if !fmt.is_empty() && fmt.bytes().all(|b| b.is_ascii_digit()) {
                Attribute::Fmtp(Fmtp {
                    payload_type: l.payload_type(fmt)?,
                    params: params.to_owned(),
                })
            } else {
                // RFC 4566 allows any <fmt> token here (non-RTP media).
                other()
            }
        }
        ("ptime", Some(v)) => Attribute::Ptime(
            u32::try_from(l.number("ptime", v.trim_matches(' '), u64::from(u32::MAX))?)
                .map_err(|_| l.invalid("ptime", v))?,
        ),
        ("maxptime", Some(v)) => Attribute::MaxPtime(
            u32::try_from(l.number("maxptime", v.trim_matches(' '), u64::from(u32::MAX))?)
                .map_err(|_| l.invalid("maxptime", v))?,
        ),
        ("ptime" | "maxptime", None) => return Err(l.invalid(name_field(name), "")),
        ("rtcp", Some(v)) => Attribute::Rtcp(parse_rtcp(l, v)?),
        (_, None) => match Direction::from_name(name) {
            Some(d) => Attribute::Direction(d),
            None => other(),
        },
        _ => other(),
    })
}

fn name_field(name: &str) -> &'static str {
    if name == "ptime" {
        "ptime"
    } else {
        "maxptime"
    }
}

fn push_attribute(attrs: &mut Vec<Attribute>, l: Line<'_>) -> Result<(), SdpError> {
    if attrs.len() >= MAX_ATTRIBUTES {
        return Err(SdpError::TooManyAttributes {
            line: l.no,
            max: MAX_ATTRIBUTES,
        });
    }
    attrs.push(parse_attribute(l)?);
    Ok(())
}

/// The lines of `input`: (1-based number, text), skipping empty ones and
/// checking length, control characters and UTF-8.
fn lines(input: &[u8]) -> impl Iterator<Item = Result<Line<'_>, SdpError>> {
    input
        .split(|&b| b == b'\n')
        .enumerate()
        .filter_map(|(i, raw)| {
            let no = i + 1;
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            if raw.is_empty() {
                return None;
            }
            if raw.len() > MAX_LINE_LEN {
                return Some(Err(SdpError::LineTooLong {
                    line: no,
                    len: raw.len(),
                    max: MAX_LINE_LEN,
                }));
            }
            if let Some(pos) = raw.iter().position(|&b| b < 0x20 || b == 0x7F) {
                return Some(Err(SdpError::ControlChar {
                    line: no,
                    column: pos + 1,
                    byte: raw[pos],
                }));
            }
            Some(match std::str::from_utf8(raw) {
                Ok(text) => Ok(Line { no, value: text }),
                Err(_) => Err(SdpError::NotUtf8 { line: no }),
            })
        })
}

/// Session-level fields while parsing.
#[derive(Default)]
struct Session {
    origin: Option<Origin>,
    session_name: Option<String>,
    information: Option<String>,
    uri: Option<String>,
    emails: Vec<String>,
    phones: Vec<String>,
    connection: Option<Connection>,
    bandwidths: Vec<Bandwidth>,
    timing: Vec<Timing>,
    time_zones: Option<String>,
    encryption_key: Option<String>,
    attributes: Vec<Attribute>,
}

impl SessionDescription {
    /// Parses a session description (CRLF or LF line ends).
    pub fn parse(input: &[u8]) -> Result<SessionDescription, SdpError> {
        if input.len() > MAX_SDP_LEN {
            return Err(SdpError::TooLarge {
                len: input.len(),
                max: MAX_SDP_LEN,
            });
        }
        let mut lines = lines(input);
        let first = lines.next().ok_or(SdpError::MissingVersion)??;
        let version = first
            .value
            .strip_prefix("v=")
            .ok_or(SdpError::MissingVersion)?;
        if version != "0" {
            return Err(SdpError::UnsupportedVersion {
                found: truncated(version),
            });
        }

        let mut s = Session::default();
        let mut media: Vec<MediaDescription> = Vec::new();
        for l in lines {
            let l = l?;
            let bytes = l.value.as_bytes();
            if bytes.len() < 2 || bytes[1] != b'=' {
                return Err(SdpError::MalformedLine { line: l.no });
            }
            let kind = bytes[0];
            let l = Line {
                no: l.no,
                value: l.value.get(2..).unwrap_or_default(),
            };
            let what = match kind {
                b'v' => "v=",
                b'o' => "o=",
                b's' => "s=",
                b'i' => "i=",
                b'u' => "u=",
                b'e' => "e=",
                b'p' => "p=",
                b'c' => "c=",
                b'b' => "b=",
                b't' => "t=",
                b'r' => "r=",
                b'z' => "z=",
                b'k' => "k=",
                b'a' => "a=",
                b'm' => "m=",
                other if other.is_ascii_alphabetic() => {
                    return Err(SdpError::UnknownType {
                        line: l.no,
                        letter: char::from(other),
                    })
                }
                _ => return Err(SdpError::MalformedLine { line: l.no }),
            };
            if kind == b'm' {
                if media.len() >= MAX_MEDIA {
                    return Err(SdpError::TooManyMedia {
                        line: l.no,
                        max: MAX_MEDIA,
                    });
                }
                media.push(parse_media(l)?);
                continue;
            }
            if let Some(m) = media.last_mut() {
                match kind {
                    b'i' => set_once(&mut m.title, l.value.to_owned(), l.no, what)?,
                    b'c' => set_once(&mut m.connection, parse_connection(l)?, l.no, what)?,
                    b'b' => push_limited(&mut m.bandwidths, parse_bandwidth(l)?, l.no, what)?,
                    b'k' => set_once(&mut m.encryption_key, l.value.to_owned(), l.no, what)?,
                    b'a' => push_attribute(&mut m.attributes, l)?,
                    _ => return Err(SdpError::OutOfPlace { line: l.no, what }),
                }
                continue;
            }
            match kind {
                b'v' => return Err(SdpError::Duplicate { line: l.no, what }),
                b'o' => set_once(&mut s.origin, parse_origin(l)?, l.no, what)?,
                b's' => set_once(&mut s.session_name, l.value.to_owned(), l.no, what)?,
                b'i' => set_once(&mut s.information, l.value.to_owned(), l.no, what)?,
                b'u' => set_once(&mut s.uri, l.value.to_owned(), l.no, what)?,
                b'e' => push_limited(&mut s.emails, l.value.to_owned(), l.no, what)?,
                b'p' => push_limited(&mut s.phones, l.value.to_owned(), l.no, what)?,
                b'c' => set_once(&mut s.connection, parse_connection(l)?, l.no, what)?,
                b'b' => push_limited(&mut s.bandwidths, parse_bandwidth(l)?, l.no, what)?,
                b't' => push_limited(&mut s.timing, parse_timing(l)?, l.no, what)?,
                b'r' => {
                    let Some(t) = s.timing.last_mut() else {
                        return Err(SdpError::OutOfPlace { line: l.no, what });
                    };
                    push_limited(&mut t.repeats, l.value.to_owned(), l.no, what)?;
                }
                b'z' => set_once(&mut s.time_zones, l.value.to_owned(), l.no, what)?,
                b'k' => set_once(&mut s.encryption_key, l.value.to_owned(), l.no, what)?,
                _ => push_attribute(&mut s.attributes, l)?,
            }
        }

        let origin = s.origin.ok_or(SdpError::Missing { what: "o=" })?;
        let session_name = s.session_name.ok_or(SdpError::Missing { what: "s=" })?;
        if s.connection.is_none() {
            if let Some(i) = media
                .iter()
                .position(|m| m.kind == MediaKind::Audio && m.port != 0 && m.connection.is_none())
            {
                return Err(SdpError::MissingConnection { media: i });
            }
        }
        Ok(SessionDescription {
            origin,
            session_name,
            information: s.information,
            uri: s.uri,
            emails: s.emails,
            phones: s.phones,
            connection: s.connection,
            bandwidths: s.bandwidths,
            timing: s.timing,
            time_zones: s.time_zones,
            encryption_key: s.encryption_key,
            attributes: s.attributes,
            media,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASIC: &str = "v=0\r\n\
        o=- 1 2 IN IP4 192.0.2.1\r\n\
        s=-\r\n\
        c=IN IP4 192.0.2.1\r\n\
        t=0 0\r\n\
        m=audio 4000 RTP/AVP 0 101\r\n\
        a=rtpmap:0 PCMU/8000\r\n\
        a=rtpmap:101 telephone-event/8000\r\n\
        a=fmtp:101 0-16\r\n\
        a=ptime:20\r\n\
        a=sendrecv\r\n";

    fn parse(s: &str) -> Result<SessionDescription, SdpError> {
        SessionDescription::parse(s.as_bytes())
    }

    #[test]
    fn parses_basic_fields() {
        let sd = parse(BASIC).unwrap();
        assert_eq!(sd.origin.session_id, 1);
        assert_eq!(sd.origin.session_version, 2);
        assert_eq!(sd.origin.addr_type, AddrType::Ip4);
        assert_eq!(sd.timing, vec![Timing::default()]);
        let m = &sd.media[0];
        assert_eq!(m.kind, MediaKind::Audio);
        assert_eq!(m.port, 4000);
        assert_eq!(m.protocol, Protocol::RtpAvp);
        assert_eq!(
            m.formats.payload_types(),
            &[PayloadType::new(0).unwrap(), PayloadType::new(101).unwrap()]
        );
        let te = m.rtpmap(PayloadType::new(101).unwrap()).unwrap();
        assert_eq!(te.encoding, "telephone-event");
        assert_eq!(te.clock_rate, 8000);
        assert_eq!(
            m.fmtp(PayloadType::new(101).unwrap()).unwrap().params,
            "0-16"
        );
        assert_eq!(m.ptime(), Some(20));
        assert_eq!(m.direction(), Some(Direction::SendRecv));
    }

    #[test]
    fn lf_only_equals_crlf() {
        assert_eq!(parse(BASIC), parse(&BASIC.replace("\r\n", "\n")));
    }

    #[test]
    fn writes_canonical_bytes_back() {
        let sd = parse(BASIC).unwrap();
        assert_eq!(String::from_utf8(sd.to_bytes()).unwrap(), BASIC);
    }

    #[test]
    fn connection_forms() {
        let l = Line { no: 1, value: "" };
        let c = parse_connection_fields(l, "IN", "IP4", "224.2.1.1/127/3").unwrap();
        assert_eq!((c.ttl, c.count), (Some(127), Some(3)));
        let c = parse_connection_fields(l, "IN", "IP6", "ff15::101/3").unwrap();
        assert_eq!((c.ttl, c.count), (None, Some(3)));
        let c = parse_connection_fields(l, "IN", "IP4", "media.example.com").unwrap();
        assert_eq!(
            c.address,
            ConnectionAddress::Fqdn("media.example.com".into())
        );
        for bad in ["999.1.1.1", "::1", "a..b", "", "1.2.3.4/300", "-a.com"] {
            assert!(
                parse_connection_fields(l, "IN", "IP4", bad).is_err(),
                "{bad}"
            );
        }
        assert!(parse_connection_fields(l, "IN", "IP6", "1.2.3.4").is_err());
        assert!(parse_connection_fields(l, "ATM", "IP4", "1.2.3.4").is_err());
        assert!(parse_connection_fields(l, "IN", "IP5", "1.2.3.4").is_err());
    }

    #[test]
    fn attributes() {
        let a = |v: &str| parse_attribute(Line { no: 1, value: v });
        assert_eq!(
            a("sendonly").unwrap(),
            Attribute::Direction(Direction::SendOnly)
        );
        assert_eq!(
            a("sendonly:x").unwrap(),
            Attribute::Other {
                name: "sendonly".into(),
                value: Some("x".into())
            }
        );
        assert_eq!(a("ptime:30").unwrap(), Attribute::Ptime(30));
        assert_eq!(
            a("rtpmap:96 opus/48000/2").unwrap(),
            Attribute::RtpMap(RtpMap {
                payload_type: PayloadType::new(96).unwrap(),
                encoding: "opus".into(),
                clock_rate: 48000,
                channels: Some(2),
            })
        );
        assert_eq!(
            a("rtcp:53021 IN IP4 126.16.64.4").unwrap(),
            Attribute::Rtcp(Rtcp {
                port: 53021,
                connection: Some(Connection::unicast([126, 16, 64, 4].into())),
            })
        );
        assert_eq!(
            a("rtcp-mux").unwrap(),
            Attribute::Other {
                name: "rtcp-mux".into(),
                value: None
            }
        );
        assert_eq!(
            a("fmtp:t38 x").unwrap(),
            Attribute::Other {
                name: "fmtp".into(),
                value: Some("t38 x".into())
            }
        );
        for bad in [
            "rtpmap:128 x/8000",
            "rtpmap:0 PCMU",
            "rtpmap:0 PCMU/0",
            "rtpmap:0 PCMU/8000/1/2",
            "rtpmap",
            "fmtp:200 x",
            "ptime:-1",
            "ptime:twenty",
            "ptime",
            "rtcp:70000",
            "rtcp:1 IN IP4",
            "na me:x",
            ":x",
        ] {
            assert!(a(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn structural_errors() {
        assert_eq!(parse(""), Err(SdpError::MissingVersion));
        assert_eq!(parse("o=- 1 1 IN IP4 h\r\n"), Err(SdpError::MissingVersion));
        assert!(matches!(
            parse("v=1\r\n"),
            Err(SdpError::UnsupportedVersion { .. })
        ));
        assert_eq!(
            parse("v=0\r\ns=-\r\n"),
            Err(SdpError::Missing { what: "o=" })
        );
        assert_eq!(
            parse("v=0\r\no=- 1 1 IN IP4 h\r\n"),
            Err(SdpError::Missing { what: "s=" })
        );
        assert!(matches!(
            parse("v=0\r\no=- 1 1 IN IP4 h\r\no=- 1 1 IN IP4 h\r\n"),
            Err(SdpError::Duplicate { line: 3, .. })
        ));
        assert!(matches!(
            parse("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nx=1\r\n"),
            Err(SdpError::UnknownType { letter: 'x', .. })
        ));
        assert!(matches!(
            parse("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nr=1\r\n"),
            Err(SdpError::OutOfPlace { .. })
        ));
        assert!(matches!(
            parse("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nm=video 0 RTP/AVP 31\r\nt=0 0\r\n"),
            Err(SdpError::OutOfPlace { line: 5, .. })
        ));
        assert!(matches!(
            parse("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\n=x\r\n"),
            Err(SdpError::MalformedLine { line: 4 })
        ));
    }

    #[test]
    fn rejected_line_may_lack_formats_but_active_may_not() {
        let head = "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 1.2.3.4\r\n";
        assert!(parse(&format!("{head}m=audio 0 RTP/AVP\r\n")).is_ok());
        assert!(parse(&format!("{head}m=audio 5 RTP/AVP\r\n")).is_err());
    }

    #[test]
    fn t38_formats_are_tokens() {
        let sd = parse(
            "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n\
             m=image 4000 udptl t38\r\na=T38FaxVersion:0\r\n",
        )
        .unwrap();
        assert_eq!(sd.media[0].kind, MediaKind::Image);
        assert_eq!(sd.media[0].formats, Formats::Other(vec!["t38".into()]));
    }
}
