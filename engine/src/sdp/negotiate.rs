//! The offer/answer model (RFC 3264) for one telephony audio stream.
//!
//! Sans-IO and clock-free: session id and version come in through
//! [`LocalMedia`]; the caller increments the version for every new
//! description it sends (RFC 3264 §8: a re-INVITE answer is a new version).
//!
//! What we speak: RTP/AVP (no SRTP) with PCMU, PCMA or Opus, RFC 4733
//! telephone-event for DTMF, ptime 20 or 30 ms.

use std::net::{IpAddr, SocketAddr};

use vocelio_codecs::g711::{PT_PCMA, PT_PCMU};

use super::types::{
    Attribute, Connection, ConnectionAddress, Direction, Fmtp, Formats, MediaDescription,
    MediaKind, Origin, PayloadType, Protocol, RtpMap, SessionDescription, Timing,
};

/// Payload type we offer telephone-event/8000 on.
pub const OFFER_PT_TELEPHONE_EVENT: u8 = 101;
/// Payload type we offer telephone-event/48000 on (only next to Opus).
pub const OFFER_PT_TELEPHONE_EVENT_48K: u8 = 102;
/// Payload type we offer Opus on.
pub const OFFER_PT_OPUS: u8 = 96;
/// ptime used when the peer asks for none or for one we do not do.
pub const DEFAULT_PTIME: u8 = 20;
/// The events we receive (RFC 4733 §3.2: DTMF 0-9 * # A-D and flash).
const TELEPHONE_EVENTS: &str = "0-16";

/// An audio codec we negotiate.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 mu-law, PCMU/8000.
    Pcmu,
    /// G.711 A-law, PCMA/8000.
    Pcma,
    /// Opus, opus/48000/2 (RFC 7587), always on a dynamic payload type.
    Opus,
}

impl Codec {
    /// The RFC 3551 static payload type, if there is one.
    pub const fn payload_type_static(self) -> Option<u8> {
        match self {
            Codec::Pcmu => Some(PT_PCMU),
            Codec::Pcma => Some(PT_PCMA),
            Codec::Opus => None,
        }
    }

    /// RTP clock rate in Hz (48000 for Opus whatever it actually samples).
    pub const fn clock_rate(self) -> u32 {
        match self {
            Codec::Pcmu | Codec::Pcma => 8000,
            Codec::Opus => 48000,
        }
    }

    /// The rtpmap encoding name.
    pub const fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::Opus => "opus",
        }
    }

    /// The rtpmap encoding parameters (channels) we write.
    pub const fn channels(self) -> Option<u16> {
        match self {
            Codec::Pcmu | Codec::Pcma => None,
            Codec::Opus => Some(2),
        }
    }

    /// The payload type we put in our own offers.
    pub const fn offer_payload_type(self) -> u8 {
        match self.payload_type_static() {
            Some(pt) => pt,
            None => OFFER_PT_OPUS,
        }
    }

    /// The codec an rtpmap describes, if we support it.
    pub fn from_rtpmap(map: &RtpMap) -> Option<Codec> {
        let name = map.encoding.as_str();
        let mono = matches!(map.channels, None | Some(1));
        if name.eq_ignore_ascii_case("PCMU") && map.clock_rate == 8000 && mono {
            Some(Codec::Pcmu)
        } else if name.eq_ignore_ascii_case("PCMA") && map.clock_rate == 8000 && mono {
            Some(Codec::Pcma)
        } else if name.eq_ignore_ascii_case("opus")
            && map.clock_rate == 48000
            && map.channels == Some(2)
        {
            Some(Codec::Opus)
        } else {
            None
        }
    }

    fn rtpmap(self, pt: PayloadType) -> Attribute {
        Attribute::RtpMap(RtpMap {
            payload_type: pt,
            encoding: self.encoding_name().to_owned(),
            clock_rate: self.clock_rate(),
            channels: self.channels(),
        })
    }
}

