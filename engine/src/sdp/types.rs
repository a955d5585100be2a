//! The session description model (RFC 4566 §5) and the newtypes it is made
//! of. Parsing lives in `parse.rs`, serialisation in `write.rs`.

use std::fmt;
use std::net::IpAddr;

/// An RTP payload type, 0..=127 (RFC 3550 §5.1: seven bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PayloadType(u8);

impl PayloadType {
    /// The largest payload type.
    pub const MAX: u8 = 127;
    /// Start of the dynamic range (RFC 3551 §3).
    pub const DYNAMIC_START: u8 = 96;

    /// `Some` for 0..=127.
    pub const fn new(pt: u8) -> Option<PayloadType> {
        if pt <= Self::MAX {
            Some(PayloadType(pt))
        } else {
            None
        }
    }

    /// The low seven bits of `n`, for constants known to be in range.
    pub(crate) const fn masked(n: u8) -> PayloadType {
        PayloadType(n & Self::MAX)
    }

    /// The number.
    pub const fn get(self) -> u8 {
        self.0
    }

    /// Whether the type is in the dynamic range 96..=127.
    pub const fn is_dynamic(self) -> bool {
        self.0 >= Self::DYNAMIC_START
    }
}

impl fmt::Display for PayloadType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A media direction attribute (RFC 3264 §5.1, RFC 4566 §6). In a session
/// description it is the writer's point of view; in
/// [`Negotiated`](super::Negotiated) it is ours.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// Send and receive (the default when no attribute is present).
    #[default]
    SendRecv,
    /// Send only (the writer puts the other side on hold).
    SendOnly,
    /// Receive only.
    RecvOnly,
    /// Neither.
    Inactive,
}

impl Direction {
    /// Built from the two flags.
    pub const fn from_flags(sends: bool, receives: bool) -> Direction {
        match (sends, receives) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    /// Whether media flows out.
    pub const fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether media flows in.
    pub const fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The same stream seen from the other end (sendonly <-> recvonly).
    pub const fn reversed(self) -> Direction {
        Direction::from_flags(self.receives(), self.sends())
    }

    /// Both restrictions at once.
    pub const fn intersect(self, other: Direction) -> Direction {
        Direction::from_flags(
            self.sends() && other.sends(),
            self.receives() && other.receives(),
        )
    }

    /// The attribute name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Direction> {
        Some(match name {
            "sendrecv" => Direction::SendRecv,
            "sendonly" => Direction::SendOnly,
            "recvonly" => Direction::RecvOnly,
            "inactive" => Direction::Inactive,
            _ => return None,
        })
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `<addrtype>` of `o=` and `c=`. The `<nettype>` is always `IN`.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrType {
    /// `IP4`.
    Ip4,
    /// `IP6`.
    Ip6,
}

impl AddrType {
    /// As written in SDP.
    pub const fn as_str(self) -> &'static str {
        match self {
            AddrType::Ip4 => "IP4",
            AddrType::Ip6 => "IP6",
        }
    }

    /// The type matching an address.
    pub const fn of(addr: IpAddr) -> AddrType {
        match addr {
            IpAddr::V4(_) => AddrType::Ip4,
            IpAddr::V6(_) => AddrType::Ip6,
        }
    }
}

/// `o=<username> <sess-id> <sess-version> IN <addrtype> <unicast-address>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The user's login, or `-`. No whitespace.
    pub username: String,
    /// Session id; constant for the session.
    pub session_id: u64,
    /// Incremented by the writer on every new description it sends.
    pub session_version: u64,
    /// `IP4` or `IP6`.
    pub addr_type: AddrType,
    /// Often a host name or a placeholder; kept as written. No whitespace.
    pub address: String,
}

/// Where a `c=` line points.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ConnectionAddress {
    /// A literal address. `0.0.0.0` is the RFC 2543 way to hold.
    Ip(IpAddr),
    /// A host name (RFC 4566 allows one; we cannot resolve it sans-IO).
    Fqdn(String),
}

