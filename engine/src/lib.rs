//! Telephony for Vocelio: SIP trunks, SDP offer/answer, RTP/RTCP, RFC 4733
//! DTMF and Twilio Media Streams.
//!
//! Protocol cores are sans-IO (time and bytes in; bytes, events and the next
//! deadline out) with thin tokio drivers around them; see
//! `../shared/HOUSE_STYLE.md`.
//!
//! - [`sip`]: RFC 3261 messages, stream framing, the transaction layer
//!   ([`sip::transaction`]) and digest authentication ([`sip::auth`]).
//! - [`sdp`]: RFC 4566 descriptions and RFC 3264 offer/answer for G.711, Opus
//!   and telephone-event.
//! - [`endpoint`]: the SIP trunk endpoint (dialogs, inbound routing by DID,
//!   access control, outbound calls, REFER, REGISTER) and its tokio driver.
//! - [`rtp`]: RFC 3550 RTP/RTCP packets, RFC 4733 telephone-events, the
//!   jitter buffer, receive statistics and the per-call RTP session.
//! - [`media`]: the tokio media plane: RTP sockets, the shared 20 ms playout
//!   clock, and each call's [`vocelio_codecs::port`] media port.
//! - [`twilio`]: Twilio Media Streams (TwiML webhook, signatures, the media
//!   WebSocket) feeding the same media port as a SIP call.

pub mod endpoint;
pub mod media;
pub mod rtp;
pub mod sdp;
pub mod sip;
pub mod twilio;