/// What we have to offer or answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMedia {
    /// Our RTP address (also used for `o=` and `c=`).
    pub addr: IpAddr,
    /// Our RTP port.
    pub rtp_port: u16,
    /// Codecs we accept, in our preference order (used for offers; in
    /// answers the offerer's order wins). Empty is treated as `[Pcmu]`.
    pub codecs: Vec<Codec>,
    /// Whether we offer/accept RFC 4733 telephone-event.
    pub telephone_event: bool,
    /// ptime for our offers: 20 or 30 (anything else offers 20).
    pub ptime: u8,
    /// `o=` session id, constant for the call.
    pub session_id: u64,
    /// `o=` session version; increment it for every description sent.
    pub session_version: u64,
    /// `o=` username; `-` is used if this is empty or has whitespace.
    pub username: String,
}

/// The outcome of an offer/answer exchange: what the media plane needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Where to send RTP. With the peer on hold via `c=0.0.0.0` this is
    /// `0.0.0.0:port` and [`direction`](Self::direction) does not send.
    pub remote_rtp: SocketAddr,
    /// The codec.
    pub codec: Codec,
    /// Its payload type on the wire (the one the peer listed).
    pub payload_type: u8,
    /// Its RTP clock rate in Hz.
    pub clock_rate: u32,
    /// The telephone-event payload type, if both sides do RFC 4733.
    pub telephone_event_pt: Option<u8>,
    /// The telephone-event clock rate; `Some` exactly when
    /// `telephone_event_pt` is. Equal to `clock_rate`, except for Opus with a
    /// peer that only does telephone-event/8000.
    pub telephone_event_clock_rate: Option<u32>,
    /// Packetisation time in ms: 20 or 30.
    pub ptime: u8,
    /// The media direction from our point of view (`RecvOnly` while the peer
    /// holds us, `SendOnly` while we hold them, `Inactive` for both).
    pub direction: Direction,
}

/// Why an offer cannot be answered or an answer cannot be used. All the
/// offer-side ones map to SIP 488 Not Acceptable Here.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    /// No active RTP/AVP audio stream (only SRTP, video, port 0...).
    #[error("no active RTP/AVP audio stream")]
    NoUsableAudio,
    /// Audio offered, but none of our codecs.
    #[error("no codec in common")]
    NoCommonCodec,
    /// The answer rejected (port 0) every audio stream we offered.
    #[error("the answer rejected our audio stream")]
    AudioRejected,
    /// The answer does not have one `m=` line per offered one (RFC 3264 §6).
    #[error("answer has {answer} media sections, offer has {offer}")]
    MediaCountMismatch {
        /// In the offer.
        offer: usize,
        /// In the answer.
        answer: usize,
    },
    /// An answer `m=` line of another media type than the offered one.
    #[error("answer media section {media} is not of the offered type")]
    MediaKindMismatch {
        /// 0-based index.
        media: usize,
    },
    /// The chosen stream has no `c=` (only possible in hand-built values;
    /// the parser rejects it for audio).
    #[error("media section {media} has no connection address")]
    MissingConnection {
        /// 0-based index.
        media: usize,
    },
    /// The chosen stream's `c=` is a host name, which we do not resolve.
    #[error("media section {media} connection is a host name {host:?}")]
    UnresolvedAddress {
        /// 0-based index.
        media: usize,
        /// The name (truncated).
        host: String,
    },
}

fn sanitize_username(u: &str) -> String {
    if u.is_empty() || u.chars().any(|c| c.is_whitespace() || c.is_control()) {
        "-".to_owned()
    } else {
        u.to_owned()
    }
}

fn normalize_ptime(p: Option<u32>) -> u8 {
    match p {
        Some(20) => 20,
        Some(30) => 30,
        _ => DEFAULT_PTIME,
    }
}

/// For our own constants and the static types, all <= 127.
const fn pt(n: u8) -> PayloadType {
    PayloadType::masked(n)
}

fn local_codecs(local: &LocalMedia) -> Vec<Codec> {
    let mut out: Vec<Codec> = Vec::with_capacity(local.codecs.len().max(1));
    for &c in &local.codecs {
        if !out.contains(&c) {
            out.push(c);
        }
    }
    if out.is_empty() {
        out.push(Codec::Pcmu);
    }
    out
}