impl fmt::Display for ConnectionAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionAddress::Ip(ip) => fmt::Display::fmt(ip, f),
            ConnectionAddress::Fqdn(h) => f.write_str(h),
        }
    }
}

/// `c=IN <addrtype> <address>[/<ttl>][/<count>]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Connection {
    /// `IP4` or `IP6`; agrees with a literal `address`.
    pub addr_type: AddrType,
    /// The address.
    pub address: ConnectionAddress,
    /// Multicast TTL (IP4 only).
    pub ttl: Option<u8>,
    /// Multicast address count.
    pub count: Option<u32>,
}

impl Connection {
    /// A unicast `c=` line for an address.
    pub const fn unicast(addr: IpAddr) -> Connection {
        Connection {
            addr_type: AddrType::of(addr),
            address: ConnectionAddress::Ip(addr),
            ttl: None,
            count: None,
        }
    }

    /// Whether this is the RFC 2543 hold address (`0.0.0.0` or `::`).
    pub fn is_unspecified(&self) -> bool {
        matches!(self.address, ConnectionAddress::Ip(ip) if ip.is_unspecified())
    }
}

/// `t=<start-time> <stop-time>` and its `r=` lines (kept raw).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Timing {
    /// NTP start time, 0 for unbounded.
    pub start: u64,
    /// NTP stop time, 0 for unbounded.
    pub stop: u64,
    /// `r=` values, as written.
    pub repeats: Vec<String>,
}

/// `b=<bwtype>:<bandwidth>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bandwidth {
    /// `CT`, `AS`, `TIAS`, `RS`, `RR`... (a token).
    pub bwtype: String,
    /// The value (kbit/s for `CT`/`AS`, bit/s for `TIAS`).
    pub bandwidth: u64,
}

/// `a=rtpmap:<payload type> <encoding name>/<clock rate>[/<channels>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// The payload type it describes.
    pub payload_type: PayloadType,
    /// `PCMU`, `opus`, `telephone-event`... Compare case-insensitively.
    pub encoding: String,
    /// Hz.
    pub clock_rate: u32,
    /// Encoding parameters: the channel count for audio.
    pub channels: Option<u16>,
}

/// `a=fmtp:<payload type> <parameters>`, parameters kept raw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fmtp {
    /// The payload type it describes.
    pub payload_type: PayloadType,
    /// Everything after the first space, as written.
    pub params: String,
}

/// `a=rtcp:<port> [IN <addrtype> <address>]` (RFC 3605).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rtcp {
    /// The RTCP port.
    pub port: u16,
    /// The RTCP address, if not the RTP one.
    pub connection: Option<Connection>,
}

/// One `a=` line.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribute {
    /// `a=rtpmap:`.
    RtpMap(RtpMap),
    /// `a=fmtp:` with a numeric format.
    Fmtp(Fmtp),
    /// `a=ptime:<ms>`.
    Ptime(u32),
    /// `a=maxptime:<ms>`.
    MaxPtime(u32),
    /// `a=sendrecv`, `a=sendonly`, `a=recvonly`, `a=inactive`.
    Direction(Direction),
    /// `a=rtcp:`.
    Rtcp(Rtcp),
    /// Anything else: `a=<name>` (value `None`) or `a=<name>:<value>`.
    Other {
        /// The attribute name (a token).
        name: String,
        /// Everything after the first `:`, as written.
        value: Option<String>,
    },
}

/// `<media>` of an `m=` line.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// `audio`.
    Audio,
    /// `video`.
    Video,
    /// `text`.
    Text,
    /// `application`.
    Application,
    /// `message`.
    Message,
    /// `image` (T.38 fax).
    Image,
    /// Anything else, as written (never one of the names above).
    Other(String),
}

impl MediaKind {
    /// As written in SDP.
    pub fn as_str(&self) -> &str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::Text => "text",
            MediaKind::Application => "application",
            MediaKind::Message => "message",
            MediaKind::Image => "image",
            MediaKind::Other(s) => s,
        }
    }

    pub(crate) fn from_token(s: &str) -> MediaKind {
        match s {
            "audio" => MediaKind::Audio,
            "video" => MediaKind::Video,
            "text" => MediaKind::Text,
            "application" => MediaKind::Application,
            "message" => MediaKind::Message,
            "image" => MediaKind::Image,
            other => MediaKind::Other(other.to_owned()),
        }
    }
}

