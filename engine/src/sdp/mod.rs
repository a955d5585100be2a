//! SDP (RFC 4566) and the offer/answer model (RFC 3264) for telephony audio.
//!
//! [`SessionDescription::parse`] turns bytes into a typed description or an
//! [`SdpError`] (hostile input never panics and is held to the limits
//! [`MAX_SDP_LEN`], [`MAX_LINE_LEN`], [`MAX_MEDIA`], [`MAX_ATTRIBUTES`] and
//! [`MAX_REPEATED_LINES`]); [`SessionDescription::write_to`] writes the
//! canonical form (CRLF, RFC 4566 line order), which parses back to the same
//! value.
//!
//! On top of that, sans-IO and clock-free: [`create_offer`],
//! [`create_answer`] (and [`create_reanswer`] for re-INVITEs) and
//! [`accept_answer`], each giving the [`Negotiated`] parameters the RTP media
//! plane needs.
//!
//! ```
//! use std::net::IpAddr;
//! use vocelio_engine::sdp::{create_answer, Codec, Direction, LocalMedia, SessionDescription};
//!
//! let offer = SessionDescription::parse(
//!     b"v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
//!       m=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
//! )?;
//! let local = LocalMedia {
//!     addr: IpAddr::from([198, 51, 100, 7]),
//!     rtp_port: 20000,
//!     codecs: vec![Codec::Pcmu, Codec::Pcma],
//!     telephone_event: true,
//!     ptime: 20,
//!     session_id: 7,
//!     session_version: 1,
//!     username: "-".into(),
//! };
//! let (answer, negotiated) = create_answer(&offer, &local)?;
//! assert_eq!(negotiated.codec, Codec::Pcmu);
//! assert_eq!(negotiated.remote_rtp, "192.0.2.10:6000".parse()?);
//! assert_eq!(negotiated.direction, Direction::SendRecv);
//!
//! let mut body = Vec::new();
//! answer.write_to(&mut body); // the 200 OK body
//! assert_eq!(SessionDescription::parse(&body)?, answer);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod negotiate;
mod parse;
#[cfg(test)]
mod proptests;
mod types;
mod write;

pub use negotiate::{
    accept_answer, create_answer, create_offer, create_reanswer, Codec, LocalMedia, Negotiated,
    NegotiationError, DEFAULT_PTIME, OFFER_PT_OPUS, OFFER_PT_TELEPHONE_EVENT,
    OFFER_PT_TELEPHONE_EVENT_48K,
};
pub use parse::{
    SdpError, MAX_ATTRIBUTES, MAX_LINE_LEN, MAX_MEDIA, MAX_REPEATED_LINES, MAX_SDP_LEN,
};
pub use types::{
    AddrType, Attribute, Bandwidth, Connection, ConnectionAddress, Direction, Fmtp, Formats,
    MediaDescription, MediaKind, Origin, PayloadType, Protocol, Rtcp, RtpMap, SessionDescription,
    Timing,
};