fn origin(local: &LocalMedia) -> Origin {
    Origin {
        username: sanitize_username(&local.username),
        session_id: local.session_id,
        session_version: local.session_version,
        addr_type: super::types::AddrType::of(local.addr),
        address: local.addr.to_string(),
    }
}

fn telephone_event_attrs(attrs: &mut Vec<Attribute>, pt: PayloadType, clock_rate: u32) {
    attrs.push(Attribute::RtpMap(RtpMap {
        payload_type: pt,
        encoding: "telephone-event".to_owned(),
        clock_rate,
        channels: None,
    }));
    attrs.push(Attribute::Fmtp(Fmtp {
        payload_type: pt,
        params: TELEPHONE_EVENTS.to_owned(),
    }));
}

fn session(
    local: &LocalMedia,
    timing: Vec<Timing>,
    media: Vec<MediaDescription>,
) -> SessionDescription {
    SessionDescription {
        origin: origin(local),
        session_name: "-".to_owned(),
        information: None,
        uri: None,
        emails: Vec::new(),
        phones: Vec::new(),
        connection: Some(Connection::unicast(local.addr)),
        bandwidths: Vec::new(),
        timing,
        time_zones: None,
        encryption_key: None,
        attributes: Vec::new(),
        media,
    }
}

/// Our offer: one `RTP/AVP` audio line with our codecs in order, plus
/// telephone-event/8000 on 101 (and telephone-event/48000 on 102 when Opus
/// is offered), `a=ptime` and `a=sendrecv`. For a hold re-offer, call
/// [`MediaDescription::set_direction`] on `media[0]`.
pub fn create_offer(local: &LocalMedia) -> SessionDescription {
    let codecs = local_codecs(local);
    let mut formats = Vec::new();
    let mut attrs = Vec::new();
    for c in &codecs {
        let p = pt(c.offer_payload_type());
        formats.push(p);
        attrs.push(c.rtpmap(p));
    }
    if local.telephone_event {
        let te = pt(OFFER_PT_TELEPHONE_EVENT);
        formats.push(te);
        telephone_event_attrs(&mut attrs, te, 8000);
        if codecs.contains(&Codec::Opus) {
            let te48 = pt(OFFER_PT_TELEPHONE_EVENT_48K);
            formats.push(te48);
            telephone_event_attrs(&mut attrs, te48, 48000);
        }
    }
    attrs.push(Attribute::Ptime(u32::from(normalize_ptime(Some(
        u32::from(local.ptime),
    )))));
    attrs.push(Attribute::Direction(Direction::SendRecv));
    let mut m = MediaDescription::new(
        MediaKind::Audio,
        local.rtp_port,
        Protocol::RtpAvp,
        Formats::Rtp(formats),
    );
    m.attributes = attrs;
    session(local, vec![Timing::default()], vec![m])
}

/// The codec a payload type stands for in a media section: its rtpmap, else
/// the static assignment.
fn codec_of(m: &MediaDescription, p: PayloadType) -> Option<Codec> {
    match m.rtpmap(p) {
        Some(map) => Codec::from_rtpmap(map),
        None => match p.get() {
            PT_PCMU => Some(Codec::Pcmu),
            PT_PCMA => Some(Codec::Pcma),
            _ => None,
        },
    }
}

/// telephone-event payload types in a media section, with their clocks.
fn telephone_events(m: &MediaDescription) -> impl Iterator<Item = (PayloadType, u32)> + '_ {
    m.formats.payload_types().iter().filter_map(|&p| {
        m.rtpmap(p)
            .filter(|map| {
                map.encoding.eq_ignore_ascii_case("telephone-event")
                    && matches!(map.channels, None | Some(1))
            })
            .map(|map| (p, map.clock_rate))
    })
}

/// The telephone-event to pair with a codec: the one on the codec's clock,
/// else telephone-event/8000 (what older Opus peers offer).
fn pick_telephone_event(m: &MediaDescription, codec: Codec) -> Option<(PayloadType, u32)> {
    telephone_events(m)
        .find(|&(_, clock)| clock == codec.clock_rate())
        .or_else(|| telephone_events(m).find(|&(_, clock)| clock == 8000))
}