/// `<proto>` of an `m=` line.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// `RTP/AVP` (RFC 3551): plain RTP, what we speak.
    RtpAvp,
    /// `RTP/SAVP` (RFC 3711): SRTP, which we do not.
    RtpSavp,
    /// `RTP/AVPF` (RFC 4585).
    RtpAvpf,
    /// `RTP/SAVPF` (RFC 5124).
    RtpSavpf,
    /// Anything else, as written (`udptl`, `UDP/TLS/RTP/SAVPF`...; never
    /// one of the names above).
    Other(String),
}

impl Protocol {
    /// As written in SDP.
    pub fn as_str(&self) -> &str {
        match self {
            Protocol::RtpAvp => "RTP/AVP",
            Protocol::RtpSavp => "RTP/SAVP",
            Protocol::RtpAvpf => "RTP/AVPF",
            Protocol::RtpSavpf => "RTP/SAVPF",
            Protocol::Other(s) => s,
        }
    }

    /// Whether the formats are RTP payload types (the profile contains
    /// `RTP/`).
    pub fn is_rtp(&self) -> bool {
        match self {
            Protocol::Other(s) => s.contains("RTP/"),
            _ => true,
        }
    }

    pub(crate) fn from_token(s: &str) -> Protocol {
        match s {
            "RTP/AVP" => Protocol::RtpAvp,
            "RTP/SAVP" => Protocol::RtpSavp,
            "RTP/AVPF" => Protocol::RtpAvpf,
            "RTP/SAVPF" => Protocol::RtpSavpf,
            other => Protocol::Other(other.to_owned()),
        }
    }
}

/// The `<fmt>` list of an `m=` line.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Formats {
    /// RTP profiles: payload types.
    Rtp(Vec<PayloadType>),
    /// Other protocols (`m=image 4000 udptl t38`): tokens as written.
    Other(Vec<String>),
}

impl Formats {
    /// Payload types (empty for a non-RTP line).
    pub fn payload_types(&self) -> &[PayloadType] {
        match self {
            Formats::Rtp(v) => v,
            Formats::Other(_) => &[],
        }
    }

    /// Number of formats.
    pub fn len(&self) -> usize {
        match self {
            Formats::Rtp(v) => v.len(),
            Formats::Other(v) => v.len(),
        }
    }

    /// Whether the list is empty (only allowed on a rejected line).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A media description: an `m=` line and the lines under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// `audio`, `video`...
    pub kind: MediaKind,
    /// Transport port; 0 rejects or disables the stream (RFC 3264 §5.1).
    pub port: u16,
    /// `/<number of ports>`, if written.
    pub port_count: Option<u16>,
    /// `RTP/AVP`...
    pub protocol: Protocol,
    /// Payload types or tokens.
    pub formats: Formats,
    /// `i=` media title.
    pub title: Option<String>,
    /// Media-level `c=`, overriding the session one.
    pub connection: Option<Connection>,
    /// `b=` lines.
    pub bandwidths: Vec<Bandwidth>,
    /// `k=`, raw.
    pub encryption_key: Option<String>,
    /// `a=` lines, in order.
    pub attributes: Vec<Attribute>,
}

impl MediaDescription {
    /// A media line with no attributes.
    pub fn new(kind: MediaKind, port: u16, protocol: Protocol, formats: Formats) -> Self {
        MediaDescription {
            kind,
            port,
            port_count: None,
            protocol,
            formats,
            title: None,
            connection: None,
            bandwidths: Vec::new(),
            encryption_key: None,
            attributes: Vec::new(),
        }
    }