fn is_our_kind_of_audio(m: &MediaDescription) -> bool {
    m.kind == MediaKind::Audio && m.port != 0 && m.protocol == Protocol::RtpAvp
}

fn remote_addr(
    sd: &SessionDescription,
    m: &MediaDescription,
    index: usize,
) -> Result<(SocketAddr, bool), NegotiationError> {
    let c = sd
        .connection_for(m)
        .ok_or(NegotiationError::MissingConnection { media: index })?;
    match &c.address {
        ConnectionAddress::Ip(ip) => Ok((SocketAddr::new(*ip, m.port), ip.is_unspecified())),
        ConnectionAddress::Fqdn(h) => Err(NegotiationError::UnresolvedAddress {
            media: index,
            host: h.chars().take(64).collect(),
        }),
    }
}

/// The direction a description asks for on a media section, with the RFC
/// 2543 `c=0.0.0.0` hold folded in (the writer does not want to receive).
fn effective_direction(sd: &SessionDescription, m: &MediaDescription, held: bool) -> Direction {
    let d = sd.direction_for(m);
    if held {
        d.intersect(Direction::SendOnly)
    } else {
        d
    }
}

/// Answers a peer's offer (initial INVITE or re-INVITE).
///
/// Takes the first active `RTP/AVP` audio line with a codec in common
/// (the first in the *offerer's* order among `local.codecs`), answers with
/// that codec alone (plus telephone-event on the offerer's payload type, if
/// offered and `local.telephone_event`), mirrors the direction (RFC 3264
/// §6.1) and rejects every other line with port 0. The answer's `o=`
/// version is `local.session_version`: increment it for each answer in a
/// dialog. For a re-offer during a call use [`create_reanswer`] to keep the
/// current codec.
pub fn create_answer(
    offer: &SessionDescription,
    local: &LocalMedia,
) -> Result<(SessionDescription, Negotiated), NegotiationError> {
    answer(offer, local, None)
}

/// [`create_answer`] for a re-offer in an established call: keeps `current`
/// if the offer still lists it (and `local.codecs` has it), so a hold or
/// unhold does not switch codecs mid-call.
pub fn create_reanswer(
    offer: &SessionDescription,
    local: &LocalMedia,
    current: Codec,
) -> Result<(SessionDescription, Negotiated), NegotiationError> {
    answer(offer, local, Some(current))
}

fn choose_codec(
    m: &MediaDescription,
    ours: &[Codec],
    keep: Option<Codec>,
) -> Option<(Codec, PayloadType)> {
    let offered = || {
        m.formats
            .payload_types()
            .iter()
            .filter_map(|&p| codec_of(m, p).map(|c| (c, p)))
            .filter(|(c, _)| ours.contains(c))
    };
    keep.and_then(|k| offered().find(|&(c, _)| c == k))
        .or_else(|| offered().next())
}

fn answer(
    offer: &SessionDescription,
    local: &LocalMedia,
    keep: Option<Codec>,
) -> Result<(SessionDescription, Negotiated), NegotiationError> {
    let ours = local_codecs(local);
    let mut saw_audio = false;
    let mut chosen = None;
    for (i, m) in offer.media.iter().enumerate() {
        if !is_our_kind_of_audio(m) {
            continue;
        }
        saw_audio = true;
        if let Some((codec, p)) = choose_codec(m, &ours, keep) {
            chosen = Some((i, m, codec, p));
            break;
        }
    }
    let Some((index, om, codec, p)) = chosen else {
        return Err(if saw_audio {
            NegotiationError::NoCommonCodec
        } else {
            NegotiationError::NoUsableAudio
        });
    };

    let (remote_rtp, held) = remote_addr(offer, om, index)?;
    let direction = effective_direction(offer, om, held).reversed();
    let ptime = normalize_ptime(offer.ptime_for(om));
    let te = if local.telephone_event {
        pick_telephone_event(om, codec)
    } else {
        None
    };

    let mut formats = vec![p];
    let mut attrs = vec![codec.rtpmap(p)];
    if let Some((te_pt, clock)) = te {
        formats.push(te_pt);
        telephone_event_attrs(&mut attrs, te_pt, clock);
    }
    attrs.push(Attribute::Ptime(u32::from(ptime)));
    attrs.push(Attribute::Direction(direction));
    let mut accepted = MediaDescription::new(
        MediaKind::Audio,
        local.rtp_port,
        Protocol::RtpAvp,
        Formats::Rtp(formats),
    );
    accepted.attributes = attrs;

    let media = offer
        .media
        .iter()
        .enumerate()
        .map(|(i, m)| {
            if i == index {
                accepted.clone()
            } else {
                MediaDescription::new(m.kind.clone(), 0, m.protocol.clone(), m.formats.clone())
            }
        })
        .collect();
    // RFC 3264 §6: the answer's t= equals the offer's.
    let timing = if offer.timing.is_empty() {
        vec![Timing::default()]
    } else {
        offer.timing.clone()
    };
    let sd = session(local, timing, media);
    let negotiated = Negotiated {
        remote_rtp,
        codec,
        payload_type: p.get(),
        clock_rate: codec.clock_rate(),
        telephone_event_pt: te.map(|(p, _)| p.get()),
        telephone_event_clock_rate: te.map(|(_, c)| c),
        ptime,
        direction,
    };
    Ok((sd, negotiated))
}