    /// The `a=rtpmap` for a payload type.
    pub fn rtpmap(&self, pt: PayloadType) -> Option<&RtpMap> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::RtpMap(m) if m.payload_type == pt => Some(m),
            _ => None,
        })
    }

    /// The `a=fmtp` for a payload type.
    pub fn fmtp(&self, pt: PayloadType) -> Option<&Fmtp> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::Fmtp(f) if f.payload_type == pt => Some(f),
            _ => None,
        })
    }

    /// The first `a=ptime`.
    pub fn ptime(&self) -> Option<u32> {
        find_ptime(&self.attributes)
    }

    /// The first media-level direction attribute.
    pub fn direction(&self) -> Option<Direction> {
        find_direction(&self.attributes)
    }

    /// Replaces every direction attribute with one (appended at the end),
    /// e.g. to turn our offer into a hold offer.
    pub fn set_direction(&mut self, direction: Direction) {
        self.attributes
            .retain(|a| !matches!(a, Attribute::Direction(_)));
        self.attributes.push(Attribute::Direction(direction));
    }

    /// Whether the stream is enabled (non-zero port).
    pub fn is_active(&self) -> bool {
        self.port != 0
    }
}

pub(crate) fn find_direction(attrs: &[Attribute]) -> Option<Direction> {
    attrs.iter().find_map(|a| match a {
        Attribute::Direction(d) => Some(*d),
        _ => None,
    })
}

pub(crate) fn find_ptime(attrs: &[Attribute]) -> Option<u32> {
    attrs.iter().find_map(|a| match a {
        Attribute::Ptime(p) => Some(*p),
        _ => None,
    })
}

/// A whole session description.
///
/// Every value returned by [`SessionDescription::parse`] writes back to
/// bytes that parse to the same value. Values built or edited by hand can
/// be checked with [`SessionDescription::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// `o=`.
    pub origin: Origin,
    /// `s=` (`-` or a single space when there is no name).
    pub session_name: String,
    /// `i=`.
    pub information: Option<String>,
    /// `u=`.
    pub uri: Option<String>,
    /// `e=` lines.
    pub emails: Vec<String>,
    /// `p=` lines.
    pub phones: Vec<String>,
    /// Session-level `c=`.
    pub connection: Option<Connection>,
    /// Session-level `b=` lines.
    pub bandwidths: Vec<Bandwidth>,
    /// `t=` lines with their `r=` lines (RFC 4566 wants at least one;
    /// a description without any is accepted).
    pub timing: Vec<Timing>,
    /// `z=`, raw.
    pub time_zones: Option<String>,
    /// Session-level `k=`, raw.
    pub encryption_key: Option<String>,
    /// Session-level `a=` lines.
    pub attributes: Vec<Attribute>,
    /// `m=` sections, in order.
    pub media: Vec<MediaDescription>,
}

impl SessionDescription {
    /// The connection that applies to a media section: its own, else the
    /// session one.
    pub fn connection_for<'a>(&'a self, media: &'a MediaDescription) -> Option<&'a Connection> {
        media.connection.as_ref().or(self.connection.as_ref())
    }

    /// The direction that applies to a media section: its own attribute,
    /// else the session attribute, else sendrecv. The `c=0.0.0.0` hold
    /// convention is *not* folded in here (see
    /// [`create_answer`](super::create_answer)).
    pub fn direction_for(&self, media: &MediaDescription) -> Direction {
        media
            .direction()
            .or_else(|| find_direction(&self.attributes))
            .unwrap_or_default()
    }

    /// The ptime that applies to a media section: its own, else a
    /// session-level one (seen in the wild, though RFC 4566 puts it on media).
    pub fn ptime_for(&self, media: &MediaDescription) -> Option<u32> {
        media.ptime().or_else(|| find_ptime(&self.attributes))
    }

    /// The canonical bytes, as a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        self.write_to(&mut out);
        out
    }

    /// Checks that a (hand-built) description writes to bytes that parse
    /// back to the same value: no line breaks or control characters in text
    /// fields, whitespace only where the grammar has it, formats that match
    /// the protocol, limits respected.
    pub fn validate(&self) -> Result<(), super::SdpError> {
        let again = SessionDescription::parse(&self.to_bytes())?;
        if &again == self {
            Ok(())
        } else {
            Err(super::SdpError::NotCanonical)
        }
    }
}