/// Reads the peer's answer to our offer (UAC: 200 to our INVITE; late
/// offer: ACK to our 200). Uses the first audio line we offered on
/// `RTP/AVP` that the answer accepts, and the first payload type in the
/// answer that maps to a codec we offered there.
pub fn accept_answer(
    offer: &SessionDescription,
    answer: &SessionDescription,
) -> Result<Negotiated, NegotiationError> {
    if offer.media.len() != answer.media.len() {
        return Err(NegotiationError::MediaCountMismatch {
            offer: offer.media.len(),
            answer: answer.media.len(),
        });
    }
    let mut rejected = false;
    let mut saw_codecless = false;
    for (i, (om, am)) in offer.media.iter().zip(&answer.media).enumerate() {
        if !is_our_kind_of_audio(om) {
            continue;
        }
        if am.kind != om.kind {
            return Err(NegotiationError::MediaKindMismatch { media: i });
        }
        if am.port == 0 {
            rejected = true;
            continue;
        }
        let offered: Vec<Codec> = om
            .formats
            .payload_types()
            .iter()
            .filter_map(|&p| codec_of(om, p))
            .collect();
        let Some((codec, p)) = choose_codec(am, &offered, None) else {
            saw_codecless = true;
            continue;
        };
        let (remote_rtp, held) = remote_addr(answer, am, i)?;
        let we_held = offer
            .connection_for(om)
            .is_some_and(Connection::is_unspecified);
        let ours = effective_direction(offer, om, we_held);
        let direction = ours.intersect(effective_direction(answer, am, held).reversed());
        let ptime = match answer.ptime_for(am) {
            Some(p @ (20 | 30)) => p,
            _ => offer.ptime_for(om).unwrap_or(u32::from(DEFAULT_PTIME)),
        };
        let te = pick_telephone_event(am, codec)
            .filter(|&(_, clock)| telephone_events(om).any(|(_, c)| c == clock));
        return Ok(Negotiated {
            remote_rtp,
            codec,
            payload_type: p.get(),
            clock_rate: codec.clock_rate(),
            telephone_event_pt: te.map(|(p, _)| p.get()),
            telephone_event_clock_rate: te.map(|(_, c)| c),
            ptime: normalize_ptime(Some(ptime)),
            direction,
        });
    }
    Err(if saw_codecless {
        NegotiationError::NoCommonCodec
    } else if rejected {
        NegotiationError::AudioRejected
    } else {
        NegotiationError::NoUsableAudio
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> LocalMedia {
        LocalMedia {
            addr: IpAddr::from([10, 0, 0, 5]),
            rtp_port: 20000,
            codecs: vec![Codec::Pcmu, Codec::Pcma],
            telephone_event: true,
            ptime: 20,
            session_id: 42,
            session_version: 1,
            username: "vocelio".into(),
        }
    }

    fn sd(s: &str) -> SessionDescription {
        SessionDescription::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn codec_constants() {
        assert_eq!(Codec::Pcmu.payload_type_static(), Some(0));
        assert_eq!(Codec::Pcma.payload_type_static(), Some(8));
        assert_eq!(Codec::Opus.payload_type_static(), None);
        assert_eq!(Codec::Opus.clock_rate(), 48000);
        assert_eq!(Codec::Pcma.clock_rate(), 8000);
    }

    #[test]
    fn direction_helpers() {
        use Direction::*;
        assert!(SendRecv.sends() && SendRecv.receives());
        assert!(SendOnly.sends() && !SendOnly.receives());
        assert!(!RecvOnly.sends() && RecvOnly.receives());
        assert!(!Inactive.sends() && !Inactive.receives());
        assert_eq!(SendOnly.reversed(), RecvOnly);
        assert_eq!(Inactive.reversed(), Inactive);
        assert_eq!(SendRecv.intersect(RecvOnly), RecvOnly);
        assert_eq!(SendOnly.intersect(RecvOnly), Inactive);
    }

    #[test]
    fn offer_shape() {
        let offer = create_offer(&local());
        let text = String::from_utf8(offer.to_bytes()).unwrap();
        assert_eq!(
            text,
            "v=0\r\no=vocelio 42 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
             m=audio 20000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
        );
        assert!(offer.validate().is_ok());
    }

    #[test]
    fn offer_with_opus_adds_48k_events_and_sanitises() {
        let mut l = local();
        l.codecs = vec![Codec::Opus, Codec::Pcmu, Codec::Opus];
        l.ptime = 40;
        l.username = "bad name".into();
        l.addr = "2001:db8::5".parse().unwrap();
        let offer = create_offer(&l);
        let text = String::from_utf8(offer.to_bytes()).unwrap();
        assert!(text.contains("o=- 42 1 IN IP6 2001:db8::5\r\n"), "{text}");
        assert!(
            text.contains("m=audio 20000 RTP/AVP 96 0 101 102\r\n"),
            "{text}"
        );
        assert!(text.contains("a=rtpmap:96 opus/48000/2\r\n"));
        assert!(text.contains("a=rtpmap:102 telephone-event/48000\r\n"));
        assert!(text.contains("a=ptime:20\r\n"));
        assert!(offer.validate().is_ok());
    }

    #[test]
    fn offer_answer_loop_between_two_of_us() {
        let a = local();
        let mut b = local();
        b.addr = IpAddr::from([10, 0, 0, 6]);
        b.rtp_port = 30000;
        b.codecs = vec![Codec::Pcma];
        let offer = create_offer(&a);
        let (answer, theirs) = create_answer(&offer, &b).unwrap();
        let ours = accept_answer(&offer, &answer).unwrap();
        assert_eq!(theirs.remote_rtp, "10.0.0.5:20000".parse().unwrap());
        assert_eq!(ours.remote_rtp, "10.0.0.6:30000".parse().unwrap());
        for n in [&ours, &theirs] {
            assert_eq!(n.codec, Codec::Pcma);
            assert_eq!(n.payload_type, 8);
            assert_eq!(n.telephone_event_pt, Some(101));
            assert_eq!(n.direction, Direction::SendRecv);
        }
    }

    #[test]
    fn we_hold_them() {
        let a = local();
        let mut offer = create_offer(&a);
        offer.media[0].set_direction(Direction::SendOnly);
        let (answer, theirs) = create_answer(&offer, &local()).unwrap();
        assert_eq!(theirs.direction, Direction::RecvOnly);
        assert_eq!(answer.media[0].direction(), Some(Direction::RecvOnly));
        assert_eq!(
            accept_answer(&offer, &answer).unwrap().direction,
            Direction::SendOnly
        );
    }

    #[test]
    fn reanswer_keeps_codec() {
        let offer = sd(
            "v=0\r\no=- 1 2 IN IP4 h\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n\
                        m=audio 5000 RTP/AVP 0 8\r\na=sendonly\r\n",
        );
        let (_, n) = create_answer(&offer, &local()).unwrap();
        assert_eq!(n.codec, Codec::Pcmu);
        let (_, n) = create_reanswer(&offer, &local(), Codec::Pcma).unwrap();
        assert_eq!(n.codec, Codec::Pcma);
        assert_eq!(n.direction, Direction::RecvOnly);
        // Not offered any more: fall back to the usual choice.
        let (_, n) = create_reanswer(&offer, &local(), Codec::Opus).unwrap();
        assert_eq!(n.codec, Codec::Pcmu);
    }

    #[test]
    fn answer_errors() {
        let mut offer = create_offer(&local());
        let answer = create_answer(&offer, &local()).unwrap().0;
        let mut extra = answer.clone();
        extra.media.push(answer.media[0].clone());
        assert_eq!(
            accept_answer(&offer, &extra),
            Err(NegotiationError::MediaCountMismatch {
                offer: 1,
                answer: 2
            })
        );
        let mut rejected = answer.clone();
        rejected.media[0].port = 0;
        assert_eq!(
            accept_answer(&offer, &rejected),
            Err(NegotiationError::AudioRejected)
        );
        let mut video = answer.clone();
        video.media[0].kind = MediaKind::Video;
        assert_eq!(
            accept_answer(&offer, &video),
            Err(NegotiationError::MediaKindMismatch { media: 0 })
        );
        let mut other_codec = answer.clone();
        other_codec.media[0].formats = Formats::Rtp(vec![pt(18)]);
        assert_eq!(
            accept_answer(&offer, &other_codec),
            Err(NegotiationError::NoCommonCodec)
        );
        let mut fqdn = answer;
        fqdn.connection = Some(Connection {
            address: ConnectionAddress::Fqdn("media.example".into()),
            ..Connection::unicast(IpAddr::from([0, 0, 0, 0]))
        });
        assert!(matches!(
            accept_answer(&offer, &fqdn),
            Err(NegotiationError::UnresolvedAddress { media: 0, .. })
        ));
        offer.connection = None;
        assert_eq!(
            create_answer(&offer, &local()).map(|_| ()),
            Err(NegotiationError::MissingConnection { media: 0 })
        );
        offer.media[0].protocol = Protocol::RtpSavp;
        assert_eq!(
            create_answer(&offer, &local()).map(|_| ()),
            Err(NegotiationError::NoUsableAudio)
        );
    }

    #[test]
    fn telephone_event_pairing() {
        let offer = sd("v=0\r\no=- 1 2 IN IP4 h\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n\
                        m=audio 5000 RTP/AVP 96 0 101 100\r\na=rtpmap:96 opus/48000/2\r\n\
                        a=rtpmap:101 telephone-event/48000\r\na=rtpmap:100 telephone-event/8000\r\n");
        let mut l = local();
        l.codecs = vec![Codec::Opus, Codec::Pcmu];
        let (_, n) = create_answer(&offer, &l).unwrap();
        assert_eq!((n.codec, n.payload_type), (Codec::Opus, 96));
        assert_eq!(n.telephone_event_pt, Some(101));
        assert_eq!(n.telephone_event_clock_rate, Some(48000));
        l.codecs = vec![Codec::Pcmu];
        let (answer, n) = create_answer(&offer, &l).unwrap();
        assert_eq!(n.telephone_event_pt, Some(100));
        assert_eq!(n.telephone_event_clock_rate, Some(8000));
        assert_eq!(answer.media[0].formats.payload_types(), &[pt(0), pt(100)]);
        l.telephone_event = false;
        let (answer, n) = create_answer(&offer, &l).unwrap();
        assert_eq!(n.telephone_event_pt, None);
        assert_eq!(answer.media[0].formats.payload_types(), &[pt(0)]);
    }
}
